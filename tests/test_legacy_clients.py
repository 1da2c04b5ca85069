"""The legacy raven clients on /store/, and X-Sentry-Error on every 4xx.

raven-python (PyPI `raven`, run for real in a subprocess by tests/raven_client.py)
sends zlib bodies under `Content-Encoding: deflate`, its own X-Sentry-Auth form
(sentry_timestamp, sentry_client=raven-python/..., sentry_version=6) and Python
logging levels as numbers ("level": 40). raven-node (npm `raven` 2.x, run for real
by tests/raven_node_client.js) sends base64 of zlib-deflated JSON with no
Content-Encoding. raven-js sends plain JSON with the key in the query string; base64
of plain JSON is read too, as Relay reads it. Sentry clients log the X-Sentry-Error
header of a refusal, not its body."""
import base64
import json
import os
import subprocess
import sys
import uuid
import zlib

import pytest

from helpers import create_project, npm_modules

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def read(server, key, path):
    import urllib.request
    separator = '&' if '?' in path else '?'
    with urllib.request.urlopen('%s%s%skey=%s' % (server.url, path, separator, key), timeout=30) as answer:
        return json.loads(answer.read())


def stored_events(server, key):
    rows = read(server, key, '/api/v1/events')['events']
    return {row['eventId']: read(server, key, '/api/v1/events/%d' % row['id'])['event'] for row in rows}


# -- raven-python, for real ------------------------------------------------------

raven = pytest.importorskip('raven', reason='the test extra installs raven (pip install .[test])')


def run_raven(dsn, scenario):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SENTRY_')}
    done = subprocess.run([sys.executable, os.path.join(HERE, 'raven_client.py'), dsn, scenario],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_raven_python_exception_arrives_with_its_frames(live_server):
    project = create_project(live_server, 'raven')
    sent = run_raven(project['dsn'], 'exception')
    assert sent['errors'] == []
    events = stored_events(live_server, project['key'])
    assert list(events) == sent['eventIds']
    event = events[sent['eventIds'][0]]
    raised = event['exception'][-1]
    assert raised['type'] == 'ZeroDivisionError'
    assert [f['function'] for f in raised['frames']][-2:] == ['checkout', 'apply_discount']
    assert raised['frames'][-1]['contextLine'].strip() == 'factor = 100 / percent  # the bug: percent may be 0'
    assert event['level'] == 'error'  # raven sends "level": 40
    assert event['release'] == 'legacy-app@3.1' and event['environment'] == 'production'
    assert event['serverName'] == 'legacy-box'
    issues = read(live_server, project['key'], '/api/v1/issues')['issues']
    assert [i['title'] for i in issues] == ['ZeroDivisionError: division by zero']


def test_raven_python_logging_levels_and_templates(live_server):
    project = create_project(live_server, 'raven-logging')
    sent = run_raven(project['dsn'], 'logging')
    assert sent['errors'] == []
    events = sorted(stored_events(live_server, project['key']).values(), key=lambda e: e['id'])
    assert [(e['level'], e['message']) for e in events] == [
        ('warning', 'Invoice INV-7 is overdue'), ('error', 'Card for customer 42 was declined')]
    # the template raven sends under sentry.interfaces.Message is what groups
    assert [e['messageTemplate'] for e in events] == ['Invoice %s is overdue', 'Card for customer %s was declined']
    assert all(e['logger'] == 'legacy.billing' for e in events)


def test_raven_python_reports_the_reason_of_a_refusal(live_server):
    """raven-python raises (raise_send_errors) with the X-Sentry-Error text."""
    project = create_project(live_server, 'raven-refused')
    other = create_project(live_server, 'raven-other')
    wrong = project['dsn'].rsplit('/', 1)[0] + '/%d' % other['id']  # a key of another project
    sent = run_raven(wrong, 'message')
    assert len(sent['errors']) == 1
    assert 'does not belong to project %d' % other['id'] in sent['errors'][0]
    assert read(live_server, other['key'], '/api/v1/events')['events'] == []


# -- raven-node, for real --------------------------------------------------------

def test_raven_node_base64_deflate_events_arrive(live_server):
    modules = npm_modules('raven@2')
    project = create_project(live_server, 'raven-node')
    env = dict(os.environ, NODE_PATH=str(modules / 'node_modules'))
    done = subprocess.run(['node', os.path.join(HERE, 'raven_node_client.js'), project['dsn']],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert sent['errors'] == [] and len(sent['eventIds']) == 2
    events = stored_events(live_server, project['key'])
    assert sorted(events) == sorted(sent['eventIds'])
    error = next(e for e in events.values() if e.get('exception'))
    raised = error['exception'][-1]
    assert (raised['type'], raised['value']) == ('TypeError', 'quantity is not a number: three')
    assert [f['function'] for f in raised['frames']][-2:] == ['addToCart', 'parseQuantity']
    assert error['platform'] == 'node' and error['release'] == 'legacy-node@2.0'
    message = next(e for e in events.values() if not e.get('exception'))
    assert (message['level'], message['message']) == ('warning', 'Stock sync fell behind')


# -- bodies as the raven clients build them, by hand --------------------------------

def legacy_event(message='from a legacy client', **fields):
    event = {'event_id': uuid.uuid4().hex, 'message': message, 'platform': 'javascript'}
    event.update(fields)
    return event


def post_store(client, project, body, headers=None, query=''):
    all_headers = {'X-Sentry-Auth': 'Sentry sentry_version=5, sentry_client=raven-node/2.6.4, sentry_key=%s'
                   % project['hash'], 'Content-Type': 'application/octet-stream'}
    all_headers.update(headers or {})
    return client.post('/api/%d/store/%s' % (project['id'], query), body, headers=all_headers, expect_errors=True)


def event_ids(client, project):
    return [e['eventId'] for e in client.get('/api/v1/events', params={'key': project['hash']}).json['events']]


def test_base64_of_deflate_as_raven_node_builds_it(client):
    project = create_project(client)
    event = legacy_event('deflated and base64')
    body = base64.b64encode(zlib.compress(json.dumps(event).encode()))  # zlib.deflate + toString('base64')
    answer = post_store(client, project, body)
    assert answer.status_int == 200, answer.body
    assert answer.json == {'id': event['event_id']}
    assert event_ids(client, project) == [event['event_id']]


def test_plain_base64_json(client):
    project = create_project(client)
    event = legacy_event('plain base64')
    assert post_store(client, project, base64.b64encode(json.dumps(event).encode())).json == {'id': event['event_id']}
    assert event_ids(client, project) == [event['event_id']]


def test_raven_js_plain_json_with_the_key_in_the_query(client):
    """raven-js: auth as query parameters (no preflight), a JSON text body."""
    project = create_project(client)
    event = legacy_event('raven-js in a browser', exception={'values': [{'type': 'TypeError', 'value': 'x is undefined',
                         'stacktrace': {'frames': [{'filename': 'https://shop.example/app.js', 'lineno': 3,
                                                    'colno': 9, 'function': 'render', 'in_app': True}]}}]})
    answer = client.post('/api/%d/store/?sentry_version=7&sentry_client=raven-js%%2F3.27.2&sentry_key=%s'
                         % (project['id'], project['hash']), json.dumps(event),
                         headers={'Content-Type': 'text/plain;charset=UTF-8'}, expect_errors=True)
    assert answer.json == {'id': event['event_id']}
    stored = client.get('/api/v1/events', params={'key': project['hash']}).json['events']
    assert [e['eventId'] for e in stored] == [event['event_id']]


@pytest.mark.parametrize('number, level', [(10, 'debug'), (20, 'info'), (30, 'warning'), (40, 'error'),
                                           (50, 'fatal')])
def test_python_logging_level_numbers(client, number, level):
    project = create_project(client)
    event = legacy_event('level %d' % number, level=number, platform='python')
    answer = post_store(client, project, zlib.compress(json.dumps(event).encode()), {'Content-Encoding': 'deflate'})
    assert answer.status_int == 200, answer.body
    row = client.get('/api/v1/events', params={'key': project['hash']}).json['events'][0]
    assert row['level'] == level


def test_a_level_that_is_neither_word_nor_number_is_400_with_the_reason(client):
    project = create_project(client)
    answer = post_store(client, project, json.dumps(legacy_event(level=['error'])).encode())
    assert answer.status_int == 400
    assert 'level' in answer.headers['X-Sentry-Error']


def test_a_base64_deflate_bomb_is_413(client):
    project = create_project(client)
    bomb = zlib.compress(b'{"message": "' + b' ' * (20 * MIB) + b'"}', 9)
    answer = post_store(client, project, base64.b64encode(bomb))
    assert answer.status_int == 413
    assert event_ids(client, project) == []


def test_a_body_that_is_neither_json_nor_base64_is_400(client):
    project = create_project(client)
    answer = post_store(client, project, b'\x00\x01 not an event')
    assert answer.status_int == 400
    assert 'base64' in answer.headers['X-Sentry-Error']


# -- X-Sentry-Error on every refusal -----------------------------------------------

def test_every_4xx_of_the_sentry_endpoints_carries_x_sentry_error(client):
    project = create_project(client)
    other = create_project(client, 'other')
    envelope_url, store_url = '/api/%d/envelope/' % project['id'], '/api/%d/store/' % project['id']
    auth = {'X-Sentry-Auth': 'Sentry sentry_key=%s, sentry_version=7' % project['hash']}
    cases = [
        ('no key', client.post(envelope_url, b'{}\n', expect_errors=True), 401),
        ('wrong key', client.post(envelope_url, b'{}\n', headers={
            'X-Sentry-Auth': 'Sentry sentry_key=%s' % other['hash']}, expect_errors=True), 403),
        ('bad header', client.post(envelope_url, b'not json\n', headers=auth, expect_errors=True), 400),
        ('bad encoding', client.post(envelope_url, b'{}\n', headers=dict(auth, **{'Content-Encoding': 'zstd'}),
                                     expect_errors=True), 415),
        ('too big', client.post(store_url, b'{"message": "%s"}' % (b'a' * (2 * MIB)), headers=auth,
                                expect_errors=True), 413),
        ('wrong method', client.get(store_url, expect_errors=True), 405),
    ]
    for name, answer, status in cases:
        assert answer.status_int == status, (name, answer.body)
        reason = answer.headers.get('X-Sentry-Error')
        assert reason and reason == answer.json['detail'][:200], (name, answer.headers)
    # a browser SDK on another origin may read it
    assert 'X-Sentry-Error' in cases[0][1].headers['Access-Control-Expose-Headers']


def test_x_sentry_error_is_one_printable_line_whatever_the_client_sent(client):
    project = create_project(client)
    answer = client.post('/api/%d/envelope/' % project['id'], b'{}\n', expect_errors=True, headers={
        'X-Sentry-Auth': 'Sentry sentry_key=%s' % project['hash'], 'Content-Encoding': 'caf\xe9\x7f' + 'x' * 500})
    assert answer.status_int == 415
    reason = answer.headers['X-Sentry-Error']
    assert len(reason) <= 200 and all(' ' <= c <= '~' for c in reason)


def test_successes_carry_no_x_sentry_error(client):
    project = create_project(client)
    answer = post_store(client, project, json.dumps(legacy_event()).encode())
    assert answer.status_int == 200 and 'X-Sentry-Error' not in answer.headers


# -- raven-js, for real, in headless Chromium on another origin ---------------------

RAVEN_JS_PAGE = '''<!doctype html>
<html><head><meta charset="utf-8"><title>legacy shop</title>
<script src="/raven.min.js"></script>
<script>
  Raven.config(%(dsn)s, {release: 'legacy-web@1.4', environment: 'production'}).install();
  function priceOf(item) { return item.price.amount; }
  function renderBasket(items) { return items.map(priceOf); }
  window.addEventListener('load', function () {
    try { renderBasket([{price: {amount: 3}}, {}]); } catch (e) { Raven.captureException(e); }
    Raven.captureMessage('Basket rendered with gaps', {level: 'warning'});
  });
</script></head><body>shop</body></html>'''


@pytest.mark.browser
def test_raven_js_in_a_browser_on_another_origin(live_server, chromium_driver):
    """raven-js 3 (the browser client before @sentry/browser) posts JSON with the
    key in the query string, from the page's origin (here another port)."""
    import http.server
    import threading
    modules = npm_modules('raven-js@3')
    script = (modules / 'node_modules' / 'raven-js' / 'dist' / 'raven.min.js').read_bytes()
    project = create_project(live_server, 'raven-js')
    page = (RAVEN_JS_PAGE % {'dsn': json.dumps(project['dsn'])}).encode()

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, kind = (script, 'application/javascript') if self.path == '/raven.min.js' else (page, 'text/html')
            self.send_response(200)
            self.send_header('Content-Type', kind)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    site = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        chromium_driver.get('http://127.0.0.1:%d/' % site.server_address[1])
        import time
        deadline = time.time() + 30
        while time.time() < deadline and len(read(live_server, project['key'], '/api/v1/events')['events']) < 2:
            time.sleep(0.2)
    finally:
        site.shutdown()
    events = list(stored_events(live_server, project['key']).values())
    assert len(events) == 2, chromium_driver.get_log('browser')
    error = next(e for e in events if e.get('exception'))
    raised = error['exception'][-1]
    assert raised['type'] == 'TypeError'
    assert raised['value'] == "Cannot read properties of undefined (reading 'amount')"
    functions = [f.get('function') for f in raised['frames']]
    assert functions[-1] == 'priceOf' and 'renderBasket' in functions
    assert error['release'] == 'legacy-web@1.4' and error['platform'] == 'javascript'
    assert error['request']['url'].startswith('http://127.0.0.1:')  # the page, on its own origin
    message = next(e for e in events if not e.get('exception'))
    assert (message['level'], message['message']) == ('warning', 'Basket rendered with gaps')
