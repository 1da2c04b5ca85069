"""User feedback from the Sentry SDKs (`feedback` items from captureFeedback and
the widget, the legacy `user_report` item) is stored, linked to the event and
issue it names (whichever arrives first), and listed per issue and project."""
import json
import time

import pytest

ERROR_ID = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1'


@pytest.fixture
def project(client):
    return client.get('/api.php?action=generate&name=feedback').json


def post(client, project, item_type, payload, status=200, event_id=None):
    header = {'sent_at': '2026-12-01T12:00:00.000Z', 'sdk': {'name': 'sentry.javascript.browser'}}
    if event_id:
        header['event_id'] = event_id
    body = '\n'.join([json.dumps(header), json.dumps({'type': item_type}), json.dumps(payload)])
    return client.post('/api/%d/envelope/?sentry_key=%s&sentry_version=7' % (project['id'], project['key']),
                       body.encode(), headers={'Content-Type': 'text/plain;charset=UTF-8'}, status=status)


def error(event_id=ERROR_ID, value="Cannot read properties of undefined (reading 'card')", function='chargeCard'):
    return {'event_id': event_id, 'platform': 'javascript', 'level': 'error', 'timestamp': time.time() - 5,
            'exception': {'values': [{'type': 'TypeError', 'value': value, 'stacktrace': {'frames': [
                {'filename': 'https://shop.example/app.js', 'function': function, 'lineno': 3, 'colno': 9}]}}]}}


def feedback(message='The pay button does nothing', feedback_id='bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1', about=ERROR_ID,
             **extra):
    context = {'message': message, 'name': 'Ada Lovelace', 'contact_email': 'ada@example.com',
               'url': 'https://shop.example/checkout', 'source': 'api', 'replay_id': 'c' * 32}
    if about:
        context['associated_event_id'] = about
    event = {'type': 'feedback', 'event_id': feedback_id, 'level': 'info', 'timestamp': time.time() - 1,
             'platform': 'javascript', 'environment': 'production', 'release': 'shop-web@2.0.0',
             'contexts': {'feedback': context, 'trace': {'trace_id': 'd' * 32, 'span_id': 'e' * 16}}}
    event.update(extra)
    return event


def listed(client, project, path='/api/v1/feedback', **params):
    params['key'] = project['key']
    return client.get(path, params).json


def issue_of(client, project):
    issues = client.get('/api/v1/issues', {'key': project['key']}).json['issues']
    assert len(issues) == 1
    return issues[0]['id']


def test_feedback_is_listed_with_the_event_and_issue_it_names(client, project):
    post(client, project, 'event', error())
    post(client, project, 'feedback', feedback())
    item = listed(client, project)['feedback'][0]
    assert item['message'] == 'The pay button does nothing' and item['kind'] == 'feedback'
    assert (item['name'], item['email'], item['source']) == ('Ada Lovelace', 'ada@example.com', 'api')
    assert item['eventId'] == 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1' and item['associatedEventId'] == ERROR_ID
    assert item['replayId'] == 'c' * 32 and item['traceId'] == 'd' * 32
    assert (item['environment'], item['release']) == ('production', 'shop-web@2.0.0')
    issue_id = issue_of(client, project)
    assert item['event']['issueId'] == issue_id
    on_issue = listed(client, project, '/api/v1/issues/%d/feedback' % issue_id)['feedback']
    assert [f['message'] for f in on_issue] == ['The pay button does nothing']
    event = client.get('/api/v1/events/%d' % item['event']['id'], {'key': project['key']}).json['event']
    assert [f['message'] for f in event['feedback']] == ['The pay button does nothing']


def test_feedback_before_its_error_is_linked_once_the_error_arrives(client, project):
    post(client, project, 'feedback', feedback())
    assert listed(client, project)['feedback'][0]['event'] is None
    post(client, project, 'event', error())
    issue_id = issue_of(client, project)
    assert listed(client, project)['feedback'][0]['event']['issueId'] == issue_id
    assert len(listed(client, project, '/api/v1/issues/%d/feedback' % issue_id)['feedback']) == 1


def test_feedback_of_another_issue_is_not_listed_on_this_one(client, project):
    post(client, project, 'event', error())
    post(client, project, 'event', error('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2', value='other bug', function='ship'))
    post(client, project, 'feedback', feedback('about the other', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2',
                                               about='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2'))
    post(client, project, 'feedback', feedback('general praise', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb3', about=None))
    issues = {i['value']: i['id'] for i in client.get('/api/v1/issues', {'key': project['key']}).json['issues']}
    first = listed(client, project, '/api/v1/issues/%d/feedback' % issues["Cannot read properties of undefined "
                                                                         "(reading 'card')"])['feedback']
    assert first == []
    assert [f['message'] for f in listed(client, project, '/api/v1/issues/%d/feedback' % issues['other bug'])[
        'feedback']] == ['about the other']
    assert sorted(f['message'] for f in listed(client, project)['feedback']) == ['about the other', 'general praise']


def test_legacy_user_report_is_feedback_too(client, project):
    post(client, project, 'event', error())
    post(client, project, 'user_report', {'event_id': ERROR_ID, 'name': 'Grace', 'email': 'grace@example.com',
                                          'comments': 'It broke when I paid'})
    item = listed(client, project)['feedback'][0]
    assert (item['kind'], item['message'], item['name']) == ('user_report', 'It broke when I paid', 'Grace')
    assert item['event']['issueId'] == issue_of(client, project)


def test_feedback_sent_twice_is_stored_once(client, project):
    for _ in range(2):
        post(client, project, 'feedback', feedback())
    assert len(listed(client, project)['feedback']) == 1


def test_feedback_pages_newest_first(client, project):
    for n in range(5):
        post(client, project, 'feedback', feedback('note %d' % n, '%032x' % (n + 1), timestamp=time.time() - 10 + n))
    first = listed(client, project, limit=3)
    assert [f['message'] for f in first['feedback']] == ['note 4', 'note 3', 'note 2']
    rest = listed(client, project, limit=3, cursor=first['nextCursor'])
    assert [f['message'] for f in rest['feedback']] == ['note 1', 'note 0'] and rest['nextCursor'] is None


@pytest.mark.parametrize('item_type, payload, field', [
    ('feedback', {'type': 'feedback', 'contexts': {}}, 'contexts.feedback'),
    ('feedback', {'type': 'feedback', 'contexts': {'feedback': {'message': '  '}}}, 'contexts.feedback.message'),
    ('feedback', {'contexts': {'feedback': {'message': 'x', 'associated_event_id': 'nope'}}}, 'event_id'),
    ('user_report', {'event_id': ERROR_ID, 'name': 'x'}, 'comments'),
    ('user_report', {'comments': 'no event'}, 'event_id'),
])
def test_bad_feedback_is_refused_by_name(client, project, item_type, payload, field):
    answer = post(client, project, item_type, payload, status=400)
    assert field in answer.json['detail']
    assert listed(client, project)['feedback'] == []


def test_feedback_of_another_project_is_not_visible(client, project):
    post(client, project, 'feedback', feedback())
    other = client.get('/api.php?action=generate&name=other').json
    assert listed(client, other)['feedback'] == []
    client.get('/api/v1/issues/999/feedback', {'key': project['key']}, status=404)


def dialog_url(project, event_id=ERROR_ID, **extra):
    import urllib.parse
    params = {'dsn': 'http://%s@localhost:80/%d' % (project['key'], project['id']), 'eventId': event_id}
    params.update(extra)
    return '/api/embed/error-page/?' + urllib.parse.urlencode(params)


def test_the_report_dialog_script_is_served_for_a_dsn(client, project):
    answer = client.get(dialog_url(project, name='</script><img src=x onerror=alert(1)>', title='Oops\u2028here'))
    assert answer.content_type == 'application/javascript'
    assert answer.headers['Access-Control-Allow-Origin'] == '*'
    script = answer.text
    assert 'sentry-report-comments' in script and '__sentry_reportdialog_closed__' in script
    options = json.loads(script[script.rindex('})(') + 3:script.rindex(');')])
    assert options['name'] == '</script><img src=x onerror=alert(1)>' and options['title'] == 'Oops\u2028here'
    assert '\u2028' not in script  # JSON as ASCII: a line separator cannot end a string early
    assert '/api/embed/error-page/?' in options['endpoint'] and ERROR_ID in options['endpoint']  # posts back here
    assert 'innerHTML' not in script  # the form is built with DOM calls from text


def test_what_the_report_dialog_sends_is_feedback_on_the_event(client, project):
    post(client, project, 'event', error())
    client.post(dialog_url(project), json.dumps({'name': 'Ada', 'email': 'ada@example.com',
                                                 'comments': 'Paying twice shows an error'}),
                headers={'Content-Type': 'text/plain;charset=UTF-8'})
    item = listed(client, project)['feedback'][0]
    assert (item['kind'], item['source'], item['message'], item['name']) == (
        'user_report', 'report_dialog', 'Paying twice shows an error', 'Ada')
    assert item['event']['issueId'] == issue_of(client, project)


@pytest.mark.parametrize('url, body, status, why', [
    (lambda p: '/api/embed/error-page/?eventId=' + ERROR_ID, None, 400, 'dsn'),
    (lambda p: dialog_url(p, event_id='nope'), None, 400, 'eventId'),
    (lambda p: dialog_url(dict(p, key='f' * 32)), None, 403, 'DSN'),
    (lambda p: dialog_url(p), {'comments': ' '}, 400, 'comments'),
])
def test_the_report_dialog_refuses_what_it_cannot_take(client, project, url, body, status, why):
    if body is None:
        answer = client.get(url(project), status=status)
    else:
        answer = client.post(url(project), json.dumps(body), status=status)
    assert why in answer.json['detail']
    assert listed(client, project)['feedback'] == []
