"""Retention: a per-project cap on error events and a maximum age, applied by
the sweeper in short transactions; issue counts stay equal to the events that
remain and issues left without events disappear; telemetry past the maximum
age goes too. Ageing uses only public functions: timestamps where a dialect
takes them, and app.store.write(...) for the received column."""
import json
import time

import errorcapture
from helpers import create_project

DAY = 86400


# -- helpers ---------------------------------------------------------------------

def submit(client, key, message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message}),
                         content_type='application/json')
    assert answer.json['ok'] is True
    return answer.json['id']


def all_events(client, key):
    events, cursor = [], None
    while True:
        url = '/api/v1/events?limit=500&key=' + key + ('&cursor=' + cursor if cursor else '')
        page = client.get(url).json
        events += page['events']
        cursor = page['nextCursor']
        if not cursor:
            return events


def all_issues(client, key):
    return client.get('/api/v1/issues?limit=500&key=' + key).json['issues']


def assert_counts_match(client, key):
    """Every issue's count equals its remaining events; no issue is empty."""
    events = all_events(client, key)
    per_issue = {}
    for event in events:
        per_issue[event['issueId']] = per_issue.get(event['issueId'], 0) + 1
    issues = {issue['id']: issue['count'] for issue in all_issues(client, key)}
    assert issues == per_issue
    for issue_id, count in per_issue.items():  # the detail and the issue's own event list agree
        assert client.get('/api/v1/issues/%d?key=%s' % (issue_id, key)).json['issue']['count'] == count
        listed = client.get('/api/v1/issues/%d/events?limit=500&key=%s' % (issue_id, key)).json['events']
        assert len(listed) == count
    return events


def set_project(client, key, **settings):
    answer = client.put('/api/v1/project?key=' + key, json.dumps(settings), content_type='application/json')
    return answer.json['project']['settings']


def age_events(app, project_key, ids, days):
    project_id = app.store.project_by_key(project_key)['id']
    marks = ','.join(str(int(i)) for i in ids)
    app.store.write(lambda conn: conn.execute(
        'UPDATE events SET received=received-? WHERE project_id=? AND id IN (%s)' % marks, (days * DAY, project_id)))


# -- the event cap -------------------------------------------------------------------

def test_event_cap_keeps_the_newest_and_fixes_issue_counts(make):
    client = make(retention_events=10, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    ids = []
    # issue "alpha" only in the oldest events; "beta" and "gamma" throughout
    for index in range(6):
        ids.append(submit(client, key, 'alpha failure'))
    for index in range(20):
        ids.append(submit(client, key, 'beta failure' if index % 2 else 'gamma failure'))
    assert len(all_issues(client, key)) == 3
    client.wsgi.sweeper.sweep()
    events = assert_counts_match(client, key)
    assert sorted(e['id'] for e in events) == sorted(ids)[-10:]
    titles = {issue['title'] for issue in all_issues(client, key)}
    assert titles == {'beta failure', 'gamma failure'}  # alpha lost every event: gone
    assert client.get('/api/v1/issues?key=%s&q=alpha' % key).json['issues'] == []
    # a second sweep has nothing more to do
    client.wsgi.sweeper.sweep()
    assert len(all_events(client, key)) == 10


def test_pruning_shows_in_live_views_and_sparklines(make):
    """A viewer polling changedSince sees the lower counts, and an issue's 24 h
    histogram adds up to its count, as before pruning."""
    client = make(retention_events=4, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    for index in range(6):
        submit(client, key, 'beta failure' if index % 2 else 'gamma failure')
    before = {issue['title']: issue for issue in all_issues(client, key)}
    assert {t: (i['count'], sum(i['histogram24h'])) for t, i in before.items()} == {
        'beta failure': (3, 3), 'gamma failure': (3, 3)}
    seen = max(issue['seq'] for issue in before.values())
    client.wsgi.sweeper.sweep()
    changed = client.get('/api/v1/issues?key=%s&changedSince=%d' % (key, seen)).json['issues']
    assert {i['title']: i['count'] for i in changed} == {'beta failure': 2, 'gamma failure': 2}
    for issue in all_issues(client, key):
        assert sum(issue['histogram24h']) == issue['count'] == 2
    assert_counts_match(client, key)


def test_an_emptied_issue_returns_as_new_when_it_happens_again(make):
    client = make(retention_events=3, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    submit(client, key, 'old problem')
    for _ in range(3):
        submit(client, key, 'newer problem')
    client.wsgi.sweeper.sweep()
    assert [i['title'] for i in all_issues(client, key)] == ['newer problem']
    submit(client, key, 'old problem')
    client.wsgi.sweeper.sweep()
    assert_counts_match(client, key)
    issue = [i for i in all_issues(client, key) if i['title'] == 'old problem'][0]
    assert issue['count'] == 1


def test_per_project_retention_events_setting(make):
    client = make(sweep_interval=0)  # the default cap is large
    capped, free = create_project(client, 'capped')['hash'], create_project(client, 'free')['hash']
    assert set_project(client, capped, retentionEvents=4)['retentionEvents'] == 4
    for index in range(9):
        submit(client, capped, 'capped %s' % 'abc'[index % 3])
        submit(client, free, 'free %s' % 'abc'[index % 3])
    client.wsgi.sweeper.sweep()
    assert len(assert_counts_match(client, capped)) == 4
    assert len(assert_counts_match(client, free)) == 9


def test_pruning_runs_in_short_transactions(make):
    """With a batch of 7, pruning 40 events takes several writes, none of
    which deletes more than 7, and the counts are right at the end."""
    client = make(retention_events=5, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    for index in range(45):
        submit(client, key, 'message %s' % 'xyz'[index % 3])
    store = client.wsgi.store
    store.retention.PRUNE_BATCH = 7
    deleted, original = [], store.retention.prune_events

    def counting(*args, **kwargs):
        result = original(*args, **kwargs)
        deleted.append(result)
        return result
    store.retention.prune_events = counting
    client.wsgi.sweeper.sweep()
    assert sum(deleted) == 40
    assert max(deleted) <= 7 and len([d for d in deleted if d]) >= 6
    assert len(assert_counts_match(client, key)) == 5


def test_zero_means_keep_everything(make):
    client = make(retention_events=0, retention_days=0, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    ids = [submit(client, key, 'keep %d' % (i % 2)) for i in range(12)]
    age_events(client.wsgi, key, ids[:6], 5000)
    client.wsgi.sweeper.sweep()
    assert len(assert_counts_match(client, key)) == 12


# -- maximum age ---------------------------------------------------------------------

def test_events_older_than_retention_days_are_pruned(make):
    client = make(retention_days=30, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    old = [submit(client, key, 'stale %s' % 'ab'[i % 2]) for i in range(6)]
    new = [submit(client, key, 'stale a') for _ in range(2)] + [submit(client, key, 'fresh')]
    age_events(client.wsgi, key, old, 100)
    client.wsgi.sweeper.sweep()
    events = assert_counts_match(client, key)
    assert sorted(e['id'] for e in events) == sorted(new)
    assert {i['title']: i['count'] for i in all_issues(client, key)} == {'stale a': 2, 'fresh': 1}


def test_an_old_event_behind_a_newer_one_is_still_pruned(make):
    """Received times are not always in id order (a clock stepped back, a slow
    request): every event past the maximum age goes, not just a prefix."""
    client = make(retention_days=30, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    ids = [submit(client, key, 'order %d' % (i % 2)) for i in range(6)]
    age_events(client.wsgi, key, ids[1:], 100)  # the first event stays recent
    client.wsgi.sweeper.sweep()
    events = assert_counts_match(client, key)
    assert [e['id'] for e in events] == ids[:1]


def test_per_project_retention_days_setting(make):
    client = make(retention_days=0, sweep_interval=0)  # keep forever by default
    short, forever = create_project(client, 'short')['hash'], create_project(client, 'forever')['hash']
    assert set_project(client, short, retentionDays=7)['retentionDays'] == 7
    short_ids = [submit(client, short, 'short %d' % (i % 2)) for i in range(4)]
    forever_ids = [submit(client, forever, 'forever %d' % (i % 2)) for i in range(4)]
    age_events(client.wsgi, short, short_ids[:3], 10)
    age_events(client.wsgi, forever, forever_ids[:3], 1000)
    client.wsgi.sweeper.sweep()
    assert [e['id'] for e in assert_counts_match(client, short)] == short_ids[3:]
    assert len(assert_counts_match(client, forever)) == 4


def test_the_background_sweeper_applies_retention_on_its_own(make):
    client = make(retention_events=3, sweep_interval=0.2)
    key = create_project(client, 'retention')['hash']
    for index in range(12):
        submit(client, key, 'background %d' % (index % 4))
    deadline = time.monotonic() + 15
    while len(all_events(client, key)) > 3:
        assert time.monotonic() < deadline, 'the sweeper did not prune within 15 s'
        time.sleep(0.1)
    assert_counts_match(client, key)


# -- telemetry -----------------------------------------------------------------------

def iso_days_ago(days):
    return time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime(time.time() - days * DAY))


def test_telemetry_older_than_the_maximum_age_is_pruned(make, monkeypatch):
    """Telemetry is aged by arrival, as errors are: an item whose own time is
    100 days old stays (it was acknowledged today), and everything goes once
    it arrived longer ago than the maximum age."""
    client = make(retention_days=30, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    headers = {'X-SeeStack-Key': key}

    def seestack(path, body):
        answer = client.post('/ingest/v1/' + path, json.dumps(body), headers=headers, content_type='application/json')
        assert answer.status_int == 202, answer.body

    def open_sentry(items):
        answer = client.post('/v1/ingest', json.dumps(items), headers={'X-Open-Sentry-Key': key},
                             content_type='application/json')
        assert answer.status_int == 202, answer.body

    for days, label in ((100, 'old'), (0, 'new')):
        seestack('http-requests', {'requests': [
            {'traceId': label, 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/' + label,
             'statusCode': 200, 'durationMs': 3, 'timestamp': iso_days_ago(days)}]})
        seestack('logs', {'logs': [{'level': 'info', 'message': label + ' log', 'timestamp': iso_days_ago(days)}]})
        seestack('replay', {'fingerprint': label, 'sessionId': 'session-' + label, 'events': [
            {'eventType': 'click', 'eventData': '{}', 'url': 'http://x/',
             'timestampMillis': int((time.time() - days * DAY) * 1000)}]})
        open_sentry([{'type': 'transaction', 'name': 'GET /' + label, 'traceId': label, 'durationMs': 5,
                      'timestamp': iso_days_ago(days)},
                     {'type': 'ai_generation', 'provider': 'p', 'model': 'model-' + label, 'inputTokens': 1,
                      'timestamp': iso_days_ago(days)}])

    def snapshot():
        return {
            'http': sorted(r['path'] for r in client.get('/api/v1/http-requests?key=' + key).json['requests']),
            'logs': sorted(e['message'] for e in client.get('/api/v1/logs?key=' + key).json['logs']),
            'replays': sorted(s['sessionId'] for s in client.get('/api/v1/replays?key=' + key).json['sessions']),
            'transactions': sorted(t['name'] for t in
                                   client.get('/api/v1/transactions/list?key=' + key).json['transactions']),
            'ai': sorted(r['model'] for r in client.get('/api/v1/ai?days=365&key=' + key).json['recent']),
        }
    before = snapshot()
    assert before == {'http': ['/new', '/old'], 'logs': ['new log', 'old log'],
                      'replays': ['session-new', 'session-old'], 'transactions': ['GET /new', 'GET /old'],
                      'ai': ['model-new', 'model-old']}
    client.wsgi.sweeper.sweep()
    assert snapshot() == before
    later = time.time() + 31 * DAY
    monkeypatch.setattr(errorcapture, 'now', lambda: later)
    client.wsgi.sweeper.sweep()
    assert snapshot() == {'http': [], 'logs': [], 'replays': [], 'transactions': [], 'ai': []}
    assert client.get('/api/v1/replays/session-old?key=' + key, expect_errors=True).status_int == 404


def test_old_cron_check_ins_are_pruned_but_the_monitor_stays(make):
    client = make(retention_days=30, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    answer = client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': 'nightly', 'schedule': '1d'}),
                         content_type='application/json')
    assert answer.status_int == 201
    for status in ('success', 'failed', 'success'):
        client.post('/ingest/v1/heartbeat', json.dumps({'slug': 'nightly', 'status': status}),
                    headers={'X-SeeStack-Key': key}, content_type='application/json')
    client.wsgi.store.write(lambda conn: conn.execute(
        'UPDATE checkins SET timestamp=timestamp-100*86400 WHERE id IN (SELECT id FROM checkins ORDER BY id LIMIT 2)'))
    client.wsgi.sweeper.sweep()
    shown = client.get('/api/v1/monitors/nightly?key=' + key).json
    assert shown['monitor']['slug'] == 'nightly'
    assert [h['status'] for h in shown['history']] == ['success']


def test_pruning_thousands_of_events_keeps_counts_exact(make):
    """Several prune batches (the default of 1000) across interleaved issues."""
    client = make(retention_events=500, sweep_interval=0)
    key = create_project(client, 'retention')['hash']
    project_id = client.wsgi.store.project_by_key(key)['id']
    import errorcapture
    events = [errorcapture.make_error_event('test', level='error', message='bulk %d' % (i % 7))
              for i in range(3000)]
    for start in range(0, len(events), 500):
        client.wsgi.store.events.add(project_id, events[start:start + 500])
    client.wsgi.sweeper.sweep()
    remaining = assert_counts_match(client, key)
    assert len(remaining) == 500
