"""The read API for issues and events (docs/read-api.md): filters, sorting,
cursor paging, live polling with changedSince, issue and event detail,
status changes, project isolation and bad parameters."""
import json
import re

import pytest

import errorcapture
from helpers import create_project

ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
ISSUE_KEYS = {'id', 'title', 'culprit', 'type', 'value', 'level', 'status', 'regression', 'count', 'firstSeen',
              'lastSeen', 'lastRelease', 'environments', 'seq', 'histogram24h'}
SUMMARY_KEYS = {'id', 'eventId', 'timestamp', 'received', 'level', 'message', 'environment', 'release'}
FRAME_KEYS = {'filename', 'absPath', 'function', 'module', 'lineno', 'colno', 'inApp', 'contextLine',
              'preContext', 'postContext', 'vars'}


# -- helpers ---------------------------------------------------------------------

def get(client, path, key, expect=200, **params):
    params['key'] = key
    query = '&'.join('%s=%s' % (k, v) for k, v in params.items() if v is not None)
    answer = client.get('%s?%s' % (path, query), expect_errors=True)
    assert answer.status_int == expect, answer.body
    assert answer.content_type == 'application/json'
    return answer.json


def list_issues(client, key, **params):
    return get(client, '/api/v1/issues', key, **params)


def seestack(client, key, exception_class='TypeError', message='x is undefined', **fields):
    body = {'exceptionClass': exception_class, 'message': message}
    body.update(fields)
    answer = client.post('/ingest/v1/errors', json.dumps(body), headers={'X-SeeStack-Key': key},
                         content_type='application/json')
    assert answer.status_int == 202
    return answer.json['data']['id']


def change(client, key, issue_id, status, method='post', expect=200):
    answer = getattr(client, method)('/api/v1/issues/%d?key=%s' % (issue_id, key), json.dumps({'status': status}),
                                     content_type='application/json', expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def bulk(client, key, specs):
    """Insert events straight through the store: specs are (fingerprint, timestamp, extra) tuples."""
    store = client.wsgi.store
    project = store.project_by_key(key)
    events = [errorcapture.make_error_event('test', level='error', message='event for %s' % group,
                                            fingerprint=[group], timestamp=ts, **extra)
              for group, ts, extra in specs]
    store.events.add(project['id'], events)


def walk(client, key, **params):
    """Every page of an issue list; returns (issues, number of pages)."""
    seen, pages, cursor = [], 0, None
    while True:
        answer = list_issues(client, key, cursor=cursor, **params)
        seen += answer['issues']
        pages += 1
        cursor = answer['nextCursor']
        if cursor is None:
            return seen, pages
        assert isinstance(cursor, str)
        assert pages < 100


BASE = 1774958400.0  # 2026-03-31T12:00:00Z


# -- paging --------------------------------------------------------------------------

def test_cursor_paging_through_120_issues(client):
    key = create_project(client, 'read-api')['hash']
    # 40 distinct lastSeen values, three issues each: ties must not lose or repeat issues
    bulk(client, key, [('g%03d' % n, BASE + (n // 3) * 60, {}) for n in range(120)])
    first = list_issues(client, key)
    assert len(first['issues']) == 50  # default limit
    assert first['nextCursor'] is not None
    issues, pages = walk(client, key, limit=50)
    assert pages == 3
    ids = [i['id'] for i in issues]
    assert len(ids) == 120 and len(set(ids)) == 120
    assert [i['id'] for i in issues[:50]] == [i['id'] for i in first['issues']]
    last_seen = [i['lastSeen'] for i in issues]
    assert last_seen == sorted(last_seen, reverse=True)  # newest first


def test_cursor_paging_sorted_by_count(client):
    key = create_project(client, 'read-api')['hash']
    specs = []
    for n in range(120):
        specs += [('g%03d' % n, BASE + n, {})] * (n % 5 + 1)
    bulk(client, key, specs)
    issues, pages = walk(client, key, limit=50, sort='count')
    assert pages == 3
    assert len({i['id'] for i in issues}) == 120
    counts = [i['count'] for i in issues]
    assert counts == sorted(counts, reverse=True)
    assert sorted(counts) == sorted(n % 5 + 1 for n in range(120))


def test_cursor_paging_sorted_by_first_seen(client):
    key = create_project(client, 'read-api')['hash']
    bulk(client, key, [('g%03d' % n, BASE + (n % 7) * 3600.5, {}) for n in range(60)])
    issues, pages = walk(client, key, limit=25, sort='firstSeen')
    assert pages == 3 and len({i['id'] for i in issues}) == 60
    first_seen = [i['firstSeen'] for i in issues]
    assert first_seen == sorted(first_seen, reverse=True)


def test_limit_is_capped(client):
    key = create_project(client, 'read-api')['hash']
    bulk(client, key, [('g%03d' % n, BASE + n, {}) for n in range(520)])
    answer = client.get('/api/v1/issues?key=%s&limit=1000' % key, expect_errors=True)
    if answer.status_int == 200:
        assert len(answer.json['issues']) == 500
    else:
        assert answer.status_int == 400 and 'error' in answer.json
    assert len(list_issues(client, key, limit=500)['issues']) == 500


# -- sorting and filters ----------------------------------------------------------------------

def test_sort_by_last_seen_and_by_count(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'AError', 'a', timestamp='2026-03-31T10:00:00.000Z')
    for _ in range(3):
        seestack(client, key, 'BError', 'b', timestamp='2026-03-31T09:00:00.000Z')
    seestack(client, key, 'CError', 'c', timestamp='2026-03-31T11:00:00.000Z')
    seestack(client, key, 'CError', 'c', timestamp='2026-03-31T08:00:00.000Z')
    by_last_seen = [i['type'] for i in list_issues(client, key)['issues']]
    assert by_last_seen == ['CError', 'AError', 'BError']
    assert [i['type'] for i in list_issues(client, key, sort='lastSeen')['issues']] == by_last_seen
    assert [i['type'] for i in list_issues(client, key, sort='count')['issues']] == ['BError', 'CError', 'AError']
    assert [i['type'] for i in list_issues(client, key, sort='firstSeen')['issues']] == ['AError', 'BError', 'CError']


def test_status_filter(client):
    key = create_project(client, 'read-api')['hash']
    for name in ('AError', 'BError', 'CError'):
        seestack(client, key, name, name)
    ids = {i['type']: i['id'] for i in list_issues(client, key)['issues']}
    change(client, key, ids['AError'], 'resolved')
    change(client, key, ids['BError'], 'ignored')
    types = lambda **p: sorted(i['type'] for i in list_issues(client, key, **p)['issues'])
    assert types(status='resolved') == ['AError']
    assert types(status='ignored') == ['BError']
    assert types(status='unresolved') == ['CError']
    assert types(status='all') == ['AError', 'BError', 'CError']
    assert types() == ['AError', 'BError', 'CError']


def test_level_filter(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'FatalError', 'f', level='fatal')
    seestack(client, key, 'WarnError', 'w', level='warn')
    seestack(client, key, 'InfoError', 'i', level='info')
    seestack(client, key, 'PlainError', 'e')
    types = lambda level: [i['type'] for i in list_issues(client, key, level=level)['issues']]
    assert types('fatal') == ['FatalError']
    assert types('warning') == ['WarnError']
    assert types('info') == ['InfoError']
    assert types('error') == ['PlainError']
    assert types('debug') == []


def test_environment_filter(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'ProdError', 'p', environment='production')
    seestack(client, key, 'StageError', 's', environment='staging')
    seestack(client, key, 'BothError', 'b', environment='production')
    seestack(client, key, 'BothError', 'b', environment='staging')
    seestack(client, key, 'NoEnvError', 'n')
    types = lambda env: sorted(i['type'] for i in list_issues(client, key, environment=env)['issues'])
    assert types('production') == ['BothError', 'ProdError']
    assert types('staging') == ['BothError', 'StageError']
    assert types('prod') == []  # exact environment names, not substrings


def test_environment_filter_treats_wildcard_characters_literally(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'UnderscoreError', 'u', environment='prod_1')
    seestack(client, key, 'LookalikeError', 'l', environment='prodX1')
    seestack(client, key, 'PercentError', 'p', environment='100%')
    seestack(client, key, 'NumberError', 'n', environment='1000')
    types = lambda env: sorted(i['type'] for i in list_issues(client, key, environment=env)['issues'])
    assert types('prod_1') == ['UnderscoreError']
    assert types('100%25') == ['PercentError']
    assert types('pro%25') == []


def test_text_search_in_title_and_culprit(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'TypeError', "Cannot read properties of undefined (reading 'userId')",
             stackTrace=['at getUserId (/srv/app/auth.js:42:18)'])
    seestack(client, key, 'RangeError', 'Invalid array length', stackTrace=['at grow (/srv/app/buffer.js:7:1)'])
    seestack(client, key, 'ValueError', '100% sure')
    titles = lambda q: sorted(i['type'] for i in list_issues(client, key, q=q)['issues'])
    assert titles('userId') == ['TypeError']
    assert titles('array length') == ['RangeError']
    assert titles('buffer.js') == ['RangeError']  # culprit
    assert titles('%25') == ['ValueError']  # a literal %, not a wildcard
    assert titles('_') == []
    assert titles('nothing-like-this') == []


def test_filters_combine(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'AError', 'checkout failed', environment='production', level='fatal')
    seestack(client, key, 'BError', 'checkout failed', environment='staging', level='fatal')
    seestack(client, key, 'CError', 'checkout failed', environment='production', level='warn')
    answer = list_issues(client, key, environment='production', level='fatal', q='checkout')
    assert [i['type'] for i in answer['issues']] == ['AError']


# -- live polling -----------------------------------------------------------------------------------

def test_changed_since_returns_only_issues_changed_after_a_seq(client):
    key = create_project(client, 'read-api')['hash']
    for name in ('AError', 'BError', 'CError'):
        seestack(client, key, name, name)
    snapshot = list_issues(client, key)
    seq = snapshot['seq']
    assert isinstance(seq, int)
    ids = {i['type']: i['id'] for i in snapshot['issues']}
    assert all(i['seq'] <= seq for i in snapshot['issues'])
    assert list_issues(client, key, changedSince=seq)['issues'] == []

    seestack(client, key, 'AError', 'AError')      # a new event on an existing issue
    change(client, key, ids['BError'], 'resolved')  # a status change
    seestack(client, key, 'DError', 'DError')       # a new issue
    changed = list_issues(client, key, changedSince=seq)
    assert sorted(i['type'] for i in changed['issues']) == ['AError', 'BError', 'DError']
    assert changed['seq'] > seq
    assert list_issues(client, key, changedSince=changed['seq'])['issues'] == []
    updated = {i['type']: i for i in changed['issues']}
    assert updated['AError']['count'] == 2 and updated['BError']['status'] == 'resolved'


def test_changed_since_pages_with_a_cursor(client):
    key = create_project(client, 'read-api')['hash']
    seq = list_issues(client, key)['seq']
    bulk(client, key, [('g%02d' % n, BASE, {}) for n in range(30)])
    issues, pages = walk(client, key, changedSince=seq, limit=10)
    assert pages == 3 and len({i['id'] for i in issues}) == 30


def test_seq_is_per_server_and_other_projects_do_not_leak(client):
    key_a, key_b = create_project(client, 'a')['hash'], create_project(client, 'b')['hash']
    seestack(client, key_a, 'AError', 'a')
    seq = list_issues(client, key_a)['seq']
    seestack(client, key_b, 'BError', 'b')
    assert list_issues(client, key_a, changedSince=seq)['issues'] == []


# -- issue detail, events and status ------------------------------------------------------------------

def test_issue_list_and_detail_shape(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'TypeError', 'x is undefined', release='1.0', environment='production')
    seestack(client, key, 'TypeError', 'x is undefined', release='1.1', environment='production')
    (listed,) = list_issues(client, key)['issues']
    assert ISSUE_KEYS <= set(listed)
    issue = get(client, '/api/v1/issues/%d' % listed['id'], key)['issue']
    assert ISSUE_KEYS <= set(issue)
    assert issue['id'] == listed['id'] and issue['count'] == 2
    assert sorted(issue['releases']) == ['1.0', '1.1'] and issue['lastRelease'] == '1.1'
    assert issue['environments'] == ['production']
    assert ISO_MS_Z.match(issue['firstSeen']) and ISO_MS_Z.match(issue['lastSeen'])
    histogram = issue['histogram24h']
    assert len(histogram) == 24 and all(isinstance(n, int) for n in histogram)
    # received just now: counted in the last bucket (the one before it only if an hour just turned)
    assert sum(histogram) == 2 and sum(histogram[-2:]) == 2


def test_issue_events_are_paged_newest_first(client):
    key = create_project(client, 'read-api')['hash']
    sent = [seestack(client, key, 'TypeError', 'same', release='r%d' % n) for n in range(7)]
    (issue,) = list_issues(client, key)['issues']
    seen, cursor, pages = [], None, 0
    while True:
        answer = get(client, '/api/v1/issues/%d/events' % issue['id'], key, limit=3, cursor=cursor)
        assert len(answer['events']) <= 3
        seen += answer['events']
        pages += 1
        cursor = answer['nextCursor']
        if cursor is None:
            break
    assert pages == 3
    assert [e['eventId'] for e in seen] == list(reversed(sent))
    ids = [e['id'] for e in seen]
    assert ids == sorted(ids, reverse=True)
    for summary in seen:
        assert SUMMARY_KEYS <= set(summary)
        assert ISO_MS_Z.match(summary['timestamp']) and ISO_MS_Z.match(summary['received'])
    assert [e['release'] for e in seen] == ['r%d' % n for n in reversed(range(7))]


def test_one_event_in_full(client):
    key = create_project(client, 'read-api')['hash']
    sent = seestack(client, key, 'TypeError', "Cannot read properties of undefined (reading 'userId')",
                    stackTrace=['at getUserId (/srv/app/auth.js:42:18)',
                                'at Layer.handle (/srv/app/node_modules/express/lib/layer.js:95:5)'],
                    environment='production', release='v2.1.0', user={'id': 'usr_1234'},
                    timestamp='2026-03-31T12:00:00.000Z')
    (issue,) = list_issues(client, key)['issues']
    (summary,) = get(client, '/api/v1/issues/%d/events' % issue['id'], key)['events']
    event = get(client, '/api/v1/events/%d' % summary['id'], key)['event']
    assert event['id'] == summary['id'] and event['eventId'] == sent
    assert event['issueId'] == issue['id']
    assert event['kind'] == 'error'
    assert event['level'] == 'error'
    assert event['timestamp'] == '2026-03-31T12:00:00.000Z'
    assert ISO_MS_Z.match(event['received'])
    assert (event['environment'], event['release'], event['user']) == ('production', 'v2.1.0', {'id': 'usr_1234'})
    (raised,) = event['exception']
    assert (raised['type'], raised['value']) == ('TypeError', "Cannot read properties of undefined (reading 'userId')")
    frames = raised['frames']
    for f in frames:
        assert set(f) <= FRAME_KEYS
    assert [(f.get('function'), f['filename'], f['lineno'], f['inApp']) for f in frames] == [
        ('Layer.handle', 'layer.js', 95, False),
        ('getUserId', 'auth.js', 42, True),
    ]
    assert frames[-1]['absPath'] == '/srv/app/auth.js'


def test_latest_events_across_issues(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'AError', 'a')
    seestack(client, key, 'BError', 'b')
    seestack(client, key, 'AError', 'a')
    events = get(client, '/api/v1/events', key)['events']
    assert len(events) == 3
    assert [e['id'] for e in events] == sorted((e['id'] for e in events), reverse=True)
    issue_ids = {i['type']: i['id'] for i in list_issues(client, key)['issues']}
    assert [e['issueId'] for e in events] == [issue_ids['AError'], issue_ids['BError'], issue_ids['AError']]


@pytest.mark.parametrize('method', ['post', 'put', 'patch'])
def test_status_change(client, method):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    (issue,) = list_issues(client, key)['issues']
    for status in ('resolved', 'ignored', 'unresolved'):
        changed = change(client, key, issue['id'], status, method)['issue']
        assert changed['id'] == issue['id'] and changed['status'] == status
        assert get(client, '/api/v1/issues/%d' % issue['id'], key)['issue']['status'] == status


@pytest.mark.parametrize('body', [{'status': 'closed'}, {'status': None}, {}, {'status': ['resolved']}])
def test_bad_status_change_is_400(client, body):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    (issue,) = list_issues(client, key)['issues']
    answer = client.post('/api/v1/issues/%d?key=%s' % (issue['id'], key), json.dumps(body),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 400 and isinstance(answer.json['error'], str)
    assert get(client, '/api/v1/issues/%d' % issue['id'], key)['issue']['status'] == 'unresolved'


@pytest.mark.parametrize('raw', [b'resolved', b'{"status": ', b'["resolved"]'])
def test_status_change_with_bad_json_is_400(client, raw):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    (issue,) = list_issues(client, key)['issues']
    answer = client.post('/api/v1/issues/%d?key=%s' % (issue['id'], key), raw,
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 400 and isinstance(answer.json['error'], str)


# -- keys and isolation ---------------------------------------------------------------------------------

def test_key_in_header(client):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    answer = client.get('/api/v1/issues', headers={'X-ErrorCapture-Key': key})
    assert len(answer.json['issues']) == 1


@pytest.mark.parametrize('path', ['/api/v1/issues', '/api/v1/issues/1', '/api/v1/issues/1/events',
                                  '/api/v1/events', '/api/v1/events/1', '/api/v1/project'])
def test_no_key_is_401(client, path):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    for query in ('', '?key=', '?key=not-a-project'):
        answer = client.get(path + query, expect_errors=True)
        assert answer.status_int == 401, (path, query)
        assert isinstance(answer.json['error'], str)
    answer = client.post('/api/v1/issues/1', json.dumps({'status': 'resolved'}), content_type='application/json',
                         expect_errors=True)
    assert answer.status_int == 401


def test_a_key_cannot_read_another_projects_issue_or_event(client):
    key_a, key_b = create_project(client, 'a')['hash'], create_project(client, 'b')['hash']
    seestack(client, key_a, 'AError', 'a')
    seestack(client, key_b, 'BError', 'b')
    (issue_b,) = list_issues(client, key_b)['issues']
    (event_b,) = get(client, '/api/v1/events', key_b)['events']
    assert [i['type'] for i in list_issues(client, key_a)['issues']] == ['AError']
    assert [e['issueId'] for e in get(client, '/api/v1/events', key_a)['events']] != [issue_b['id']]
    for path in ('/api/v1/issues/%d' % issue_b['id'], '/api/v1/issues/%d/events' % issue_b['id'],
                 '/api/v1/events/%d' % event_b['id']):
        assert isinstance(get(client, path, key_a, expect=404)['error'], str)
    change(client, key_a, issue_b['id'], 'resolved', expect=404)
    assert get(client, '/api/v1/issues/%d' % issue_b['id'], key_b)['issue']['status'] == 'unresolved'


def test_unknown_ids_are_404(client):
    key = create_project(client, 'read-api')['hash']
    for path in ('/api/v1/issues/999', '/api/v1/issues/999/events', '/api/v1/events/999'):
        assert isinstance(get(client, path, key, expect=404)['error'], str)
    change(client, key, 999, 'resolved', expect=404)


# -- bad parameters ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('path,query', [
    ('/api/v1/issues', 'status=open'),
    ('/api/v1/issues', 'level=critical'),
    ('/api/v1/issues', 'sort=random'),
    ('/api/v1/issues', 'limit=abc'),
    ('/api/v1/issues', 'limit=0'),
    ('/api/v1/issues', 'limit=-5'),
    ('/api/v1/issues', 'cursor=garbage'),
    ('/api/v1/issues', 'cursor=12'),
    ('/api/v1/issues', 'changedSince=abc'),
    ('/api/v1/issues/1/events', 'cursor=abc'),
    ('/api/v1/issues/1/events', 'limit=zero'),
    ('/api/v1/events', 'cursor=x~y'),
    ('/api/v1/events', 'limit=1.5'),
])
def test_bad_parameters_are_400_json(client, path, query):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    answer = client.get('%s?key=%s&%s' % (path, key, query), expect_errors=True)
    assert answer.status_int == 400, answer.body
    assert answer.content_type == 'application/json'
    assert isinstance(answer.json['error'], str) and answer.json['error']


HUGE = '99999999999999999999999'  # beyond SQLite's 64-bit integers


@pytest.mark.parametrize('path,query', [
    ('/api/v1/issues', 'cursor=%s~1' % HUGE),
    ('/api/v1/issues', 'cursor=1.5~%s' % HUGE),
    ('/api/v1/issues', 'changedSince=%s' % HUGE),
    ('/api/v1/events', 'cursor=%s' % HUGE),
    ('/api/v1/issues/1/events', 'cursor=%s' % HUGE),
])
def test_out_of_range_numbers_are_400_not_500(client, path, query):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    answer = client.get('%s?key=%s&%s' % (path, key, query), expect_errors=True)
    assert answer.status_int == 400, answer.body
    assert isinstance(answer.json['error'], str)


@pytest.mark.parametrize('path', ['/api/v1/issues/%s' % HUGE, '/api/v1/issues/%s/events' % HUGE,
                                  '/api/v1/events/%s' % HUGE])
def test_out_of_range_ids_are_404_not_500(client, path):
    key = create_project(client, 'read-api')['hash']
    seestack(client, key)
    assert isinstance(get(client, path, key, expect=404)['error'], str)


@pytest.mark.parametrize('timestamp', ['0001-01-01T00:00:00+14:00', '9999-12-31T23:59:59-14:00'])
def test_an_event_at_the_edge_of_time_does_not_break_the_lists(client, timestamp):
    # Ingest may accept or refuse such a timestamp; either way the project's
    # issue and event lists must stay readable afterwards.
    key = create_project(client, 'read-api')['hash']
    seestack(client, key, 'GoodError', 'fine')
    answer = client.post('/ingest/v1/errors', json.dumps({'exceptionClass': 'EdgeError', 'message': 'when?',
                                                          'timestamp': timestamp}),
                         headers={'X-SeeStack-Key': key}, content_type='application/json', expect_errors=True)
    assert answer.status_int in (202, 422), answer.body
    stored = 2 if answer.status_int == 202 else 1
    assert len(list_issues(client, key)['issues']) == stored
    events = get(client, '/api/v1/events', key)['events']
    assert len(events) == stored
    for summary in events:
        assert ISO_MS_Z.match(get(client, '/api/v1/events/%d' % summary['id'], key)['event']['timestamp'])
