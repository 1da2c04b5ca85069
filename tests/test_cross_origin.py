"""Keys and settings are never readable or writable from another origin
(issue 16, item 1). CORS is granted where browser SDKs need it, the ingest
endpoints, and nowhere else; requests that are not ingest are refused when
they come from another origin (Origin, Sec-Fetch-Site: a hostile page can send
a "simple" POST without a preflight) or, on loopback, name a host that is not
loopback (DNS rebinding). The listing of every key needs the admin token
unless a local user asks a loopback server directly, not through a proxy."""
import http.client
import json
import uuid

import pytest

import errorcapture
from helpers import create_project


EVIL = {'Origin': 'http://evil.example'}
CROSS_SITE = {'Sec-Fetch-Site': 'cross-site'}



@pytest.mark.parametrize('hostile', [EVIL, CROSS_SITE, {'Sec-Fetch-Site': 'same-site'}, {'Origin': 'null'}])
def test_key_and_data_reads_from_another_origin_are_refused(client, hostile):
    key = create_project(client)['hash']
    for path in ('/api/v1/projects', '/api/v1/project?key=' + key, '/api/v1/issues?key=' + key,
                 '/api/v1/events?key=' + key, '/api.php?action=errors&hash=' + key, '/api.php?action=generate'):
        answer = client.get(path, headers=hostile, expect_errors=True)
        assert answer.status_int == 403, (path, answer.status, answer.body[:200])
        assert 'Access-Control-Allow-Origin' not in answer.headers, path
        assert key not in answer.text


def test_no_cors_on_what_hands_out_keys_even_for_scripts(client):
    key = create_project(client)['hash']
    for path in ('/api/v1/projects', '/api/v1/project?key=' + key, '/api.php?action=generate'):
        answer = client.get(path)
        assert answer.status_int == 200
        assert 'Access-Control-Allow-Origin' not in answer.headers, path
    preflight = client.options('/api/v1/project', headers=dict(EVIL, **{
        'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type'}))
    assert 'Access-Control-Allow-Origin' not in preflight.headers


def test_simple_posts_from_another_origin_change_nothing(client):
    """A form or fetch(no-cors) with text/plain needs no preflight."""
    key = create_project(client)['hash']
    client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'kept'}),
                content_type='application/json')
    for headers in (EVIL, CROSS_SITE):
        answer = client.post('/api/v1/project?key=' + key, json.dumps({'webhookUrl': 'http://evil.example/x',
                                                                      'rateLimit': 1}),
                             headers=headers, content_type='text/plain', expect_errors=True)
        assert answer.status_int == 403
        answer = client.post('/api.php', json.dumps({'action': 'clear', 'hash': key}), headers=headers,
                             content_type='text/plain', expect_errors=True)
        assert answer.status_int == 403 and answer.json['ok'] is False
        answer = client.post('/api.php?action=clear&hash=' + key, headers=headers, expect_errors=True)
        assert answer.status_int == 403
    settings = client.get('/api/v1/project?key=' + key).json['project']['settings']
    assert settings['webhookUrl'] is None and settings['rateLimit'] == 0
    assert len(client.get('/api.php?action=errors&hash=' + key).json['errors']) == 1


def test_ingest_stays_open_to_every_origin(client):
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'from a page'}),
                         headers=EVIL, content_type='application/json')
    assert answer.headers['Access-Control-Allow-Origin'] == '*'
    envelope = b'{}\n{"type":"event"}\n' + json.dumps({'event_id': uuid.uuid4().hex, 'message': 'browser'}).encode()
    answer = client.post('/api/%d/envelope/?sentry_key=%s' % (project_id, key), envelope,
                         headers=dict(EVIL, **CROSS_SITE), content_type='text/plain;charset=UTF-8')
    assert answer.status_int == 200 and answer.headers['Access-Control-Allow-Origin'] == '*'
    for path in ('/api.php', '/api/%d/envelope/' % project_id, '/ingest/v1/errors', '/v1/ingest'):
        preflight = client.options(path, headers=dict(EVIL, **{'Access-Control-Request-Method': 'POST'}))
        assert preflight.headers['Access-Control-Allow-Origin'] == '*', path
    answer = client.get('/health', headers=EVIL)
    assert answer.headers['Access-Control-Allow-Origin'] == '*'


def test_the_viewers_own_origin_is_served(client):
    key = create_project(client)['hash']
    same = {'Origin': 'http://localhost', 'Sec-Fetch-Site': 'same-origin'}  # webtest's host is localhost:80
    assert client.get('/api/v1/project?key=' + key, headers=same).status_int == 200
    answer = client.put('/api/v1/project?key=' + key, json.dumps({'rateLimit': 5}), headers=same,
                        content_type='application/json')
    assert answer.json['project']['settings']['rateLimit'] == 5
    assert client.get('/api/v1/projects', headers={'Sec-Fetch-Site': 'none'}).status_int == 200  # typed in


@pytest.mark.parametrize('host', ['evil.example:8080', 'evil.example', '10.0.0.5:8080', 'localhost.evil.example'])
def test_a_rebinding_host_is_refused_on_loopback(client, host):
    key = create_project(client)['hash']
    for path in ('/api/v1/projects', '/api/v1/project?key=' + key):
        answer = client.get(path, headers={'Host': host}, expect_errors=True)
        assert answer.status_int == 403, (host, path)
        assert 'allowed-hosts' in answer.json['error']


@pytest.mark.parametrize('host', ['localhost:8080', '127.0.0.1', '127.1.2.3:9', '[::1]:8080', 'app.localhost'])
def test_loopback_host_names_are_served(client, host):
    assert client.get('/api/v1/projects', headers={'Host': host}).status_int == 200


def test_public_url_and_allowed_hosts_name_more_hosts(make):
    client = make(public_url='https://errors.example.com', allowed_hosts='errors.lan, other.lan')
    key = create_project(client)['hash']
    for host in ('errors.example.com', 'errors.lan:8080', 'other.lan'):
        assert client.get('/api/v1/project?key=' + key, headers={'Host': host}).status_int == 200, host
    assert client.get('/api/v1/project?key=' + key, headers={'Host': 'evil.example'},
                      expect_errors=True).status_int == 403
    # behind the proxy the viewer's origin is the public one, whatever Host the proxy sends
    answer = client.put('/api/v1/project?key=' + key, json.dumps({'rateLimit': 7}),
                        headers={'Host': '127.0.0.1:8080', 'Origin': 'https://errors.example.com'},
                        content_type='application/json')
    assert answer.status_int == 200


def test_listing_every_key_without_a_token_is_for_local_users_only(make):
    client = make()
    create_project(client)
    assert client.get('/api/v1/projects').status_int == 200
    for extra in ({'X-Forwarded-For': '203.0.113.9'}, {'Forwarded': 'for=203.0.113.9'}, {'X-Real-IP': '203.0.113.9'},
                  {'Via': '1.1 proxy'}):
        answer = client.get('/api/v1/projects', headers=extra, expect_errors=True)
        assert answer.status_int == 403, extra
    answer = client.get('/api/v1/projects', extra_environ={'REMOTE_ADDR': '192.168.1.20'}, expect_errors=True)
    assert answer.status_int == 403
    behind_proxy = make(public_url='https://errors.example.com')
    assert behind_proxy.get('/api/v1/projects', headers={'Host': 'errors.example.com'},
                            expect_errors=True).status_int == 403
    with_token = make(admin_token='t0ken', public_url='https://errors.example.com')
    answer = with_token.get('/api/v1/projects', headers={'Authorization': 'Bearer t0ken', 'X-Forwarded-For': '1.2.3.4',
                                                         'Host': 'errors.example.com'})
    assert answer.status_int == 200


def test_through_waitress_proxy_headers_are_seen_and_dropped(live_server):
    """waitress hands them over; the app notes them, and never builds DSNs from them."""
    key = live_server.project()['hash']
    connection = http.client.HTTPConnection('127.0.0.1', live_server.port, timeout=10)
    connection.request('GET', '/api/v1/projects', headers={'X-Forwarded-For': '203.0.113.9'})
    assert connection.getresponse().status == 403
    connection = http.client.HTTPConnection('127.0.0.1', live_server.port, timeout=10)
    connection.request('GET', '/api/v1/project?key=' + key, headers={'X-Forwarded-Host': 'evil.example',
                                                                     'X-Forwarded-Proto': 'https'})
    answer = json.loads(connection.getresponse().read())
    assert answer['project']['dsn'].startswith('http://%s@127.0.0.1:%d/' % (key, live_server.port))
    connection = http.client.HTTPConnection('127.0.0.1', live_server.port, timeout=10)
    connection.request('GET', '/api/v1/projects', headers={'Host': 'rebound.evil.example:%d' % live_server.port})
    assert connection.getresponse().status == 403
