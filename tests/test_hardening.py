"""Issue 16, what a hostile client and a bad afternoon did to us, each proved
black-box through HTTP (webtest, or a real server where a process must die):
printf widths, sums that overflow, telemetry aged by arrival, quotas for every
stored item, check-ins for unknown monitors and impossible schedules,
recovery from a read-only database."""
import json
import time
import tracemalloc
import uuid

import pytest

import errorcapture
from helpers import create_project, sentry_auth





def envelope(*items, header=None):
    lines = [json.dumps(header or {})]
    for item_header, payload in items:
        lines += [json.dumps(item_header), json.dumps(payload)]
    return ('\n'.join(lines) + '\n').encode()


def send_envelope(client, key, project_id, body, **headers):
    return client.post('/api/%d/envelope/' % project_id, body, headers=dict(sentry_auth(key), **headers),
                       content_type='application/x-sentry-envelope', expect_errors=True)


def read(client, key, path, **params):
    params['key'] = key
    answer = client.get(path, params=params, expect_errors=True)
    assert answer.status_int == 200, answer.body[:300]
    return answer.json


# -- 3. printf widths --------------------------------------------------------------------

def test_a_logentry_width_cannot_make_the_server_allocate(client):
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    event = {'event_id': uuid.uuid4().hex, 'logentry': {'message': '%100000000s', 'params': ['x']}}
    tracemalloc.start()
    try:
        answer = client.post('/api/%d/store/' % project_id, json.dumps(event), headers=sentry_auth(key),
                             content_type='application/json', expect_errors=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_int == 200, answer.body
    assert peak < 20 << 20, 'peak %d bytes' % peak
    events = read(client, key, '/api/v1/events')['events']
    assert events[0]['message'] == 'x'


@pytest.mark.parametrize('template,params,expected', [
    ('User %s not found (%d tries)', ['bob', 3], 'User bob not found (3 tries)'),
    ('%-10s|%05d|%.2f|%%', ['a', 7, 1.5], 'a|7|1.5|%'),
    ('%(user)s left %(room)r', {'user': 'ann', 'room': 'lobby'}, "ann left 'lobby'"),
    ('%*s', [1000000000, 'wide'], 'wide'),
    ('%.999999999f', [2.5], '2.5'),
    ('only %s and %s', ['one'], 'only %s and %s'),  # does not fit its params: as sent
])
def test_logentry_params_are_filled_in_without_widths(client, template, params, expected):
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    event = {'event_id': uuid.uuid4().hex, 'logentry': {'message': template, 'params': params}}
    answer = client.post('/api/%d/store/' % project_id, json.dumps(event), headers=sentry_auth(key),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 200, answer.body
    issue = read(client, key, '/api/v1/issues')['issues'][0]
    assert read(client, key, '/api/v1/events')['events'][0]['message'] == expected
    assert issue['title'] == expected


# -- 7. sums that cannot overflow ----------------------------------------------------------

def ai_item(**fields):
    item = {'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt', 'inputTokens': 10, 'outputTokens': 5,
            'totalCostUsd': 0.01, 'latencyMs': 120}
    item.update(fields)
    return item


def post_open_sentry(client, key, items):
    return client.post('/v1/ingest', json.dumps(items), headers={'X-Open-Sentry-Key': key},
                       content_type='application/json', expect_errors=True)


def test_token_counts_past_the_bound_are_refused_and_sums_stay_answerable(client):
    key = create_project(client)['hash']
    answer = post_open_sentry(client, key, [ai_item(inputTokens=999999999999999999)] * 10)
    assert answer.status_int == 400, answer.body
    assert '[0].inputTokens' in answer.json['details']
    assert post_open_sentry(client, key, [ai_item(inputTokens=10 ** 12, outputTokens=10 ** 12)] * 10).status_int == 202
    usage = read(client, key, '/api/v1/ai', days=1)
    assert usage['totals'] == dict(usage['totals'], count=10, inputTokens=10 ** 13, outputTokens=10 ** 13)
    for field in ('totalCostUsd', 'latencyMs'):
        assert post_open_sentry(client, key, [ai_item(**{field: 1e300})]).status_int == 400, field
    duration = {'type': 'transaction', 'name': 'GET /', 'traceId': 't', 'durationMs': 1e300}
    assert post_open_sentry(client, key, [duration]).status_int == 400


def test_rows_stored_before_the_bounds_still_sum_without_a_500(make, tmp_path):
    """Rows that a server without bounds took: SUM raised 'integer overflow'."""
    import sqlite3
    db = str(tmp_path / 'old.db')
    client = make(db=db, sweep_interval=0)
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    assert post_open_sentry(client, key, [ai_item()]).status_int == 202
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany('INSERT INTO ai_generations(project_id, timestamp, provider, model, input_tokens,'
                         ' output_tokens, cost_usd, latency_ms, status, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                         [(project_id, time.time(), 'openai', 'gpt', 999999999999999999, 999999999999999999,
                           1e308, 1.0, 'ok', '{}')] * 10)
    conn.close()
    for days in (1, 7, 365):
        answer = client.get('/api/v1/ai', params={'key': key, 'days': days}, expect_errors=True)
        assert answer.status_int == 200, answer.body[:300]
        totals = answer.json['totals']
        assert totals['count'] == 11 and totals['inputTokens'] >= 9 * 10 ** 18
        assert totals['costUsd'] is None  # past any float: not a number JSON can carry


# -- 12. check-ins for unknown monitors, impossible schedules ----------------------------

def checkin_envelope(slug, status='ok', **fields):
    payload = dict({'check_in_id': uuid.uuid4().hex, 'monitor_slug': slug, 'status': status}, **fields)
    return envelope(({'type': 'check_in'}, payload))


def test_a_check_in_for_an_unknown_slug_without_config_makes_a_visible_monitor(client):
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    assert send_envelope(client, key, project_id, checkin_envelope('Nightly Export')).status_int == 200
    assert send_envelope(client, key, project_id, checkin_envelope('Nightly Export', 'error')).status_int == 200
    monitors = read(client, key, '/api/v1/monitors')['monitors']
    assert [(m['slug'], m['name'], m['schedule'], m['nextExpected']) for m in monitors] == [
        ('nightly-export', 'Nightly Export', None, None)]
    assert monitors[0]['status'] == 'failed' and monitors[0]['lastStatus'] == 'failed'
    detail = read(client, key, '/api/v1/monitors/nightly-export')
    assert [run['status'] for run in detail['history']] == ['failed', 'success']
    # a schedule given later makes it an ordinary monitor
    answer = client.put('/api/v1/monitors/nightly-export?key=' + key, json.dumps({'schedule': '0 3 * * *'}),
                        content_type='application/json')
    assert answer.json['monitor']['schedule'] == '0 3 * * *' and answer.json['monitor']['nextExpected']
    # and a check-in without config keeps that schedule
    assert send_envelope(client, key, project_id, checkin_envelope('nightly-export')).status_int == 200
    assert read(client, key, '/api/v1/monitors/nightly-export')['monitor']['schedule'] == '0 3 * * *'


@pytest.mark.parametrize('schedule', ['0 0 31 2 *', '0 0 30 2 *', '0 0 31 4,6,9,11 *', '0 0 31 feb *'])
def test_a_schedule_that_never_fires_is_refused(client, schedule):
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    answer = client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': 'never', 'schedule': schedule}),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 400 and 'schedule' in answer.json['error'], answer.body
    config = {'schedule': {'type': 'crontab', 'value': schedule}}
    answer = send_envelope(client, key, project_id, checkin_envelope('never', monitor_config=config))
    assert answer.status_int == 400, answer.body
    assert read(client, key, '/api/v1/monitors')['monitors'] == []


@pytest.mark.parametrize('schedule', ['0 0 29 2 *', '0 0 31 2 1', '0 0 31 * *', '*/5 * * * *'])
def test_schedules_that_fire_rarely_are_taken(client, schedule):
    key = create_project(client)['hash']
    answer = client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': 'rare', 'schedule': schedule}),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 201, answer.body
    assert answer.json['monitor']['nextExpected']


def test_listing_monitors_stored_with_impossible_schedules_does_bounded_work(make, tmp_path, monkeypatch):
    """Such schedules, stored before they were refused, made the next-run
    search walk five years of days per monitor: 1,000 of them took 1.5 s to
    list. Counted here as days stepped, not timed."""
    import sqlite3
    db = str(tmp_path / 'monitors.db')
    client = make(db=db, sweep_interval=0)
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany('INSERT INTO monitors(project_id, slug, name, schedule, created) VALUES (?, ?, ?, ?, ?)',
                         [(project_id, 'm%04d' % n, 'm', '0 0 31 2 *' if n % 2 else '0 0 30,31 2 *', time.time())
                          for n in range(1000)])
    conn.close()
    steps = [0]
    real_timedelta = errorcapture.timedelta

    def counting_timedelta(*args, **kwargs):
        steps[0] += 1
        return real_timedelta(*args, **kwargs)
    monkeypatch.setattr(errorcapture, 'timedelta', counting_timedelta)
    monitors = read(client, key, '/api/v1/monitors')['monitors']
    assert len(monitors) == 1000 and all(m['nextExpected'] is None for m in monitors)
    assert steps[0] <= 2 * 1000, steps[0]


# -- 11. every stored item counts; bounded rows per envelope -------------------------------

def log_envelope(count, items=1):
    entries = [{'timestamp': time.time(), 'level': 'info', 'body': 'line %d' % n} for n in range(count)]
    return envelope(*[({'type': 'log', 'item_count': count, 'content_type': 'application/vnd.sentry.items.log+json'},
                       {'items': entries})] * items)


@pytest.fixture
def frozen_minute(monkeypatch):
    start = (int(time.time()) // 60) * 60 + 1.0
    monkeypatch.setattr(errorcapture, 'now', lambda: start)


def test_sentry_log_entries_count_against_the_quota(make, frozen_minute):
    client = make(rate_limit=10, sweep_interval=0)
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    assert send_envelope(client, key, project_id, log_envelope(8)).status_int == 200
    answer = send_envelope(client, key, project_id, log_envelope(5))
    assert answer.status_int == 429, answer.body
    assert 'log_item' in answer.headers['X-Sentry-Rate-Limits']
    assert len(read(client, key, '/api/v1/logs', limit=1000)['logs']) == 8


def test_check_ins_count_against_the_quota(make, frozen_minute):
    client = make(rate_limit=3, sweep_interval=0)
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    for _ in range(3):
        assert send_envelope(client, key, project_id, checkin_envelope('job')).status_int == 200
    answer = send_envelope(client, key, project_id, checkin_envelope('job'))
    assert answer.status_int == 429 and 'monitor' in answer.headers['X-Sentry-Rate-Limits']
    client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': 'beat', 'schedule': '5m'}),
                content_type='application/json')
    answer = client.post('/ingest/v1/heartbeat', json.dumps({'slug': 'beat', 'status': 'success'}),
                         headers={'X-SeeStack-Key': key}, content_type='application/json', expect_errors=True)
    assert answer.status_int == 429
    assert len(read(client, key, '/api/v1/monitors/job')['history']) == 3


def test_one_small_gzip_envelope_cannot_store_more_than_a_thousand_rows(client):
    import gzip
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    body = gzip.compress(log_envelope(1000, items=3))
    assert len(body) < 64 << 10
    answer = send_envelope(client, key, project_id, body, **{'Content-Encoding': 'gzip'})
    assert answer.status_int == 413, answer.body[:300]
    answer = send_envelope(client, key, project_id, log_envelope(1001))
    assert answer.status_int == 413  # refused whole, not cut to a thousand
    assert read(client, key, '/api/v1/logs', limit=1000)['logs'] == []
    assert send_envelope(client, key, project_id, log_envelope(1000)).status_int == 200
    assert len(read(client, key, '/api/v1/logs', limit=1000)['logs']) == 1000


# -- 10. telemetry aged by arrival -----------------------------------------------------------

OLD = '2020-01-01T00:00:00.000Z'


def seestack(client, key, path, body):
    answer = client.post(path, json.dumps(body), headers={'X-SeeStack-Key': key},
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 202, answer.body[:300]


def test_telemetry_with_an_old_timestamp_is_kept_like_errors(make):
    client = make(retention_days=30, sweep_interval=0)
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    seestack(client, key, '/ingest/v1/logs', {'level': 'info', 'message': 'from 2020', 'timestamp': OLD})
    seestack(client, key, '/ingest/v1/http-requests', {'requests': [
        {'traceId': 't', 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/old', 'statusCode': 200,
         'durationMs': 3, 'timestamp': OLD}]})
    seestack(client, key, '/ingest/v1/replay', {'sessionId': 's-old', 'fingerprint': 'f', 'events': [
        {'eventType': 'click', 'eventData': '{}', 'timestampMillis': 1577836800000}]})
    assert post_open_sentry(client, key, [ai_item(timestamp=OLD),
                                          {'type': 'transaction', 'name': 'GET /old', 'traceId': 't',
                                           'durationMs': 5, 'timestamp': OLD}]).status_int == 202
    sentry_log = envelope(({'type': 'log'}, {'items': [{'timestamp': 1577836800, 'level': 'info', 'body': 'old'}]}))
    assert send_envelope(client, key, project_id, sentry_log).status_int == 200
    transaction = {'type': 'transaction', 'transaction': '/sentry-old', 'event_id': uuid.uuid4().hex,
                   'start_timestamp': 1577836800, 'timestamp': 1577836801,
                   'contexts': {'trace': {'trace_id': 'a' * 32, 'span_id': 'b' * 16}}}
    assert send_envelope(client, key, project_id, envelope(({'type': 'transaction'}, transaction))).status_int == 200

    def everything():
        return (len(read(client, key, '/api/v1/logs')['logs']), len(read(client, key, '/api/v1/http-requests')['requests']),
                len(read(client, key, '/api/v1/replays')['sessions']),
                len(read(client, key, '/api/v1/ai', days=1)['recent']),
                len(read(client, key, '/api/v1/transactions/list')['transactions']))
    assert everything() == (2, 1, 1, 1, 2)
    client.wsgi.sweeper.sweep()  # a retention pass: what was acknowledged today stays
    assert everything() == (2, 1, 1, 1, 2)
    # with the time the client gave
    assert read(client, key, '/api/v1/http-requests')['requests'][0]['timestamp'] == OLD
    assert {entry['timestamp'] for entry in read(client, key, '/api/v1/logs')['logs']} == {OLD}


def test_telemetry_goes_once_it_arrived_longer_ago_than_retention(make, monkeypatch):
    client = make(retention_days=30, sweep_interval=0)
    key = create_project(client)['hash']
    seestack(client, key, '/ingest/v1/logs', {'level': 'info', 'message': 'today'})
    real_now = errorcapture.now
    monkeypatch.setattr(errorcapture, 'now', lambda: real_now() + 29 * 86400)
    client.wsgi.sweeper.sweep()
    assert len(read(client, key, '/api/v1/logs')['logs']) == 1
    monkeypatch.setattr(errorcapture, 'now', lambda: real_now() + 31 * 86400)
    client.wsgi.sweeper.sweep()
    assert read(client, key, '/api/v1/logs')['logs'] == []


# -- reads whose size the client controls (docs/client-sized.md) --------------------------

def peak_bytes(call):
    tracemalloc.start()
    try:
        answer = call()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_page_of_large_events_is_read_one_event_at_a_time(client):
    """Events of 1 MiB that deflate to a few KiB when stored: listing 40 of
    them must not hold 40 MiB of parsed events to answer a few KiB of summaries."""
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    for number in range(40):
        event = {'event_id': uuid.uuid4().hex, 'message': 'big %d' % number,
                 'extra': {'k%d' % i: 'x' * 5000 for i in range(200)},
                 'contexts': {'trace': {'trace_id': 'b' * 32, 'span_id': 'c' * 16}}}
        answer = client.post('/api/%d/store/' % project_id, json.dumps(event), headers=sentry_auth(key),
                             content_type='application/json')
        assert answer.status_int == 200
    issue_id = read(client, key, '/api/v1/issues')['issues'][0]['id']
    for path, listed in (('/api/v1/events?limit=500', 'events'), ('/api/v1/issues/%d/events?limit=500' % issue_id,
                                                                   'events'),
                         ('/api/v1/traces/' + 'b' * 32, 'items'), ('/api.php?action=errors&limit=1000', 'errors')):
        answer, peak = peak_bytes(lambda: client.get(path + '&key=%s&hash=%s' % (key, key) if '?' in path
                                                     else path + '?key=' + key))
        assert answer.status_int == 200 and len(answer.json[listed]) == 40, path
        assert peak < 12 << 20, '%s: peak %d bytes' % (path, peak)


def test_a_trace_of_many_large_transactions_is_read_only_as_far_as_its_page(client):
    """A trace of 30 transactions of 1,000 spans each: a page of 10 items
    loads about 10 spans, not 30,000, and says it is truncated."""
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    trace_id = 'd' * 32
    for number in range(30):
        start = 1.7e9 + number
        transaction = {'type': 'transaction', 'event_id': uuid.uuid4().hex, 'transaction': 'GET /%d' % number,
                       'start_timestamp': start, 'timestamp': start + 0.5,
                       'contexts': {'trace': {'trace_id': trace_id, 'span_id': '%016x' % number, 'op': 'http'}},
                       'spans': [{'span_id': '%08x%08x' % (number, i), 'parent_span_id': '%016x' % number,
                                  'op': 'db', 'description': 'query %d' % i, 'start_timestamp': start + i / 1e4,
                                  'timestamp': start + i / 1e4 + 0.001} for i in range(1000)]}
        answer = send_envelope(client, key, project_id, envelope(({'type': 'transaction'}, transaction)))
        assert answer.status_int == 200, answer.body
    answer, peak = peak_bytes(lambda: client.get('/api/v1/traces/%s?limit=10&key=%s' % (trace_id, key)))
    body = answer.json
    assert body['truncated'] is True and len(body['items']) == 10
    assert [item['kind'] for item in body['items']] == ['transaction'] + ['span'] * 9
    assert body['items'][0]['name'] == 'GET /0' and body['items'][0]['op'] == 'http'
    assert [item['description'] for item in body['items'][1:]] == ['query %d' % i for i in range(9)]
    assert peak < 4 << 20, "peak %d bytes" % peak
    whole = read(client, key, '/api/v1/traces/' + trace_id, limit=5000)
    assert whole['truncated'] is True and whole['counts']['transaction'] == 30
    assert len(whole['items']) == 5000


def test_a_replay_session_answers_at_most_its_byte_budget_of_event_data(client, monkeypatch):
    """A session's events carry up to 256 KiB of data each, 5,000 of them a
    page: the answer stops at REPLAY_BYTES of event data (the rest is not
    loaded) and says so."""
    monkeypatch.setattr(errorcapture.Telemetry, 'REPLAY_BYTES', 1 << 20, raising=False)
    key = create_project(client)['hash']
    start = int(time.time() * 1000)
    for batch in range(3):
        events = [{'eventType': 'input', 'eventData': json.dumps({'value': 'x' * 200000, 'n': batch * 2 + i}),
                   'url': 'https://shop.example/', 'timestampMillis': start + batch * 2 + i} for i in range(2)]
        answer = client.post('/ingest/v1/replay', json.dumps({'fingerprint': 'fp', 'sessionId': 'big', 'events': events}),
                             headers={'X-SeeStack-Key': key}, content_type='application/json')
        assert answer.status_int == 202, answer.body
    session = read(client, key, '/api/v1/replays/big')
    assert [json.loads(e['eventData'])['n'] for e in session['events']] == [0, 1, 2, 3, 4]
    assert session['eventsTruncated'] is True
    small = read(client, key, '/api/v1/replays', limit=5)['sessions']
    assert small[0]['events'] == 6  # all of them are stored and counted
