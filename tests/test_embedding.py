"""Embedding (README, "Embedding"): make_app is a plain WSGI app,
serve_in_background serves it, data survives closing and reopening the
database, and settings come from options, ERRORCAPTURE_* variables and the
command line in that order."""
import io
import json
import os
import urllib.error
import urllib.request
import wsgiref.util
import wsgiref.validate

import pytest
import webtest

import errorcapture
from helpers import create_project

SUBMISSION = {'hash': 'embedded', 'level': 'Warning', 'message': 'Undefined variable $foo',
              'file': '/var/www/app/index.php', 'line': 42}


def call_wsgi(app, method, path, body=b'', query=''):
    """One request through the bare WSGI protocol, checked by wsgiref's validator."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_LENGTH=str(len(body)), CONTENT_TYPE='application/json', **{'wsgi.input': io.BytesIO(body)})
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured['status'], captured['headers'] = status, dict(headers)
        return lambda data: None

    result = wsgiref.validate.validator(app)(environ, start_response)
    try:
        payload = b''.join(result)
    finally:
        result.close()
    return captured['status'], captured['headers'], payload


@pytest.fixture
def clean_env(monkeypatch):
    """No ERRORCAPTURE_* variable from the outside leaks into a test."""
    for name in list(os.environ):
        if name.startswith('ERRORCAPTURE_'):
            monkeypatch.delenv(name)
    return monkeypatch


# -- make_app and serve_in_background ----------------------------------------------------

def test_make_app_is_a_wsgi_application(tmp_path, clean_env):
    app = errorcapture.make_app(str(tmp_path / 'errors.db'))
    try:
        status, headers, body = call_wsgi(app, 'POST', '/api.php', json.dumps(SUBMISSION).encode())
        assert status.startswith('200') and json.loads(body) == {'ok': True, 'id': 1}
        assert headers['Content-Type'].startswith('application/json')
        status, _, body = call_wsgi(app, 'GET', '/api.php', query='action=errors&hash=embedded')
        assert status.startswith('200')
        (row,) = json.loads(body)['errors']
        assert (row['level'], row['message'], row['file'], row['line']) == (
            'Warning', 'Undefined variable $foo', '/var/www/app/index.php', 42)
        status, headers, _ = call_wsgi(app, 'OPTIONS', '/api.php')
        assert status.startswith('204') and headers['Access-Control-Allow-Origin'] == '*'
        status, _, body = call_wsgi(app, 'GET', '/no/such/page')
        assert status.startswith('404')
    finally:
        app.close()


def test_serve_in_background(tmp_path, clean_env):
    app = errorcapture.make_app(str(tmp_path / 'errors.db'), auto_create=False)
    handle = errorcapture.serve_in_background(app, '127.0.0.1', 0)
    try:
        assert handle.url == 'http://127.0.0.1:%d' % handle.port and handle.port > 0
        key = create_project(handle.url, 'embedded')['hash']
        request = urllib.request.Request(handle.url + '/api.php', json.dumps(dict(SUBMISSION, hash=key)).encode(),
                                         {'Content-Type': 'application/json'})
        with urllib.request.urlopen(request) as answer:
            assert json.loads(answer.read()) == {'ok': True, 'id': 1}
        # the option given to make_app is in force
        refused = urllib.request.Request(handle.url + '/api.php', json.dumps(SUBMISSION).encode(),
                                         {'Content-Type': 'application/json'})
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(refused)
        assert raised.value.code == 403
    finally:
        handle.stop()
    # stopped means stopped: the port no longer answers
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(handle.url + '/health', timeout=5)


def test_data_persists_across_close_and_reopen(tmp_path, clean_env):
    path = str(tmp_path / 'errors.db')
    first = webtest.TestApp(errorcapture.make_app(path))
    key = create_project(first, 'kept')['hash']
    for n in range(3):
        first.post('/api.php', json.dumps(dict(SUBMISSION, hash=key, message='Undefined index %d' % n)),
                   content_type='application/json')
    (issue,) = first.get('/api/v1/issues?key=%s' % key).json['issues']
    seq = first.get('/api/v1/issues?key=%s' % key).json['seq']
    first.app.close()

    second_app = errorcapture.make_app(path)
    try:
        second = webtest.TestApp(second_app)
        assert second.get('/api/v1/project?key=%s' % key).json['project']['name'] == 'kept'
        rows = second.get('/api.php?action=errors&hash=%s' % key).json['errors']
        assert [r['message'] for r in rows] == ['Undefined index 0', 'Undefined index 1', 'Undefined index 2']
        (reopened,) = second.get('/api/v1/issues?key=%s' % key).json['issues']
        assert (reopened['id'], reopened['count']) == (issue['id'], 3)
        # ids and the change sequence continue where they were
        answer = second.post('/api.php', json.dumps(dict(SUBMISSION, hash=key, message='Undefined index 3')),
                             content_type='application/json')
        assert answer.json == {'ok': True, 'id': 4}
        changed = second.get('/api/v1/issues?key=%s&changedSince=%d' % (key, seq)).json['issues']
        assert [i['id'] for i in changed] == [issue['id']] and changed[0]['count'] == 4
    finally:
        second_app.close()


def test_close_twice_is_harmless(tmp_path, clean_env):
    """An embedder may close in a finally and again at exit: the second close
    raises nothing, what was acknowledged before is kept, the app's threads are
    gone, and the database opens again as it was left."""
    import threading
    path = str(tmp_path / 'errors.db')
    before = set(threading.enumerate())
    app = errorcapture.make_app(path)
    client = webtest.TestApp(app)
    key = create_project(client, 'twice')['hash']
    answer = client.post('/api.php', json.dumps(dict(SUBMISSION, hash=key)), content_type='application/json')
    assert answer.json == {'ok': True, 'id': 1}
    started = set(threading.enumerate()) - before
    assert started, 'make_app started no threads (writer, sweeper, alerter)'
    app.close()
    app.close()
    assert [thread.name for thread in started if thread.is_alive()] == []
    reopened = errorcapture.make_app(path)
    try:
        again = webtest.TestApp(reopened)
        rows = again.get('/api.php?action=errors&hash=%s' % key).json['errors']
        assert [r['message'] for r in rows] == [SUBMISSION['message']]
        answer = again.post('/api.php', json.dumps(dict(SUBMISSION, hash=key)), content_type='application/json')
        assert answer.json == {'ok': True, 'id': 2}
    finally:
        reopened.close()


# -- settings from the environment ------------------------------------------------------------

def test_resolve_options_reads_the_environment():
    settings = errorcapture.resolve_options(environ={
        'ERRORCAPTURE_PORT': '9000', 'ERRORCAPTURE_HOST': '0.0.0.0', 'ERRORCAPTURE_AUTO_CREATE': 'off',
        'ERRORCAPTURE_ALLOW_GET_CLEAR': 'no', 'ERRORCAPTURE_RATE_LIMIT': '60', 'ERRORCAPTURE_DB': '/tmp/x.db'})
    assert settings['port'] == 9000
    assert settings['host'] == '0.0.0.0'
    assert settings['auto_create'] is False and settings['allow_get_clear'] is False
    assert settings['rate_limit'] == 60
    assert settings['db'] == '/tmp/x.db'
    assert settings['threads'] == 8  # untouched: the default


def test_resolve_options_defaults_match_the_readme():
    settings = errorcapture.resolve_options(environ={})
    assert settings['host'] == '127.0.0.1' and settings['port'] == 8080 and settings['db'] == 'errorcapture.db'
    assert settings['threads'] == 8 and settings['auto_create'] is True and settings['allow_get_clear'] is True
    assert settings['rate_limit'] == 0 and settings['max_queue'] == 20000
    assert settings['retention_events'] == 100000 and settings['retention_days'] == 90
    assert settings['synchronous'] == 'normal' and settings['log_level'] == 'info'


@pytest.mark.parametrize('raw,value', [('1', True), ('true', True), ('yes', True), ('on', True), ('TRUE', True),
                                       ('0', False), ('false', False), ('no', False), ('off', False)])
def test_boolean_environment_values(raw, value):
    assert errorcapture.resolve_options(environ={'ERRORCAPTURE_AUTO_CREATE': raw})['auto_create'] is value


def test_bad_environment_values_are_refused():
    with pytest.raises(ValueError):
        errorcapture.resolve_options(environ={'ERRORCAPTURE_AUTO_CREATE': 'maybe'})
    with pytest.raises(ValueError):
        errorcapture.resolve_options(environ={'ERRORCAPTURE_PORT': 'eighty'})


def test_explicit_options_win_over_the_environment():
    settings = errorcapture.resolve_options({'port': 9001, 'auto_create': True},
                                            environ={'ERRORCAPTURE_PORT': '9000', 'ERRORCAPTURE_AUTO_CREATE': '0'})
    assert settings['port'] == 9001 and settings['auto_create'] is True


def test_unknown_option_is_an_error(tmp_path):
    with pytest.raises(TypeError):
        errorcapture.resolve_options({'auto_craete': False}, environ={})


def test_make_app_obeys_environment_variables(tmp_path, clean_env):
    clean_env.setenv('ERRORCAPTURE_AUTO_CREATE', 'off')
    clean_env.setenv('ERRORCAPTURE_ALLOW_GET_CLEAR', 'false')
    clean_env.setenv('ERRORCAPTURE_DB', str(tmp_path / 'from-env.db'))
    app = errorcapture.make_app()
    try:
        client = webtest.TestApp(app)
        answer = client.post('/api.php', json.dumps(SUBMISSION), content_type='application/json', expect_errors=True)
        assert answer.status_int == 403
        key = create_project(client)['hash']
        client.post('/api.php', json.dumps(dict(SUBMISSION, hash=key)), content_type='application/json')
        assert client.get('/api.php?action=clear&hash=%s' % key, expect_errors=True).status_int == 405
    finally:
        app.close()
    assert os.path.exists(str(tmp_path / 'from-env.db'))


def test_make_app_options_win_over_environment_variables(tmp_path, clean_env):
    clean_env.setenv('ERRORCAPTURE_AUTO_CREATE', 'off')
    app = errorcapture.make_app(str(tmp_path / 'errors.db'), auto_create=True)
    try:
        answer = webtest.TestApp(app).post('/api.php', json.dumps(SUBMISSION), content_type='application/json')
        assert answer.json == {'ok': True, 'id': 1}
    finally:
        app.close()


# -- the command line's precedence, without serving -------------------------------------------------

@pytest.fixture
def served(clean_env):
    """Replace serve_forever: main() then just reports the settings it would serve with."""
    calls = []
    clean_env.setattr(errorcapture, 'serve_forever', calls.append)
    return calls


def test_flags_win_over_environment_which_wins_over_defaults(served, clean_env):
    clean_env.setenv('ERRORCAPTURE_PORT', '9000')
    clean_env.setenv('ERRORCAPTURE_AUTO_CREATE', 'off')
    clean_env.setenv('ERRORCAPTURE_THREADS', '3')
    assert errorcapture.main(['--port', '9001', '--allow-get-clear']) == 0
    (settings,) = served
    assert settings['port'] == 9001                 # flag over environment
    assert settings['auto_create'] is False         # environment over default
    assert settings['threads'] == 3
    assert settings['allow_get_clear'] is True      # flag, equal to the default
    assert settings['host'] == '127.0.0.1'          # default


def test_boolean_flags_both_ways(served, clean_env):
    clean_env.setenv('ERRORCAPTURE_AUTO_CREATE', 'off')
    errorcapture.main(['--auto-create'])
    clean_env.setenv('ERRORCAPTURE_AUTO_CREATE', 'on')
    errorcapture.main(['--no-auto-create', '--no-allow-get-clear'])
    assert served[0]['auto_create'] is True
    assert served[1]['auto_create'] is False and served[1]['allow_get_clear'] is False


def other_value(kind, default, name):
    """A value of the option's type that differs from its default."""
    if kind is bool:
        return not default
    if kind in (int, float):
        return kind(default + 1)
    return {'synchronous': 'full', 'log_level': 'debug', 'host': '0.0.0.0', 'spotlight': 'any', 'cpu_affinity': 'off',
            'public_url': 'https://errors.example.com'}.get(name, 'x-' + name)


def test_every_option_is_a_flag(served):
    argv = []
    for name, kind, default, _ in errorcapture.OPTIONS:
        flag = '--' + name.replace('_', '-')
        if kind is bool:
            argv.append(flag if not default else '--no-' + flag[2:])
        else:
            argv += [flag, str(other_value(kind, default, name))]
    assert errorcapture.main(argv) == 0
    (settings,) = served
    for name, kind, default, _ in errorcapture.OPTIONS:
        assert settings[name] == other_value(kind, default, name), name


def test_bad_environment_value_stops_main(served, clean_env, capsys):
    clean_env.setenv('ERRORCAPTURE_PORT', 'eighty')
    assert errorcapture.main([]) != 0
    assert served == []
    assert 'eighty' in capsys.readouterr().err


def test_parser_leaves_unset_flags_empty():
    args = errorcapture.build_parser().parse_args([])
    for name in errorcapture.OPTION_TYPES:
        assert getattr(args, name) is None, name
