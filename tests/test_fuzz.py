"""A bounded fuzzing pass over every endpoint (issue 16, "look for the next
twelve yourselves"): generated JSON (hypothesis, derandomized, fixed example
counts), every field of each dialect's valid example replaced by every JSON
type, and hand-built hostile shapes (deep nesting, huge numbers, NaN, lone
surrogates, giant arrays of tiny items, duplicate keys). Whatever comes in,
the answer is never a 5xx, every refusal is the dialect's own JSON error, and
afterwards every read endpoint still answers the project without a 5xx.

docs/openapi.json describes the same endpoints; test_openapi_describes_every_route
keeps the two in step. Findings of this pass: research notes, fuzz-findings.md."""
import copy
import json
import os
import time
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import create_project, sentry_auth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Fixed, seeded budgets: the whole file runs in well under a minute on a shared 2-core box.
FUZZ = settings(max_examples=int(os.environ.get('FUZZ_EXAMPLES', 15)), derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def now_iso(offset=0.0):
    stamp = time.time() + offset
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(stamp)) + '.%03dZ' % int(stamp % 1 * 1000)


# -- the dialects' error formats ---------------------------------------------------------

def is_api_php_error(body):
    return body.get('ok') is False and isinstance(body.get('error'), str) and body['error'] != ''


def is_seestack_error(body):
    error = body.get('error')
    return (body.get('success') is False and isinstance(error, dict) and isinstance(error.get('code'), str)
            and isinstance(error.get('message'), str) and isinstance(body.get('meta'), dict))


def is_open_sentry_error(body):
    return isinstance(body.get('error'), str) and body['error'] != ''


def is_sentry_error(body):
    return isinstance(body.get('detail'), str) and body['detail'] != ''


def is_read_api_error(body):
    return isinstance(body.get('error'), str) and body['error'] != ''


ERROR_FORMAT = {'api.php': is_api_php_error, 'seestack': is_seestack_error, 'open-sentry': is_open_sentry_error,
                'sentry': is_sentry_error, 'read': is_read_api_error}


def check_answer(answer, dialect, what):
    """No 5xx; a 4xx is JSON in the dialect's own error format."""
    if os.environ.get('FUZZ_COLLECT'):  # explore: report every finding instead of stopping at the first
        try:
            _check_answer(answer, dialect, what)
        except AssertionError as exc:
            print('FINDING', str(exc).splitlines()[0][:600])
        return
    _check_answer(answer, dialect, what)


def strict_json(body):
    """JSON as the browser's JSON.parse reads it: no NaN or Infinity."""
    def refuse(name):
        raise ValueError('%s is not JSON' % name)
    return json.loads(body, parse_constant=refuse)


def _check_answer(answer, dialect, what):
    assert answer.status_int < 500, '%s -> %s %s' % (what, answer.status, answer.body[:300])
    if answer.content_type == 'application/json':
        try:
            strict_json(answer.body)
        except ValueError as exc:
            raise AssertionError('%s -> %s, not JSON (%s): %r' % (what, answer.status, exc, answer.body[:300]))
    if answer.status_int >= 400:
        assert answer.content_type == 'application/json', '%s -> %s %r' % (what, answer.status, answer.body[:200])
        body = json.loads(answer.body)
        assert isinstance(body, dict) and ERROR_FORMAT[dialect](body), \
            '%s -> %s, not the %s error format: %r' % (what, answer.status, dialect, answer.body[:300])


# -- one valid example per ingest endpoint ------------------------------------------------

def valid_api_php(project):
    return {'hash': project['hash'], 'level': 'Warning', 'message': 'Undefined index: id',
            'file': '/var/www/index.php', 'line': 12}


def valid_seestack_error(project):
    return {'exceptionClass': 'TypeError', 'message': 'x is undefined', 'stackTrace': ['at f (app.js:1:2)'],
            'level': 'error', 'environment': 'prod', 'release': '1.0', 'timestamp': now_iso(),
            'fingerprint': 'fp', 'metadata': {'userId': 'u1', 'tags': {'region': 'eu'}}}


def valid_http_requests(project):
    return {'requests': [{'traceId': 't1', 'direction': 'inbound', 'method': 'GET', 'host': 'api.example.com',
                          'path': '/things', 'statusCode': 200, 'durationMs': 12, 'requestSize': 0,
                          'responseSize': 10, 'timestamp': now_iso(-5)}]}


def valid_replay(project):
    return {'fingerprint': 'fp', 'sessionId': 'session-1', 'events': [
        {'eventType': 'click', 'eventData': '{"x": 1}', 'url': 'https://shop.example/', 'timestampMillis':
         int(time.time() * 1000)}]}


def valid_log(project):
    return {'level': 'info', 'message': 'user signed in', 'logger': 'auth', 'timestamp': now_iso(),
            'traceId': 't1', 'metadata': {'userId': 'u1'}}


def valid_heartbeat(project):
    return {'slug': 'nightly', 'status': 'success', 'durationMs': 10, 'message': 'ok'}


def valid_open_sentry(project):
    return [{'type': 'error', 'level': 'error', 'message': 'boom', 'timestamp': now_iso(), 'environment': 'prod',
             'exception': {'type': 'TypeError', 'value': 'x', 'stacktrace': {'frames': [
                 {'filename': 'a.js', 'function': 'f', 'lineno': 1, 'colno': 2}]}},
             'breadcrumbs': [{'message': 'clicked'}], 'tags': {'a': 'b'}},
            {'type': 'transaction', 'name': 'GET /', 'traceId': 't1', 'durationMs': 5, 'timestamp': now_iso(),
             'spans': [{'spanId': 's1', 'op': 'db', 'description': 'q', 'durationMs': 1}]},
            {'type': 'ai_generation', 'provider': 'p', 'model': 'm', 'inputTokens': 10, 'outputTokens': 5,
             'costUsd': 0.001, 'latencyMs': 100, 'status': 'ok', 'timestamp': now_iso()}]


def valid_sentry_event():
    return {'event_id': uuid.uuid4().hex, 'platform': 'python', 'level': 'error', 'timestamp': time.time(),
            'release': '1.0', 'environment': 'prod', 'tags': {'a': 'b'}, 'user': {'id': 'u1'},
            'exception': {'values': [{'type': 'ValueError', 'value': 'bad', 'stacktrace': {'frames': [
                {'filename': 'app.py', 'function': 'main', 'lineno': 3, 'in_app': True}]}}]},
            'breadcrumbs': {'values': [{'message': 'start', 'timestamp': time.time()}]},
            'logentry': {'message': 'bad %s', 'params': ['x']}, 'contexts': {'trace': {'trace_id': 'a' * 32}}}


def valid_sentry_transaction():
    start = time.time() - 1
    return {'type': 'transaction', 'event_id': uuid.uuid4().hex, 'transaction': 'GET /', 'start_timestamp': start,
            'timestamp': start + 0.5, 'contexts': {'trace': {'trace_id': 'b' * 32, 'span_id': 'c' * 16, 'op': 'http'}},
            'spans': [{'span_id': 'd' * 16, 'parent_span_id': 'c' * 16, 'op': 'db', 'description': 'q',
                       'start_timestamp': start, 'timestamp': start + 0.1}]}


def valid_check_in():
    return {'check_in_id': uuid.uuid4().hex, 'monitor_slug': 'job', 'status': 'ok', 'duration': 1.0,
            'monitor_config': {'schedule': {'type': 'crontab', 'value': '0 * * * *'}, 'checkin_margin': 5,
                               'max_runtime': 30}}


def valid_interval_check_in():
    return {'check_in_id': uuid.uuid4().hex, 'monitor_slug': 'every-ten', 'status': 'in_progress',
            'monitor_config': {'schedule': {'type': 'interval', 'value': 10, 'unit': 'minute'}, 'timezone': 'UTC'}}


def valid_logs_item():
    return {'items': [{'timestamp': time.time(), 'level': 'info', 'body': 'hello', 'trace_id': 'a' * 32,
                       'attributes': {'k': {'type': 'string', 'value': 'v'}}}]}


def envelope(items, header=None):
    parts = [json.dumps(header if header is not None else {}).encode()]
    for item_type, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        parts += [json.dumps({'type': item_type, 'length': len(data)}).encode(), data]
    return b'\n'.join(parts) + b'\n'


class Target(object):
    """The app under test, a project in it, and one sender per endpoint."""

    def __init__(self, client):
        self.client = client
        self.project = create_project(client, 'fuzz')
        self.key, self.id = self.project['hash'], self.project['id']
        self.requests = 0

    def raw(self, method, path, body=b'', headers=None, content_type='application/json'):
        self.requests += 1
        loopback = {'REMOTE_ADDR': '127.0.0.1'}  # as a local SDK (Spotlight takes envelopes from this machine only)
        if method == 'GET':
            return self.client.get(path, headers=headers or {}, extra_environ=loopback, expect_errors=True)
        return self.client.request(path, method=method, body=body, headers=dict(headers or {}),
                                   content_type=content_type, environ=dict(loopback), expect_errors=True)

    def send(self, endpoint, body, what=None):
        """Post body (bytes, or JSON-able) to endpoint; check the answer; return it."""
        path, dialect, headers, content_type = self.route(endpoint)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        started = time.perf_counter()
        answer = self.raw('POST', path, data, headers, content_type)
        if os.environ.get('FUZZ_TIMING'):
            took = time.perf_counter() - started
            if took > 0.2:
                print('SLOW %.2fs %s %r' % (took, endpoint, data[:300]))
        check_answer(answer, dialect, what or '%s %r' % (endpoint, data[:200]))
        return answer

    def route(self, endpoint):
        key = self.key
        return {
            'api.php': ('/api.php', 'api.php', {}, 'application/json'),
            'seestack errors': ('/ingest/v1/errors', 'seestack', {'X-SeeStack-Key': key}, 'application/json'),
            'seestack http-requests': ('/ingest/v1/http-requests', 'seestack', {'X-SeeStack-Key': key},
                                       'application/json'),
            'seestack replay': ('/ingest/v1/replay', 'seestack', {'X-SeeStack-Key': key}, 'application/json'),
            'seestack logs': ('/ingest/v1/logs', 'seestack', {'X-SeeStack-Key': key}, 'application/json'),
            'seestack heartbeat': ('/ingest/v1/heartbeat', 'seestack', {'X-SeeStack-Key': key}, 'application/json'),
            'open sentry': ('/v1/ingest', 'open-sentry', {'X-Open-Sentry-Key': key}, 'application/json'),
            'sentry store': ('/api/%d/store/' % self.id, 'sentry', sentry_auth(key), 'application/json'),
            'sentry envelope': ('/api/%d/envelope/' % self.id, 'sentry', sentry_auth(key),
                                'application/x-sentry-envelope'),
            'report dialog': ('/api/embed/error-page/?' + urllib.parse.urlencode(
                {'dsn': 'http://%s@localhost/%d' % (key, self.id), 'eventId': 'e' * 32}), 'sentry', {},
                'application/json'),
            'spotlight': ('/stream', 'sentry', {}, 'application/x-sentry-envelope'),
        }[endpoint]

    def valid(self, endpoint):
        return {'api.php': lambda: valid_api_php(self.project),
                'seestack errors': lambda: valid_seestack_error(self.project),
                'seestack http-requests': lambda: valid_http_requests(self.project),
                'seestack replay': lambda: valid_replay(self.project),
                'seestack logs': lambda: valid_log(self.project),
                'seestack heartbeat': lambda: valid_heartbeat(self.project),
                'open sentry': lambda: valid_open_sentry(self.project),
                'sentry store': valid_sentry_event,
                'report dialog': lambda: {'name': 'Ada', 'email': 'ada@example.com', 'comments': 'it broke'}}[endpoint]()

    def read_everything(self):
        """Every read endpoint for the project: none answers 5xx after whatever was stored."""
        key = self.key
        paths = ['/api/v1/project', '/api/v1/issues', '/api/v1/tags', '/api/v1/events', '/api/v1/http-requests',
                 '/api/v1/http-requests/stats', '/api/v1/replays', '/api/v1/logs', '/api/v1/transactions',
                 '/api/v1/transactions/list', '/api/v1/ai', '/api/v1/ai?days=3650', '/api/v1/monitors',
                 '/api/v1/releases', '/api/v1/feedback', '/api/v1/stats', '/api.php?action=errors&hash=' + key]
        for path in paths:
            answer = self.raw('GET', path + ('&' if '?' in path else '?') + 'key=' + key)
            check_answer(answer, 'api.php' if path.startswith('/api.php') else 'read', 'GET ' + path)
        for issue in self.raw('GET', '/api/v1/issues?limit=500&key=' + key).json['issues'][:20]:
            for path in ('/api/v1/issues/%d' % issue['id'], '/api/v1/issues/%d/events' % issue['id'],
                         '/api/v1/issues/%d/tags' % issue['id'], '/api/v1/issues/%d/feedback' % issue['id'],
                         '/api/v1/issues/%d/events/latest' % issue['id']):
                check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)
        for event in self.raw('GET', '/api/v1/events?limit=20&key=' + key).json['events']:
            for path in ('/api/v1/events/%d' % event['id'], '/api/v1/events/%d/attachments' % event['id']):
                check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)
        for release in self.raw('GET', '/api/v1/releases?limit=20&key=' + key).json['releases']:
            path = '/api/v1/releases/%s' % urllib.parse.quote(release['version'], safe='')
            check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)
        for tx in self.raw('GET', '/api/v1/transactions/list?limit=20&key=' + key).json['transactions']:
            path = '/api/v1/transactions/%d' % tx['id']
            check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)
        for session in self.raw('GET', '/api/v1/replays?limit=20&key=' + key).json.get('sessions', []):
            path = '/api/v1/replays/%s' % urllib.parse.quote(str(session.get('sessionId', session.get('id'))), safe='')
            check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)
        for monitor in self.raw('GET', '/api/v1/monitors?key=' + key).json['monitors']:
            path = '/api/v1/monitors/%s' % urllib.parse.quote(monitor['slug'], safe='')
            check_answer(self.raw('GET', path + '?key=' + key), 'read', 'GET ' + path)


@pytest.fixture
def target(make):
    t = Target(make(sweep_interval=0))
    # a monitor for the heartbeat endpoint to ping
    answer = t.raw('POST', '/api/v1/monitors?key=' + t.key, json.dumps({'slug': 'nightly', 'schedule': '1d'}).encode())
    assert answer.status_int == 201, answer.body
    yield t
    t.read_everything()


INGEST = ['api.php', 'seestack errors', 'seestack http-requests', 'seestack replay', 'seestack logs',
          'seestack heartbeat', 'open sentry', 'sentry store', 'report dialog']


def test_every_valid_example_is_taken(target):
    """The baseline the mutations start from: each example is accepted as is."""
    for endpoint in INGEST:
        answer = target.send(endpoint, target.valid(endpoint))
        assert 200 <= answer.status_int < 300, (endpoint, answer.body)
    for item_type, payload in (('event', valid_sentry_event()), ('transaction', valid_sentry_transaction()),
                               ('check_in', valid_check_in()), ('check_in', valid_interval_check_in()),
                               ('log', valid_logs_item())):
        answer = target.send('sentry envelope', envelope([(item_type, payload)]))
        assert answer.status_int == 200, (item_type, answer.body)
    answer = target.send('spotlight', envelope([('event', valid_sentry_event())]))
    assert answer.status_int == 200 and answer.json['id'], answer.body


# -- every field as every JSON type ----------------------------------------------------------

EVERY_TYPE = [None, True, False, 0, -1, 2 ** 63, 2 ** 64 + 1, 10 ** 30, -10 ** 30, 1.5, 1e308, -1e308, 1e-320,
              '', ' ', 'x' * 300, '\u0000', '\ud83d\ude00', '2026-13-45T99:99:99Z', '-1', '1e999', 'NaN',
              [], [None], ['x'], [{}], {}, {'a': None}, {'': ''}]


def field_paths(value, prefix=(), depth=0):
    """Paths to every field of a JSON value, two levels into objects and the first item of lists."""
    if depth > 3:
        return
    if isinstance(value, dict):
        for name, child in value.items():
            yield prefix + (name,)
            yield from field_paths(child, prefix + (name,), depth + 1)
    elif isinstance(value, list) and value:
        yield prefix + (0,)
        yield from field_paths(value[0], prefix + (0,), depth + 1)


def replaced(value, path, new):
    out = copy.deepcopy(value)
    holder = out
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return out


def without(value, path):
    out = copy.deepcopy(value)
    holder = out
    for step in path[:-1]:
        holder = holder[step]
    del holder[path[-1]]
    return out


@pytest.mark.parametrize('endpoint', INGEST)
def test_every_field_as_every_json_type(target, endpoint):
    example = target.valid(endpoint)
    paths = list(field_paths(example))
    assert paths, endpoint
    for path in paths:
        for new in EVERY_TYPE:
            target.send(endpoint, replaced(example, path, new), '%s with %s = %r' % (endpoint, path, new))
        if not isinstance(path[-1], int):
            target.send(endpoint, without(example, path), '%s without %s' % (endpoint, path))


@pytest.mark.parametrize('item_type,make_payload', [
    ('event', valid_sentry_event), ('transaction', valid_sentry_transaction), ('check_in', valid_check_in),
    ('check_in', valid_interval_check_in), ('log', valid_logs_item)])
def test_every_sentry_envelope_item_field_as_every_json_type(target, item_type, make_payload):
    example = make_payload()
    for path in field_paths(example):
        for new in EVERY_TYPE:
            target.send('sentry envelope', envelope([(item_type, replaced(example, path, new))]),
                        'envelope %s with %s = %r' % (item_type, path, new))


# -- generated JSON ---------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=6)
                           | st.dictionaries(st.text(max_size=12), children, max_size=6), max_leaves=30)


def objects_like(example):
    """Objects with the example's field names (so validation gets past the first check), values generated."""
    if isinstance(example, list):
        return st.lists(objects_like(example[0]), min_size=0, max_size=4) if example else st.just([])
    if isinstance(example, dict):
        return st.fixed_dictionaries({}, optional={name: objects_like(child) | json_values
                                                   for name, child in example.items()})
    return json_values


@pytest.mark.parametrize('endpoint', INGEST)
def test_generated_json_bodies(target, endpoint):
    shaped = objects_like(target.valid(endpoint))

    @FUZZ
    @given(body=json_values | shaped)
    def any_json(body):
        if endpoint == 'api.php' and isinstance(body, dict) and 'hash' in body:
            body['hash'] = target.key  # a random hash would only make a new project
        target.send(endpoint, body)
    any_json()


@FUZZ
@given(items=st.lists(st.tuples(st.sampled_from(['event', 'transaction', 'check_in', 'log', 'session',
                                                 'attachment', 'client_report', 'span', 'unknown']),
                                json_values), max_size=4))
def test_generated_sentry_envelopes(target, items):
    target.send('sentry envelope', envelope(items))


@FUZZ
@given(body=st.binary(max_size=300))
def test_generated_bytes_to_every_ingest_endpoint(target, body):
    for endpoint in INGEST + ['sentry envelope', 'spotlight']:
        target.send(endpoint, body)


# -- the read API: ids, cursors, limits, filters ----------------------------------------------

READ_PATHS = ['/api/v1/issues', '/api/v1/events', '/api/v1/http-requests', '/api/v1/http-requests/stats',
              '/api/v1/replays', '/api/v1/logs', '/api/v1/transactions', '/api/v1/transactions/list', '/api/v1/ai',
              '/api/v1/monitors', '/api/v1/project', '/api/v1/issues/1', '/api/v1/issues/1/events',
              '/api/v1/events/1', '/api/v1/transactions/1', '/api/v1/replays/x', '/api/v1/monitors/nightly',
              '/api/v1/issues/1/tags', '/api/v1/issues/1/tags/region', '/api/v1/tags', '/api/v1/tags/region',
              '/api/v1/issues/1/events/latest', '/api/v1/issues/1/events/oldest', '/api/v1/issues/1/events/1',
              '/api/v1/releases', '/api/v1/releases/1.0', '/api/v1/traces/' + 'a' * 32, '/api/v1/feedback',
              '/api/v1/issues/1/feedback', '/api/v1/events/1/attachments', '/api/v1/attachments/1', '/api/v1/stats']
QUERY_NAMES = ['limit', 'cursor', 'since', 'changedSince', 'days', 'status', 'level', 'environment', 'q', 'query',
               'sort', 'direction', 'method', 'host', 'path', 'minDuration', 'name', 'logger', 'search', 'hours',
               'window', 'before', 'after', 'traceId', 'service', 'top', 'prefix']
query_values = (st.integers(min_value=-2 ** 70, max_value=2 ** 70).map(str)
                | st.sampled_from(['', '-1', '0', '1e9', 'NaN', 'inf', '9' * 400, '%00', 'null', '[]', '{}',
                                   'eyJ4Ijoi', 'MTIzOjQ1Ng', '!!!', "' OR 1=1 --", '\u202e', '..'])
                | st.text(max_size=30))


@FUZZ
@given(path=st.sampled_from(READ_PATHS), params=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values,
                                                                 max_size=4))
def test_generated_read_api_queries(target, path, params):
    query = urllib.parse.urlencode(dict(params, key=target.key))
    check_answer(target.raw('GET', path + '?' + query), 'read', 'GET %s?%s' % (path, query))


@FUZZ
@given(action=st.sampled_from(['errors', 'generate', 'clear', '', 'x']),
       params=st.dictionaries(st.sampled_from(['since', 'limit', 'name', 'hash']), query_values, max_size=3))
def test_generated_api_php_queries(target, action, params):
    params = dict(params, action=action)
    if action == 'clear':
        params['hash'] = 'not-' + target.key  # never the fuzz project's own data
    check_answer(target.raw('GET', '/api.php?' + urllib.parse.urlencode(params)), 'api.php', repr(params))


@FUZZ
@given(body=json_values, method=st.sampled_from(['PUT', 'PATCH', 'POST']),
       path=st.sampled_from(['/api/v1/project', '/api/v1/monitors', '/api/v1/monitors/nightly', '/api/v1/issues/1',
                             '/api/v1/projects', '/api/v1/issues/bulk', '/api/v1/issues/merge']))
def test_generated_read_api_writes(target, body, method, path):
    if path == '/api/v1/project' and isinstance(body, dict):
        body.pop('webhookUrl', None)  # no outbound requests from a fuzz run
    check_answer(target.raw(method, path + '?key=' + target.key, json.dumps(body).encode()), 'read',
                 '%s %s %r' % (method, path, body))


# -- hand-built hostile shapes ----------------------------------------------------------------

def hostile_bodies():
    yield 'deep array', b'[' * 100000 + b']' * 100000
    yield 'deep object', b'{"a":' * 50000 + b'1' + b'}' * 50000
    yield 'deep but legal nesting', json.dumps(nested(300)).encode()
    yield 'huge integer', b'{"x": ' + b'9' * 100000 + b'}'
    yield 'huge exponent', b'{"x": 1e999999}'
    yield 'negative huge float', b'{"x": -1e400}'
    yield 'NaN', b'{"x": NaN}'
    yield 'Infinity', b'{"x": Infinity, "y": -Infinity}'
    yield 'lone surrogates', b'{"message": "\\ud800", "level": "\\udfff", "\\ud83d": "\\ude00x"}'
    yield 'giant array of tiny items', b'[' + b'0,' * 100000 + b'0]'
    yield 'giant array of tiny objects', b'[' + b'{},' * 50000 + b'{}]'
    yield 'giant object of tiny keys', b'{' + b','.join(b'"k%d":0' % i for i in range(30000)) + b'}'
    yield 'duplicate keys', b'{"level": "error", "level": 5, "message": "a", "message": null}'
    yield 'not UTF-8', b'{"message": "\xff\xfe"}'
    yield 'UTF-16', '{"message": "x"}'.encode('utf-16')
    yield 'BOM then JSON', b'\xef\xbb\xbf{"message": "x"}'
    yield 'empty', b''
    yield 'whitespace', b' \n\t '
    yield 'null', b'null'
    yield 'number', b'12'
    yield 'string', b'"x"'
    yield 'trailing garbage', b'{"a": 1} {"b": 2}'
    yield 'NUL bytes', b'\x00' * 1000


def nested(depth, leaf='leaf'):
    value = leaf
    for _ in range(depth):
        value = {'a': [value]}
    return value


def hostile_for(target, endpoint):
    """The hostile bodies as they are, and folded into a valid example's fields."""
    for name, body in hostile_bodies():
        yield name, body
    example = target.valid(endpoint)
    for path in list(field_paths(example))[:6]:
        for name, value in (('deep', nested(100)), ('wide list', list(range(20000))),
                            ('wide map', {'k%d' % i: i for i in range(5000)}), ('long string', 'x' * 100000),
                            ('huge int', 10 ** 400)):
            yield '%s at %s' % (name, path), json.dumps(replaced(example, path, value)).encode()


@pytest.mark.parametrize('endpoint', INGEST + ['sentry envelope', 'spotlight'])
def test_hostile_shapes(target, endpoint):
    base = 'sentry store' if endpoint in ('sentry envelope', 'spotlight') else endpoint
    for name, body in hostile_for(target, base):
        if endpoint in ('sentry envelope', 'spotlight'):
            body = b'{}\n{"type":"event"}\n' + body
        target.send(endpoint, body, '%s: %s' % (endpoint, name))


@pytest.mark.parametrize('endpoint', INGEST + ['sentry envelope'])
def test_lone_surrogates_deep_in_every_field(target, endpoint):
    """A lone surrogate 150 levels down (json.loads nests that deep) in any
    field, as a value and as a key: once a 500 where a field is kept as text
    (tags, breadcrumb messages, logentry params), since SQLite's UTF-8 cannot
    hold it."""
    base = 'sentry store' if endpoint == 'sentry envelope' else endpoint
    example = target.valid(base)
    for path in field_paths(example):
        for leaf in ('\ud800', {'\udc00': 1}):
            body = json.dumps(replaced(example, path, nested(150, leaf))).encode()
            if endpoint == 'sentry envelope':
                body = b'{}\n{"type":"event"}\n' + body
            target.send(endpoint, body, '%s: lone surrogate 150 deep at %s' % (endpoint, path))


def test_a_deep_lone_surrogate_is_kept_as_the_replacement_character(target):
    event = dict(valid_sentry_event(), tags={'deep': nested(150, '\ud800')})
    answer = target.send('sentry store', event)
    assert answer.status_int == 200, answer.body
    stored = target.raw('GET', '/api/v1/events?limit=1&key=' + target.key).json['events'][0]
    tags = target.raw('GET', '/api/v1/events/%d?key=%s' % (stored['id'], target.key)).json['event']['tags']
    assert '\ufffd' in tags['deep'] and '\\ud800' not in tags['deep']


def test_hostile_envelope_framing(target):
    event = json.dumps(valid_sentry_event()).encode()
    cases = {
        'a million tiny items': b'{}\n' + b'{"type":"session","length":0}\n\n' * 100000,
        'ten thousand events': b'{}\n' + (b'{"type":"event"}\n' + event + b'\n') * 300,
        'length past the end': b'{}\n{"type":"event","length":99999999}\n{}',
        'negative length': b'{}\n{"type":"event","length":-5}\n{}',
        'float length': b'{}\n{"type":"event","length":1.5}\n{}',
        'huge length': b'{}\n{"type":"event","length":' + b'9' * 50 + b'}\n{}',
        'header not an object': b'[]\n{"type":"event"}\n{}',
        'item header not an object': b'{}\n"event"\n{}',
        'type not a string': b'{}\n{"type":5}\n{}',
        'dsn of garbage': b'{"dsn":"\xff://x@y/\x00"}\n{"type":"event"}\n{}',
        'event_id of every type': b'{"event_id":[1]}\n{"type":"event"}\n{}',
        'only newlines': b'\n' * 100000,
    }
    for name, body in cases.items():
        target.send('sentry envelope', body, 'envelope: ' + name)


# -- every documented operation, from docs/openapi.json -------------------------------------

def load_spec():
    with open(os.path.join(ROOT, 'docs', 'openapi.json'), encoding='utf-8') as handle:
        return json.load(handle)


def matches(schema, value, spec):
    """value against the subset of JSON Schema docs/openapi.json uses for errors."""
    if '$ref' in schema:
        schema = spec['components']['schemas'][schema['$ref'].rsplit('/', 1)[1]]
    kinds = schema.get('type')
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    python = {'object': dict, 'array': list, 'string': str, 'boolean': bool, 'null': type(None)}
    if kinds and not any(isinstance(value, python[kind]) if kind in python else
                         (kind in ('integer', 'number') and isinstance(value, (int, float))
                          and not isinstance(value, bool)) for kind in kinds):
        return False
    if 'enum' in schema and value not in schema['enum']:
        return False
    if isinstance(value, dict):
        if any(name not in value for name in schema.get('required', ())):
            return False
        return all(matches(child, value[name], spec) for name, child in schema.get('properties', {}).items()
                   if name in value)
    return True


PATH_VALUES = {'integer': ['1', '0', '9' * 30], 'string': ['nightly', '%00', 'x' * 300, '..%2F..']}
BODIES = [b'', b'{}', b'[]', b'null', b'"x"', b'\xff\xfe', b'{"a":' * 2000, json.dumps(nested(50)).encode(),
          json.dumps({'ids': [1, 2], 'status': 'resolved', 'slug': 'x', 'schedule': '5m', 'name': ['x']}).encode()]


def test_every_documented_operation_answers_in_its_own_error_format(target):
    """Whatever docs/openapi.json describes is tried with odd path values,
    hostile query values and broken bodies: never a 5xx, and every refusal
    matches the error schema that operation documents (new routes are in this
    pass as soon as they are in the document, which the route check demands)."""
    spec = load_spec()
    key = target.key
    headers = {'X-SeeStack-Key': key, 'X-Open-Sentry-Key': key, 'X-ErrorCapture-Key': key}
    headers.update(sentry_auth(key))
    tried = 0
    for path, operations in spec['paths'].items():
        for method, operation in operations.items():
            errors = {response['content']['application/json']['schema']['$ref']
                      for code, response in operation['responses'].items()
                      if int(code) >= 400 and 'application/json' in response.get('content', {})}
            assert len(errors) <= 1, (method, path, errors)
            params = operation.get('parameters', [])
            in_path = [p for p in params if p['in'] == 'path']
            in_query = [p['name'] for p in params if p['in'] == 'query']
            bodies = BODIES if 'requestBody' in operation or method != 'get' else [b'']
            for variant in range(3):
                url = path
                for param in in_path:
                    values = PATH_VALUES['integer' if param['schema'].get('type') == 'integer' else 'string']
                    url = url.replace('{%s}' % param['name'], values[variant])
                query = {name: ['', '-1', '9' * 400, "' OR 1=1 --", '\u202e', '%00'][(variant + i) % 6]
                         for i, name in enumerate(in_query) if name not in ('key', 'sentry_key', 'hash', 'dsn')}
                query.update(key=key, sentry_key=key, hash=key, dsn='http://%s@localhost/%d' % (key, target.id))
                if path == '/api.php' and query.get('action') == 'clear':
                    query['hash'] = 'not-' + key
                for body in bodies:
                    if path == '/api/v1/project' and b'webhook' in body:
                        continue  # no outbound requests from a fuzz run
                    full = url + '?' + urllib.parse.urlencode(query)
                    answer = target.raw(method.upper(), full, body, headers)
                    tried += 1
                    what = '%s %s %r' % (method.upper(), full[:200], body[:60])
                    assert answer.status_int < 500, '%s -> %s %s' % (what, answer.status, answer.body[:300])
                    if answer.status_int >= 400 and errors:
                        assert answer.content_type == 'application/json', '%s -> %s' % (what, answer.status)
                        schema = {'$ref': next(iter(errors))}
                        assert matches(schema, strict_json(answer.body), spec), \
                            '%s -> %s, not %s: %r' % (what, answer.status, schema['$ref'], answer.body[:300])
    assert tried > 500


def test_openapi_describes_every_route(make):
    """docs/openapi.json names every route the app serves (and nothing else), so
    clients and the fuzzing pass work from a description that is true."""
    client = make(sweep_interval=0)
    with open(os.path.join(ROOT, 'docs', 'openapi.json'), encoding='utf-8') as handle:
        spec = json.load(handle)
    assert spec['openapi'].startswith('3.')
    import re
    documented = set()
    for path, operations in spec['paths'].items():
        for method in operations:
            if method in ('get', 'post', 'put', 'patch', 'delete'):
                documented.add((method.upper(), re.sub(r'\{[^}]+\}', '<>', path)))
    served = set()
    for route in client.wsgi.bottle.routes:
        rule = re.sub(r'<[^>]+>', '<>', route.rule)
        if rule.startswith('/static/') or rule == '/':
            continue  # the viewer's files
        if rule.endswith('/envelope') or rule.endswith('/store') or rule == '/api/embed/error-page':
            continue  # the same handlers without the trailing slash
        served.add((route.method, rule))
    assert served - documented == set(), ('served but not in docs/openapi.json: describe the new route there '
                                          '(path, parameters, body, answers, its dialect\'s error schema)')
    assert documented - served == set(), 'in docs/openapi.json but not served'
    # every reference resolves, every operation says what it answers
    text = json.dumps(spec)
    for name in re.findall(r'#/components/schemas/(\w+)', text):
        assert name in spec['components']['schemas'], name
    for path, operations in spec['paths'].items():
        for method, operation in operations.items():
            assert operation['responses'] and all(code.isdigit() for code in operation['responses']), (method, path)


def test_the_server_serves_its_openapi_description(make):
    """GET /api/openapi.json answers docs/openapi.json as it is, without a key
    (it describes routes, never data), and not to other origins' scripts."""
    client = make(sweep_interval=0)
    with open(os.path.join(ROOT, 'docs', 'openapi.json'), 'rb') as handle:
        expected = handle.read()
    answer = client.get('/api/openapi.json', headers={'Origin': 'https://elsewhere.example'})
    assert answer.status_int == 200 and answer.content_type == 'application/json'
    assert answer.body == expected and '/api/openapi.json' in json.loads(answer.body)['paths']
    assert 'Access-Control-Allow-Origin' not in answer.headers
