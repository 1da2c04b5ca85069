"""SeeStack telemetry ingest and its read API: HTTP requests, replays, logs and
heartbeats (tests/seeds/seestack-ingest-*.txt), read back through the read API
(docs/read-api.md). Open Sentry's telemetry is in test_open_sentry_telemetry.py."""
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

import errorcapture
from helpers import create_project

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')


def seed_text(name):
    with open(os.path.join(SEEDS, name), encoding='utf-8') as handle:
        return handle.read()


HTTP_SEED = seed_text('seestack-ingest-http-requests.txt')
REPLAY_SEED = seed_text('seestack-ingest-replay-and-heartbeat.txt')

UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
needs_curl = pytest.mark.skipif(shutil.which('curl') is None, reason='needs the curl binary')


def http_seed_curl_line():
    """The seed's curl command (flattened onto one line with '\\  -H')."""
    return next(line for line in HTTP_SEED.splitlines() if line.startswith('curl -X POST'))


def http_seed_body():
    line = http_seed_curl_line()
    return json.loads(re.search(r"-d '(.*)'\s*$", line).group(1))


def replay_seed_body():
    """The replay seed's example body. The page escaped the quotes inside
    eventData twice (\\\\"); the JSON meant has them escaped once."""
    line = next(line for line in REPLAY_SEED.splitlines() if line.startswith('curl -X POST'))
    text = re.search(r"-d '(.*?)'\{", line).group(1)
    return json.loads(text.replace('\\\\"', '\\"'))


def replay_seed_answer():
    start = REPLAY_SEED.index('{\n"success": true')
    return json.JSONDecoder().raw_decode(REPLAY_SEED, start)[0]


def iso_ago(seconds):
    stamp = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (stamp.microsecond // 1000)


def seestack(client, path, body, key, raw=False):
    headers = {'X-SeeStack-Key': key} if key is not None else {}
    payload = body if raw else json.dumps(body).encode()
    return client.post('/ingest/v1/' + path, payload, headers=headers, content_type='application/json',
                       expect_errors=True)


def read(client, url, key, **params):
    params['key'] = key
    answer = client.get(url, params=params)
    assert answer.status_int == 200, answer.body
    return answer.json


def assert_validation_error(answer, *fields):
    assert answer.status_int == 422, answer.body
    body = answer.json
    assert body['success'] is False
    assert body['error']['code'] == 'VALIDATION_ERROR'
    for field in fields:
        assert field in body['error']['details'], body['error']
    return body['error']['details']


def stored_requests(client, key):
    return read(client, '/api/v1/http-requests', key)['requests']


def request_item(**changes):
    item = {'traceId': 'trace-x', 'direction': 'inbound', 'method': 'GET', 'host': 'api.example.com',
            'path': '/api/things', 'statusCode': 200, 'durationMs': 12, 'requestSize': 0, 'responseSize': 10,
            'timestamp': iso_ago(30)}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not ...}


# -- SeeStack HTTP request telemetry ----------------------------------------------

def test_http_seed_example_is_accepted_and_stored(client):
    key = create_project(client, 'telemetry')['hash']
    body = http_seed_body()
    answer = seestack(client, 'http-requests', body, key)
    assert answer.status_int == 202, answer.body
    assert answer.json == {'ok': True, 'accepted': 2}
    rows = stored_requests(client, key)
    assert len(rows) == 2
    newest, oldest = rows
    assert newest['traceId'] == 'trace-002' and oldest['traceId'] == 'trace-001'
    assert oldest == dict(oldest, direction='outbound', method='POST', host='payments.stripe.com',
                          path='/v1/charges', statusCode=200, durationMs=320, requestSize=256, responseSize=1024,
                          userId='usr_99', timestamp='2026-03-31T12:00:00.000Z')
    assert newest['statusCode'] == 401 and newest['userId'] is None
    assert newest['timestamp'] == '2026-03-31T12:00:01.000Z'


@needs_curl
def test_http_seed_curl_command_against_live_server(live_server):
    key = live_server.project('curl')['key']
    line = http_seed_curl_line()
    # the page joined the command's lines: "\  -H" was "\<newline>  -H"
    argv = shlex.split(re.sub(r'\\\s+', ' ', line))
    assert argv[0] == 'curl'
    argv = [arg.replace('http://localhost:8080', live_server.url) for arg in argv]
    argv += ['-H', 'X-SeeStack-Key: ' + key, '-sS', '-w', '\n%{http_code}']
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit('\n', 1)
    assert status == '202'
    assert json.loads(body) == {'ok': True, 'accepted': 2}
    import urllib.request
    with urllib.request.urlopen(live_server.url + '/api/v1/http-requests?key=' + key) as answer:
        rows = json.loads(answer.read())['requests']
    assert sorted(r['traceId'] for r in rows) == ['trace-001', 'trace-002']


def test_http_project_id_is_optional(client):
    key = create_project(client, 'telemetry')['hash']
    body = http_seed_body()
    del body['projectId']
    answer = seestack(client, 'http-requests', body, key)
    assert answer.status_int == 202 and answer.json == {'ok': True, 'accepted': 2}


def test_http_batch_of_100_is_accepted(client):
    key = create_project(client, 'telemetry')['hash']
    items = [request_item(traceId='t%d' % i) for i in range(100)]
    answer = seestack(client, 'http-requests', {'requests': items}, key)
    assert answer.status_int == 202 and answer.json == {'ok': True, 'accepted': 100}
    assert len(read(client, '/api/v1/http-requests', key, limit=500)['requests']) == 100


@pytest.mark.parametrize('count', [0, 101])
def test_http_batch_size_out_of_range(client, count):
    key = create_project(client, 'telemetry')['hash']
    items = [request_item(traceId='t%d' % i) for i in range(count)]
    assert_validation_error(seestack(client, 'http-requests', {'requests': items}, key), 'requests')
    assert stored_requests(client, key) == []


def test_http_requests_missing(client):
    key = create_project(client, 'telemetry')['hash']
    assert_validation_error(seestack(client, 'http-requests', {'projectId': 'p'}, key), 'requests')


BAD_FIELDS = [
    ('traceId', ''), ('traceId', '   '), ('traceId', ...), ('host', ''), ('host', ...), ('path', ''),
    ('path', ...), ('direction', 'sideways'), ('direction', ...), ('method', 'FETCH'), ('method', ...),
    ('statusCode', 99), ('statusCode', 600), ('statusCode', '200'), ('durationMs', -1), ('requestSize', -5),
    ('responseSize', -0.5), ('timestamp', 'yesterday'), ('timestamp', '2026-13-45T99:00:00Z'), ('timestamp', 12.5e20),
]


@pytest.mark.parametrize('field,value', BAD_FIELDS)
def test_http_bad_field_rejects_whole_batch(client, field, value):
    key = create_project(client, 'telemetry')['hash']
    good = request_item(traceId='good-one')
    bad = request_item(**{field: value})
    answer = seestack(client, 'http-requests', {'requests': [good, bad]}, key)
    details = assert_validation_error(answer, 'requests[1].%s' % field)
    assert not any(name.startswith('requests[0]') for name in details), details
    assert stored_requests(client, key) == [], 'nothing of a rejected batch may be stored'


@pytest.mark.parametrize('method', ['get', 'Post', 'delete', 'PATCH', 'options', 'head', 'put'])
def test_http_method_in_any_case_is_stored_upper_case(client, method):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', {'requests': [request_item(method=method)]}, key)
    assert answer.status_int == 202, answer.body
    assert stored_requests(client, key)[0]['method'] == method.upper()


@pytest.mark.parametrize('status', [0, 100, 599])
def test_http_status_code_edges_accepted(client, status):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', {'requests': [request_item(statusCode=status)]}, key)
    assert answer.status_int == 202, answer.body
    assert stored_requests(client, key)[0]['statusCode'] == status


def test_http_every_bad_item_is_named(client):
    key = create_project(client, 'telemetry')['hash']
    items = [request_item(), request_item(direction='up'), request_item(), request_item(statusCode=700)]
    details = assert_validation_error(seestack(client, 'http-requests', {'requests': items}, key),
                                      'requests[1].direction', 'requests[3].statusCode')
    assert all(isinstance(message, str) and message for message in details.values())


def test_http_item_not_an_object(client):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', {'requests': [request_item(), 'nope']}, key)
    details = assert_validation_error(answer)
    assert any(name.startswith('requests[1]') for name in details), details
    assert stored_requests(client, key) == []


@pytest.mark.parametrize('key', [None, '', 'not-a-key'])
def test_http_bad_key(client, key):
    create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', http_seed_body(), key)
    assert answer.status_int == 401
    assert answer.json['success'] is False
    assert answer.json['error']['code'] == 'INVALID_API_KEY'


def test_http_key_of_api_php_is_accepted(client):
    """The same key /api.php uses (also one made by auto-creation) works here."""
    answer = client.post_json('/api.php', {'hash': 'my-own-key-123', 'level': 'Error', 'message': 'boom'})
    assert answer.json['ok'] is True
    answer = seestack(client, 'http-requests', http_seed_body(), 'my-own-key-123')
    assert answer.status_int == 202, answer.body


def test_http_malformed_json(client):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', b'{"requests": [', key, raw=True)
    assert answer.status_int == 400, answer.body
    assert answer.json['success'] is False
    assert answer.json['error']['code'] not in ('VALIDATION_ERROR', None, '')


def test_http_body_not_an_object(client):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'http-requests', [request_item()], key)
    assert 400 <= answer.status_int < 500 and answer.json['success'] is False
    assert stored_requests(client, key) == []


def seed_filter_data(client, key):
    items = [
        request_item(traceId='a', direction='inbound', method='GET', host='api.example.com', path='/api/orders',
                     statusCode=200),
        request_item(traceId='b', direction='inbound', method='POST', host='api.example.com', path='/api/orders/7',
                     statusCode=404),
        request_item(traceId='c', direction='outbound', method='POST', host='payments.stripe.com',
                     path='/v1/charges', statusCode=402),
        request_item(traceId='d', direction='outbound', method='GET', host='cdn.example.net', path='/img/logo.png',
                     statusCode=503),
    ]
    assert seestack(client, 'http-requests', {'requests': items}, key).status_int == 202


@pytest.mark.parametrize('params,expected', [
    ({}, ['d', 'c', 'b', 'a']),
    ({'direction': 'outbound'}, ['d', 'c']),
    ({'direction': 'inbound'}, ['b', 'a']),
    ({'method': 'POST'}, ['c', 'b']),
    ({'method': 'get'}, ['d', 'a']),
    ({'status': '4xx'}, ['c', 'b']),
    ({'status': '5xx'}, ['d']),
    ({'status': '404'}, ['b']),
    ({'host': 'api.example.com'}, ['b', 'a']),
    ({'path': 'orders'}, ['b', 'a']),
    ({'path': '/v1/'}, ['c']),
    ({'direction': 'inbound', 'status': '4xx'}, ['b']),
])
def test_http_list_filters(client, params, expected):
    key = create_project(client, 'telemetry')['hash']
    seed_filter_data(client, key)
    rows = read(client, '/api/v1/http-requests', key, **params)['requests']
    assert [r['traceId'] for r in rows] == expected


def test_http_list_pages_with_cursor(client):
    key = create_project(client, 'telemetry')['hash']
    items = [request_item(traceId='t%02d' % i) for i in range(7)]
    assert seestack(client, 'http-requests', {'requests': items}, key).status_int == 202
    seen, cursor = [], None
    for _ in range(10):
        params = {'limit': 3}
        if cursor:
            params['cursor'] = cursor
        page = read(client, '/api/v1/http-requests', key, **params)
        seen += [r['traceId'] for r in page['requests']]
        cursor = page['nextCursor']
        if cursor is None:
            break
    assert seen == ['t%02d' % i for i in reversed(range(7))]


def test_http_read_needs_the_key(client):
    key = create_project(client, 'telemetry')['hash']
    assert client.get('/api/v1/http-requests', expect_errors=True).status_int == 401
    other = create_project(client, 'other')['hash']
    seed_filter_data(client, key)
    assert stored_requests(client, other) == []


def test_http_stats(client):
    key = create_project(client, 'telemetry')['hash']
    durations = [3, 8, 8, 40, 300]
    codes = [200, 200, 201, 404, 500]
    items = [request_item(traceId='s%d' % i, durationMs=d, statusCode=c, timestamp=iso_ago(60 + i))
             for i, (d, c) in enumerate(zip(durations, codes))]
    # one old request, outside the default 24 hours
    items.append(request_item(traceId='old', durationMs=9000, statusCode=200, timestamp=iso_ago(3 * 86400)))
    assert seestack(client, 'http-requests', {'requests': items}, key).status_int == 202
    stats = read(client, '/api/v1/http-requests/stats', key)
    assert stats['count'] == 5
    assert stats['p50'] == 8
    assert stats['p95'] == 300
    assert stats['statusCodes'] == {'200': 2, '201': 1, '404': 1, '500': 1}
    assert stats['statusClasses'] == {'2xx': 3, '4xx': 1, '5xx': 1}
    buckets = {b['le']: b['count'] for b in stats['histogram'] if b['count']}
    assert buckets == {5: 1, 10: 2, 50: 1, 500: 1}
    assert sum(b['count'] for b in stats['histogram']) == 5
    wider = read(client, '/api/v1/http-requests/stats', key, hours=100)
    assert wider['count'] == 6 and wider['statusCodes']['200'] == 3
    assert read(client, '/api/v1/http-requests/stats', key, status='4xx')['count'] == 1


def test_http_stats_percentiles_over_many(client):
    key = create_project(client, 'telemetry')['hash']
    items = [request_item(traceId='p%d' % i, durationMs=(i + 1) * 10, timestamp=iso_ago(120)) for i in range(20)]
    assert seestack(client, 'http-requests', {'requests': items}, key).status_int == 202
    stats = read(client, '/api/v1/http-requests/stats', key)
    assert stats['count'] == 20
    assert 100 <= stats['p50'] <= 110
    assert 185 <= stats['p95'] <= 200
    assert stats['byHost'][0]['host'] == 'api.example.com' and stats['byHost'][0]['count'] == 20
    # docs/read-api.md: byHost entries are {"host", "count", "p95"}
    assert 185 <= stats['byHost'][0].get('p95', -1) <= 200, stats['byHost']


@pytest.mark.parametrize('params', [{'status': 'abc'}, {'status': '6xx'}, {'direction': 'up'}])
def test_http_bad_filters_answer_400(client, params):
    key = create_project(client, 'telemetry')['hash']
    params['key'] = key
    answer = client.get('/api/v1/http-requests', params=params, expect_errors=True)
    assert answer.status_int == 400 and 'error' in answer.json


def test_http_stats_empty(client):
    key = create_project(client, 'telemetry')['hash']
    stats = read(client, '/api/v1/http-requests/stats', key)
    assert stats['count'] == 0 and stats['statusCodes'] == {}


# -- SeeStack replays -------------------------------------------------------------

def replay(client, key, body):
    return seestack(client, 'replay', body, key)


def test_replay_seed_example(client):
    key = create_project(client, 'telemetry')['hash']
    body = replay_seed_body()
    assert len(body['events']) == 3
    answer = replay(client, key, body)
    assert answer.status_int == 202, answer.body
    data = answer.json
    seed = replay_seed_answer()
    assert set(data) == set(seed) == {'success', 'data', 'meta'}
    assert data['success'] is True
    assert data['data'] == seed['data'] == {'eventsReceived': 3}
    assert UUID.match(data['meta']['requestId']) and ISO_MS_Z.match(data['meta']['timestamp'])
    stored = read(client, '/api/v1/replays/sess_8f3a2c1b', key)
    assert stored['sessionId'] == 'sess_8f3a2c1b'
    assert [e['eventType'] for e in stored['events']] == ['navigation', 'mouse_click', 'input']
    assert [e['timestampMillis'] for e in stored['events']] == [1711886400000, 1711886405123, 1711886407800]
    navigation = json.loads(stored['events'][0]['eventData'])
    assert navigation == {'from': '/home', 'to': '/checkout', 'method': 'push'}
    click = json.loads(stored['events'][1]['eventData'])
    assert click == {'x': 512, 'y': 340, 'target': 'button#place-order'}
    assert stored['events'][0]['url'] == 'https://myapp.com/checkout'
    assert stored['events'][0]['timestamp'] == '2024-03-31T12:00:00.000Z'


def replay_event(data, millis, url='https://shop.example/checkout', event_type='input'):
    return {'eventType': event_type, 'eventData': data if isinstance(data, str) else json.dumps(data),
            'url': url, 'timestampMillis': millis}


def test_replay_masks_secrets_and_keeps_the_rest(client):
    key = create_project(client, 'telemetry')['hash']
    base = 1711886400000
    events = [
        replay_event({'field': 'login', 'password': 'hunter2'}, base),
        replay_event({'token': 'tok_live_abcdef'}, base + 1),
        replay_event({'cvv': '123'}, base + 2),
        replay_event({'field': 'card-number', 'value': '4111 1111 1111 1111'}, base + 3),
        replay_event('customer typed 4242424242424242 into the notes', base + 4),
        replay_event({'x': 512, 'y': 340, 'to': '/checkout'}, base + 5, event_type='mouse_click'),
        replay_event({'note': 'pay with 4242424242424242 please'}, base + 6),
    ]
    answer = replay(client, key, {'fingerprint': 'fp', 'sessionId': 'masking', 'events': events})
    assert answer.status_int == 202, answer.body
    stored = read(client, '/api/v1/replays/masking', key)['events']
    assert len(stored) == 7
    raw = ' '.join(e['eventData'] for e in stored)
    for secret in ('hunter2', 'tok_live_abcdef', '4111 1111 1111 1111', '4242424242424242'):
        assert secret not in raw, secret
    first = json.loads(stored[0]['eventData'])
    assert first == {'field': 'login', 'password': '[MASKED]'}
    assert json.loads(stored[1]['eventData']) == {'token': '[MASKED]'}
    assert json.loads(stored[2]['eventData']) == {'cvv': '[MASKED]'}
    assert json.loads(stored[3]['eventData']) == {'field': 'card-number', 'value': '[MASKED]'}
    assert '[MASKED]' in stored[4]['eventData'] and 'customer typed' in stored[4]['eventData']
    assert json.loads(stored[5]['eventData']) == {'x': 512, 'y': 340, 'to': '/checkout'}
    assert json.loads(stored[6]['eventData'])['note'] == 'pay with [MASKED] please'


def test_replay_masks_secrets_nested_deeper_than_it_looks(client):
    """Masking looks 20 levels into eventData; what lies deeper (a DOM
    snapshot's input, 30 levels down) is masked whole, never kept unread."""
    key = create_project(client, 'telemetry')['hash']
    data = {'password': 'hunter2', 'card': '4242424242424242'}
    for _ in range(30):
        data = {'childNodes': [data]}
    answer = replay(client, key, {'fingerprint': 'fp', 'sessionId': 'deep', 'events': [
        replay_event(data, 1711886400000, event_type='snapshot')]})
    assert answer.status_int == 202, answer.body
    stored = read(client, '/api/v1/replays/deep', key)['events'][0]['eventData']
    assert 'hunter2' not in stored and '4242424242424242' not in stored
    assert '[MASKED]' in stored and stored.startswith('{"childNodes":[{"childNodes"')


def test_replay_masks_card_numbers_sent_as_json_numbers(client):
    """A card number typed into a numeric input arrives as a JSON number."""
    key = create_project(client, 'telemetry')['hash']
    event = replay_event({'field': 'notes', 'number': 4242424242424242}, 1)
    answer = replay(client, key, {'fingerprint': 'f', 'sessionId': 'num', 'events': [event]})
    assert answer.status_int == 202, answer.body
    stored = read(client, '/api/v1/replays/num', key)['events'][0]['eventData']
    assert '4242424242424242' not in stored, stored


def test_replay_masks_value_typed_into_a_password_target(client):
    """The seed's click events name their element as "target"; an input event
    on a password field must not keep what was typed."""
    key = create_project(client, 'telemetry')['hash']
    event = replay_event({'target': 'input#password', 'value': 'hunter2'}, 1)
    answer = replay(client, key, {'fingerprint': 'f', 'sessionId': 'pw', 'events': [event]})
    assert answer.status_int == 202, answer.body
    stored = json.loads(read(client, '/api/v1/replays/pw', key)['events'][0]['eventData'])
    assert stored == {'target': 'input#password', 'value': '[MASKED]'}


def test_replay_masks_secret_keys_by_word_and_keeps_look_alikes(client):
    """Recorders write className, passengers, spinner and millisecond
    timestamps everywhere; none of them is a secret. Keys that hold one are
    masked however they are spelled."""
    key = create_project(client, 'telemetry')['hash']
    assert errorcapture.luhn_ok('1711886400002')  # a 13-digit timestamp that passes the card check
    kept = {'timestamp': 1711886400002, 'at': '1711886400002', 'passengers': 2, 'className': 'btn spinner',
            'compass': 'N', 'credits': 3, 'bypassCache': True, 'spinnerVisible': False}
    masked = {'userPassword': 'a', 'csrftoken': 'b', 'apiKey': 'c', 'x-api-key': 'd', 'cardNumber': 'e',
              'pin': '1234', 'user_pass': 'f', 'credit_card': 'g', 'ssn': '078-05-1120', 'CVC': '123'}
    event = replay_event(dict(kept, **masked), 1)
    answer = replay(client, key, {'fingerprint': 'f', 'sessionId': 'words', 'events': [event]})
    assert answer.status_int == 202, answer.body
    stored = json.loads(read(client, '/api/v1/replays/words', key)['events'][0]['eventData'])
    assert {k: stored[k] for k in kept} == kept
    assert {k: stored[k] for k in masked} == {k: '[MASKED]' for k in masked}


def test_replay_keeps_numbers_that_are_not_cards(client):
    key = create_project(client, 'telemetry')['hash']
    data = {'orderId': '1234567890123', 'x': 10}  # 13 digits, fails the Luhn check
    answer = replay(client, key, {'fingerprint': 'f', 'sessionId': 's1', 'events': [replay_event(data, 1)]})
    assert answer.status_int == 202, answer.body
    assert json.loads(read(client, '/api/v1/replays/s1', key)['events'][0]['eventData']) == data


@pytest.mark.parametrize('change,field', [
    (lambda b: b.update(events=[]), 'events'),
    (lambda b: b.pop('events'), 'events'),
    (lambda b: b.pop('sessionId'), 'sessionId'),
    (lambda b: b.update(sessionId='  '), 'sessionId'),
    (lambda b: b.pop('fingerprint'), 'fingerprint'),
    (lambda b: b['events'][1].update(eventData={'x': 1}), 'events[1].eventData'),
    (lambda b: b['events'][0].update(timestampMillis='1711886400000'), 'events[0].timestampMillis'),
    (lambda b: b['events'][0].update(timestampMillis=1711886400000.5), 'events[0].timestampMillis'),
    (lambda b: b['events'][2].pop('eventType'), 'events[2].eventType'),
])
def test_replay_validation(client, change, field):
    key = create_project(client, 'telemetry')['hash']
    body = copy.deepcopy(replay_seed_body())
    change(body)
    assert_validation_error(replay(client, key, body), field)
    assert read(client, '/api/v1/replays', key)['sessions'] == []


def test_replay_bad_key(client):
    answer = replay(client, 'nope', replay_seed_body())
    assert answer.status_int == 401 and answer.json['error']['code'] == 'INVALID_API_KEY'


def test_replay_session_list(client):
    key = create_project(client, 'telemetry')['hash']
    assert replay(client, key, replay_seed_body()).status_int == 202
    more = {'fingerprint': 'sess_8f3a2c1b', 'sessionId': 'sess_8f3a2c1b', 'events': [
        replay_event({'to': '/thanks'}, 1711886410000, url='https://myapp.com/thanks', event_type='navigation')]}
    assert replay(client, key, more).status_int == 202
    other = {'fingerprint': 'fp2', 'sessionId': 'another', 'events': [replay_event({'x': 1}, 1711886500000)]}
    assert replay(client, key, other).status_int == 202
    sessions = read(client, '/api/v1/replays', key)['sessions']
    assert [s['sessionId'] for s in sessions] == ['another', 'sess_8f3a2c1b']
    session = sessions[1]
    assert session['events'] == 4
    assert session['fingerprint'] == 'sess_8f3a2c1b'
    assert session['urls'] == ['https://myapp.com/checkout', 'https://myapp.com/thanks']
    assert session['firstSeen'] == '2024-03-31T12:00:00.000Z'
    assert session['lastSeen'] == '2024-03-31T12:00:10.000Z'
    assert client.get('/api/v1/replays/unknown?key=' + key, expect_errors=True).status_int == 404


# -- SeeStack logs ----------------------------------------------------------------

def log_line(client, key, **fields):
    answer = seestack(client, 'logs', fields, key)
    assert answer.status_int == 202, answer.body
    return answer


def test_log_accepted_in_success_envelope(client):
    key = create_project(client, 'telemetry')['hash']
    answer = log_line(client, key, level='warn', message='disk almost full', service='api', traceId='t1',
                      metadata={'disk': '/dev/sda1', 'percent': 93})
    body = answer.json
    assert body['success'] is True and isinstance(body['data'], dict)
    assert UUID.match(body['meta']['requestId'])
    logs = read(client, '/api/v1/logs', key)['logs']
    assert len(logs) == 1
    entry = logs[0]
    assert entry['level'] == 'warn' and entry['message'] == 'disk almost full'
    assert entry['service'] == 'api' and entry['traceId'] == 't1'
    assert entry['metadata'] == {'disk': '/dev/sda1', 'percent': 93}
    assert ISO_MS_Z.match(entry['timestamp'])


@pytest.mark.parametrize('fields,bad', [
    ({'message': 'no level'}, 'level'),
    ({'level': 'loud', 'message': 'bad level'}, 'level'),
    ({'level': 'info'}, 'message'),
    ({'level': 'info', 'message': '   '}, 'message'),
    ({'level': 'info', 'message': 'x', 'metadata': 'not an object'}, 'metadata'),
])
def test_log_validation(client, fields, bad):
    key = create_project(client, 'telemetry')['hash']
    assert_validation_error(seestack(client, 'logs', fields, key), bad)
    assert read(client, '/api/v1/logs', key)['logs'] == []


def test_log_bad_key(client):
    answer = seestack(client, 'logs', {'level': 'info', 'message': 'x'}, 'nope')
    assert answer.status_int == 401 and answer.json['error']['code'] == 'INVALID_API_KEY'


def test_logs_newest_first_and_tail(client):
    key = create_project(client, 'telemetry')['hash']
    for index in range(5):
        log_line(client, key, level='info', message='line %d' % index)
    logs = read(client, '/api/v1/logs', key)['logs']
    assert [l['message'] for l in logs] == ['line %d' % i for i in reversed(range(5))]
    third = logs[2]['id']  # "line 2"
    tail = read(client, '/api/v1/logs', key, since=third)
    assert [l['message'] for l in tail['logs']] == ['line 3', 'line 4']
    assert tail['cursor'] == logs[0]['id']
    log_line(client, key, level='error', message='line 5')
    again = read(client, '/api/v1/logs', key, since=tail['cursor'])
    assert [l['message'] for l in again['logs']] == ['line 5']
    empty = read(client, '/api/v1/logs', key, since=again['cursor'])
    assert empty['logs'] == [] and empty['cursor'] == again['cursor']


def test_a_page_of_big_logs_stops_at_its_byte_budget_and_the_rest_follow(client):
    # A page may ask for 1,000 entries, each carrying up to ~1 MiB of message
    # and metadata: the answer stops at a byte budget instead of loading them
    # all, and the next page (or the next poll of a tail) brings the rest.
    client.wsgi.store.telemetry.LOG_PAGE_BYTES = 2500
    key = create_project(client, 'telemetry')['hash']
    for index in range(5):
        log_line(client, key, level='info', message='%d' % index + 'x' * 999)
    log_line(client, key, level='info', message='big', metadata={'blob': 'y' * 4000})  # alone past the budget
    pages, before = [], None
    while True:
        page = read(client, '/api/v1/logs', key, limit=1000, **({'before': before} if before else {}))
        pages.append([entry['message'][:3] for entry in page['logs']])
        before = page['nextCursor']
        if before is None:
            break
    assert pages == [['big'], ['4xx', '3xx'], ['2xx', '1xx'], ['0xx']]
    polls, since = [], 0
    while True:
        tail = read(client, '/api/v1/logs', key, since=since, limit=1000)
        if not tail['logs']:
            break
        polls.append([entry['message'][:3] for entry in tail['logs']])
        since = tail['cursor']
    assert polls == [['0xx', '1xx'], ['2xx', '3xx'], ['4xx'], ['big']]


def test_logs_filters(client):
    key = create_project(client, 'telemetry')['hash']
    log_line(client, key, level='info', message='user signed in', service='auth')
    log_line(client, key, level='error', message='payment declined', service='billing')
    log_line(client, key, level='error', message='token expired', service='auth')
    log_line(client, key, level='debug', message='cache miss for user 7', service='api', traceId='trace-7')
    messages = lambda **p: [l['message'] for l in read(client, '/api/v1/logs', key, **p)['logs']]
    assert messages(traceId='trace-7') == ['cache miss for user 7']
    assert messages(level='error') == ['token expired', 'payment declined']
    assert messages(service='auth') == ['token expired', 'user signed in']
    assert messages(q='user') == ['cache miss for user 7', 'user signed in']
    assert messages(level='error', service='auth') == ['token expired']
    assert messages(q='nothing like this') == []


# -- SeeStack heartbeat -----------------------------------------------------------

def create_monitor(client, key, slug='nightly-backup', schedule='1d', grace=30, name='Nightly backup'):
    answer = client.post_json('/api/v1/monitors?key=' + key, {'slug': slug, 'name': name, 'schedule': schedule,
                                                               'grace': grace}, expect_errors=True)
    assert answer.status_int == 201, answer.body
    return answer.json['monitor']


def test_heartbeat_unknown_slug(client):
    key = create_project(client, 'telemetry')['hash']
    answer = seestack(client, 'heartbeat', {'slug': 'no-such-job', 'status': 'success'}, key)
    assert answer.status_int == 404, answer.body
    body = answer.json  # SeeStack's own error format, as the seed's 401 and 422 show it
    assert body['success'] is False and 'ok' not in body
    assert body['error']['code'] == 'NOT_FOUND' and 'no-such-job' in body['error']['message']
    assert isinstance(body['meta']['requestId'], str) and body['meta']['requestId']
    assert isinstance(body['meta']['timestamp'], str) and body['meta']['timestamp']


def test_heartbeat_records_history(client):
    key = create_project(client, 'telemetry')['hash']
    create_monitor(client, key)
    answer = seestack(client, 'heartbeat', {'slug': 'nightly-backup', 'status': 'success', 'durationMs': 1234},
                      key)
    assert answer.status_int == 202, answer.body
    assert answer.json['ok'] is True and isinstance(answer.json['monitorId'], str) and answer.json['monitorId']
    shown = read(client, '/api/v1/monitors/nightly-backup', key)
    assert shown['monitor']['status'] == 'healthy'
    assert shown['monitor']['lastStatus'] == 'success'
    assert ISO_MS_Z.match(shown['monitor']['lastPing'])
    assert [h['status'] for h in shown['history']] == ['success']
    assert shown['history'][0]['durationMs'] == 1234
    answer = seestack(client, 'heartbeat', {'slug': 'nightly-backup', 'status': 'failed',
                                            'message': 'disk full'}, key)
    assert answer.status_int == 202, answer.body
    shown = read(client, '/api/v1/monitors/nightly-backup', key)
    assert shown['monitor']['status'] == 'failed'
    assert [h['status'] for h in shown['history']] == ['failed', 'success']
    assert shown['history'][0]['message'] == 'disk full'
    listed = read(client, '/api/v1/monitors', key)['monitors']
    assert [(m['slug'], m['status']) for m in listed] == [('nightly-backup', 'failed')]


@pytest.mark.parametrize('body,field', [
    ({'slug': 'nightly-backup', 'status': 'ok'}, 'status'),
    ({'slug': 'nightly-backup', 'status': 'SUCCESS?'}, 'status'),
    ({'slug': 'nightly-backup'}, 'status'),
    ({'status': 'success'}, 'slug'),
    ({'slug': 'nightly-backup', 'status': 'success', 'durationMs': -1}, 'durationMs'),
])
def test_heartbeat_validation(client, body, field):
    key = create_project(client, 'telemetry')['hash']
    create_monitor(client, key)
    assert_validation_error(seestack(client, 'heartbeat', body, key), field)
    assert read(client, '/api/v1/monitors/nightly-backup', key)['history'] == []


def test_heartbeat_bad_key(client):
    answer = seestack(client, 'heartbeat', {'slug': 'x', 'status': 'success'}, 'nope')
    assert answer.status_int == 401 and answer.json['error']['code'] == 'INVALID_API_KEY'


def test_heartbeat_of_other_project_is_not_found(client):
    key, other = create_project(client, 'a')['hash'], create_project(client, 'b')['hash']
    create_monitor(client, key)
    answer = seestack(client, 'heartbeat', {'slug': 'nightly-backup', 'status': 'success'}, other)
    assert answer.status_int == 404
    assert read(client, '/api/v1/monitors/nightly-backup', key)['history'] == []
