"""The event model: grouping errors into issues (fingerprints, message
normalization, client fingerprints), issue fields and status life cycle,
level mapping and stack-trace parsing. Unit-level on errorcapture's
functions, and end to end through the ingest APIs and the read API."""
import json
import re

import pytest

import errorcapture
from helpers import create_project

ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')


# -- helpers -------------------------------------------------------------------

def seestack(client, key, exception_class='TypeError', message='x is undefined', stack=None, **fields):
    body = {'exceptionClass': exception_class, 'message': message}
    if stack is not None:
        body['stackTrace'] = stack
    body.update(fields)
    answer = client.post('/ingest/v1/errors', json.dumps(body), headers={'X-SeeStack-Key': key},
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 202, answer.body
    return answer


def api_php(client, key, message, file=None, line=None, level='Notice'):
    body = {'hash': key, 'level': level, 'message': message}
    if file is not None:
        body['file'] = file
    if line is not None:
        body['line'] = line
    answer = client.post('/api.php', json.dumps(body), content_type='application/json')
    assert answer.json['ok'] is True
    return answer.json['id']


def issues(client, key):
    return client.get('/api/v1/issues?key=%s&limit=500' % key).json['issues']


def set_status(client, key, issue_id, status):
    answer = client.post('/api/v1/issues/%d?key=%s' % (issue_id, key), json.dumps({'status': status}),
                         content_type='application/json')
    return answer.json['issue']


def model_event(type_='Error', value='', frames=None, fingerprint=None, **fields):
    return errorcapture.make_error_event(
        'test', exception=[errorcapture.exception_entry(type_, value, frames)], fingerprint=fingerprint, **fields)


def fingerprint(**kwargs):
    return errorcapture.fingerprint_of(model_event(**kwargs))


def js_stack(line_offset=0, inner='getUserId'):
    return ['at %s (/srv/app/auth.js:%d:18)' % (inner, 42 + line_offset),
            'at validateSession (/srv/app/session.js:%d:5)' % (17 + line_offset),
            'at Object.<anonymous> (/srv/app/index.js:%d:3)' % (88 + line_offset)]


# -- type + in-app frames ----------------------------------------------------------------

def test_same_type_and_frames_group_regardless_of_line_numbers(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, stack=js_stack(0))
    seestack(client, key, stack=js_stack(5))
    seestack(client, key, stack=js_stack(-3))
    (issue,) = issues(client, key)
    assert issue['count'] == 3


def test_different_function_is_a_different_issue(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, stack=js_stack(inner='getUserId'))
    seestack(client, key, stack=js_stack(inner='getUserEmail'))
    assert sorted(i['count'] for i in issues(client, key)) == [1, 1]


def test_different_exception_type_with_same_frames_is_a_different_issue(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, exception_class='TypeError', stack=js_stack())
    seestack(client, key, exception_class='RangeError', stack=js_stack())
    assert len(issues(client, key)) == 2


def test_message_details_do_not_split_an_issue_with_frames(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, message="Cannot read properties of undefined (reading 'userId')", stack=js_stack())
    seestack(client, key, message="Cannot read properties of undefined (reading 'email')", stack=js_stack(2))
    (issue,) = issues(client, key)
    assert issue['count'] == 2


def test_library_frames_do_not_split_an_issue(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, stack=js_stack() + ['at Layer.handle (/srv/app/node_modules/express/lib/layer.js:95:5)'])
    seestack(client, key, stack=js_stack() + ['at next (/srv/app/node_modules/express/lib/router.js:280:10)',
                                              'at Layer.handle (/srv/app/node_modules/express/lib/layer.js:95:5)'])
    (issue,) = issues(client, key)
    assert issue['count'] == 2


def test_unit_frames_line_numbers_ignored_functions_not():
    frames = lambda fn, line: [errorcapture.frame(filename='app.py', function=fn, lineno=line, in_app=True)]
    assert fingerprint(type_='KeyError', frames=frames('load', 10)) == \
        fingerprint(type_='KeyError', frames=frames('load', 99))
    assert fingerprint(type_='KeyError', frames=frames('load', 10)) != \
        fingerprint(type_='KeyError', frames=frames('save', 10))
    assert fingerprint(type_='KeyError', frames=frames('load', 10)) != \
        fingerprint(type_='IndexError', frames=frames('load', 10))


# -- without frames: type + normalized message ---------------------------------------------

SAME_GROUP = [
    ('numbers', 'user 17 not found', 'user 18 not found'),
    ('negative and decimal numbers', 'balance -3.50 below limit', 'balance -120.25 below limit'),
    ('hex addresses', 'segfault at 0x7ffe1234', 'segfault at 0xdeadbeef'),
    ('long hex ids', 'commit 9fceb02d0ae598e95dc970b74767f19372d61af8 not found',
     'commit 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b not found'),
    ('uuids', 'order 550e8400-e29b-41d4-a716-446655440000 missing',
     'order 7c9e6679-7425-40de-944b-e07fc1f90ae7 missing'),
    ('emails', 'no account for alice@example.com', 'no account for bob.smith+test@mail.example.org'),
    ('urls', 'GET https://api.example.com/v1/users/17 failed', 'GET http://other.example.org/x?y=1 failed'),
    ('ip addresses', 'connect to 10.0.0.1:5432 refused', 'connect to 192.168.1.20:6379 refused'),
    ('single quotes', "Cannot read properties of undefined (reading 'userId')",
     "Cannot read properties of undefined (reading 'email')"),
    ('double quotes', 'unknown column "created_at"', 'unknown column "updated_by"'),
]

DIFFERENT_GROUP = [
    ('different words', 'timeout after 30s', 'connection refused'),
    ('different constant text', 'user 17 not found', 'order 17 not found'),
    ('different text around a quote', "missing key 'a'", "unknown key 'a'"),
]


@pytest.mark.parametrize('case,first,second', SAME_GROUP, ids=[c[0] for c in SAME_GROUP])
def test_variable_parts_of_messages_group_together(case, first, second):
    assert fingerprint(type_='Error', value=first) == fingerprint(type_='Error', value=second)


@pytest.mark.parametrize('case,first,second', DIFFERENT_GROUP, ids=[c[0] for c in DIFFERENT_GROUP])
def test_different_messages_stay_apart(case, first, second):
    assert fingerprint(type_='Error', value=first) != fingerprint(type_='Error', value=second)


def test_same_message_different_type_stays_apart():
    assert fingerprint(type_='KeyError', value='user 17') != fingerprint(type_='ValueError', value='user 17')


def test_message_grouping_through_the_api(client):
    key = create_project(client, 'grouping')['hash']
    for message in ('user 17 not found', 'user 18 not found', 'timeout after 30s', 'connection refused'):
        answer = client.post('/v1/ingest', json.dumps({'type': 'error', 'exception': {
            'type': 'LookupError', 'value': message}}), headers={'X-Open-Sentry-Key': key},
            content_type='application/json')
        assert answer.status_int == 202
    counts = sorted((i['count'], i['title']) for i in issues(client, key))
    assert [c for c, _ in counts] == [1, 1, 2]
    assert any('timeout after 30s' in t for _, t in counts)
    assert any('connection refused' in t for _, t in counts)


# -- client fingerprints -----------------------------------------------------------------------

def test_client_fingerprint_wins(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, 'TypeError', 'a is undefined', js_stack(), fingerprint=['checkout-failure'])
    seestack(client, key, 'RangeError', 'index out of range', js_stack(inner='other'),
             fingerprint=['checkout-failure'])
    (issue,) = issues(client, key)
    assert issue['count'] == 2
    # the same error with another fingerprint is another issue
    seestack(client, key, 'TypeError', 'a is undefined', js_stack(), fingerprint=['payment-failure'])
    assert sorted(i['count'] for i in issues(client, key)) == [1, 2]


def test_client_fingerprint_as_a_string(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, 'TypeError', 'one', fingerprint='my-group')
    seestack(client, key, 'KeyError', 'two', fingerprint='my-group')
    (issue,) = issues(client, key)
    assert issue['count'] == 2


def test_default_placeholder_in_fingerprint(client):
    key = create_project(client, 'grouping')['hash']
    # {{ default }} + tenant: the default grouping, split per tenant
    seestack(client, key, stack=js_stack(0), fingerprint=['{{ default }}', 'tenant-a'])
    seestack(client, key, stack=js_stack(7), fingerprint=['{{ default }}', 'tenant-a'])
    seestack(client, key, stack=js_stack(0), fingerprint=['{{ default }}', 'tenant-b'])
    seestack(client, key, exception_class='RangeError', stack=js_stack(0), fingerprint=['{{ default }}', 'tenant-a'])
    assert sorted(i['count'] for i in issues(client, key)) == [1, 1, 2]


def test_unit_default_placeholder():
    a = fingerprint(type_='E', value='x', fingerprint=['{{ default }}', 'a'])
    assert a == fingerprint(type_='E', value='x', fingerprint=['{{default}}', 'a'])
    assert a != fingerprint(type_='E', value='x', fingerprint=['{{ default }}', 'b'])
    assert a != fingerprint(type_='F', value='x', fingerprint=['{{ default }}', 'a'])
    assert a != fingerprint(type_='E', value='x', fingerprint=['a'])
    # without the placeholder the event's own content is ignored
    assert fingerprint(type_='E', value='x', fingerprint=['a']) == fingerprint(type_='F', value='y', fingerprint=['a'])


# -- ErrorCapture (/api.php) events: file, line and message --------------------------------------

def test_api_php_same_file_and_line_is_one_issue(client):
    key = create_project(client, 'grouping')['hash']
    api_php(client, key, 'Undefined index 17', '/var/www/app/cart.php', 31)
    api_php(client, key, 'Undefined index 18', '/var/www/app/cart.php', 31)
    (issue,) = issues(client, key)
    assert issue['count'] == 2


def test_api_php_different_lines_are_two_issues(client):
    key = create_project(client, 'grouping')['hash']
    api_php(client, key, 'Undefined index 17', '/var/www/app/cart.php', 31)
    api_php(client, key, 'Undefined index 17', '/var/www/app/cart.php', 32)
    assert sorted(i['count'] for i in issues(client, key)) == [1, 1]


def test_api_php_different_files_are_two_issues(client):
    key = create_project(client, 'grouping')['hash']
    api_php(client, key, 'Undefined index 17', '/var/www/app/cart.php', 31)
    api_php(client, key, 'Undefined index 17', '/var/www/app/user.php', 31)
    assert len(issues(client, key)) == 2


def test_api_php_without_file_groups_by_message(client):
    key = create_project(client, 'grouping')['hash']
    api_php(client, key, 'Deploy failed: migration 17 returned non-zero')
    api_php(client, key, 'Deploy failed: migration 18 returned non-zero')
    api_php(client, key, 'Disk full')
    assert sorted(i['count'] for i in issues(client, key)) == [1, 2]


# -- issue fields and life cycle -------------------------------------------------------------------

def test_issue_fields(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, 'TypeError', 'x is undefined', js_stack(), level='fatal', release='1.0.0',
             environment='production', timestamp='2026-03-31T12:05:00.000Z')
    seestack(client, key, 'TypeError', 'x is undefined', js_stack(3), level='fatal', release='1.1.0',
             environment='staging', timestamp='2026-03-31T12:00:00.000Z')
    (issue,) = issues(client, key)
    assert issue['title'].startswith('TypeError') and 'x is undefined' in issue['title']
    assert issue['level'] == 'fatal'
    assert issue['status'] == 'unresolved'
    assert issue['regression'] is False
    assert issue['count'] == 2
    assert issue['firstSeen'] == '2026-03-31T12:00:00.000Z'  # the earlier event, although it came second
    assert issue['lastSeen'] == '2026-03-31T12:05:00.000Z'
    assert issue['lastRelease'] == '1.1.0'
    assert sorted(issue['environments']) == ['production', 'staging']
    assert 'getUserId' in issue['culprit']
    assert (issue['type'], issue['value']) == ('TypeError', 'x is undefined')


def test_api_php_issue_title_and_level(client):
    key = create_project(client, 'grouping')['hash']
    api_php(client, key, 'Undefined variable $foo', '/var/www/app/index.php', 42, level='Warning')
    (issue,) = issues(client, key)
    assert issue['title'] == 'Undefined variable $foo'
    assert issue['level'] == 'warning'
    assert '/var/www/app/index.php' in issue['culprit']
    assert ISO_MS_Z.match(issue['firstSeen']) and issue['firstSeen'] == issue['lastSeen']


def test_resolved_issue_regresses_on_a_new_event(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, stack=js_stack())
    (issue,) = issues(client, key)
    resolved = set_status(client, key, issue['id'], 'resolved')
    assert resolved['status'] == 'resolved' and resolved['regression'] is False
    seestack(client, key, stack=js_stack(1))
    (issue,) = issues(client, key)
    assert issue['status'] == 'unresolved'
    assert issue['regression'] is True
    assert issue['count'] == 2


def test_ignored_issue_stays_ignored_but_counts(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key, stack=js_stack())
    (issue,) = issues(client, key)
    assert set_status(client, key, issue['id'], 'ignored')['status'] == 'ignored'
    seestack(client, key, stack=js_stack())
    seestack(client, key, stack=js_stack())
    (issue,) = issues(client, key)
    assert issue['status'] == 'ignored'
    assert issue['regression'] is False
    assert issue['count'] == 3


def test_unresolved_issue_does_not_regress(client):
    key = create_project(client, 'grouping')['hash']
    seestack(client, key)
    seestack(client, key)
    (issue,) = issues(client, key)
    assert issue['status'] == 'unresolved' and issue['regression'] is False


# -- level mapping ------------------------------------------------------------------------------------

@pytest.mark.parametrize('raw,level', [
    ('Fatal Error', 'fatal'), ('fatal', 'fatal'), ('CRITICAL', 'fatal'),
    ('Warning', 'warning'), ('warn', 'warning'), ('WARNING', 'warning'), ('Deprecated', 'warning'),
    ('Notice', 'info'), ('info', 'info'), ('debug', 'debug'),
    ('Error', 'error'), ('error', 'error'), ('ZeroDivisionError', 'error'), ('TypeError', 'error'),
    ('', 'error'), (None, 'error'),
])
def test_normalize_level(raw, level):
    assert errorcapture.normalize_level(raw) == level


# -- stack trace parsing ---------------------------------------------------------------------------------

def pick(frames, *keys):
    return [tuple(f.get(k) for k in keys) for f in frames]


def test_parse_javascript_stack():
    frames = errorcapture.parse_stack_trace([
        'at getUserId (auth.js:42:18)',
        'at validateSession (session.js:17:5)',
        'at Object.<anonymous> (index.js:88:3)',
    ])
    # oldest call first, the raising frame last
    assert pick(frames, 'function', 'filename', 'lineno', 'colno') == [
        ('Object.<anonymous>', 'index.js', 88, 3),
        ('validateSession', 'session.js', 17, 5),
        ('getUserId', 'auth.js', 42, 18),
    ]
    assert all(f['inApp'] for f in frames)


def test_parse_javascript_stack_with_paths_and_anonymous_frames():
    frames = errorcapture.parse_stack_trace(
        'TypeError: x is undefined\n'
        '    at handler (/srv/app/routes/user.js:12:7)\n'
        '    at /srv/app/node_modules/express/lib/router/layer.js:95:5\n')
    assert pick(frames, 'function', 'filename', 'lineno', 'colno') == [
        (None, 'layer.js', 95, 5),
        ('handler', 'user.js', 12, 7),
    ]
    assert frames[-1]['absPath'] == '/srv/app/routes/user.js'
    assert frames[-1]['inApp'] is True
    assert frames[0]['inApp'] is False  # node_modules


def test_parse_python_traceback():
    frames = errorcapture.parse_stack_trace(
        'Traceback (most recent call last):\n'
        '  File "/app/main.py", line 10, in <module>\n'
        '    run()\n'
        '  File "/app/worker.py", line 22, in run\n'
        '    return 1 / 0\n'
        'ZeroDivisionError: division by zero\n')
    assert pick(frames, 'function', 'filename', 'lineno', 'absPath', 'contextLine') == [
        ('<module>', 'main.py', 10, '/app/main.py', 'run()'),
        ('run', 'worker.py', 22, '/app/worker.py', 'return 1 / 0'),
    ]
    assert all(f['inApp'] for f in frames)


def test_parse_python_traceback_marks_site_packages_as_library():
    frames = errorcapture.parse_stack_trace([
        'File "/app/main.py", line 3, in <module>',
        'File "/usr/lib/python3/site-packages/requests/api.py", line 59, in request',
    ])
    assert pick(frames, 'filename', 'inApp') == [('main.py', True), ('api.py', False)]


def test_parse_java_stack():
    frames = errorcapture.parse_stack_trace([
        'java.lang.NullPointerException: user was null',
        '\tat com.example.OrderService.place(OrderService.java:42)',
        '\tat com.example.OrderController.post(OrderController.java:17)',
        '\tat java.base/java.lang.Thread.run(Thread.java:833)',
    ])
    assert pick(frames, 'module', 'function', 'filename', 'lineno') == [
        ('java.base/java.lang.Thread', 'run', 'Thread.java', 833),
        ('com.example.OrderController', 'post', 'OrderController.java', 17),
        ('com.example.OrderService', 'place', 'OrderService.java', 42),
    ]
    assert pick(frames, 'inApp') == [(False,), (True,), (True,)]


def test_parse_skips_lines_it_does_not_understand():
    assert errorcapture.parse_stack_trace(['hello', '', 'at nothing here']) == []
    assert errorcapture.parse_stack_trace([]) == []
