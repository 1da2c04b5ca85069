"""Releases (docs/read-api.md, "Releases"): the list and a release's page,
"resolve in the next release", the release an issue regressed in, and
firstRelease: in the search."""
import json
import urllib.parse

import errorcapture
from helpers import create_project

NOW = errorcapture.now()


def add(client, project, group, release=None, environment='production', offset=0):
    event = errorcapture.make_error_event('test', message='%s error' % group, fingerprint=[group], release=release,
                                          environment=environment, received=NOW + offset, timestamp=NOW + offset)
    return client.wsgi.store.events.add(project['id'], [event])[0]


def get(client, path, project, expect=200, **params):
    params['key'] = project['hash']
    answer = client.get(path + '?' + urllib.parse.urlencode(params), expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def issue_of(client, project, group):
    return next(i for i in get(client, '/api/v1/issues', project)['issues'] if i['title'] == group + ' error')


def change(client, project, issue_id, expect=200, **body):
    answer = client.post('/api/v1/issues/%d?key=%s' % (issue_id, project['hash']), json.dumps(body),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer.json


def test_releases_list_and_page(client):
    project = create_project(client, 'rel')
    add(client, project, 'old', 'shop@1.0', offset=-300)
    add(client, project, 'old', 'shop@1.0', 'staging', offset=-200)
    add(client, project, 'new', 'shop@1.1', offset=-100)
    add(client, project, 'old', 'shop@1.1', offset=-50)
    add(client, project, 'plain', None, offset=-10)
    releases = get(client, '/api/v1/releases', project)['releases']
    assert [(r['version'], r['events'], r['newIssues'], r['environments']) for r in releases] == [
        ('shop@1.1', 2, 1, ['production']), ('shop@1.0', 2, 1, ['production', 'staging'])]
    assert releases[0]['firstSeen'] < releases[0]['lastSeen'] and releases[1]['lastSeen'].endswith('Z')
    page = get(client, '/api/v1/releases/shop@1.1', project)
    assert page['release']['issues'] == 2 and page['release']['version'] == 'shop@1.1'
    assert [i['title'] for i in page['newIssues']] == ['new error'] and page['regressedIssues'] == []
    get(client, '/api/v1/releases/shop@9', project, expect=404)
    first = get(client, '/api/v1/releases', project, limit=1)
    second = get(client, '/api/v1/releases', project, limit=1, cursor=first['nextCursor'])
    assert [r['version'] for r in first['releases'] + second['releases']] == ['shop@1.1', 'shop@1.0']
    assert second['nextCursor'] is None
    titles = lambda query: sorted(i['title'] for i in get(client, '/api/v1/issues', project, query=query)['issues'])
    assert titles('firstRelease:shop@1.0') == ['old error']
    assert titles('!firstRelease:shop@1.0') == ['new error', 'plain error']
    assert issue_of(client, project, 'old')['firstRelease'] == 'shop@1.0'


def test_a_plain_resolve_reopens_on_any_event_and_names_the_release(client):
    project = create_project(client, 'rel')
    add(client, project, 'bug', '1.0')
    issue = issue_of(client, project, 'bug')
    assert change(client, project, issue['id'], status='resolved')['issue']['statusDetails'] == {}
    add(client, project, 'bug', '1.0')
    issue = issue_of(client, project, 'bug')
    assert (issue['status'], issue['regression'], issue['regressedIn']) == ('unresolved', True, '1.0')
    page = get(client, '/api/v1/releases/1.0', project)
    assert [i['title'] for i in page['regressedIssues']] == ['bug error']


def test_resolve_in_the_next_release(client):
    project = create_project(client, 'rel')
    add(client, project, 'bug', '1.0', offset=-100)
    add(client, project, 'other', '1.1', offset=-50)  # 1.1 is the newest release when the bug is resolved
    issue = issue_of(client, project, 'bug')
    answer = change(client, project, issue['id'], status='resolved', inNextRelease=True)['issue']
    assert answer['status'] == 'resolved'
    assert answer['statusDetails'] == {'inNextRelease': True, 'afterRelease': '1.1'}
    # events from that release, older ones, or none, do not reopen it (but count)
    for release in ('1.1', '1.0', None):
        add(client, project, 'bug', release)
    issue = issue_of(client, project, 'bug')
    assert (issue['status'], issue['count']) == ('resolved', 4)
    # the first event of a newer release does
    add(client, project, 'bug', '1.2')
    issue = issue_of(client, project, 'bug')
    assert (issue['status'], issue['regression'], issue['regressedIn'], issue['statusDetails']) == (
        'unresolved', True, '1.2', {})
    change(client, project, issue['id'], expect=400, status='ignored', inNextRelease=True)
    change(client, project, issue['id'], expect=400, status='resolved', inNextRelease='yes')


def test_resolve_in_the_next_release_in_bulk_and_without_any_release_yet(client):
    project = create_project(client, 'rel')
    add(client, project, 'bug')
    issue = issue_of(client, project, 'bug')
    answer = client.post('/api/v1/issues/bulk?key=' + project['hash'], json.dumps({
        'ids': [issue['id']], 'status': 'resolved', 'inNextRelease': True}), content_type='application/json').json
    assert answer['updated'] == [issue['id']]
    assert issue_of(client, project, 'bug')['statusDetails'] == {'inNextRelease': True, 'afterRelease': None}
    add(client, project, 'bug')  # no release: stays resolved
    assert issue_of(client, project, 'bug')['status'] == 'resolved'
    add(client, project, 'bug', '2.0')  # the first release there is: reopens
    assert issue_of(client, project, 'bug')['regressedIn'] == '2.0'
