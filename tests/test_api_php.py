"""The ErrorCapture API (/api.php) beyond the seed's happy paths: bad input,
leniency, paging, clear, auto-creation, CORS and generate (README, "The
ErrorCapture API")."""
import http.client
import json
import re
import subprocess
import shutil
from urllib.parse import urlparse

import pytest

import errorcapture

RECEIVED_AT = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$')
ROW_KEYS = {'id', 'level', 'message', 'file', 'line', 'url', 'method', 'get_params', 'post_params',
            'hostname', 'received_at'}


def post(client, body, **kwargs):
    """POST a JSON-serializable body (or raw bytes) to /api.php."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode('utf-8')
    kwargs.setdefault('content_type', 'application/json')
    return client.post('/api.php', raw, expect_errors=True, **kwargs)


def errors(client, key, **params):
    query = '&'.join('%s=%s' % item for item in params.items())
    answer = client.get('/api.php?action=errors&hash=%s&%s' % (key, query))
    assert answer.status_int == 200
    return answer.json['errors']


def assert_refused(answer, status):
    """A 4xx in the API's own error shape, never a 500."""
    assert answer.status_int == status, answer.body
    assert answer.content_type == 'application/json'
    body = answer.json
    assert set(body) == {'ok', 'error'}, body
    assert body['ok'] is False
    assert isinstance(body['error'], str) and body['error'].strip()


def minimal(key, **extra):
    body = {'hash': key, 'level': 'Error', 'message': 'Something went wrong'}
    body.update(extra)
    return body


# -- bad input: a 4xx with {"ok": false, "error": ...}, and nothing stored ------

def _without(field):
    def build(key):
        body = minimal(key)
        del body[field]
        return body
    return build


def _with(**fields):
    return lambda key: minimal(key, **fields)


BAD_BODIES = {
    'missing hash': _without('hash'),
    'null hash': _with(hash=None),
    'blank hash': _with(hash=''),
    'whitespace hash': _with(hash='   '),
    'hash 123': _with(hash=123),
    'missing level': _without('level'),
    'blank level': _with(level=''),
    'whitespace level': _with(level='  '),
    'level 5': _with(level=5),
    'missing message': _without('message'),
    'message list': _with(message=['a']),
    'line abc': _with(line='abc'),
    'line true': _with(line=True),
    'line 1.5': _with(line=1.5),
    'line object': _with(line={'n': 1}),
    'request "x"': _with(request='x'),
    'request list': _with(request=['GET']),
}


@pytest.mark.parametrize('case', sorted(BAD_BODIES))
def test_bad_body_is_a_400_and_stores_nothing(client, project_key, case):
    answer = post(client, BAD_BODIES[case](project_key))
    assert_refused(answer, 400)
    assert errors(client, project_key) == []


def test_an_empty_message_is_stored_as_the_python_snippet_sends_it(client, project_key):
    """The seed's Python snippet sends str(exc_value): "" for a bare assert."""
    try:
        raise AssertionError()  # what a bare `assert` raises (pytest rewrites the real thing)
    except AssertionError as exc:
        sent = {'hash': project_key, 'level': type(exc).__name__, 'message': str(exc), 'file': '/srv/job.py',
                'line': 7}
    assert sent['message'] == ''
    answer = post(client, sent)
    assert answer.status_int == 200 and answer.json['ok'] is True
    (row,) = errors(client, project_key)
    assert (row['level'], row['message'], row['file'], row['line']) == ('AssertionError', '', '/srv/job.py', 7)
    (issue,) = client.get('/api/v1/issues?key=%s' % project_key).json['issues']
    assert issue['culprit'] == '/srv/job.py:7' and issue['count'] == 1


RAW_BODIES = {
    'not json': b'this is not json',
    'truncated json': b'{"hash": "k", "level": "Error", ',
    'empty body': b'',
    'json array': b'[{"hash": "k", "level": "Error", "message": "m"}]',
    'json empty array': b'[]',
    'json string': b'"hash=k&level=Error"',
    'json number': b'42',
    'json true': b'true',
    'json null': b'null',
    'NaN constant': b'{"hash": "k", "level": "Error", "message": "m", "line": NaN}',
    'not utf-8': b'{"hash": "k", "level": "Error", "message": "\xff\xfe"}',
}


@pytest.mark.parametrize('case', sorted(RAW_BODIES))
def test_non_json_or_non_object_is_a_400(client, case):
    assert_refused(post(client, RAW_BODIES[case]), 400)
    # nothing was auto-created for the key "k" either
    assert_refused(client.get('/api.php?action=errors&hash=k', expect_errors=True), 404)


@pytest.mark.parametrize('field', ['message', 'level', 'file', 'hostname', 'hash'])
def test_lone_surrogate_escape_is_not_a_500(client, project_key, field):
    # "\ud800" is a JSON escape for half a UTF-16 pair: syntactically valid JSON
    # that no UTF-8 text can hold. Refusing it (400) or storing a replacement
    # character are both fine; a 500 is not.
    body = minimal(project_key, file='a.php')
    body[field] = 'bad \ud800 text'
    raw = json.dumps(body).encode()
    assert b'\\ud800' in raw  # json.dumps writes the escape, as a client would
    answer = post(client, raw)
    if answer.status_int == 200:
        assert answer.json['ok'] is True
        # the half pair is stored as U+FFFD, so that is the key to poll with
        stored_key = 'bad \ufffd text' if field == 'hash' else project_key
        rows = errors(client, stored_key.replace(' ', '%20').replace('\ufffd', '%EF%BF%BD'))
        assert len(rows) == 1
    else:
        assert_refused(answer, 400)
    # the server keeps working
    assert post(client, minimal(project_key, message='after')).status_int == 200


def test_body_past_one_mebibyte_is_a_413(client, project_key):
    body = minimal(project_key, message='x' * (1 << 20))
    assert_refused(post(client, body), 413)
    assert errors(client, project_key) == []


@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_unknown_action_is_a_400(client, project_key, method):
    url = '/api.php?action=explode&hash=%s' % project_key
    if method == 'GET':
        answer = client.get(url, expect_errors=True)
    else:
        answer = client.post(url, json.dumps(minimal(project_key)), content_type='application/json',
                             expect_errors=True)
    assert_refused(answer, 400)
    assert errors(client, project_key) == []


@pytest.mark.parametrize('request_line', ['GET errors', 'GET clear', 'POST clear'])
def test_errors_and_clear_for_an_unknown_key_are_404(client, request_line):
    method, action = request_line.split()
    url = '/api.php?action=%s&hash=no-such-project&since=0' % action
    answer = client.get(url, expect_errors=True) if method == 'GET' else client.post(url, expect_errors=True)
    assert_refused(answer, 404)
    # asking did not create the project
    assert client.get('/api/v1/project?key=no-such-project', expect_errors=True).status_int == 401


@pytest.mark.parametrize('action', ['errors', 'clear'])
def test_errors_and_clear_without_a_hash_are_400(client, action):
    assert_refused(client.get('/api.php?action=%s' % action, expect_errors=True), 400)


def test_auto_create_off_refuses_unknown_keys_with_403(make):
    client = make(auto_create=False)
    assert_refused(post(client, minimal('unknown-key')), 403)
    # no project was created by the refused submission
    assert_refused(client.get('/api.php?action=errors&hash=unknown-key', expect_errors=True), 404)
    # a generated key still works
    key = client.get('/api.php?action=generate&name=app').json['hash']
    answer = post(client, minimal(key))
    assert answer.status_int == 200 and answer.json['ok'] is True
    assert [e['message'] for e in errors(client, key)] == ['Something went wrong']


def test_get_clear_disabled_answers_405_but_post_clear_works(make):
    client = make(allow_get_clear=False)
    key = client.get('/api.php?action=generate').json['hash']
    for _ in range(2):
        assert post(client, minimal(key)).status_int == 200
    assert_refused(client.get('/api.php?action=clear&hash=%s' % key, expect_errors=True), 405)
    assert len(errors(client, key)) == 2  # the refused GET deleted nothing
    answer = client.post('/api.php?action=clear&hash=%s' % key)
    assert answer.json == {'ok': True, 'deleted': 2}
    assert errors(client, key) == []


# -- leniency the seed's own snippets need ------------------------------------

def test_body_without_content_type_is_accepted(live_server):
    url = urlparse(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = json.dumps(minimal('no-content-type')).encode()
    connection.putrequest('POST', '/api.php')
    connection.putheader('Content-Length', str(len(body)))
    connection.endheaders(body)
    answer = connection.getresponse()
    assert answer.status == 200
    assert json.loads(answer.read()) == {'ok': True, 'id': 1}
    connection.request('GET', '/api.php?action=errors&hash=no-content-type')
    rows = json.loads(connection.getresponse().read())['errors']
    connection.close()
    assert [(r['level'], r['message']) for r in rows] == [('Error', 'Something went wrong')]


def test_text_plain_body_is_accepted(client):
    answer = client.post('/api.php', json.dumps(minimal('plain')), content_type='text/plain')
    assert answer.json == {'ok': True, 'id': 1}
    assert [r['message'] for r in errors(client, 'plain')] == ['Something went wrong']


@pytest.mark.skipif(shutil.which('curl') is None, reason='needs the curl binary')
def test_curl_without_content_type_header_is_accepted(live_server):
    # curl -d without -H sends application/x-www-form-urlencoded: what people type.
    body = json.dumps(minimal('forgot-header', line=7, file='deploy.sh'))
    sent = subprocess.run(['curl', '-sS', '-X', 'POST', live_server.url + '/api.php', '-d', body],
                          capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {'ok': True, 'id': 1}
    fetched = subprocess.run(['curl', '-sS', live_server.url + '/api.php?action=errors&hash=forgot-header'],
                             capture_output=True, text=True, timeout=30)
    rows = json.loads(fetched.stdout)['errors']
    assert [(r['file'], r['line']) for r in rows] == [('deploy.sh', 7)]


def test_line_null_is_accepted(client):
    answer = post(client, minimal('k', file='app.js', line=None))
    assert answer.status_int == 200 and answer.json['ok'] is True
    (row,) = errors(client, 'k')
    assert row['line'] is None
    assert row['file'] == 'app.js'


def test_line_as_numeric_string_is_stored_as_integer(client):
    assert post(client, minimal('k', file='deploy.sh', line='42')).status_int == 200
    (row,) = errors(client, 'k')
    assert row['line'] == 42 and not isinstance(row['line'], bool)


def test_exception_class_as_level_is_kept_raw(client):
    body = minimal('k', level='ZeroDivisionError', message='division by zero')
    assert post(client, body).status_int == 200
    (row,) = errors(client, 'k')
    assert row['level'] == 'ZeroDivisionError'
    # ... while the event model counts it as an error
    (issue,) = client.get('/api/v1/issues?key=k').json['issues']
    assert issue['level'] == 'error'


def test_full_request_object_is_listed(client):
    body = minimal('k', file='/var/www/index.php', line=3, hostname='web-1',
                   request={'method': 'POST', 'url': 'http://localhost/form', 'get': {'a': '1'},
                            'post': {'name': 'x'}})
    assert post(client, body).status_int == 200
    (row,) = errors(client, 'k')
    assert set(row) == ROW_KEYS
    assert (row['method'], row['url'], row['get_params'], row['post_params'], row['hostname']) == (
        'POST', 'http://localhost/form', {'a': '1'}, {'name': 'x'}, 'web-1')
    assert RECEIVED_AT.match(row['received_at'])


# -- since / limit paging -------------------------------------------------------

def _bulk_insert(client, key, count):
    store = client.wsgi.store
    project = store.project_by_key(key)
    events = [errorcapture.make_error_event('errorcapture', level='Error', message='event %d' % n,
                                            file='bulk.php', line=n + 1) for n in range(count)]
    store.events.add(project['id'], events)


def test_since_and_limit_paging(client, project_key):
    _bulk_insert(client, project_key, 1100)

    first = errors(client, project_key)  # no since, no limit
    assert len(first) == 100  # default limit
    ids = [row['id'] for row in first]
    assert ids == sorted(ids) and len(set(ids)) == 100

    everything = errors(client, project_key, since=0, limit=5000)
    assert len(everything) == 1000  # clamped to the maximum
    all_ids = [row['id'] for row in everything]
    assert all_ids == sorted(all_ids)
    assert all_ids[:100] == ids

    tail = errors(client, project_key, since=all_ids[-1], limit=1000)
    assert len(tail) == 100
    assert all(row['id'] > all_ids[-1] for row in tail)
    assert len(set(all_ids) | {row['id'] for row in tail}) == 1100
    assert errors(client, project_key, since=tail[-1]['id']) == []

    page = errors(client, project_key, since=all_ids[9], limit=5)
    assert [row['id'] for row in page] == all_ids[10:15]
    assert [row['message'] for row in page] == ['event %d' % n for n in range(10, 15)]


def test_polling_with_since_returns_only_new_errors(client, project_key):
    post(client, minimal(project_key, message='one'))
    (row,) = errors(client, project_key, since=0)
    post(client, minimal(project_key, message='two'))
    post(client, minimal(project_key, message='three'))
    newer = errors(client, project_key, since=row['id'])
    assert [r['message'] for r in newer] == ['two', 'three']


@pytest.mark.parametrize('query', ['since=abc', 'since=-1', 'since=1.5', 'limit=abc', 'limit=0',
                                   'since=99999999999999999999999'])
def test_bad_since_or_limit_is_a_400(client, project_key, query):
    answer = client.get('/api.php?action=errors&hash=%s&%s' % (project_key, query), expect_errors=True)
    assert_refused(answer, 400)


# -- clear ------------------------------------------------------------------------

def test_clear_deletes_only_that_projects_errors(client):
    for n in range(3):
        post(client, minimal('project-a', message='a%d' % n))
    for n in range(2):
        post(client, minimal('project-b', message='b%d' % n))
    answer = client.get('/api.php?action=clear&hash=project-a')
    assert answer.json == {'ok': True, 'deleted': 3}
    assert errors(client, 'project-a') == []
    assert client.get('/api/v1/issues?key=project-a').json['issues'] == []
    assert [r['message'] for r in errors(client, 'project-b')] == ['b0', 'b1']
    assert len(client.get('/api/v1/issues?key=project-b').json['issues']) == 2
    # clearing again deletes nothing, still answers ok
    assert client.get('/api.php?action=clear&hash=project-a').json == {'ok': True, 'deleted': 0}
    # and the project keeps working
    post(client, minimal('project-a', message='after'))
    assert [r['message'] for r in errors(client, 'project-a')] == ['after']


def test_post_clear_with_query_and_with_json_body(client):
    for n in range(2):
        post(client, minimal('k', message='m%d' % n))
    assert client.post('/api.php?action=clear&hash=k').json == {'ok': True, 'deleted': 2}
    assert errors(client, 'k') == []
    post(client, minimal('k'))
    answer = client.post('/api.php', json.dumps({'action': 'clear', 'hash': 'k'}), content_type='application/json')
    assert answer.json == {'ok': True, 'deleted': 1}
    assert errors(client, 'k') == []


# -- auto-create ---------------------------------------------------------------------

def test_unknown_key_auto_creates_a_project(client):
    assert client.get('/api/v1/project?key=brand-new-key', expect_errors=True).status_int == 401
    answer = post(client, minimal('brand-new-key'))
    assert answer.status_int == 200 and answer.json['ok'] is True
    project = client.get('/api/v1/project?key=brand-new-key').json['project']
    assert project['key'] == 'brand-new-key'
    assert isinstance(project['id'], int)
    # a second submission reuses the project
    post(client, minimal('brand-new-key', message='again'))
    assert client.get('/api/v1/project?key=brand-new-key').json['project']['id'] == project['id']
    assert len(errors(client, 'brand-new-key')) == 2


# -- CORS -------------------------------------------------------------------------------

def test_preflight_on_api_php(client):
    answer = client.options('/api.php', headers={
        'Origin': 'http://example.com', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type'})
    assert answer.status_int == 204
    assert answer.headers['Access-Control-Allow-Origin'] == '*'
    allowed = [h.strip().lower() for h in answer.headers['Access-Control-Allow-Headers'].split(',')]
    assert 'content-type' in allowed
    methods = [m.strip().upper() for m in answer.headers['Access-Control-Allow-Methods'].split(',')]
    assert 'POST' in methods and 'GET' in methods


def test_submissions_allow_any_origin_and_the_other_actions_only_their_own(client, project_key):
    """Browsers may submit from any page (CORS); generate, errors and clear
    hand out keys and data or change them, so another origin is refused."""
    headers = {'Origin': 'http://example.com'}
    answers = [
        client.post('/api.php', json.dumps(minimal(project_key)), content_type='application/json', headers=headers),
        post(client, b'not json', headers=headers),
    ]
    for answer in answers:
        assert answer.headers.get('Access-Control-Allow-Origin') == '*', answer.request.url
    for path in ('/api.php?action=errors&hash=%s' % project_key, '/api.php?action=generate',
                 '/api.php?action=clear&hash=%s' % project_key):
        answer = client.get(path, headers=headers, expect_errors=True)
        assert answer.status_int == 403 and answer.json['ok'] is False, path
        assert 'Access-Control-Allow-Origin' not in answer.headers, path
        assert client.get(path).status_int == 200, path  # curl and scripts send no Origin


# -- generate ----------------------------------------------------------------------------

def test_generate_returns_a_fresh_32_hex_key_and_keeps_the_name(client):
    first = client.get('/api.php?action=generate&name=my-app').json
    second = client.get('/api.php?action=generate&name=my-app').json
    for answer in (first, second):
        assert re.match(r'^[0-9a-f]{32}$', answer['hash'])
        assert answer['name'] == 'my-app'
    assert first['hash'] != second['hash']
    project = client.get('/api/v1/project?key=%s' % first['hash']).json['project']
    assert project['name'] == 'my-app'
    assert project['key'] == first['hash']
    # the key is immediately usable
    assert post(client, minimal(first['hash'])).json == {'ok': True, 'id': 1}


def test_generate_without_a_name(client):
    answer = client.get('/api.php?action=generate').json
    assert re.match(r'^[0-9a-f]{32}$', answer['hash'])
    assert errors(client, answer['hash']) == []
