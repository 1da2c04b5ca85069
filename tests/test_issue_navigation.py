"""The issue page's API (docs/read-api.md): an issue's latest, oldest or any
event with Older / Newer / Oldest / Latest around it, its events filtered by
the search query's event terms, users affected, bulk status changes and the
project list with counts."""
import json
import urllib.parse

import errorcapture
from helpers import create_project, post_envelope

NOW = errorcapture.now()


def add(client, project, group, timestamp, **fields):
    event = errorcapture.make_error_event('test', message='%s at %d' % (group, timestamp), fingerprint=[group],
                                          timestamp=NOW + timestamp, **fields)
    return client.wsgi.store.events.add(project['id'], [event])[0]['id']


def get(client, path, project, expect=200, **params):
    params['key'] = project['hash']
    answer = client.get(path + '?' + urllib.parse.urlencode(params), expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def test_latest_oldest_and_any_event_with_navigation(client):
    project = create_project(client, 'nav')
    # arrival order is not time order: the third one sent is the oldest
    ids = [add(client, project, 'g', t) for t in (-50, -40, -90, -40, -10)]
    other = add(client, project, 'other', -5)
    issue = next(i for i in get(client, '/api/v1/issues', project)['issues'] if i['title'].startswith('g'))
    by_time = [ids[4], ids[3], ids[1], ids[0], ids[2]]  # newest first, id breaking the tie at -40
    latest = get(client, '/api/v1/issues/%d/events/latest' % issue['id'], project)
    assert latest['event']['id'] == ids[4]
    assert latest['navigation'] == {'older': ids[3], 'newer': None, 'oldest': ids[2], 'latest': ids[4]}
    oldest = get(client, '/api/v1/issues/%d/events/oldest' % issue['id'], project)
    assert oldest['event']['id'] == ids[2]
    assert oldest['navigation'] == {'older': None, 'newer': ids[0], 'oldest': ids[2], 'latest': ids[4]}
    # walking Older from the latest visits every event once, in time order
    walked, current = [], ids[4]
    while current:
        answer = get(client, '/api/v1/issues/%d/events/%d' % (issue['id'], current), project)
        walked.append(answer['event']['id'])
        current = answer['navigation']['older']
    assert walked == by_time
    assert latest['event']['message'] == 'g at -10' and latest['event']['timestamp'].endswith('Z')
    # an event of another issue, or an unknown one, is not this issue's
    get(client, '/api/v1/issues/%d/events/%d' % (issue['id'], other), project, expect=404)
    get(client, '/api/v1/issues/%d/events/999999' % issue['id'], project, expect=404)
    get(client, '/api/v1/issues/%d/events/first' % issue['id'], project, expect=404)


def test_events_and_navigation_follow_the_query(client):
    project = create_project(client, 'nav')
    ids = [add(client, project, 'g', -60 + n, release='1.%d' % (n % 2), tags={'region': 'eu' if n < 3 else 'us'})
           for n in range(6)]
    [issue] = get(client, '/api/v1/issues', project)['issues']
    listed = get(client, '/api/v1/issues/%d/events' % issue['id'], project, query='release:1.1')['events']
    assert [e['id'] for e in listed] == [ids[5], ids[3], ids[1]]
    listed = get(client, '/api/v1/issues/%d/events' % issue['id'], project, query='release:1.1 !region:us')['events']
    assert [e['id'] for e in listed] == [ids[1]]
    answer = get(client, '/api/v1/issues/%d/events/latest' % issue['id'], project, query='region:eu')
    assert answer['event']['id'] == ids[2]
    assert answer['navigation'] == {'older': ids[1], 'newer': None, 'oldest': ids[0], 'latest': ids[2]}
    get(client, '/api/v1/issues/%d/events/latest' % issue['id'], project, expect=404, query='release:9')
    assert get(client, '/api/v1/issues/%d/events' % issue['id'], project, query='release:9')['events'] == []
    assert 'unknown search key' in get(client, '/api/v1/issues/%d/events/latest' % issue['id'], project,
                                       expect=400, query='colour:red')['error']


def test_users_affected(client):
    project = create_project(client, 'nav')
    for n, user in enumerate([{'id': 1}, {'id': 1}, {'email': 'a@x.io'}, {'ip_address': '10.0.0.1'}, None]):
        add(client, project, 'g', -n, user=user)
    [issue] = get(client, '/api/v1/issues', project)['issues']
    assert issue['userCount'] == 3
    assert get(client, '/api/v1/issues/%d' % issue['id'], project)['issue']['userCount'] == 3


def test_bulk_resolve_and_ignore(client):
    project, other = create_project(client, 'bulk'), create_project(client, 'other')
    for group in 'abc':
        add(client, project, group, -1)
    add(client, other, 'z', -1)
    ids = {i['title'][0]: i['id'] for i in get(client, '/api/v1/issues', project)['issues']}
    [foreign] = [i['id'] for i in get(client, '/api/v1/issues', other)['issues']]

    def bulk(body, expect=200):
        answer = client.post('/api/v1/issues/bulk?key=' + project['hash'], json.dumps(body),
                             content_type='application/json', expect_errors=True)
        assert answer.status_int == expect, answer.body
        return answer.json
    answer = bulk({'ids': [ids['a'], ids['b'], foreign, ids['a']], 'status': 'resolved'})
    assert answer == {'updated': [ids['a'], ids['b']], 'missing': [foreign]}
    statuses = {i['title'][0]: i['status'] for i in get(client, '/api/v1/issues', project)['issues']}
    assert statuses == {'a': 'resolved', 'b': 'resolved', 'c': 'unresolved'}
    assert get(client, '/api/v1/issues', other)['issues'][0]['status'] == 'unresolved'
    bulk({'ids': [ids['c']], 'status': 'ignored'})
    assert [i['title'][0] for i in get(client, '/api/v1/issues', project, query='is:ignored')['issues']] == ['c']
    for body in ({'ids': [], 'status': 'resolved'}, {'ids': list(range(1, 1002)), 'status': 'resolved'},
                 {'ids': ['1'], 'status': 'resolved'}, {'ids': [1], 'status': 'gone'}, {'status': 'resolved'},
                 {'ids': [True], 'status': 'resolved'}):
        assert bulk(body, expect=400)['error']


def test_projects_list_with_counts(client):
    first, second = create_project(client, 'zeta'), create_project(client, 'alpha')
    add(client, first, 'a', -30)
    add(client, first, 'a', -20)
    add(client, first, 'b', -10)
    listed = client.get('/api/v1/projects').json['projects']
    assert [(p['name'], p['issues'], p['events']) for p in listed] == [('alpha', 0, 0), ('zeta', 2, 3)]
    assert listed[0]['lastSeen'] is None and listed[1]['lastSeen'].endswith('Z')
    assert listed[1]['key'] == first['hash'] and listed[1]['dsn']


def test_a_navigation_answer_carries_the_events_feedback_and_attachments(client):
    """The issue page shows the event the navigation route answers: it has the same fields as
    GET /api/v1/events/<id>, feedback and attachments included."""
    project = create_project(client, 'nav-extras')
    event_id = 'f' * 32
    error = json.dumps({'event_id': event_id, 'level': 'error', 'timestamp': NOW - 5,
                        'exception': {'values': [{'type': 'ValueError', 'value': 'bad card'}]}}).encode()
    log = b'charge refused\n' * 3
    post_envelope(client, project, b'\n'.join([
        json.dumps({'event_id': event_id}).encode(), json.dumps({'type': 'event', 'length': len(error)}).encode(),
        error, json.dumps({'type': 'attachment', 'length': len(log), 'filename': 'pay.log',
                           'content_type': 'text/plain'}).encode(), log]) + b'\n')
    feedback = json.dumps({'type': 'feedback', 'event_id': 'e' * 32, 'timestamp': NOW - 1, 'contexts': {'feedback': {
        'message': 'The pay button does nothing', 'name': 'Ada', 'associated_event_id': event_id}}}).encode()
    post_envelope(client, project, b'\n'.join([json.dumps({'event_id': 'e' * 32}).encode(),
                                               json.dumps({'type': 'feedback'}).encode(), feedback]) + b'\n')
    issue = get(client, '/api/v1/issues', project)['issues'][0]
    shown = get(client, '/api/v1/events/%d' % get(client, '/api/v1/issues/%d/events' % issue['id'], project)[
        'events'][0]['id'], project)['event']
    assert [f['message'] for f in shown['feedback']] == ['The pay button does nothing']
    assert [a['name'] for a in shown['attachments']] == ['pay.log']
    for which in ('latest', 'oldest', str(shown['id'])):
        navigated = get(client, '/api/v1/issues/%d/events/%s' % (issue['id'], which), project)['event']
        assert navigated == shown, which
