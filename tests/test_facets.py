"""Tag facets (docs/read-api.md, "Tag facets"): per-issue distributions with
counts and shares, the full list of one key paged, the project's keys and
values for suggestions, and counts that equal the stored events through
ingest, retention, rollbacks and clear."""
import json
import sqlite3
import threading
import time
import urllib.parse

import pytest

import errorcapture
from test_writer import writer_held


def add(client, key, group, **fields):
    store = client.wsgi.store
    fields.setdefault('message', 'message of %s' % group)
    event = errorcapture.make_error_event('test', fingerprint=[group], **fields)
    return store.events.add(store.project_by_key(key)['id'], [event])[0]


def new_key(client, name='facets'):
    return client.get('/api.php?action=generate&name=' + name).json['hash']


def get(client, path, key, expect=200, **params):
    params['key'] = key
    answer = client.get(path + '?' + urllib.parse.urlencode(params), expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def test_issue_facets_show_each_key_with_its_top_values_and_shares(client):
    key = new_key(client)
    browsers = ['Safari'] * 6 + ['Chrome'] * 3 + ['Firefox']
    for n, browser in enumerate(browsers):
        add(client, key, 'g', release='2.0' if n < 7 else '1.9', environment='production',
            contexts={'browser': {'name': browser, 'version': '1'}}, user={'id': 'u%d' % (n % 4)},
            tags={'region': 'eu' if n % 2 else 'us', 'zone': 'a'} if n < 8 else None, server_name='web-1')
    [issue] = get(client, '/api/v1/issues', key)['issues']
    answer = get(client, '/api/v1/issues/%d/tags' % issue['id'], key)
    assert answer['issueCount'] == 10
    assert [t['key'] for t in answer['tags']] == ['release', 'environment', 'browser', 'server_name', 'user',
                                                  'region', 'zone']
    facets = {t['key']: t for t in answer['tags']}
    assert [(v['value'], v['count'], v['share']) for v in facets['browser']['topValues']] == [
        ('Safari 1', 6, 0.6), ('Chrome 1', 3, 0.3), ('Firefox 1', 1, 0.1)]
    assert (facets['browser']['totalEvents'], facets['browser']['uniqueValues']) == (10, 3)
    assert [(v['value'], v['count']) for v in facets['release']['topValues']] == [('2.0', 7), ('1.9', 3)]
    # a key only some events carry: shares leave room for "no value"
    assert facets['region']['totalEvents'] == 8
    assert sum(v['share'] for v in facets['region']['topValues']) == pytest.approx(0.8)
    assert facets['user']['uniqueValues'] == 4 and issue['userCount'] == 4
    value = facets['zone']['topValues'][0]
    assert value['firstSeen'] <= value['lastSeen'] and value['firstSeen'].endswith('Z')
    assert [len(t['topValues']) for t in get(client, '/api/v1/issues/%d/tags' % issue['id'], key,
                                             top=1)['tags']] == [1] * 7


def test_one_key_lists_every_value_paged(client):
    key = new_key(client)
    for n in range(130):
        add(client, key, 'g', user={'email': 'user%d@x.io' % (n % 120)})
    [issue] = get(client, '/api/v1/issues', key)['issues']
    seen, cursor, pages = [], None, 0
    while True:
        params = {'limit': 50}
        if cursor:
            params['cursor'] = cursor
        page = get(client, '/api/v1/issues/%d/tags/user' % issue['id'], key, **params)
        assert (page['totalEvents'], page['uniqueValues']) == (130, 120)
        seen.extend(page['values'])
        pages += 1
        cursor = page['nextCursor']
        if not cursor:
            break
    assert pages == 3 and len(seen) == 120 and len({v['value'] for v in seen}) == 120
    assert all(v['value'].startswith('email:user') for v in seen)
    counts = [v['count'] for v in seen]
    assert counts == sorted(counts, reverse=True) and counts[:10] == [2] * 10
    # a user field the user tag does not show is a tag of its own, readable by name
    add(client, key, 'g', user={'id': 7, 'email': 'seven@x.io'})
    assert [v['value'] for v in get(client, '/api/v1/issues/%d/tags/user.email' % issue['id'], key)['values']] == [
        'seven@x.io']
    get(client, '/api/v1/issues/%d/tags/nope' % issue['id'], key, expect=404)
    get(client, '/api/v1/issues/%d/tags/user' % issue['id'], key, expect=400, cursor='x')


def test_facets_are_per_project(client):
    key, other = new_key(client, 'a'), new_key(client, 'b')
    add(client, key, 'g', release='1')
    [issue] = get(client, '/api/v1/issues', key)['issues']
    get(client, '/api/v1/issues/%d/tags' % issue['id'], other, expect=404)
    get(client, '/api/v1/issues/%d/tags/release' % issue['id'], other, expect=404)
    assert get(client, '/api/v1/tags', other)['tags'] == []
    assert get(client, '/api/v1/tags/release', other)['values'] == []


def test_project_keys_and_values_for_suggestions(client):
    key = new_key(client)
    for n, release in enumerate(['shop@1.0', 'shop@1.1', 'shop@1.1', 'web@2', 'shop@1.10']):
        add(client, key, 'g%d' % (n % 2), release=release, tags={'region': 'eu'})
    answer = get(client, '/api/v1/tags', key)
    assert answer['tags'] == [{'key': 'release', 'uniqueValues': 4, 'events': 5},
                              {'key': 'region', 'uniqueValues': 1, 'events': 5}]
    assert {'is', 'release', 'user.email', 'has', 'firstSeen'} <= set(answer['searchKeys'])
    values = get(client, '/api/v1/tags/release', key)['values']
    assert values[0] == {'value': 'shop@1.1', 'count': 2, 'lastSeen': values[0]['lastSeen']}
    assert [v['value'] for v in get(client, '/api/v1/tags/release', key, prefix='shop@1.1')['values']] == [
        'shop@1.1', 'shop@1.10']
    assert get(client, '/api/v1/tags/release', key, prefix='%')['values'] == []
    assert get(client, '/api/v1/tags/nothing', key)['values'] == []


def test_a_sentry_event_gets_its_built_in_tags(client):
    key = new_key(client)
    project_id = client.wsgi.store.project_by_key(key)['id']
    event = {'event_id': 'a' * 32, 'level': 'error', 'release': 'web@3.1', 'environment': 'prod',
             'server_name': 'edge-7', 'user': {'id': 42, 'ip_address': '{{auto}}'}, 'tags': {'feature': 'cart'},
             'exception': {'values': [{'type': 'TypeError', 'value': 'x is undefined'}]},
             'request': {'url': 'https://shop.example/cart?id=3', 'headers': {
                 'User-Agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like'
                               ' Gecko) Version/17.1 Safari/605.1.15'}}}
    client.post('/api/%d/store/?sentry_key=%s&sentry_version=7' % (project_id, key), json.dumps(event),
                content_type='application/json')
    [issue] = get(client, '/api/v1/issues', key)['issues']
    facets = {t['key']: t['topValues'][0]['value'] for t in get(client, '/api/v1/issues/%d/tags' % issue['id'],
                                                                   key)['tags']}
    assert facets == {'release': 'web@3.1', 'environment': 'prod', 'browser': 'Safari 17.1', 'os': 'macOS',
                      'server_name': 'edge-7', 'url': 'https://shop.example/cart', 'user': 'id:42',
                      'feature': 'cart'}


# -- counts equal stored rows -------------------------------------------------------

def recount(path):
    """What every tag count must be, recomputed from the events table, beside what is stored."""
    db = sqlite3.connect(path)
    key_of = dict(db.execute('SELECT id, key_id FROM tag_values'))
    per_issue, per_value, rows = {}, {}, set()
    for row_id, issue_id, received, tag_ids in db.execute('SELECT id, issue_id, received, tag_ids FROM events'):
        for value_id in map(int, filter(None, (tag_ids or '').split(','))):
            per_issue[(issue_id, key_of[value_id], value_id)] = per_issue.get(
                (issue_id, key_of[value_id], value_id), 0) + 1
            per_value[value_id] = per_value.get(value_id, 0) + 1
            rows.add((issue_id, value_id, int(received // 3600), row_id))
    issue_keys = {}  # an issue's distinct values per key (its events per key are its issue_tags summed)
    for issue_id, key_id, _ in per_issue:
        issue_keys[issue_id, key_id] = issue_keys.get((issue_id, key_id), 0) + 1
    per_key = {}
    for value_id, count in per_value.items():
        entry = per_key.setdefault(key_of[value_id], [0, 0])
        entry[0] += count
        entry[1] += 1
    expected = {
        'issue_tags': per_issue,
        'issue_keys': issue_keys,
        'tag_values': per_value,
        'tag_keys': {k: tuple(v) for k, v in per_key.items()},
        'event_tags': rows}
    stored = {
        'issue_tags': {(i, k, v): n for i, k, v, n in db.execute(
            'SELECT issue_id, key_id, value_id, events FROM issue_tags')},
        'issue_keys': {(i, k): d for i, k, d in db.execute('SELECT issue_id, key_id, distinct_values FROM issue_keys')},
        'tag_values': {v: n for v, n in db.execute('SELECT id, events FROM tag_values WHERE events != 0')},
        'tag_keys': {k: (n, d) for k, n, d in db.execute(
            'SELECT id, events, distinct_values FROM tag_keys WHERE events != 0 OR distinct_values != 0')},
        'event_tags': set(db.execute('SELECT issue_id, value_id, hour, event_id FROM event_tag_rows'))}
    db.close()
    return expected, stored


def test_counts_equal_stored_events_through_retention_rollback_and_clear(make):
    client = make(sweep_interval=0)
    key = new_key(client)
    store = client.wsgi.store
    project_id = store.project_by_key(key)['id']
    for n in range(60):
        add(client, key, 'g%d' % (n % 3), release='r%d' % (n % 4), user={'id': 'u%d' % (n % 7)},
            tags={'shard': str(n % 5)} if n % 2 else None)
    expected, stored = recount(store.path)
    assert expected == stored and len(stored['event_tags']) > 100

    # retention: the oldest go, with their counts; issue g0 empties entirely below
    while store.retention.prune_events(project_id, 25, 0):
        pass
    expected, stored = recount(store.path)
    assert expected == stored

    # a batch where one job fails is rolled back and rerun job by job: the
    # ids interned in the rolled-back transaction must not be reused
    def boom(conn):
        raise ValueError('a bad job')
    events = [errorcapture.make_error_event('test', message='m', fingerprint=['new'], release='fresh-%d' % n,
                                            tags={'brand-new-key': 'v'}) for n in range(3)]
    results = {}

    def submit(name, fn, *args):
        try:
            results[name] = store.write(fn, *args)
        except Exception as exc:
            results[name] = exc
    with writer_held(store):
        adding = threading.Thread(target=submit, args=('add', store.events.tx_add, project_id, events))
        adding.start()
        while store.writer.queued() < 1:
            time.sleep(0.01)
        failing = threading.Thread(target=submit, args=('boom', boom))
        failing.start()
        while store.writer.queued() < 2:
            time.sleep(0.01)
    adding.join()
    failing.join()
    assert isinstance(results['boom'], ValueError) and len(results['add']) == 3
    expected, stored = recount(store.path)
    assert expected == stored
    [issue] = [i for i in get(client, '/api/v1/issues', key)['issues'] if i['title'] == 'm']
    facets = {t['key']: t for t in get(client, '/api/v1/issues/%d/tags' % issue['id'], key)['tags']}
    assert facets['brand-new-key']['totalEvents'] == 3 and facets['release']['uniqueValues'] == 3

    # clear takes every tag of the project
    client.get('/api.php?action=clear&hash=' + key)
    expected, stored = recount(store.path)
    assert expected == stored == {'issue_tags': {}, 'issue_keys': {}, 'tag_values': {}, 'tag_keys': {},
                                  'event_tags': set()}
    assert get(client, '/api/v1/tags', key)['tags'] == []
    add(client, key, 'again', release='r1')
    assert get(client, '/api/v1/tags', key)['tags'] == [{'key': 'release', 'uniqueValues': 1, 'events': 1}]
    expected, stored = recount(store.path)
    assert expected == stored


def old_database(path, events):
    """A database as ErrorCapture left it before tags (schema version 4): a project, its issues and
    events stored as JSON text without tag rows. events: [(fingerprint, model event)]."""
    db = sqlite3.connect(path)
    for script in errorcapture.MIGRATIONS[:4]:
        db.executescript(script)
    db.execute("INSERT INTO projects(key, name, created) VALUES ('0123456789abcdef0123456789abcdef', 'old', 0)")
    issues = {}
    for fingerprint, event in events:
        if fingerprint not in issues:
            issues[fingerprint] = db.execute(
                "INSERT INTO issues(project_id, fingerprint, title, level, first_seen, last_seen, releases)"
                " VALUES (1, ?, ?, 'error', ?, ?, ?)", (fingerprint, fingerprint, event['received'],
                                                        event['received'], json.dumps([event.get('release')]))
            ).lastrowid
        db.execute('UPDATE issues SET count=count+1, last_seen=? WHERE id=?', (event['received'], issues[fingerprint]))
        db.execute('INSERT INTO events(project_id, issue_id, event_id, received, data) VALUES (1, ?, ?, ?, ?)',
                   (issues[fingerprint], event.get('eventId'), event['received'],
                    json.dumps(errorcapture.stored_form(event))))
    db.execute('PRAGMA user_version=4')
    db.commit()
    db.close()


def test_events_stored_before_tags_are_counted_by_the_sweepers_backfill(make, tmp_path, monkeypatch):
    path = str(tmp_path / 'old.db')
    received = time.time() - 3600
    browsers = ['Safari'] * 5 + ['Chrome'] * 3
    old_database(path, [('checkout', errorcapture.make_error_event(
        'sentry', message='card declined', release='shop@1.%d' % (n % 2), environment='production',
        contexts={'browser': {'name': browser, 'version': '17'}}, user={'id': 'u%d' % (n % 3)},
        tags={'region': 'eu'}, received=received + n, event_id='%032x' % n)) for n, browser in enumerate(browsers)]
        + [('bare', errorcapture.make_error_event('errorcapture', message='no tags at all', received=received))])
    monkeypatch.setattr(errorcapture.Tags, 'BACKFILL_BATCH', 3)  # several steps, to see each one resume
    client = make(db=path, sweep_interval=0)
    key = '0123456789abcdef0123456789abcdef'
    checkout = next(i for i in get(client, '/api/v1/issues', key)['issues'] if i['title'] == 'checkout')
    assert checkout['count'] == 8
    # as the upgrade leaves them: no facets, tag search misses them
    assert get(client, '/api/v1/issues/%d/tags' % checkout['id'], key)['tags'] == []
    assert get(client, '/api/v1/issues', key, query='browser:"Safari 17"')['issues'] == []
    # an event stored after the upgrade is counted by the writer, and not again by the backfill
    newer = add(client, key, 'after the upgrade', release='shop@1.0', contexts={
        'browser': {'name': 'Safari', 'version': '17'}}, user={'id': 'u0'}, tags={'region': 'eu'})

    # one step, then a restart: the position is in the database, and the backfill goes on from there
    assert client.wsgi.store.tags.backfill() == 3
    assert sqlite3.connect(path).execute("SELECT value FROM counters WHERE name='tag_backfill_at'").fetchone() == (3,)
    client.wsgi.close()
    client = make(db=path, sweep_interval=0)
    client.wsgi.sweeper.sweep()
    assert client.wsgi.store.tags.backfill() is None
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM counters WHERE name LIKE 'tag_backfill%'"
                                         ).fetchone() == (0,)

    facets = {t['key']: t for t in get(client, '/api/v1/issues/%d/tags' % checkout['id'], key)['tags']}
    assert [(v['value'], v['count']) for v in facets['browser']['topValues']] == [('Safari 17', 5), ('Chrome 17', 3)]
    assert facets['region']['totalEvents'] == 8 and facets['user']['uniqueValues'] == 3
    assert sorted((v['value'], v['count']) for v in facets['release']['topValues']) == [('shop@1.0', 4), ('shop@1.1', 4)]
    assert get(client, '/api/v1/tags/browser', key)['values'][0]['count'] == 6  # old and new, each once
    found = get(client, '/api/v1/issues', key, query='browser:"Safari 17"')['issues']
    assert sorted((i['id'], i['count']) for i in found) == [(checkout['id'], 5), (newer['issueId'], 1)]
    assert get(client, '/api/v1/issues/%d' % checkout['id'], key)['issue']['userCount'] == 3
    assert {r['version']: r['events'] for r in get(client, '/api/v1/releases', key)['releases']} == {
        'shop@1.0': 5, 'shop@1.1': 4}
    assert get(client, '/api/v1/issues', key, query='"card declined" region:eu')['issues'][0]['count'] == 8
    expected, stored = recount(path)
    assert expected == stored


def test_a_new_database_has_no_backfill_to_do(make, tmp_path):
    client = make(sweep_interval=0)
    assert client.wsgi.store.tags.backfill() is None
    assert client.wsgi.store.query("SELECT COUNT(*) FROM counters WHERE name LIKE 'tag_backfill%'") == [(0,)]
