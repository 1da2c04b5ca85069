"""Read API edges a viewer or a script meets: live polling while writes land,
polling events by id, exact environment filters, requests without a status,
replay session ids with a slash."""
import json
import random
import string

import errorcapture
from helpers import create_project


def submit(client, key, message, **fields):
    body = dict({'hash': key, 'level': 'error', 'message': message, 'file': '/srv/%s.php' % message, 'line': 1},
                **fields)
    answer = client.post('/api.php', json.dumps(body), content_type='application/json')
    assert answer.json['ok'] is True
    return answer.json['id']


def test_an_issue_committed_while_the_list_is_read_comes_with_the_next_poll(client):
    """The seq a list answers with covers only what that list could see: an
    issue that lands between the query and the answer is in the next poll."""
    key = create_project(client, 'edges')['hash']
    submit(client, key, 'first')
    store = client.wsgi.store
    original = store.issues.list
    landed = []

    def list_then_land(*args, **kwargs):
        answer = original(*args, **kwargs)
        if not landed:  # a write commits right after the list query ran (another request's, really)
            event = errorcapture.make_error_event('errorcapture', message='second', file='/srv/second.php', line=1)
            landed.append(store.events.add(store.project_by_key(key)['id'], [event]))
        return answer
    store.issues.list = list_then_land
    try:
        first = client.get('/api/v1/issues?key=' + key).json
    finally:
        store.issues.list = original
    assert [i['title'] for i in first['issues']] == ['first']
    following = client.get('/api/v1/issues?key=%s&changedSince=%d' % (key, first['seq'])).json
    assert [i['title'] for i in following['issues']] == ['second']


def test_events_since_an_id_are_the_ones_after_it_oldest_first(client):
    key = create_project(client, 'edges')['hash']
    ids = [submit(client, key, 'm%d' % n) for n in range(5)]
    answer = client.get('/api/v1/events?key=%s&since=%d&limit=2' % (key, ids[1])).json
    assert [e['id'] for e in answer['events']] == ids[2:4]
    answer = client.get('/api/v1/events?key=%s&since=%d' % (key, ids[3])).json
    assert [e['id'] for e in answer['events']] == ids[4:]
    assert client.get('/api/v1/events?key=%s&since=%d' % (key, ids[4])).json['events'] == []
    newest_first = client.get('/api/v1/events?key=%s' % key).json['events']  # without since: as before
    assert [e['id'] for e in newest_first] == ids[::-1]


def test_the_environment_filter_matches_whole_names(client):
    key = create_project(client, 'edges')['hash']
    seeds = {'prod': 'prod', 'Prod': 'Prod', 'production': 'production', 'q"x': 'quoted', 'a%b': 'percent'}
    for environment, label in seeds.items():
        assert client.post('/ingest/v1/errors', json.dumps({
            'exceptionClass': 'E', 'message': label, 'environment': environment}),
            headers={'X-SeeStack-Key': key}, content_type='application/json').status_int == 202
    for environment, label in seeds.items():
        found = client.get('/api/v1/issues', params={'key': key, 'environment': environment}).json['issues']
        assert [i['value'] for i in found] == [label], environment
    for partial in ('x', 'pro', '%', '"'):
        assert client.get('/api/v1/issues', params={'key': key, 'environment': partial}).json['issues'] == []


def test_requests_without_a_status_count_as_status_0(client):
    key = create_project(client, 'edges')['hash']
    items = [{'traceId': 't%d' % n, 'direction': 'outbound', 'method': 'GET', 'host': 'api', 'path': '/x',
              'durationMs': 5, 'timestamp': '2026-11-23T10:00:00.000Z', **({'statusCode': 200} if n % 2 else {})}
             for n in range(6)]
    answer = client.post('/ingest/v1/http-requests', json.dumps({'requests': items}),
                         headers={'X-SeeStack-Key': key}, content_type='application/json')
    assert answer.status_int == 202, answer.body
    stats = client.get('/api/v1/http-requests/stats', params={'key': key, 'hours': 24 * 90}).json
    assert stats['statusCodes'] == {'0': 3, '200': 3}
    assert stats['statusClasses'] == {'0': 3, '2xx': 3}


def test_a_replay_session_id_with_a_slash_opens(client):
    key = create_project(client, 'edges')['hash']
    body = {'fingerprint': 'f', 'sessionId': 'tenant/42', 'events': [
        {'eventType': 'click', 'eventData': '{}', 'url': 'https://a/', 'timestampMillis': 1711886400000}]}
    answer = client.post('/ingest/v1/replay', json.dumps(body), headers={'X-SeeStack-Key': key},
                         content_type='application/json')
    assert answer.status_int == 202, answer.body
    (session,) = client.get('/api/v1/replays?key=' + key).json['sessions']
    assert session['sessionId'] == 'tenant/42'
    shown = client.get('/api/v1/replays/tenant/42?key=' + key).json
    assert shown['sessionId'] == 'tenant/42' and len(shown['events']) == 1


def test_pages_of_big_events_stop_at_a_byte_budget_and_the_rest_follow(client):
    """A page of 500 events of ~1 MiB that will not deflate would load
    hundreds of MB at once: a page stops at a budget of stored bytes, and its
    cursor (or the next since poll) brings the rest."""
    project = create_project(client, 'edges')
    key, trace = project['hash'], 'c' * 32
    noise = random.Random(7)
    for number in range(4):
        event = {'event_id': '%032x' % (number + 1), 'message': 'big %d' % number,
                 'timestamp': 1.7e9 + number, 'contexts': {'trace': {'trace_id': trace, 'span_id': 'd' * 16}},
                 'extra': {'noise': ''.join(noise.choice(string.ascii_letters) for _ in range(12000))}}
        answer = client.post('/api/%d/store/?sentry_key=%s' % (project['id'], key), json.dumps(event),
                             content_type='application/json')
        assert answer.status_int == 200
    store = client.wsgi.store
    sizes = [size for (size,) in store.query('SELECT LENGTH(data) FROM events')]
    store.events.PAGE_BYTES = 2 * max(sizes)  # two of these events fit, three do not
    pages, cursor = [], None
    while True:
        page = client.get('/api/v1/events?limit=500&key=' + key + ('&cursor=' + cursor if cursor else '')).json
        pages.append([event['message'] for event in page['events']])
        cursor = page['nextCursor']
        if cursor is None:
            break
    assert pages == [['big 3', 'big 2'], ['big 1', 'big 0']]
    polls, since = [], 0
    while True:
        rows = client.get('/api.php?action=errors&hash=%s&since=%d&limit=1000' % (key, since)).json['errors']
        if not rows:
            break
        polls.append(len(rows))
        since = rows[-1]['id']
    assert polls == [2, 2]
    trace_answer = client.get('/api/v1/traces/%s?key=%s' % (trace, key)).json
    assert [item['title'] for item in trace_answer['items']] == ['big 0', 'big 1']
    assert trace_answer['truncated'] is True
