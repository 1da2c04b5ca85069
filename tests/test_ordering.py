"""Lists that say newest first are ordered by each item's own timestamp, id
breaking ties, and page stably (docs/read-api.md); with since=<id> they bring
what was stored after that id, in arrival order, for live pages."""
import json
import sqlite3
import urllib.parse

import errorcapture
from helpers import create_project

NOW = errorcapture.now()


def iso(offset):
    return errorcapture.iso(NOW + offset)


def pages(client, path, key, cursor_name='cursor', limit=2, **params):
    """Every item of a paged list, page by page."""
    items, cursor = [], None
    for _ in range(50):
        query = dict(params, key=key, limit=limit)
        if cursor:
            query[cursor_name] = cursor
        answer = client.get(path + '?' + urllib.parse.urlencode(query)).json
        items.append(answer)
        cursor = answer['nextCursor']
        if not cursor:
            return items
    raise AssertionError('paging did not end')


# arrival order -> own time: the third sent is the oldest, two share a time
OFFSETS = [-60, -30, -3600, -30, -10]
NEWEST_FIRST = [4, 3, 1, 0, 2]  # by (time desc, id desc): -10, -30 (later id), -30, -60, -3600


def test_error_events_newest_first_by_their_own_timestamp(client):
    project = create_project(client, 'order')
    store = client.wsgi.store
    events = [errorcapture.make_error_event('test', message='n%d' % n, fingerprint=['g'], timestamp=NOW + offset)
              for n, offset in enumerate(OFFSETS)]
    for event in events:  # one at a time: ids in arrival order
        store.events.add(project['id'], [event])
    [issue] = client.get('/api/v1/issues?key=' + project['hash']).json['issues']
    for path in ('/api/v1/issues/%d/events' % issue['id'], '/api/v1/events'):
        listed = [e['message'] for page in pages(client, path, project['hash']) for e in page['events']]
        assert listed == ['n%d' % n for n in NEWEST_FIRST]
    answer = client.get('/api/v1/issues/%d/events?key=%s' % (issue['id'], project['hash'])).json
    ids = sorted(e['id'] for e in answer['events'])
    assert answer['newestId'] == ids[-1]
    # live: what was stored after an id, in arrival order
    since = client.get('/api/v1/issues/%d/events?key=%s&since=%d' % (issue['id'], project['hash'], ids[1])).json
    assert [e['message'] for e in since['events']] == ['n2', 'n3', 'n4'] and since['nextCursor'] is None


def test_http_requests_newest_first_by_their_own_timestamp(client):
    project = create_project(client, 'order')
    headers = {'X-SeeStack-Key': project['hash']}
    for n, offset in enumerate(OFFSETS):
        client.post('/ingest/v1/http-requests', json.dumps({'requests': [{
            'traceId': 't%d' % n, 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/p%d' % n,
            'statusCode': 200, 'durationMs': 3, 'timestamp': iso(offset)}]}), headers=headers,
            content_type='application/json')
    got = pages(client, '/api/v1/http-requests', project['hash'])
    assert [r['path'] for page in got for r in page['requests']] == ['/p%d' % n for n in NEWEST_FIRST]
    first = got[0]['requests']
    assert got[0]['newestId'] == max(r['id'] for page in got for r in page['requests'])
    since = client.get('/api/v1/http-requests?key=%s&since=%d' % (project['hash'], min(r['id'] for r in first))).json
    assert [r['path'] for r in since['requests']] == ['/p4'] and since['nextCursor'] is None  # stored after /p3


def test_logs_newest_first_by_their_own_timestamp_and_tail_in_arrival_order(client):
    project = create_project(client, 'order')
    for n, offset in enumerate(OFFSETS):
        client.post('/ingest/v1/logs', json.dumps({'level': 'info', 'message': 'log %d' % n,
                                                   'timestamp': iso(offset)}),
                    headers={'X-SeeStack-Key': project['hash']}, content_type='application/json')
    got = pages(client, '/api/v1/logs', project['hash'], cursor_name='before')
    assert [e['message'] for page in got for e in page['logs']] == ['log %d' % n for n in NEWEST_FIRST]
    tail = client.get('/api/v1/logs?key=%s&since=0' % project['hash']).json
    assert [e['message'] for e in tail['logs']] == ['log %d' % n for n in range(5)]
    assert tail['nextCursor'] is None and tail['cursor'] == max(e['id'] for e in tail['logs'])


def test_transactions_and_ai_newest_first_by_their_own_timestamp(client):
    project = create_project(client, 'order')
    items = []
    for n, offset in enumerate(OFFSETS):
        items.append({'type': 'transaction', 'name': 'GET /x', 'traceId': 't%d' % n, 'durationMs': 5 + n,
                      'timestamp': iso(offset)})
        items.append({'type': 'ai_generation', 'provider': 'p', 'model': 'm%d' % n, 'inputTokens': 3,
                      'timestamp': iso(offset)})
    for item in items:
        answer = client.post('/v1/ingest', json.dumps(item), headers={'X-Open-Sentry-Key': project['hash']},
                             content_type='application/json', expect_errors=True)
        assert answer.status_int < 300, answer.body
    for params in ({}, {'name': 'GET /x'}):
        got = pages(client, '/api/v1/transactions/list', project['hash'], **params)
        assert [t['traceId'] for page in got for t in page['transactions']] == ['t%d' % n for n in NEWEST_FIRST]
    recent = client.get('/api/v1/ai?key=' + project['hash']).json['recent']
    assert [r['model'] for r in recent] == ['m%d' % n for n in NEWEST_FIRST]


def test_paging_is_stable_while_events_arrive(client):
    project = create_project(client, 'order')
    store = client.wsgi.store
    for n in range(6):
        store.events.add(project['id'], [errorcapture.make_error_event('test', message='old %d' % n,
                                                                       timestamp=NOW - 100 + n)])
    first = client.get('/api/v1/events?limit=3&key=' + project['hash']).json
    store.events.add(project['id'], [errorcapture.make_error_event('test', message='new', timestamp=NOW)])
    store.events.add(project['id'], [errorcapture.make_error_event('test', message='late', timestamp=NOW - 99.5)])
    second = client.get('/api/v1/events?limit=10&key=%s&cursor=%s' % (project['hash'], first['nextCursor'])).json
    assert [e['message'] for e in first['events']] == ['old 5', 'old 4', 'old 3']
    # nothing shown twice or skipped; an older event that arrives late takes its place by time
    assert [e['message'] for e in second['events']] == ['old 2', 'old 1', 'late', 'old 0']


def test_the_migration_gives_old_events_their_own_timestamp(tmp_path):
    path = str(tmp_path / 'old.db')
    conn = sqlite3.connect(path)
    for script in errorcapture.MIGRATIONS[:5]:
        conn.executescript(script)
    conn.execute("INSERT INTO projects(key, name, created) VALUES ('k', 'p', 0)")
    conn.execute('INSERT INTO events(project_id, issue_id, received, data) VALUES (1, NULL, 2000, ?)',
                 (json.dumps({'message': 'sent earlier', 'timestamp': 1000.5}),))
    conn.execute('INSERT INTO events(project_id, issue_id, received, data) VALUES (1, NULL, 3000, ?)',
                 (json.dumps({'message': 'on time'}),))
    conn.execute('PRAGMA user_version=5')
    conn.commit()
    conn.close()
    store = errorcapture.Store(path)
    try:
        assert store.query('SELECT timestamp FROM events ORDER BY id') == [(1000.5,), (3000.0,)]
        assert [e['message'] for e in store.events.latest(1)[0]] == ['on time', 'sent earlier']
    finally:
        store.close()
