"""The real sentry-sdk (2.x) pointed at a running ErrorCapture: errors, messages,
the logging integration, transactions with spans, cron monitors, logs, and the
gzip bodies the SDK sends. The SDK runs in a subprocess (tests/sdk_client.py):
inside pytest its auto-enabled integrations would instrument the server under
test itself."""
import json
import os
import subprocess
import sys
import threading
import urllib.request

import pytest

import errorcapture
from helpers import create_project

sentry_sdk = pytest.importorskip('sentry_sdk')

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, 'sdk_client.py')


class Recorder(object):
    """WSGI middleware that notes each Sentry request's path, Content-Encoding and answer."""

    def __init__(self, app):
        self.app, self.seen, self.lock = app, [], threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        if not path.startswith('/api/') or path.startswith('/api/v1/'):
            return self.app(environ, start_response)
        record = {'path': path, 'encoding': environ.get('HTTP_CONTENT_ENCODING'), 'status': None,
                  'length': int(environ.get('CONTENT_LENGTH') or 0)}
        with self.lock:
            self.seen.append(record)

        def recording_start_response(status, headers, exc_info=None):
            record['status'] = int(status.split()[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
        return self.app(environ, recording_start_response)

    def close(self):
        self.app.close()


class Server(object):
    def __init__(self, tmp_path):
        self.recorder = Recorder(errorcapture.make_app(str(tmp_path / 'sdk.db')))
        self.handle = errorcapture.serve_in_background(self.recorder, '127.0.0.1', 0)
        self.url = self.handle.url
        project = create_project(self.url, 'sdk')
        self.key, self.dsn, self.id = project['key'], project['dsn'], project['id']

    def read(self, path, **params):
        params['key'] = self.key
        query = '&'.join('%s=%s' % (k, urllib.request.quote(str(v))) for k, v in params.items())
        with urllib.request.urlopen('%s%s?%s' % (self.url, path, query), timeout=30) as answer:
            return json.loads(answer.read())

    def run(self, scenario, compression='gzip'):
        env = {k: v for k, v in os.environ.items() if not k.startswith('SENTRY_')}
        done = subprocess.run([sys.executable, CLIENT, self.dsn, scenario, compression], capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def sentry_requests(self):
        return list(self.recorder.seen)


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path)
    yield running
    running.handle.stop()


def assert_all_accepted(server, encoding='gzip'):
    requests = server.sentry_requests()
    assert requests, 'the SDK sent nothing'
    for record in requests:
        assert record['path'] == '/api/%d/envelope/' % server.id, record
        assert record['status'] == 200, record
        assert record['encoding'] == encoding, record


def test_dsn_points_at_this_server(server):
    assert server.dsn.startswith('http://%s@127.0.0.1:' % server.key)
    assert server.dsn.endswith('/%d' % server.id)


def test_same_bug_twice_is_one_issue_with_count_2(server):
    sent = server.run('error_twice')
    assert len(sent['eventIds']) == 2 and all(sent['eventIds'])
    issues = server.read('/api/v1/issues')['issues']
    assert len(issues) == 1, issues
    issue = issues[0]
    assert issue['count'] == 2
    assert issue['title'].startswith('ZeroDivisionError: division by zero')
    assert issue['level'] == 'error'
    assert issue['lastRelease'] == 'sdk-client@1.0' and issue['environments'] == ['test']
    events = server.read('/api/v1/issues/%d/events' % issue['id'])['events']
    assert sorted(e['eventId'] for e in events) == sorted(sent['eventIds'])
    event = server.read('/api/v1/events/%d' % events[0]['id'])['event']
    assert event['dialect'] == 'sentry'
    assert event['serverName'] == 'sdk-box' and event['platform'] == 'python'
    assert event['sdk']['name'].startswith('sentry.python')
    frames = event['exception'][-1]['frames']
    assert [f['function'] for f in frames][-2:] == ['split_bill', 'divide']
    raising = frames[-1]
    assert raising['inApp'] is True
    assert raising['filename'].endswith('sdk_client.py')
    assert 'total / parts' in raising['contextLine']
    assert raising['preContext'] and raising['postContext']
    assert 'total' in raising['vars'] and 'parts' in raising['vars']
    assert_all_accepted(server)


def test_capture_message(server):
    sent = server.run('message')
    issues = server.read('/api/v1/issues')['issues']
    assert [i['title'] for i in issues] == ['Deploy finished with warnings']
    assert issues[0]['level'] == 'warning'
    event = server.read('/api/v1/events')['events'][0]
    assert event['eventId'] == sent['eventIds'][0]
    assert event['message'] == 'Deploy finished with warnings'
    assert_all_accepted(server)


def test_logging_integration_error(server):
    server.run('logging')
    issues = server.read('/api/v1/issues')['issues']
    assert [i['title'] for i in issues] == ['Order 17 could not be charged']
    assert issues[0]['level'] == 'error'
    row = server.read('/api/v1/events')['events'][0]
    event = server.read('/api/v1/events/%d' % row['id'])['event']
    assert event['message'] == 'Order 17 could not be charged'
    assert event['logger'] == 'shop.orders'
    assert_all_accepted(server)


def test_logging_same_template_different_arguments_is_one_issue(server):
    """logger.error('Customer %s has no billing address', name) for two names:
    Sentry groups a log record by its template (logentry.message), so this is
    one issue seen twice, as in Sentry."""
    server.run('logging_params')
    issues = server.read('/api/v1/issues')['issues']
    assert len(issues) == 1, [i['title'] for i in issues]
    assert issues[0]['count'] == 2
    assert issues[0]['title'] in ('Customer alice has no billing address', 'Customer bob has no billing address')
    assert_all_accepted(server)


def test_transaction_with_spans(server):
    sent = server.run('transaction')
    assert server.read('/api/v1/issues')['issues'] == []
    listed = server.read('/api/v1/transactions/list')['transactions']
    assert [t['name'] for t in listed] == ['nightly-batch']
    summary = listed[0]
    assert summary['traceId'] == sent['traceId']
    assert summary['status'] == 'ok' and summary['durationMs'] >= 0
    tx = server.read('/api/v1/transactions/%d' % summary['id'])['transaction']
    assert tx['op'] == 'task' and tx['release'] == 'sdk-client@1.0' and tx['environment'] == 'test'
    spans = {s['op']: s for s in tx['spans']}
    assert set(spans) == {'db.query', 'http.client', 'serialize'}
    assert spans['db.query']['description'] == 'SELECT * FROM orders'
    assert spans['serialize']['parentSpanId'] == spans['http.client']['spanId']
    for span in tx['spans']:
        assert span['startMs'] is not None and 0 <= span['startMs'] <= tx['durationMs'] + 1
        assert span['durationMs'] >= 0
    # the waterfall order: the db query started before the http call
    assert spans['db.query']['startMs'] <= spans['http.client']['startMs'] <= spans['serialize']['startMs']
    summary_by_name = {t['name']: t for t in server.read('/api/v1/transactions', hours=24)['transactions']}
    assert summary_by_name['nightly-batch']['count'] == 1
    assert_all_accepted(server)


def test_cron_monitor_ok_then_failing_run(server):
    assert server.run('cron_ok') == {'result': 'done'}
    shown = server.read('/api/v1/monitors/nightly-report')
    monitor = shown['monitor']
    assert monitor['schedule'] == '0 3 * * *'
    assert monitor['grace'] == 10 and monitor['maxRuntime'] == 30 and monitor['timezone'] == 'Europe/Berlin'
    assert monitor['status'] == 'healthy' and monitor['lastStatus'] == 'success'
    assert [h['status'] for h in shown['history']] == ['success', 'in_progress']
    assert shown['history'][0]['durationMs'] is not None and shown['history'][0]['durationMs'] >= 0

    assert server.run('cron_fail') == {'raised': True}
    shown = server.read('/api/v1/monitors/nightly-report')
    assert shown['monitor']['status'] == 'failed'
    assert [h['status'] for h in shown['history']] == ['failed', 'in_progress', 'success', 'in_progress']
    assert [m['slug'] for m in server.read('/api/v1/monitors')['monitors']] == ['nightly-report']
    assert_all_accepted(server)


def test_sdk_logs(server):
    server.run('logs')
    logs = server.read('/api/v1/logs')['logs']
    assert [l['message'] for l in logs] == ['Disk /dev/sda1 almost full', 'User bob logged in']
    assert [l['level'] for l in logs] == ['warn', 'info']
    assert 'bob' in json.dumps(logs[1]['metadata'])
    assert_all_accepted(server)


def test_uncompressed_bodies_work_too(server):
    sent = server.run('error_twice', compression='none')
    assert server.read('/api/v1/issues')['issues'][0]['count'] == 2
    assert len(sent['eventIds']) == 2
    assert_all_accepted(server, encoding=None)


# -- default options: br where the app has brotli (as every ErrorCapture install does) --

def test_default_options_send_br_and_everything_arrives(server):
    """sentry-sdk compresses with br whenever brotli is importable; the server
    sees Content-Encoding: br on every request and stores all of it."""
    import brotli  # noqa: F401  a run-time dependency of ErrorCapture: installed beside it
    sent = server.run('error_twice', compression='default')
    issue = server.read('/api/v1/issues')['issues'][0]
    assert issue['count'] == 2 and issue['title'].startswith('ZeroDivisionError')
    event = server.read('/api/v1/events/%d' % server.read('/api/v1/events')['events'][0]['id'])['event']
    assert [f['function'] for f in event['exception'][-1]['frames']][-2:] == ['split_bill', 'divide']
    assert sorted(e['eventId'] for e in server.read('/api/v1/events')['events']) == sorted(sent['eventIds'])
    tx = server.run('transaction', compression='default')
    rows = server.read('/api/v1/transactions/list')['transactions']
    assert [r['traceId'] for r in rows] == [tx['traceId']]
    spans = server.read('/api/v1/transactions/%d' % rows[0]['id'])['transaction']['spans']
    assert sorted(s['op'] for s in spans) == ['db.query', 'http.client', 'serialize']
    server.run('cron_ok', compression='default')
    assert server.read('/api/v1/monitors/nightly-report')['monitor']['status'] == 'healthy'
    server.run('logs', compression='default')
    assert len(server.read('/api/v1/logs')['logs']) == 2
    assert_all_accepted(server, encoding='br')


def test_without_brotli_the_sdk_sends_gzip_and_everything_arrives(server):
    sent = server.run('error_twice', compression='default-without-brotli')
    assert server.read('/api/v1/issues')['issues'][0]['count'] == 2
    assert sorted(e['eventId'] for e in server.read('/api/v1/events')['events']) == sorted(sent['eventIds'])
    assert_all_accepted(server, encoding='gzip')


@pytest.mark.parametrize('compression, encoding', [('default', 'br'), ('default-without-brotli', 'gzip')])
def test_attachments_arrive_byte_for_byte(server, compression, encoding):
    sent = server.run('attachment', compression=compression)
    row = server.read('/api/v1/events')['events'][0]
    assert row['eventId'] == sent['eventIds'][0]
    event = server.read('/api/v1/events/%d' % row['id'])['event']
    listed = {a['name']: a for a in event['attachments']}
    assert sorted(listed) == ['import.log', 'summary.json']
    assert listed['import.log']['size'] == sent['attached']['import.log']
    assert listed['import.log']['contentType'] == 'text/plain'
    with urllib.request.urlopen('%s%s?key=%s' % (server.url, listed['import.log']['url'], server.key)) as answer:
        body = answer.read()
        assert answer.headers['Content-Disposition'].startswith('attachment;')
    assert body.startswith(b'2026-12-01 10:00:00 INFO step 0 of the import') and len(body) == listed['import.log']['size']
    with urllib.request.urlopen('%s%s?key=%s' % (server.url, listed['summary.json']['url'], server.key)) as answer:
        assert json.loads(answer.read()) == {'rows': 1204, 'failed': 3}
    assert_all_accepted(server, encoding=encoding)

