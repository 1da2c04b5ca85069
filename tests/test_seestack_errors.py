"""SeeStack error ingest (POST /ingest/v1/errors) as its seed documents it
(tests/seeds/seestack-ingest-errors.txt): the envelope, key handling,
validation details, levels, and what the stored event looks like."""
import json
import os
import re
import shutil
import subprocess

import pytest

from helpers import create_project

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')
with open(os.path.join(SEEDS, 'seestack-ingest-errors.txt'), encoding='utf-8') as _seed:
    SEED = _seed.read()

UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
LEVEL_RULE = 'must match "debug|info|warn|error|fatal|warning"'


def seed_curl():
    """The seed's curl example, as (url, headers, body).

    The seed page flattened the command onto one line ("\\  -H") and escapes the
    single quotes inside its single-quoted body as \\' (which a shell does not
    accept inside '...'): the body meant is the JSON with plain quotes."""
    line = next(l for l in SEED.splitlines() if l.startswith('curl -X POST'))
    url = re.search(r'curl -X POST "([^"]+)"', line).group(1)
    headers = re.findall(r'-H "([^"]+)"', line)
    body = re.search(r"-d '(.*)'\s*$", line).group(1).replace("\\'", "'")
    json.loads(body)  # what the seed meant is valid JSON
    return url, headers, body


def seed_envelopes():
    """The seed's example answers, in order: success, 401, 422, 500."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while True:
        start = SEED.find('\n{', position)
        if start == -1:
            return found
        value, position = decoder.raw_decode(SEED, start + 1)
        found.append(value)


def send(client, body, key, raw=False):
    headers = {'X-SeeStack-Key': key} if key is not None else {}
    payload = body if raw else json.dumps(body).encode()
    return client.post('/ingest/v1/errors', payload, headers=headers, content_type='application/json',
                       expect_errors=True)


def assert_meta(meta):
    assert set(meta) == {'requestId', 'timestamp'}
    assert UUID.match(meta['requestId']), meta
    assert ISO_MS_Z.match(meta['timestamp']), meta


def assert_accepted(answer):
    assert answer.status_int == 202, answer.body
    body = answer.json
    assert set(body) == {'success', 'data', 'meta'}
    assert body['success'] is True
    assert set(body['data']) == {'id'} and UUID.match(body['data']['id'])
    assert_meta(body['meta'])
    return body['data']['id']


def assert_failure(answer, status, code):
    assert answer.status_int == status, answer.body
    assert answer.content_type == 'application/json'
    body = answer.json
    assert body['success'] is False
    assert body['error']['code'] == code
    assert isinstance(body['error']['message'], str) and body['error']['message']
    assert_meta(body['meta'])
    return body['error']


def events(client, key):
    return client.get('/api/v1/events?key=%s&limit=500' % key).json['events']


def event_detail(client, key, event_id):
    return client.get('/api/v1/events/%d?key=%s' % (event_id, key)).json['event']


def valid(**fields):
    body = {'exceptionClass': 'ValueError', 'message': 'bad input'}
    body.update(fields)
    return body


# -- the seed's own example ---------------------------------------------------------

def test_seed_shapes_were_found():
    url, headers, body = seed_curl()
    assert url.endswith('/ingest/v1/errors')
    assert headers == ['Content-Type: application/json']
    assert json.loads(body)['exceptionClass'] == 'TypeError'
    codes = [e.get('error', {}).get('code') for e in seed_envelopes()]
    assert codes == [None, 'INVALID_API_KEY', 'VALIDATION_ERROR', 'INTERNAL_ERROR']


@pytest.mark.skipif(shutil.which('curl') is None, reason='needs the curl binary')
def test_seed_curl_example(live_server):
    key = live_server.project('seestack')['hash']
    url, headers, body = seed_curl()
    url = url.replace('http://localhost:8080', live_server.url)
    command = ['curl', '-sS', '-X', 'POST', url, '-w', '\n%{http_code}']
    for header in headers + ['X-SeeStack-Key: ' + key]:
        command += ['-H', header]
    command += ['-d', body]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    answer_text, status = done.stdout.rsplit('\n', 1)
    assert status == '202'
    answer = json.loads(answer_text)
    success = seed_envelopes()[0]
    assert set(answer) == set(success) and set(answer['data']) == set(success['data'])
    assert set(answer['meta']) == set(success['meta'])
    assert answer['success'] is True
    assert UUID.match(answer['data']['id']) and UUID.match(answer['meta']['requestId'])
    assert ISO_MS_Z.match(answer['meta']['timestamp'])

    # The event, read back through the read API.
    import urllib.request
    with urllib.request.urlopen('%s/api/v1/events?key=%s' % (live_server.url, key)) as listing:
        (summary,) = json.loads(listing.read())['events']
    with urllib.request.urlopen('%s/api/v1/events/%d?key=%s' % (live_server.url, summary['id'], key)) as shown:
        event = json.loads(shown.read())['event']
    sent = json.loads(body)
    assert event['eventId'] == answer['data']['id']
    assert event['level'] == 'error'
    assert event['environment'] == 'production' and event['release'] == 'v2.1.0'
    assert event['user']['id'] == 'usr_1234'
    (raised,) = event['exception']
    assert raised['type'] == 'TypeError'
    assert raised['value'] == sent['message'] == "Cannot read properties of undefined (reading 'userId')"
    # frames oldest call first; the raising frame last
    assert [(f['function'], f['filename'], f['lineno'], f.get('colno')) for f in raised['frames']] == [
        ('Object.<anonymous>', 'index.js', 88, 3),
        ('validateSession', 'session.js', 17, 5),
        ('getUserId', 'auth.js', 42, 18),
    ]
    # metadata is kept with the event
    assert '/dashboard' in json.dumps(event) and 'Chrome 120' in json.dumps(event)


def test_accepted_envelope_and_fresh_ids(client):
    key = create_project(client, 'seestack')['hash']
    first = assert_accepted(send(client, valid(), key))
    second = assert_accepted(send(client, valid(), key))
    assert first != second
    assert {e['eventId'] for e in events(client, key)} == {first, second}


def test_answers_allow_any_origin(client):
    key = create_project(client, 'seestack')['hash']
    assert send(client, valid(), key).headers['Access-Control-Allow-Origin'] == '*'
    assert send(client, valid(), None).headers['Access-Control-Allow-Origin'] == '*'
    preflight = client.options('/ingest/v1/errors', headers={
        'Origin': 'http://example.com', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, x-seestack-key'})
    assert preflight.status_int == 204
    allowed = [h.strip().lower() for h in preflight.headers['Access-Control-Allow-Headers'].split(',')]
    assert 'x-seestack-key' in allowed and 'content-type' in allowed


# -- the key ---------------------------------------------------------------------------

@pytest.mark.parametrize('key', [None, '', '   ', 'seestack_live_unknown'])
def test_missing_or_unknown_key_is_401(client, key):
    create_project(client, 'seestack')['hash']  # a project exists, but not this key
    error = assert_failure(send(client, valid(), key), 401, 'INVALID_API_KEY')
    assert error['message'] == seed_envelopes()[1]['error']['message']


def test_key_of_another_project_stores_there_only(client):
    key_a, key_b = create_project(client, 'seestack')['hash'], create_project(client, 'seestack')['hash']
    assert_accepted(send(client, valid(message='for a'), key_a))
    assert [e['message'] for e in events(client, key_a)] and events(client, key_b) == []


# -- validation --------------------------------------------------------------------------

INVALID_FIELDS = {
    'blank exceptionClass': ({'exceptionClass': ''}, 'exceptionClass'),
    'whitespace exceptionClass': ({'exceptionClass': '   '}, 'exceptionClass'),
    'missing exceptionClass': ({'exceptionClass': None}, 'exceptionClass'),
    'numeric exceptionClass': ({'exceptionClass': 5}, 'exceptionClass'),
    'blank message': ({'message': ''}, 'message'),
    'missing message': ({'message': None}, 'message'),
    'list message': ({'message': ['a']}, 'message'),
    'bad level': ({'level': 'critical'}, 'level'),
    'numeric level': ({'level': 3}, 'level'),
    'stackTrace of numbers': ({'stackTrace': [1, 2]}, 'stackTrace'),
    'stackTrace object': ({'stackTrace': {'0': 'at x (a.js:1:1)'}}, 'stackTrace'),
    'numeric environment': ({'environment': 5}, 'environment'),
    'numeric release': ({'release': 2.1}, 'release'),
    'string user': ({'user': 'usr_1'}, 'user'),
    'list metadata': ({'metadata': ['a']}, 'metadata'),
}


@pytest.mark.parametrize('case', sorted(INVALID_FIELDS))
def test_invalid_field_is_422_with_details(client, case):
    key = create_project(client, 'seestack')['hash']
    fields, name = INVALID_FIELDS[case]
    body = valid(**fields)
    body = {k: v for k, v in body.items() if v is not None}
    error = assert_failure(send(client, body, key), 422, 'VALIDATION_ERROR')
    assert error['message'] == 'Validation failed'
    assert name in error['details'], error
    assert isinstance(error['details'][name], str) and error['details'][name]
    assert events(client, key) == []


def test_every_problem_is_named_at_once(client):
    key = create_project(client, 'seestack')['hash']
    error = assert_failure(send(client, {'exceptionClass': '', 'message': '  ', 'level': 'loud',
                                         'user': 'x'}, key), 422, 'VALIDATION_ERROR')
    assert {'exceptionClass', 'message', 'level', 'user'} <= set(error['details'])
    # the seed's wording for these two
    assert error['details']['exceptionClass'] == 'must not be blank'
    assert error['details']['level'] == LEVEL_RULE


def test_empty_object_names_both_required_fields(client):
    key = create_project(client, 'seestack')['hash']
    error = assert_failure(send(client, {}, key), 422, 'VALIDATION_ERROR')
    assert {'exceptionClass', 'message'} <= set(error['details'])


@pytest.mark.parametrize('raw', [b'{"exceptionClass": "TypeError", ', b'not json at all', b'',
                                 b'{"exceptionClass": "E", "message": "m", "x": NaN}'])
def test_malformed_json_is_400_with_its_own_code(client, raw):
    key = create_project(client, 'seestack')['hash']
    answer = send(client, raw, key, raw=True)
    assert answer.status_int == 400, answer.body
    body = answer.json
    assert body['success'] is False
    assert body['error']['code'] not in ('VALIDATION_ERROR', 'INTERNAL_ERROR')
    assert re.match(r'^[A-Z_]+$', body['error']['code'])
    assert_meta(body['meta'])
    assert events(client, key) == []


@pytest.mark.parametrize('raw', [b'[]', b'"TypeError"', b'42', b'null'])
def test_json_that_is_not_an_object_is_refused(client, raw):
    key = create_project(client, 'seestack')['hash']
    answer = send(client, raw, key, raw=True)
    assert 400 <= answer.status_int < 500
    assert answer.json['success'] is False
    assert answer.json['error']['code'] != 'INTERNAL_ERROR'
    assert events(client, key) == []


# -- levels ---------------------------------------------------------------------------------

def test_level_defaults_to_error(client):
    key = create_project(client, 'seestack')['hash']
    assert_accepted(send(client, valid(), key))
    (summary,) = events(client, key)
    assert summary['level'] == 'error'


@pytest.mark.parametrize('level,model', [('debug', 'debug'), ('info', 'info'), ('warn', 'warning'),
                                         ('warning', 'warning'), ('error', 'error'), ('fatal', 'fatal')])
def test_every_documented_level_is_accepted(client, level, model):
    key = create_project(client, 'seestack')['hash']
    assert_accepted(send(client, valid(level=level), key))
    (summary,) = events(client, key)
    assert summary['level'] == model
    (issue,) = client.get('/api/v1/issues?key=%s' % key).json['issues']
    assert issue['level'] == model


# -- what is stored -------------------------------------------------------------------------------

def test_stack_trace_frames_are_visible_through_the_read_api(client):
    key = create_project(client, 'seestack')['hash']
    sent = assert_accepted(send(client, valid(
        exceptionClass='NullPointerException', message='user was null',
        stackTrace=['at com.shop.OrderService.place(OrderService.java:42)',
                    'at com.shop.OrderController.post(OrderController.java:17)',
                    'at java.base/java.lang.Thread.run(Thread.java:833)']), key))
    (summary,) = events(client, key)
    event = event_detail(client, key, summary['id'])
    assert event['eventId'] == sent
    assert event['kind'] == 'error'
    frames = event['exception'][-1]['frames']
    named = [(f.get('module'), f.get('function'), f.get('filename'), f.get('lineno')) for f in frames]
    assert named[-2:] == [('com.shop.OrderController', 'post', 'OrderController.java', 17),
                          ('com.shop.OrderService', 'place', 'OrderService.java', 42)]
    assert frames[-1]['inApp'] is True


def test_stack_trace_text_is_kept_beside_its_frames(client):
    """One multi-line string, as Python SDKs send a traceback: the event shows
    the lines as sent and the frames parsed from them, oldest call first."""
    key = create_project(client, 'seestack')['hash']
    trace = ('Traceback (most recent call last):\n'
             '  File "/srv/app/jobs.py", line 12, in run\n'
             '    charge(order)\n'
             '  File "/srv/app/billing.py", line 40, in charge\n'
             '    raise ValueError("card declined")\n'
             'ValueError: card declined')
    assert_accepted(send(client, valid(stackTrace=trace), key))
    (summary,) = events(client, key)
    exception = event_detail(client, key, summary['id'])['exception'][-1]
    assert exception['stackTrace'] == trace.splitlines()
    assert [(f['function'], f['filename'], f['lineno'], f.get('contextLine')) for f in exception['frames']] == [
        ('run', 'jobs.py', 12, 'charge(order)'), ('charge', 'billing.py', 40, 'raise ValueError("card declined")')]


def test_firefox_and_safari_traces_give_frames(client):
    """Browsers print stacks their own way: Firefox and Safari write
    "fn@url:line:col"; their frames come out as Chrome's do, and the same
    stack from Chrome and Firefox is one issue."""
    key = create_project(client, 'seestack')['hash']
    firefox = ['loadUser@https://shop.example.com/static/app.js:120:17',
               'handleClick/<@https://shop.example.com/static/app.js:88:9',
               '@https://shop.example.com/static/vendor/node_modules/react-dom.js:3:1']
    safari = ['loadUser@https://shop.example.com/static/app.js:120:17', '[native code]',
              'global code@https://shop.example.com/static/app.js:1:1']
    chrome = ['at loadUser (https://shop.example.com/static/app.js:120:17)',
              'at handleClick (https://shop.example.com/static/app.js:88:9)',
              'at https://shop.example.com/static/vendor/node_modules/react-dom.js:3:1']
    for trace in (firefox, safari, chrome):
        assert_accepted(send(client, valid(exceptionClass='TypeError', message='user is null', stackTrace=trace),
                             key))
    details = {tuple(e['exception'][-1]['stackTrace']): e['exception'][-1]['frames']
               for e in (event_detail(client, key, s['id']) for s in events(client, key))}
    assert [(f.get('function'), f['filename'], f['lineno'], f['colno'], f['inApp'])
            for f in details[tuple(firefox)]] == [
        (None, 'react-dom.js', 3, 1, False), ('handleClick', 'app.js', 88, 9, True),
        ('loadUser', 'app.js', 120, 17, True)]
    assert [(f.get('function'), f['lineno']) for f in details[tuple(safari)]] == [('global code', 1),
                                                                                 ('loadUser', 120)]
    issues = client.get('/api/v1/issues?key=%s' % key).json['issues']
    assert sorted(i['count'] for i in issues) == [1, 2]  # Chrome and Firefox together, Safari's stack differs
    assert all(i['culprit'] == 'loadUser (app.js)' for i in issues)


def test_a_huge_stack_trace_keeps_its_first_and_last_frames(client):
    """Past 8 KiB the trace text is not kept; the frames are, capped like any
    other (first 50, a marker, last 200)."""
    key = create_project(client, 'seestack')['hash']
    lines = ['at step%d (/srv/app/deep/recursion/module_%d.js:%d:7)' % (n, n, n + 1) for n in range(400)]
    assert sum(map(len, lines)) > 8192
    assert_accepted(send(client, valid(stackTrace=lines), key))
    (summary,) = events(client, key)
    exception = event_detail(client, key, summary['id'])['exception'][-1]
    assert 'stackTrace' not in exception
    frames = exception['frames']
    assert len(frames) == 251
    assert frames[0]['function'] == 'step399' and frames[-1]['function'] == 'step0'  # innermost last
    assert frames[50]['function'] == '[150 frames truncated]'


def test_events_with_the_same_trace_group_and_read_back_alike(client):
    key = create_project(client, 'seestack')['hash']
    lines = ['at getUserId (auth.js:42:18)', 'at validateSession (session.js:17:5)']
    for user in ('a', 'b', 'c'):
        assert_accepted(send(client, valid(exceptionClass='TypeError', message='no user ' + user,
                                           stackTrace=lines, user={'id': user}), key))
    (issue,) = client.get('/api/v1/issues?key=%s' % key).json['issues']
    assert issue['count'] == 3 and issue['culprit'] == 'getUserId (auth.js)'
    details = [event_detail(client, key, e['id'])['exception'][-1] for e in events(client, key)]
    assert all(d['frames'] == details[0]['frames'] and d['stackTrace'] == lines for d in details)
    assert [f['function'] for f in details[0]['frames']] == ['validateSession', 'getUserId']


def test_optional_fields_are_stored(client):
    key = create_project(client, 'seestack')['hash']
    assert_accepted(send(client, valid(
        environment='staging', release='1.4.0', timestamp='2026-03-31T12:00:00.000Z',
        user={'id': 'u1', 'email': 'dev@example.com'}, metadata={'route': '/cart'}), key))
    (summary,) = events(client, key)
    assert summary['timestamp'] == '2026-03-31T12:00:00.000Z'
    event = event_detail(client, key, summary['id'])
    assert (event['environment'], event['release']) == ('staging', '1.4.0')
    assert event['user'] == {'id': 'u1', 'email': 'dev@example.com'}
    assert '/cart' in json.dumps(event)
    (issue,) = client.get('/api/v1/issues?key=%s' % key).json['issues']
    assert issue['lastRelease'] == '1.4.0' and issue['environments'] == ['staging']


def test_bad_timestamp_is_a_validation_error(client):
    key = create_project(client, 'seestack')['hash']
    error = assert_failure(send(client, valid(timestamp='yesterday'), key), 422, 'VALIDATION_ERROR')
    assert 'timestamp' in error['details']


def test_seestack_error_shows_in_the_errorcapture_errors_list(client):
    key = create_project(client, 'seestack')['hash']
    assert_accepted(send(client, valid(exceptionClass='TypeError', message='x is undefined',
                                       stackTrace=['at run (/srv/app/job.js:9:2)']), key))
    (row,) = client.get('/api.php?action=errors&hash=%s' % key).json['errors']
    assert 'x is undefined' in row['message']
    assert row['file'] in ('/srv/app/job.js', 'job.js') and row['line'] == 9


@pytest.mark.parametrize('field', ['exceptionClass', 'message', 'environment'])
def test_lone_surrogate_escape_is_not_a_500(client, field):
    # "\ud800" is valid JSON syntax but no UTF-8 text can hold it: accept it
    # (with a replacement character) or refuse it, never an INTERNAL_ERROR.
    key = create_project(client, 'seestack')['hash']
    body = valid()
    body[field] = 'half \ud800 pair'
    raw = json.dumps(body).encode()
    assert b'\\ud800' in raw
    answer = send(client, raw, key, raw=True)
    if answer.status_int == 202:
        assert_accepted(answer)
        assert len(events(client, key)) == 1
    else:
        assert answer.status_int in (400, 422), answer.body
        assert answer.json['error']['code'] != 'INTERNAL_ERROR'
    assert_accepted(send(client, valid(), key))
