"""Open Sentry ingest (POST /v1/ingest, GET /health) as its seed documents it
(tests/seeds/open-sentry-ingest-api.txt): the curl examples, the error item
and batch examples, the three ways to pass the key, and every error answer."""
import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from helpers import create_project

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')
with open(os.path.join(SEEDS, 'open-sentry-ingest-api.txt'), encoding='utf-8') as _seed:
    SEED = _seed.read()

SEED_BASE = 'https://ingest-production-411d.up.railway.app'
UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
LIMIT = 256 * 1024

needs_curl = pytest.mark.skipif(shutil.which('curl') is None, reason='needs the curl binary')


def json_after(marker, opener='{'):
    head = SEED.index(opener, SEED.index(marker))
    return json.JSONDecoder().raw_decode(SEED, head)[0]


HEALTH_CURL = re.search(r'^curl https://\S+/health$', SEED, re.M).group(0)
SEND_CURL = re.search(r'^curl -X POST "https://\S+/v1/ingest" \\\n.*?-d \'.*?\'$', SEED, re.M | re.S).group(0)
HEALTH_RESPONSE = json_after('GET /health\n')
ERROR_ITEM = json_after('Error item (type: "error")')
BATCH = json_after('Batch example', '[')
# The error table: status, body, cause.
ERROR_ROWS = {cause.strip(): (int(status), json.loads(body)) for status, body, cause in
              re.findall(r'^(\d{3}) (\{ "error": "[^"]+" \}) (.+)$', SEED, re.M)}


def seed_error(cause):
    return ERROR_ROWS[cause]


def test_seed_examples_were_found():
    assert HEALTH_RESPONSE == {'status': 'ok'}
    assert 'X-Open-Sentry-Key: YOUR_PUBLIC_KEY' in SEND_CURL
    assert ERROR_ITEM['type'] == 'error' and ERROR_ITEM['exception']['type'] == 'TypeError'
    assert [item['exception']['value'] for item in BATCH] == ['first', 'second']
    assert sorted(ERROR_ROWS) == ['Body > 256 KiB', 'Body not JSON', 'No key header/query', 'Unknown public_key',
                                  'Zod validation failed']


# -- helpers ---------------------------------------------------------------------

def ingest(client, body, key=None, header='X-Open-Sentry-Key', raw=False, query_key=None):
    url = '/v1/ingest' + ('?key=%s' % query_key if query_key is not None else '')
    headers = {header: key} if key is not None else {}
    payload = body if raw else json.dumps(body).encode()
    return client.post(url, payload, headers=headers, content_type='application/json', expect_errors=True)


def assert_accepted(answer):
    assert answer.status_int == 202, answer.body
    assert set(answer.json) == {'id'} and UUID.match(answer.json['id'])
    return answer.json['id']


def assert_refused(answer, cause):
    status, body = seed_error(cause)
    assert answer.status_int == status, answer.body
    assert answer.content_type == 'application/json'
    assert answer.json['error'] == body['error']
    return answer.json


def stored(client, key):
    """Every stored error event, oldest first, in full."""
    summaries = client.get('/api/v1/events?key=%s&limit=500' % key).json['events']
    return [client.get('/api/v1/events/%d?key=%s' % (s['id'], key)).json['event'] for s in reversed(summaries)]


def item(value='boom', **fields):
    body = {'type': 'error', 'exception': {'type': 'Error', 'value': value}}
    body.update(fields)
    return body


# -- the seed's curl examples --------------------------------------------------------

@needs_curl
def test_seed_health_curl(live_server):
    done = subprocess.run(['bash', '-c', HEALTH_CURL.replace(SEED_BASE, live_server.url)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == HEALTH_RESPONSE


@needs_curl
def test_seed_send_curl(live_server):
    key = live_server.project('open-sentry')['hash']
    command = SEND_CURL.replace(SEED_BASE, live_server.url).replace('YOUR_PUBLIC_KEY', key)
    done = subprocess.run(['bash', '-c', command + " -sS -w '\\n%{http_code}'"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit('\n', 1)
    assert status == '202'
    assert set(json.loads(body)) == {'id'} and UUID.match(json.loads(body)['id'])
    with urllib.request.urlopen('%s/api.php?action=errors&hash=%s' % (live_server.url, key)) as answer:
        (row,) = json.loads(answer.read())['errors']
    assert 'test from curl' in row['message']


def test_health(client):
    answer = client.get('/health')
    assert answer.status_int == 200 and answer.json == HEALTH_RESPONSE


# -- the seed's payload examples ---------------------------------------------------------

def test_seed_error_item_is_stored_in_full(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, ERROR_ITEM, key))
    (event,) = stored(client, key)
    (raised,) = event['exception']
    assert raised['type'] == 'TypeError'
    assert raised['value'] == "Cannot read property 'x' of undefined"
    (f,) = raised['frames']
    assert (f['filename'], f['function'], f['lineno'], f['colno'], f['inApp']) == (
        'app/page.tsx', 'loadData', 42, 12, True)
    (crumb,) = event['breadcrumbs']
    assert (crumb['category'], crumb['message'], crumb['level'], crumb['timestamp']) == (
        'navigation', 'User opened settings', 'info', '2026-05-30T12:00:00.000Z')
    assert event['tags'] == {'region': 'us-east'}
    assert event['user'] == {'id': 'user_123', 'email': 'dev@example.com'}
    assert (event['environment'], event['release']) == ('production', 'web@2.4.1')
    assert event['timestamp'] == '2026-05-30T12:00:01.000Z'
    assert event['message'] == 'optional fallback message'
    (issue,) = client.get('/api/v1/issues?key=%s' % key).json['issues']
    assert issue['lastRelease'] == 'web@2.4.1' and issue['environments'] == ['production']
    assert issue['count'] == 1 and issue['level'] == 'error'


def test_seed_batch_stores_both_items(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, BATCH, key))
    values = [e['exception'][-1]['value'] for e in stored(client, key)]
    assert values == ['first', 'second']


def test_timestamp_defaults_to_receive_time(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, item(), key))
    (event,) = stored(client, key)
    assert event['timestamp'] == event['received']


def test_twenty_items_are_accepted(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, [item('v%d' % n) for n in range(20)], key))
    assert len(stored(client, key)) == 20


# -- the key ---------------------------------------------------------------------------------

def test_key_in_x_open_sentry_key(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, item('by header'), key, header='X-Open-Sentry-Key'))
    assert [e['exception'][-1]['value'] for e in stored(client, key)] == ['by header']


def test_key_in_legacy_x_sentry_clone_key(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, item('by legacy header'), key, header='X-Sentry-Clone-Key'))
    assert [e['exception'][-1]['value'] for e in stored(client, key)] == ['by legacy header']


def test_key_in_query_string(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, item('by query'), query_key=key))
    assert [e['exception'][-1]['value'] for e in stored(client, key)] == ['by query']


def test_missing_key_is_401(client):
    create_project(client, 'open-sentry')['hash']
    assert_refused(ingest(client, item()), 'No key header/query')
    assert_refused(ingest(client, item(), key=''), 'No key header/query')
    assert_refused(ingest(client, item(), query_key=''), 'No key header/query')


def test_unknown_key_is_403_and_nothing_is_created(client):
    assert_refused(ingest(client, item(), key='not-a-project'), 'Unknown public_key')
    assert_refused(ingest(client, item(), query_key='not-a-project'), 'Unknown public_key')
    assert client.get('/api/v1/project?key=not-a-project', expect_errors=True).status_int == 401


def test_cors(client):
    key = create_project(client, 'open-sentry')['hash']
    assert ingest(client, item(), key).headers['Access-Control-Allow-Origin'] == '*'
    assert ingest(client, b'{', key, raw=True).headers['Access-Control-Allow-Origin'] == '*'
    preflight = client.options('/v1/ingest', headers={
        'Origin': 'http://example.com', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, x-open-sentry-key'})
    assert preflight.status_int == 204
    assert preflight.headers['Access-Control-Allow-Origin'] == '*'
    allowed = [h.strip().lower() for h in preflight.headers['Access-Control-Allow-Headers'].split(',')]
    assert 'x-open-sentry-key' in allowed and 'content-type' in allowed


# -- bad bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize('raw', [b'{"type": "error", ', b'not json', b'',
                                 b'{"type": "error", "exception": {"type": "E", "value": NaN}}'])
def test_body_not_json_is_400_invalid_json(client, raw):
    key = create_project(client, 'open-sentry')['hash']
    body = assert_refused(ingest(client, raw, key, raw=True), 'Body not JSON')
    assert body == {'error': 'Invalid JSON'}
    assert stored(client, key) == []


INVALID = {
    'missing exception': {'type': 'error'},
    'exception not an object': {'type': 'error', 'exception': 'TypeError: x'},
    'exception without type': {'type': 'error', 'exception': {'value': 'x'}},
    'exception with blank type': {'type': 'error', 'exception': {'type': '', 'value': 'x'}},
    'exception type not a string': {'type': 'error', 'exception': {'type': 5, 'value': 'x'}},
    'exception value not a string': {'type': 'error', 'exception': {'type': 'E', 'value': 5}},
    'missing type': {'exception': {'type': 'E', 'value': 'x'}},
    'unknown type': {'type': 'weird', 'exception': {'type': 'E', 'value': 'x'}},
    'type not a string': {'type': 1, 'exception': {'type': 'E', 'value': 'x'}},
    'frames not a list': item(exception={'type': 'E', 'value': 'x', 'stacktrace': {'frames': 'a.js:1'}}),
    'frame lineno a string': item(exception={'type': 'E', 'value': 'x',
                                             'stacktrace': {'frames': [{'filename': 'a.js', 'lineno': 'ten'}]}}),
    'tags not a map of strings': item(tags={'region': {'nested': 'x'}}),
    'tags a list': item(tags=['a']),
    'environment not a string': item(environment=5),
    'breadcrumbs not a list': item(breadcrumbs='clicked'),
    'empty array': [],
    'twenty-one items': [item('v%d' % n) for n in range(21)],
    'json string': 'error',
    'json number': 42,
    'json null': None,
    'array of strings': ['error'],
}


@pytest.mark.parametrize('case', sorted(INVALID))
def test_invalid_payload_is_400(client, case):
    key = create_project(client, 'open-sentry')['hash']
    assert_refused(ingest(client, INVALID[case], key), 'Zod validation failed')
    assert stored(client, key) == []


def test_one_bad_item_refuses_the_whole_batch(client):
    key = create_project(client, 'open-sentry')['hash']
    batch = [item('good one'), item('good two'), {'type': 'error', 'exception': {'type': 'E'}}, item('good three')]
    assert_refused(ingest(client, batch, key), 'Zod validation failed')
    assert stored(client, key) == []
    assert client.get('/api/v1/issues?key=%s' % key).json['issues'] == []


def padded_item(size):
    """A valid error item whose JSON is exactly size bytes."""
    body = item('')
    overhead = len(json.dumps(body).encode())
    body['exception']['value'] = 'x' * (size - overhead)
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_body_over_256_kib_is_413(client):
    key = create_project(client, 'open-sentry')['hash']
    body = assert_refused(ingest(client, padded_item(LIMIT + 1), key, raw=True), 'Body > 256 KiB')
    assert body == {'error': 'Payload too large'}
    assert stored(client, key) == []


def test_body_of_exactly_256_kib_is_accepted(client):
    key = create_project(client, 'open-sentry')['hash']
    assert_accepted(ingest(client, padded_item(LIMIT), key, raw=True))
    assert len(stored(client, key)) == 1


def test_error_bodies_match_the_seed_table_exactly(client):
    key = create_project(client, 'open-sentry')['hash']
    assert ingest(client, b'{', key, raw=True).json == {'error': 'Invalid JSON'}
    assert ingest(client, item()).json == {'error': 'Missing auth key'}
    assert ingest(client, item(), key='nope').json == {'error': 'Invalid DSN key'}
    assert ingest(client, padded_item(LIMIT + 10), key, raw=True).json == {'error': 'Payload too large'}


@needs_curl
def test_chunked_body_over_256_kib_is_413(live_server, tmp_path):
    key = live_server.project('open-sentry')['hash']
    body = tmp_path / 'big.json'
    body.write_bytes(padded_item(LIMIT + 1024))
    done = subprocess.run(['curl', '-sS', '-X', 'POST', live_server.url + '/v1/ingest?key=' + key,
                           '-H', 'Content-Type: application/json', '-H', 'Transfer-Encoding: chunked',
                           '--data-binary', '@' + str(body), '-w', '\n%{http_code}'],
                          capture_output=True, text=True, timeout=30)
    answer, status = done.stdout.rsplit('\n', 1)
    assert status == '413' and json.loads(answer) == {'error': 'Payload too large'}


def test_lone_surrogate_escape_is_not_a_500(client):
    key = create_project(client, 'open-sentry')['hash']
    raw = json.dumps(item('half \ud800 pair')).encode()
    assert b'\\ud800' in raw
    answer = ingest(client, raw, key, raw=True)
    if answer.status_int == 202:
        assert len(stored(client, key)) == 1
    else:
        assert answer.status_int == 400 and answer.json['error'] in ('Invalid JSON', 'Invalid payload')
    assert_accepted(ingest(client, item(), key))


@pytest.mark.parametrize('timestamp', ['0001-01-01T00:00:00+14:00', '9999-12-31T23:59:59-14:00'])
def test_timestamp_at_the_edge_of_time_does_not_break_reading(client, timestamp):
    key = create_project(client, 'open-sentry')['hash']
    answer = ingest(client, item(timestamp=timestamp), key)
    assert answer.status_int in (202, 400), answer.body
    listing = client.get('/api/v1/issues?key=%s' % key, expect_errors=True)
    assert listing.status_int == 200, listing.body
    assert len(listing.json['issues']) == (1 if answer.status_int == 202 else 0)
    assert len(stored(client, key)) == len(listing.json['issues'])
