"""The hostile corpus (tests/hostile_corpus.py) against every ingest endpoint and
the read API over a real server: every hostile request gets a 4xx in its
dialect's own error format (or, where the input is merely odd, is accepted),
never a 5xx, never a hang; the server still answers /health afterwards; and a
server process fed the heavy part of the corpus keeps its memory bounded."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import hostile_corpus as hc
from helpers import create_project, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- fixtures and helpers ------------------------------------------------------

def get_json(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def post_json(url, body, headers=None, method='POST'):
    request = urllib.request.Request(url, json.dumps(body).encode(), dict({'Content-Type': 'application/json'},
                                                                         **(headers or {})), method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


def prepare(base_url):
    """A project with an issue and the monitor the heartbeat corpus pings, plus
    a second project; returns the corpus context."""
    project = create_project(base_url, 'hostile')
    other = create_project(base_url, 'other')
    key = project['hash']
    status, answer = post_json(base_url + '/api.php', {'hash': key, 'level': 'error', 'message': 'seed issue'})
    assert status == 200, answer
    issues = get_json(base_url + '/api/v1/issues?key=' + key)['issues']
    status, _ = post_json(base_url + '/api/v1/monitors?key=' + key,
                          {'slug': 'hostile-job', 'name': 'Hostile job', 'schedule': '1d', 'grace': 30})
    assert status == 201
    return {'key': key, 'project_id': project['id'], 'issue_id': issues[0]['id'], 'other_key': other['hash']}


@pytest.fixture
def target(live_server):
    return live_server, prepare(live_server.url)


def request_for(endpoint, case, ctx):
    headers = list(case.headers)
    overridden = {name.lower() for name, _ in headers}
    if endpoint.key_header and endpoint.key_header.lower() not in overridden:
        headers = endpoint.headers(ctx, case.key) + headers
    if 'content-type' not in overridden:
        headers.append(('Content-Type', 'application/json'))
    return (case.method or endpoint.method, case.path or endpoint.url(ctx), case.body, headers)


def run_corpus(port, endpoint, cases, ctx):
    """Send each case; return one line per case whose answer misses its expectation."""
    failures = []
    for case in cases:
        method, path, body, headers = request_for(endpoint, case, ctx)
        answer = hc.send(port, method, path, body, headers, timeout=30, content_length=case.content_length)
        problem = hc.judge(endpoint.dialect, case.expect, answer)
        if problem:
            failures.append('%s %s [%s]: %s; answer %r' % (method, path.split('?')[0], case.name, problem, answer))
    return failures


def assert_healthy(port):
    answer = hc.send(port, 'GET', '/health', timeout=10)
    assert answer.status == 200 and answer.json == {'status': 'ok'}, answer


def report(failures):
    return '%d hostile requests answered wrongly:\n%s' % (len(failures), '\n'.join(failures))


# -- the corpus, one test per endpoint ---------------------------------------------

@pytest.mark.parametrize('endpoint', hc.ENDPOINTS, ids=[e.name.replace(' ', '-') for e in hc.ENDPOINTS])
def test_hostile_corpus_gets_4xx_in_dialect_format(target, endpoint):
    server, ctx = target
    failures = run_corpus(server.port, endpoint, hc.corpus(endpoint, ctx), ctx)
    assert_healthy(server.port)
    assert not failures, report(failures)


def test_sentry_envelope_framing_attacks(target):
    server, ctx = target
    endpoint = hc.ENDPOINTS_BY_NAME['sentry envelope']
    failures = run_corpus(server.port, endpoint, hc.envelope_cases(ctx), ctx)
    assert_healthy(server.port)
    assert not failures, report(failures)


def test_hostile_query_strings_and_path_ids(target):
    server, ctx = target
    failures = []
    for name, path, dialect in hc.read_query_cases(ctx):
        answer = hc.send(server.port, 'GET', path, timeout=30)
        problem = hc.judge(dialect, hc.TOLERATE, answer)
        if problem:
            failures.append('GET %s [%s]: %s; answer %r' % (path[:120], name, problem, answer))
    assert_healthy(server.port)
    assert not failures, report(failures)


def test_a_key_in_the_read_api_header_that_is_not_utf8(target):
    server, ctx = target
    answer = hc.send(server.port, 'GET', '/api/v1/issues', headers=[('X-ErrorCapture-Key', b'\xff\xfe')])
    assert hc.judge('read', hc.REJECT, answer) is None, answer


# -- bodies shorter than their Content-Length ------------------------------------

def partial_request(endpoint, ctx, port):
    """Headers promising 1000 bytes more than the body that follows."""
    case = hc.Case('short', endpoint.wrap(b'{"a": 1'), hc.REJECT)
    method, path, body, headers = request_for(endpoint, case, ctx)
    return hc.build_request(method, path, body, headers, port, content_length=len(body) + 1000)


@pytest.mark.slow
def test_bodies_shorter_than_content_length_do_not_hang_anything(target):
    """Every endpoint at once, each on a connection that promises more body than
    it sends: within a bounded wait the server either keeps waiting (the test's
    socket timeout ends it) or answers a 4xx; it never answers 2xx/5xx, and
    while all those connections hang it still serves other clients."""
    server, ctx = target
    results = {}

    def hold(endpoint, half_close):
        data = partial_request(endpoint, ctx, server.port)
        results[(endpoint.name, half_close)] = hc.send(server.port, None, None, raw=data, timeout=3.0,
                                                       half_close=half_close)

    threads = [threading.Thread(target=hold, args=(endpoint, half_close))
               for endpoint in hc.ENDPOINTS for half_close in (False, True)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert_healthy(server.port)  # served while every partial request is pending
    for thread in threads:
        thread.join(15)
    assert len(results) == len(threads)
    failures = []
    for (name, half_close), answer in sorted(results.items()):
        if answer.status is None:
            continue  # still waiting for the promised bytes, or closed without answering: both fine
        if not 400 <= answer.status < 500:
            failures.append('%s (half-closed: %s): %r' % (name, half_close, answer))
    assert not failures, '\n'.join(failures)
    assert_healthy(server.port)
    # and a normal submission still goes through
    status, answer = post_json(server.url + '/api.php', {'hash': ctx['key'], 'level': 'error', 'message': 'after'})
    assert status == 200 and answer['ok'] is True


@pytest.mark.slow
def test_many_stalled_connections_do_not_starve_the_server(target):
    server, ctx = target
    endpoint = hc.ENDPOINTS_BY_NAME['api.php']
    data = partial_request(endpoint, ctx, server.port)
    sockets = []
    try:
        for _ in range(50):  # below waitress's connection limit (100 in serve_in_background)
            sock = socket.create_connection(('127.0.0.1', server.port), timeout=5)
            sock.sendall(data)
            sockets.append(sock)
        for _ in range(5):
            assert_healthy(server.port)
        status, answer = post_json(server.url + '/api.php', {'hash': ctx['key'], 'level': 'error', 'message': 'x'})
        assert status == 200 and answer['ok'] is True
    finally:
        for sock in sockets:
            sock.close()


# -- memory stays bounded --------------------------------------------------------

def vm_status(pid):
    values = {}
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            name, _, rest = line.partition(':')
            if name in ('VmRSS', 'VmHWM'):
                values[name] = int(rest.split()[0]) * 1024
    return values


@pytest.fixture
def server_process(tmp_path):
    port = free_port()
    log = open(str(tmp_path / 'server.log'), 'wb')
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'errorcapture.py'), '--db', str(tmp_path / 'rss.db'),
                             '--port', str(port), '--sweep-interval', '0', '--log-level', 'error'],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    deadline = time.monotonic() + 20
    while True:
        try:
            if hc.send(port, 'GET', '/health', timeout=2).status == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None, 'the server exited: %s' % open(str(tmp_path / 'server.log')).read()
        assert time.monotonic() < deadline, 'the server did not start'
        time.sleep(0.1)
    yield proc, port
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log.close()


HEAVY = ('10 MB', 'bomb', 'nesting: 10,000', 'just under the body limit', 'just over', '100 KB', '1 MB header')


@pytest.mark.slow
def test_server_memory_stays_bounded_under_the_heavy_corpus(server_process):
    """10 MB strings, 10,000-level nesting, 100 KB headers to every endpoint and
    1 GB compression bombs to Sentry: the server's resident memory after all of
    it, and its peak (VmHWM), stay under 300 MB."""
    proc, port = server_process
    ctx = prepare('http://127.0.0.1:%d' % port)
    before = vm_status(proc.pid)
    failures = []
    for endpoint in hc.ENDPOINTS:
        cases = [c for c in hc.corpus(endpoint, ctx) if any(mark in c.name for mark in HEAVY)]
        failures += run_corpus(port, endpoint, cases, ctx)
    assert_healthy(port)
    after = vm_status(proc.pid)
    limit = 300 << 20
    assert after['VmRSS'] < limit, 'RSS %d MB after the corpus (before: %d MB)' % (after['VmRSS'] >> 20,
                                                                                    before['VmRSS'] >> 20)
    assert after['VmHWM'] < limit, 'peak RSS %d MB during the corpus' % (after['VmHWM'] >> 20)
    assert not failures, report(failures)


@pytest.mark.slow
def test_concurrent_compression_bombs_keep_memory_bounded(server_process):
    """Eight 1 GB gzip bombs at once (one per waitress worker thread): all
    refused with a 4xx, and the server's peak memory stays under 300 MB."""
    proc, port = server_process
    ctx = prepare('http://127.0.0.1:%d' % port)
    endpoint = hc.ENDPOINTS_BY_NAME['sentry envelope']
    bomb = hc.zero_bomb('gzip')
    headers = endpoint.headers(ctx) + [('Content-Encoding', 'gzip'), ('Content-Type', 'application/x-sentry-envelope')]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(hc.send(port, 'POST', endpoint.url(ctx), bomb, headers)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert_healthy(port)
    problems = [hc.judge('sentry', hc.REJECT, answer) for answer in answers]
    assert len(answers) == 8 and not any(problems), problems
    peak = vm_status(proc.pid)['VmHWM']
    assert peak < 300 << 20, 'peak RSS %d MB while decoding 8 bombs at once' % (peak >> 20)
