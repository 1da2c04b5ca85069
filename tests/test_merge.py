"""Merging issues (docs/read-api.md, "Bulk changes and merging"): the issue
first seen keeps its id and takes the others' events, counts, histogram and
tags; later events of any of the fingerprints land on it."""
import json

import errorcapture
from helpers import create_project
from test_facets import recount

NOW = errorcapture.now()


def add(client, project, group, offset=0, **fields):
    event = errorcapture.make_error_event('test', message='%s error' % group, fingerprint=[group],
                                          timestamp=NOW + offset, **fields)
    return client.wsgi.store.events.add(project['id'], [event])[0]


def issues(client, project):
    return {i['title']: i for i in client.get('/api/v1/issues?key=' + project['hash']).json['issues']}


def merge(client, project, ids, expect=200):
    answer = client.post('/api/v1/issues/merge?key=' + project['hash'], json.dumps({'ids': ids}),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def test_merged_issues_become_one_and_stay_one(client):
    project = create_project(client, 'merge')
    add(client, project, 'a', -300, release='1.0', user={'id': 'u1'})
    for n in range(3):
        add(client, project, 'b', -200 + n, release='1.1', user={'id': 'u%d' % n}, tags={'region': 'eu'})
    add(client, project, 'c', -100)
    found = issues(client, project)
    a, b, c = found['a error'], found['b error'], found['c error']
    answer = merge(client, project, [b['id'], a['id']])
    assert answer['merged'] == [b['id']]
    merged = answer['issue']
    assert merged['id'] == a['id']  # the one first seen
    assert (merged['count'], merged['userCount'], sum(merged['histogram24h'])) == (4, 3, 4)
    assert merged['firstSeen'] == a['firstSeen'] and merged['lastSeen'] == b['lastSeen']
    assert set(merged['releases']) == {'1.0', '1.1'}
    assert client.get('/api/v1/issues/%d?key=%s' % (b['id'], project['hash']), expect_errors=True).status_int == 404
    assert sorted(issues(client, project)) == ['a error', 'c error']
    events = client.get('/api/v1/issues/%d/events?key=%s' % (a['id'], project['hash'])).json['events']
    assert len(events) == 4 and {e['issueId'] for e in events} == {a['id']}
    facets = {t['key']: t for t in client.get('/api/v1/issues/%d/tags?key=%s' % (a['id'], project['hash'])).json[
        'tags']}
    assert [(v['value'], v['count']) for v in facets['release']['topValues']] == [('1.1', 3), ('1.0', 1)]
    assert facets['region']['totalEvents'] == 3
    # scoped counts and search follow the events
    [hit] = client.get('/api/v1/issues?key=%s&query=region:eu' % project['hash']).json['issues']
    assert (hit['id'], hit['count']) == (a['id'], 3)
    # later events of either fingerprint land on the merged issue
    add(client, project, 'b', 0)
    add(client, project, 'a', 0)
    assert issues(client, project)['a error']['count'] == 6
    expected, stored = recount(client.wsgi.store.path)
    assert expected == stored
    # merging again, with the third, chains: b's fingerprint still lands on the result
    merge(client, project, [c['id'], a['id']])
    add(client, project, 'b', 1)
    assert list(issues(client, project)) == ['a error'] and issues(client, project)['a error']['count'] == 8


def test_merge_refuses_what_it_cannot_do(client):
    project, other = create_project(client, 'merge'), create_project(client, 'other')
    add(client, project, 'a')
    add(client, other, 'z')
    [mine] = issues(client, project).values()
    [theirs] = issues(client, other).values()
    merge(client, project, [mine['id'], theirs['id']], expect=404)
    for ids in ([mine['id']], [mine['id'], mine['id']], 'x', [mine['id'], 'y'], list(range(1, 102))):
        assert merge(client, project, ids, expect=400)['error']
    assert issues(client, other)['z error']['count'] == 1
