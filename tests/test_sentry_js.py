"""The official JavaScript SDKs at their current major against a running
ErrorCapture, with the options their quick starts show: `@sentry/node` (an
error, tracing, logs, a cron via withMonitor) and `@sentry/browser` in headless
Chromium on a page served from another origin (tracing, session replay, logs,
feedback). Both install from npm (cached); skipped with the reason when node,
npm, the registry or chromium are not there.

Each test asserts what a user looks for in the read API: the error with its
frames, the transaction with its child spans and web vitals, the replay with its
events and errors, the feedback text."""
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

import errorcapture
from helpers import chromium, free_port, npm_modules

pytestmark = pytest.mark.slow

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sentry_js')
SENTRY_MAJOR = '11'


def read(server, key, path, **params):
    params['key'] = key
    url = '%s%s?%s' % (server.url, path, urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def wait_for(what, probe, timeout=40.0):
    """probe() until it returns something truthy (SDKs send in the background)."""
    deadline = time.time() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.time() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.25)


def spans_named(transaction):
    return {span['description']: span for span in transaction['spans']}


def transaction_named(server, key, name):
    listed = read(server, key, '/api/v1/transactions/list', name=name)['transactions']
    if not listed:
        return None
    return read(server, key, '/api/v1/transactions/%d' % listed[0]['id'])['transaction']


class Server(object):
    """A module-wide ErrorCapture server (each scenario runs once, several tests read it)."""

    def __init__(self, path):
        self.app = errorcapture.make_app(path)
        self.handle = errorcapture.serve_in_background(self.app, '127.0.0.1', 0)
        self.url = self.handle.url

    def project(self, name):
        with urllib.request.urlopen(self.url + '/api.php?action=generate&name=' + name, timeout=30) as answer:
            return json.loads(answer.read())

    def stop(self):
        self.handle.stop()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    running = Server(str(tmp_path_factory.mktemp('sentry-js') / 'live.db'))
    yield running
    running.stop()


# @sentry/node ###############################################################

@pytest.fixture(scope='module')
def node_run(server):
    modules = npm_modules('@sentry/node@' + SENTRY_MAJOR)
    project = server.project('node-shop')
    env = {k: v for k, v in os.environ.items() if not k.startswith('SENTRY_')}
    env['NODE_PATH'] = str(modules / 'node_modules')
    done = subprocess.run([shutil.which('node'), os.path.join(HERE, 'node_client.js'), project['dsn']],
                          cwd=str(modules), capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert sent['flushed'] is True
    return project, sent


def test_node_error_has_its_frames(server, node_run):
    project, sent = node_run
    issues = read(server, project['key'], '/api/v1/issues')['issues']
    error = next(issue for issue in issues if issue['type'] == 'TypeError')
    assert "reading 'card'" in error['title']
    events = read(server, project['key'], '/api/v1/issues/%d/events' % error['id'])['events']
    assert [e['eventId'] for e in events] == [sent['eventId']]
    event = read(server, project['key'], '/api/v1/events/%d' % events[0]['id'])['event']
    functions = [f.get('function') for f in event['exception'][-1]['frames']]
    assert functions.index('checkout') < functions.index('chargeCard')  # oldest call first


def test_node_streamed_spans_make_a_transaction_with_its_tree(server, node_run):
    project, sent = node_run
    checkout = wait_for('the checkout transaction',
                        lambda: transaction_named(server, project['key'], 'POST /checkout'))
    assert checkout['source'] == 'spans' and checkout['op'] == 'http.server'
    assert checkout['traceId'] == sent['traceId'] and checkout['status'] == 'ok'
    assert checkout['release'] == 'shop-api@3.1.0' and checkout['environment'] == 'test'
    spans = spans_named(checkout)
    assert set(spans) == {'SELECT * FROM orders WHERE id = ?', 'POST https://payments.example/charge',
                          'encode body'}
    query, charge, encode = (spans['SELECT * FROM orders WHERE id = ?'],
                             spans['POST https://payments.example/charge'], spans['encode body'])
    assert query['op'] == 'db.query' and query['parentSpanId'] == checkout['segmentSpanId']
    assert encode['parentSpanId'] == charge['spanId']  # the tree: charge > encode body
    assert (query['depth'], charge['depth'], encode['depth']) == (0, 0, 1)
    assert charge['status'] == 'deadline_exceeded'  # Sentry's word, not just "error"
    assert 0 <= query['startMs'] < charge['startMs'] <= encode['startMs']
    assert query['durationMs'] >= 10 and checkout['durationMs'] >= query['durationMs'] + charge['durationMs']
    order = [span['spanId'] for span in checkout['spans']]
    assert order.index(charge['spanId']) + 1 == order.index(encode['spanId'])  # waterfall order


def test_node_transaction_status_keeps_sentry_words(server, node_run):
    project, _ = node_run
    batch = wait_for('the nightly-batch transaction',
                     lambda: transaction_named(server, project['key'], 'nightly-batch'))
    assert batch['status'] == 'internal_error' and batch['spans'] == []
    summary = {row['name']: row for row in read(server, project['key'], '/api/v1/transactions')['transactions']}
    assert summary['nightly-batch']['errors'] == 1 and summary['POST /checkout']['errors'] == 0


def test_node_logs_and_cron_arrive(server, node_run):
    project, sent = node_run
    logs = wait_for('two logs', lambda: [log for log in read(server, project['key'], '/api/v1/logs')['logs']
                                         if log['traceId'] == sent['traceId']][:2] or None)
    assert sorted(log['message'] for log in logs) == ['checkout slower than 2 s', 'order 17 charged']
    monitor = read(server, project['key'], '/api/v1/monitors/nightly-report')
    assert monitor['monitor']['status'] == 'healthy'
    assert [h['status'] for h in monitor['history']][:1] == ['success']


# @sentry/browser in headless Chromium, page from another origin ###############

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def page_origin(tmp_path_factory):
    """The test page and its @sentry/browser bundle (esbuild), served from a
    second local port: another origin than ErrorCapture's."""
    modules = npm_modules('@sentry/browser@' + SENTRY_MAJOR, 'esbuild@0')
    root = tmp_path_factory.mktemp('page')
    shutil.copy(os.path.join(HERE, 'page.html'), str(root / 'index.html'))
    (root / 'prices.json').write_text('{"card": 9.99}')
    built = subprocess.run([str(modules / 'node_modules' / '.bin' / 'esbuild'), os.path.join(HERE, 'entry.js'),
                            '--bundle', '--minify', '--format=iife', '--outfile=%s' % (root / 'sentry.bundle.js')],
                           cwd=str(modules), capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, NODE_PATH=str(modules / 'node_modules')))
    assert built.returncode == 0, built.stderr
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', port),
                                            functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % port
    httpd.shutdown()
    httpd.server_close()


def settled(server, project, sent, timeout=30.0):
    """Wait (without judging) until the replay's last segment and the page load's
    LCP span are stored, or the time is up: the tests below say what is missing."""
    def done():
        try:
            replay = read(server, project['key'], '/api/v1/replays/' + sent['replayId'])
            page_load = transaction_named(server, project['key'], '/index.html')
        except Exception:
            return False
        navigated = any(e['eventType'] == 'navigation' and '/receipt' in e['eventData'] for e in replay['events'])
        return navigated and page_load and 'lcp' in page_load.get('webVitals', {})
    deadline = time.time() + timeout
    while time.time() < deadline and not (sent.get('replayId') and done()):
        time.sleep(0.5)


@pytest.fixture(scope='module')
def browser_run(server, page_origin):
    from selenium.webdriver.common.by import By
    project = server.project('web-shop')
    browser = chromium()
    try:
        browser.get('%s/index.html?%s' % (page_origin, urllib.parse.urlencode({'dsn': project['dsn']})))
        wait_for('the SDK', lambda: browser.execute_script('return !!(window.Sentry && Sentry.getClient())'))
        time.sleep(1.0)  # let the page load end (its idle span) before the user acts
        browser.find_element(By.ID, 'card').send_keys('4111 1111 1111 1111')
        browser.find_element(By.ID, 'pay').click()
        wait_for('the feedback call', lambda: browser.execute_script('return window.sentFeedbackId'))
        # the crash-report dialog, as a page opens it after an error
        browser.execute_script("Sentry.showReportDialog({eventId: window.sentEventId,"
                               " user: {name: 'Ada Lovelace', email: 'ada@example.com'}})")
        comments = wait_for('the report dialog', lambda: browser.find_elements(By.ID, 'sentry-report-comments'))
        comments[0].send_keys('Paying twice shows an error')
        assert browser.find_element(By.ID, 'sentry-report-name').get_attribute('value') == 'Ada Lovelace'
        browser.find_element(By.ID, 'sentry-report-submit').click()
        wait_for('the dialog to thank', lambda: browser.find_elements(By.ID, 'sentry-report-thanks'))
        wait_for('the dialog to close', lambda: not browser.find_elements(By.ID, 'sentry-report-dialog'))
        # a client-side navigation: ends the page load's web vitals (LCP is sent now) and starts a span
        browser.execute_script("history.pushState({}, '', '/receipt');")
        time.sleep(1.5)
        browser.execute_async_script('var done = arguments[arguments.length - 1];'
                                     'Sentry.flush(10000).then(done, done);')
        sent = browser.execute_script(
            'var r = Sentry.getReplay && Sentry.getReplay();'
            'return {eventId: window.sentEventId, feedbackId: window.sentFeedbackId,'
            '        replayId: r ? r.getReplayId() : null, origin: location.origin}')
        # the replay integration sends a segment 5 s after activity; flush() sends the rest now
        browser.execute_async_script("var done = arguments[arguments.length - 1];"
                                     "var replay = Sentry.getClient().getIntegrationByName('Replay');"
                                     "replay.flush().then(done, done);")
        settled(server, project, sent)  # keep the page open until what it sends has arrived
        log = browser.get_log('browser')
    finally:
        browser.quit()
    assert sent['eventId'] and sent['replayId'], (sent, log)
    assert sent['origin'] != server.url  # the page really is another origin
    return project, sent


def test_browser_error_has_frames_and_its_replay(server, browser_run):
    project, sent = browser_run
    issues = wait_for('the TypeError', lambda: [i for i in read(server, project['key'], '/api/v1/issues')['issues']
                                                if i['type'] == 'TypeError'])
    events = read(server, project['key'], '/api/v1/issues/%d/events' % issues[0]['id'])['events']
    event = read(server, project['key'], '/api/v1/events/%d' % events[0]['id'])['event']
    assert event['eventId'] == sent['eventId']
    functions = [f.get('function') for f in event['exception'][-1]['frames']]
    assert 'chargeCard' in functions
    assert event['replayId'] == sent['replayId']
    assert any(crumb.get('category') == 'ui.click' for crumb in event['breadcrumbs'])


def test_browser_page_load_is_a_transaction_with_spans_and_web_vitals(server, browser_run):
    project, sent = browser_run
    page_load = wait_for('the page-load transaction with its LCP', lambda: (
        lambda tx: tx if tx and 'lcp' in tx['webVitals'] else None)(
            transaction_named(server, project['key'], '/index.html')))
    assert page_load['op'] == 'pageload' and page_load['source'] == 'spans'
    assert page_load['replayId'] == sent['replayId']
    ops = {span['op'] for span in page_load['spans']}
    assert {'browser.request', 'resource.script', 'ui.webvital.lcp'} <= ops, ops
    for vital in ('lcp', 'fcp', 'ttfb'):
        assert page_load['webVitals'][vital]['value'] > 0, page_load['webVitals']
        assert page_load['webVitals'][vital]['unit'] == 'millisecond'
    # the LCP span came in a later envelope than the page-load span, and still belongs to it
    lcp = next(span for span in page_load['spans'] if span['op'] == 'ui.webvital.lcp')
    assert lcp['parentSpanId'] == page_load['segmentSpanId']


def test_browser_replay_has_a_readable_timeline(server, browser_run):
    project, sent = browser_run
    replay = wait_for('the replay with its click', lambda: (
        lambda r: r if any(e['eventType'] == 'click' for e in r['events']) else None)(
            read(server, project['key'], '/api/v1/replays/' + sent['replayId'])))
    sessions = read(server, project['key'], '/api/v1/replays')['sessions']
    assert [s['sessionId'] for s in sessions] == [sent['replayId']] and sessions[0]['source'] == 'sentry'
    by_type = {}
    for event in replay['events']:
        by_type.setdefault(event['eventType'], []).append(json.loads(event['eventData']))
    assert any('button#pay' in click['target'] for click in by_type['click'])
    assert any(line['message'] == 'paying order 17' for line in by_type['console'])
    assert any('prices.json' in request['url'] for request in by_type['network'])
    assert any('/index.html' in nav['to'] for nav in by_type['navigation'])
    assert any(nav['to'].endswith('/receipt') for nav in by_type['navigation'])  # the second segment
    typed = ' '.join(json.dumps(value) for value in by_type['input'])
    assert '4111' not in typed and '1111' not in typed  # masked
    stamps = [event['timestampMillis'] for event in replay['events']]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] < 120000
    assert [error['eventId'] for error in replay['errors']] == [sent['eventId']]  # linked both ways


def test_browser_feedback_is_listed_with_its_issue(server, browser_run):
    project, sent = browser_run
    feedback = wait_for('the feedback', lambda: read(server, project['key'], '/api/v1/feedback')['feedback'])
    by_kind = {item['kind']: item for item in feedback}
    item = by_kind['feedback']  # Sentry.captureFeedback
    assert item['eventId'] == sent['feedbackId'] and item['message'] == 'The pay button does nothing'
    assert (item['name'], item['email']) == ('Ada Lovelace', 'ada@example.com')
    assert item['associatedEventId'] == sent['eventId'] and item['replayId'] == sent['replayId']
    report = by_kind['user_report']  # Sentry.showReportDialog, filled in and sent
    assert (report['message'], report['name'], report['email'], report['source']) == (
        'Paying twice shows an error', 'Ada Lovelace', 'ada@example.com', 'report_dialog')
    assert report['associatedEventId'] == sent['eventId']
    issue_id = item['event']['issueId']
    assert report['event']['issueId'] == issue_id
    on_issue = read(server, project['key'], '/api/v1/issues/%d/feedback' % issue_id)['feedback']
    assert sorted(f['message'] for f in on_issue) == ['Paying twice shows an error', 'The pay button does nothing']
