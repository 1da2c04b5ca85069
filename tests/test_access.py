"""Access: a project key reads its own project only; keys are 32 hex characters
from `secrets` and compared in constant time; the admin token guards creating
and listing projects; GET clear can be switched off; the viewer is served with
strict security headers; and the server warns when exposed without a token."""
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest

import errorcapture
from helpers import create_project, free_port, sentry_auth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEX32 = re.compile(r'^[0-9a-f]{32}$')


# -- helpers ---------------------------------------------------------------------

def post(client, path, body, headers=None, expect_errors=True):
    return client.post(path, json.dumps(body), headers=headers or {}, content_type='application/json',
                       expect_errors=expect_errors)


def populate(client, key, project_id, label):
    """An issue, an event, a monitor with a check-in, a transaction, a log, an
    HTTP request and a replay session in the project; returns their ids."""
    headers = {'X-SeeStack-Key': key}
    event_id = uuid.uuid4().hex
    answer = post(client, '/api/%d/store/' % project_id, {'event_id': event_id, 'message': 'secret of ' + label},
                  sentry_auth(key))
    assert answer.status_int == 200, answer.body
    assert post(client, '/api/v1/monitors?key=' + key, {'slug': 'job-' + label, 'schedule': '1h'}).status_int == 201
    assert post(client, '/ingest/v1/heartbeat', {'slug': 'job-' + label, 'status': 'success'},
                headers).status_int == 202
    now = time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime())
    assert post(client, '/v1/ingest', {'type': 'transaction', 'name': 'GET /' + label, 'traceId': 't-' + label,
                                       'durationMs': 5}, {'X-Open-Sentry-Key': key}).status_int == 202
    assert post(client, '/ingest/v1/logs', {'level': 'info', 'message': 'log of ' + label}, headers).status_int == 202
    assert post(client, '/ingest/v1/http-requests', {'requests': [
        {'traceId': 't', 'direction': 'inbound', 'method': 'GET', 'host': label + '.example', 'path': '/',
         'statusCode': 200, 'durationMs': 1, 'timestamp': now}]}, headers).status_int == 202
    assert post(client, '/ingest/v1/replay', {'fingerprint': label, 'sessionId': 'session-' + label, 'events': [
        {'eventType': 'click', 'eventData': '{}', 'url': 'http://x/', 'timestampMillis': int(time.time() * 1000)}]},
        headers).status_int == 202
    issue = client.get('/api/v1/issues?key=' + key).json['issues'][0]
    event = client.get('/api/v1/events?key=' + key).json['events'][0]
    tx = client.get('/api/v1/transactions/list?key=' + key).json['transactions'][0]
    return {'issue': issue['id'], 'event': event['id'], 'monitor': 'job-' + label, 'transaction': tx['id'],
            'session': 'session-' + label}


@pytest.fixture
def two_projects(client):
    a = create_project(client, 'alpha')
    a_key, a_id = a['hash'], a['id']
    b = create_project(client, 'beta')
    b_key, b_id = b['hash'], b['id']
    a = populate(client, a_key, a_id, 'alpha')
    b = populate(client, b_key, b_id, 'beta')
    return client, (a_key, a_id, a), (b_key, b_id, b)


def assert_read_error(answer, statuses):
    assert answer.status_int in statuses, (answer.status_int, answer.body[:300])
    assert answer.content_type == 'application/json'
    assert isinstance(answer.json.get('error'), str) and answer.json['error']


# -- a key reads its own project only -------------------------------------------------

def test_a_key_cannot_read_another_projects_items(two_projects):
    client, (a_key, _, _), (_, _, b) = two_projects
    for path in ['/api/v1/issues/%d' % b['issue'], '/api/v1/issues/%d/events' % b['issue'],
                 '/api/v1/events/%d' % b['event'], '/api/v1/monitors/%s' % b['monitor'],
                 '/api/v1/transactions/%d' % b['transaction'], '/api/v1/replays/%s' % b['session']]:
        answer = client.get(path + '?key=' + a_key, expect_errors=True)
        assert_read_error(answer, (401, 403, 404))
        assert 'beta' not in answer.text
        # the key in the header instead of the query: the same
        answer = client.get(path, headers={'X-ErrorCapture-Key': a_key}, expect_errors=True)
        assert_read_error(answer, (401, 403, 404))


def test_a_key_cannot_change_another_projects_items(two_projects):
    client, (a_key, _, _), (b_key, _, b) = two_projects
    answer = post(client, '/api/v1/issues/%d?key=%s' % (b['issue'], a_key), {'status': 'resolved'})
    assert_read_error(answer, (401, 403, 404))
    answer = client.put('/api/v1/monitors/%s?key=%s' % (b['monitor'], a_key), json.dumps({'grace': 9}),
                        content_type='application/json', expect_errors=True)
    assert_read_error(answer, (401, 403, 404))
    answer = client.delete('/api/v1/monitors/%s?key=%s' % (b['monitor'], a_key), expect_errors=True)
    assert_read_error(answer, (401, 403, 404))
    # B's items are untouched
    assert client.get('/api/v1/issues/%d?key=%s' % (b['issue'], b_key)).json['issue']['status'] == 'unresolved'
    monitor = client.get('/api/v1/monitors/%s?key=%s' % (b['monitor'], b_key)).json['monitor']
    assert monitor['grace'] != 9


def test_lists_show_only_the_keys_own_project(two_projects):
    client, (a_key, _, a), (b_key, _, b) = two_projects
    for path in ['/api/v1/issues', '/api/v1/events', '/api/v1/monitors', '/api/v1/transactions/list',
                 '/api/v1/transactions', '/api/v1/logs', '/api/v1/http-requests', '/api/v1/replays', '/api/v1/ai',
                 '/api/v1/http-requests/stats', '/api/v1/project']:
        answer = client.get(path + '?key=' + a_key)
        assert 'beta' not in answer.text, (path, answer.text[:300])
        assert b_key not in answer.text
    rows = client.get('/api.php?action=errors&hash=' + a_key).json['errors']
    assert rows and all('beta' not in json.dumps(row) for row in rows)


def test_clear_with_one_key_leaves_other_projects_alone(two_projects):
    client, (a_key, _, _), (b_key, _, _) = two_projects
    assert client.post('/api.php?action=clear&hash=' + a_key).json['ok'] is True
    assert client.get('/api/v1/events?key=' + a_key).json['events'] == []
    assert len(client.get('/api/v1/events?key=' + b_key).json['events']) == 1


def test_sentry_key_of_another_project_is_refused(two_projects):
    client, (a_key, _, _), (_, b_id, _) = two_projects
    answer = post(client, '/api/%d/store/' % b_id, {'message': 'x'}, sentry_auth(a_key))
    assert answer.status_int in (401, 403) and 'detail' in answer.json


@pytest.mark.parametrize('key', [None, '', 'nope', '0' * 32, 'A' * 32, ' ', "' OR 1=1 --", '%', 'k' * 5000])
def test_missing_or_unknown_keys_are_refused(client, key):
    real = create_project(client, 'real')['hash']
    populate(client, real, client.get('/api/v1/project?key=' + real).json['project']['id'], 'real')
    query = '' if key is None else '?key=' + key.replace('%', '%25').replace(' ', '%20').replace("'", '%27')
    for path in ('/api/v1/issues', '/api/v1/events', '/api/v1/project', '/api/v1/monitors'):
        answer = client.get(path + query, expect_errors=True)
        assert_read_error(answer, (401,))
        assert real not in answer.text


def test_a_key_with_different_case_or_padding_is_not_the_key(client):
    key = create_project(client, 'exact')['hash']
    assert client.get('/api/v1/project?key=' + key).status_int == 200
    for variant in (key.upper(), key[:-1], key + '0', key[1:] + key[0]):
        assert_read_error(client.get('/api/v1/project?key=' + variant, expect_errors=True), (401,))


# -- keys and their comparison ----------------------------------------------------------

def test_generated_keys_are_32_hex_from_secrets(client, monkeypatch):
    calls = []
    original = errorcapture.secrets.token_hex

    def spy(nbytes=None):
        value = original(nbytes)
        calls.append((nbytes, value))
        return value
    monkeypatch.setattr(errorcapture.secrets, 'token_hex', spy)
    keys = set()
    for index in range(20):
        key = create_project(client, 'k%d' % index)['hash']
        assert HEX32.match(key), key
        keys.add(key)
    created = client.post('/api/v1/projects', json.dumps({'name': 'via read api'}),
                          content_type='application/json').json['project']['key']
    assert HEX32.match(created)
    keys.add(created)
    assert len(keys) == 21
    assert {value for _, value in calls} >= keys  # every key came from secrets.token_hex
    assert all(nbytes == 16 for nbytes, _ in calls)


def test_project_by_key_compares_in_constant_time(client, monkeypatch):
    key = create_project(client, 'timing')['hash']
    calls = []
    original = errorcapture.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)
    monkeypatch.setattr(errorcapture.hmac, 'compare_digest', spy)
    store = client.wsgi.store
    assert store.project_by_key(key)['key'] == key
    assert any(key.encode() in (a, b) or key in (a, b) for a, b in calls), calls
    calls.clear()
    assert store.project_by_key(key)['key'] == key  # served from the cache: still compared
    assert calls
    calls.clear()
    # through a request as well
    assert client.get('/api/v1/project?key=' + key).status_int == 200
    assert calls
    # a near miss is refused, whatever the cache holds
    assert store.project_by_key(key[:-1] + ('0' if key[-1] != '0' else '1')) is None


def test_admin_token_is_compared_in_constant_time(make, monkeypatch):
    client = make(admin_token='t0ken', sweep_interval=0)
    calls = []
    original = errorcapture.hmac.compare_digest
    monkeypatch.setattr(errorcapture.hmac, 'compare_digest', lambda a, b: calls.append((a, b)) or original(a, b))
    client.get('/api/v1/projects', headers={'Authorization': 'Bearer wrong'}, expect_errors=True)
    assert any(b't0ken' in (a, b) or 't0ken' in (a, b) for a, b in calls)


# -- the admin token ---------------------------------------------------------------

def test_admin_token_guards_creating_and_listing_projects(make):
    client = make(admin_token='t', sweep_interval=0)
    for headers in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': 'Bearer '},
                    {'Authorization': 't'}, {'Authorization': 'Basic dDp0'}, {'Authorization': 'Bearer tt'}):
        answer = post(client, '/api/v1/projects', {'name': 'x'}, headers)
        assert_read_error(answer, (401, 403))
        answer = client.get('/api/v1/projects', headers=headers, expect_errors=True)
        assert_read_error(answer, (401, 403))
    created = post(client, '/api/v1/projects', {'name': 'allowed'}, {'Authorization': 'Bearer t'})
    assert created.status_int == 201, created.body
    listed = client.get('/api/v1/projects', headers={'Authorization': 'Bearer t'})
    assert listed.status_int == 200
    assert [p['name'] for p in listed.json['projects']] == ['allowed']
    # the project's own key still reads it without the token
    key = created.json['project']['key']
    assert client.get('/api/v1/project?key=' + key).json['project']['name'] == 'allowed'


def test_without_admin_token_projects_listing_is_refused_on_an_exposed_host(make):
    client = make(host='0.0.0.0', sweep_interval=0)
    answer = client.get('/api/v1/projects', expect_errors=True)
    assert_read_error(answer, (401, 403))


def test_without_admin_token_loopback_server_lists_projects(make):
    client = make(sweep_interval=0)
    create_project(client, 'local')
    assert [p['name'] for p in client.get('/api/v1/projects').json['projects']] == ['local']


# -- clear ---------------------------------------------------------------------------

def test_get_clear_disabled_answers_405_but_post_clear_works(make):
    client = make(allow_get_clear=False, sweep_interval=0)
    key = create_project(client, 'clear')['hash']
    for index in range(3):
        post(client, '/api.php', {'hash': key, 'level': 'error', 'message': 'm%d' % index}, expect_errors=False)
    answer = client.get('/api.php?action=clear&hash=' + key, expect_errors=True)
    assert answer.status_int == 405
    assert answer.json['ok'] is False and answer.json['error']
    assert len(client.get('/api.php?action=errors&hash=' + key).json['errors']) == 3  # nothing deleted
    answer = client.post('/api.php?action=clear&hash=' + key)
    assert answer.json == {'ok': True, 'deleted': 3}
    post(client, '/api.php', {'hash': key, 'level': 'error', 'message': 'again'}, expect_errors=False)
    answer = post(client, '/api.php', {'action': 'clear', 'hash': key}, expect_errors=False)
    assert answer.json == {'ok': True, 'deleted': 1}


def test_get_clear_enabled_by_default(client):
    key = create_project(client, 'clear')['hash']
    post(client, '/api.php', {'hash': key, 'level': 'error', 'message': 'm'}, expect_errors=False)
    assert client.get('/api.php?action=clear&hash=' + key).json == {'ok': True, 'deleted': 1}


# -- viewer headers ------------------------------------------------------------------

@pytest.mark.parametrize('path', ['/', '/static/index.html', '/static/app.js', '/static/style.css'])
def test_viewer_is_served_with_security_headers(client, path):
    answer = client.get(path)
    assert answer.status_int == 200
    csp = answer.headers.get('Content-Security-Policy', '')
    directives = {part.strip().split(' ')[0]: part.strip() for part in csp.split(';') if part.strip()}
    assert directives.get('frame-ancestors') == "frame-ancestors 'none'", csp
    assert "'unsafe-inline'" not in directives.get('script-src', directives.get('default-src', ''))
    assert 'default-src' in directives
    assert answer.headers.get('X-Content-Type-Options') == 'nosniff'
    assert answer.headers.get('X-Frame-Options', '').upper() in ('DENY', 'SAMEORIGIN')


def test_static_files_cannot_escape_the_static_directory(client):
    for path in ('/static/../errorcapture.py', '/static/%2e%2e/errorcapture.py', '/static/..%2ferrorcapture.py',
                 '/static//etc/passwd', '/static/%2fetc%2fpasswd'):
        answer = client.get(path, expect_errors=True)
        assert answer.status_int in (400, 403, 404), (path, answer.status_int)
        assert b'def make_app' not in answer.body and b'root:' not in answer.body


# -- the exposed-without-token warning ------------------------------------------------

def start_and_read_stderr(tmp_path, *args, until=('serving', 'Serving'), timeout=20):
    """Start the server with args, collect stderr until a line containing one of
    `until` (or timeout), terminate it, return the collected text."""
    command = [sys.executable, os.path.join(ROOT, 'errorcapture.py'), '--db', str(tmp_path / 'warn.db'),
               '--port', str(free_port()), '--sweep-interval', '0'] + list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ERRORCAPTURE_')}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(tmp_path), env=env)
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.decode('utf-8', 'replace'))
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if any(mark in line for mark in until):
                break
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return ''.join(seen)


def test_server_warns_when_bound_to_all_interfaces_without_admin_token(tmp_path):
    output = start_and_read_stderr(tmp_path, '--host', '0.0.0.0')
    assert 'serving' in output.lower(), output
    warning = [line for line in output.splitlines() if 'WARNING' in line or 'warning' in line.lower()]
    assert warning, output
    assert 'admin-token' in warning[0] and '0.0.0.0' in warning[0], warning


def test_no_warning_with_an_admin_token_or_on_loopback(tmp_path):
    for args in (('--host', '0.0.0.0', '--admin-token', 'secret-token'), ('--host', '127.0.0.1')):
        output = start_and_read_stderr(tmp_path, *args)
        assert 'serving' in output.lower(), output
        assert 'admin-token' not in output, output
        assert 'secret-token' not in output  # the token is never logged
