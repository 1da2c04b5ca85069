"""Spotlight's sidecar: `POST /stream` takes the envelopes Sentry SDKs send in
development (SENTRY_SPOTLIGHT=http://127.0.0.1:PORT/stream), with no key, into a
local project named `spotlight`, from loopback only unless configured. Tested
with the real sentry-sdk's Spotlight support, run as tests/sdk_client.py runs it."""
import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest

from helpers import create_project

pytest.importorskip('sentry_sdk')
HERE = os.path.dirname(os.path.abspath(__file__))


def run_sdk(dsn, scenario, spotlight_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SENTRY_')}
    env['SENTRY_SPOTLIGHT'] = spotlight_url
    done = subprocess.run([sys.executable, os.path.join(HERE, 'sdk_client.py'), dsn, scenario], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def get(server, path, key):
    with urllib.request.urlopen('%s%s%skey=%s' % (server.url, path, '&' if '?' in path else '?', key),
                                timeout=30) as answer:
        return json.loads(answer.read())


def spotlight_project(server):
    with urllib.request.urlopen(server.url + '/api/v1/projects', timeout=30) as answer:
        projects = json.loads(answer.read())['projects']
    found = [p for p in projects if p['name'] == 'spotlight']
    assert len(found) == 1, projects
    return found[0]


def test_sentry_sdk_with_spotlight_and_no_dsn(live_server):
    sent = run_sdk('', 'error_twice', live_server.url + '/stream')
    project = spotlight_project(live_server)
    issues = get(live_server, '/api/v1/issues', project['key'])['issues']
    assert [(i['title'], i['count']) for i in issues] == [('ZeroDivisionError: division by zero', 2)]
    rows = get(live_server, '/api/v1/events', project['key'])['events']
    assert sorted(r['eventId'] for r in rows) == sorted(sent['eventIds'])
    event = get(live_server, '/api/v1/events/%d' % rows[0]['id'], project['key'])['event']
    assert [f['function'] for f in event['exception'][-1]['frames']][-2:] == ['split_bill', 'divide']


def test_sentry_sdk_sends_to_its_dsn_and_to_spotlight(live_server):
    own = live_server.project('with-dsn')
    sent = run_sdk(own['dsn'], 'message', live_server.url + '/stream')
    assert [e['eventId'] for e in get(live_server, '/api/v1/events', own['key'])['events']] == sent['eventIds']
    spotlight = spotlight_project(live_server)
    assert [e['eventId'] for e in get(live_server, '/api/v1/events', spotlight['key'])['events']] == sent['eventIds']


def envelope(message='from spotlight'):
    event = json.dumps({'event_id': uuid.uuid4().hex, 'message': message}).encode()
    return b'{"dsn": "https://someone@o1.ingest.sentry.io/1"}\n' + json.dumps(
        {'type': 'event', 'length': len(event)}).encode() + b'\n' + event + b'\n'


def post_stream(client, address, body=None):
    return client.post('/stream', body or envelope(), content_type='application/x-sentry-envelope',
                       extra_environ={'REMOTE_ADDR': address}, expect_errors=True)


def test_no_key_is_needed_and_the_dsn_in_the_envelope_is_ignored(client):
    assert post_stream(client, '127.0.0.1').status_int == 200
    assert post_stream(client, '::1').status_int == 200
    projects = client.get('/api/v1/projects').json['projects']
    assert [p['name'] for p in projects] == ['spotlight']
    rows = client.get('/api/v1/events', params={'key': projects[0]['key']}).json['events']
    assert len(rows) == 2


def test_only_loopback_unless_configured(make):
    client = make()
    answer = post_stream(client, '192.0.2.10')
    assert answer.status_int == 403 and 'this machine only' in answer.headers['X-Sentry-Error']
    assert client.get('/api/v1/projects').json['projects'] == []
    anyone = make(spotlight='any')
    assert post_stream(anyone, '192.0.2.10').status_int == 200
    off = make(spotlight='off')
    assert post_stream(off, '127.0.0.1').status_int == 404


def test_the_spotlight_project_is_reused(client):
    create_project(client, 'another')
    for _ in range(3):
        assert post_stream(client, '127.0.0.1').status_int == 200
    names = sorted(p['name'] for p in client.get('/api/v1/projects').json['projects'])
    assert names == ['another', 'spotlight']


def test_a_bad_envelope_is_400_in_the_sentry_format(client):
    answer = post_stream(client, '127.0.0.1', b'not an envelope')
    assert answer.status_int == 400 and answer.json['detail'] and answer.headers['X-Sentry-Error']


def test_a_browser_sdk_may_send_from_its_page(client):
    answer = client.options('/stream', headers={'Origin': 'http://localhost:5173',
                                                'Access-Control-Request-Method': 'POST',
                                                'Access-Control-Request-Headers': 'content-type'})
    assert answer.status_int == 204
    assert 'Content-Type' in answer.headers['Access-Control-Allow-Headers']
