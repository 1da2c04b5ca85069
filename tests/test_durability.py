"""Durability of the real server process: acknowledged means committed. The
server runs as a subprocess (python errorcapture.py --db X --port P), is
hammered by concurrent clients, SIGKILLed mid-load and restarted on the same
database; every event it acknowledged must be there, exactly once. A Sentry
event retried after an unanswered request is stored once."""
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from helpers import create_project, free_port, sentry_auth

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the server process ------------------------------------------------------------------

def request(port, method, path, body=None, headers=None, timeout=10):
    """(status, parsed JSON) or raises OSError/HTTPException when there is no complete answer."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        connection.request(method, path, payload, dict({'Content-Type': 'application/json'}, **(headers or {})))
        answer = connection.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None
    finally:
        connection.close()


class Server(object):
    def __init__(self, db, log_path):
        self.db, self.port = db, free_port()
        self.log = open(log_path, 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'errorcapture.py'), '--db', db, '--port', str(self.port),
             '--sweep-interval', '0', '--log-level', 'warning'],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=os.path.dirname(db))
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, 'the server exited with %s' % self.proc.returncode
            try:
                if request(self.port, 'GET', '/health', timeout=2)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert time.monotonic() < deadline, 'the server did not come up within 20 s'
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()


@pytest.fixture
def servers(tmp_path):
    started = []

    def start():
        server = Server(str(tmp_path / 'durable.db'), str(tmp_path / 'server.log'))
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def all_events(port, key):
    """Every stored error event (summaries) of the project."""
    events, cursor = [], None
    while True:
        status, page = request(port, 'GET', '/api/v1/events?limit=500&key=%s%s' % (
            key, '&cursor=' + cursor if cursor else ''), timeout=30)
        assert status == 200, page
        events += page['events']
        cursor = page['nextCursor']
        if not cursor:
            return events


class Load(object):
    """Concurrent clients posting api.php and Sentry store events, each
    remembering what was acknowledged (a complete 200 answer carrying its id)."""

    def __init__(self, port, key, project_id, label, workers=8):
        self.port, self.key, self.project_id, self.label = port, key, project_id, label
        self.api_php = {}   # row id -> message
        self.sentry = set()  # event ids
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.unanswered = 0
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(workers)]

    def acknowledged(self):
        with self.lock:
            return len(self.api_php) + len(self.sentry)

    def run(self, worker):
        index = 0
        while not self.stop.is_set() and index < 5000:
            index += 1
            try:
                if index % 2:
                    message = 'durable %s worker %d event %d' % (self.label, worker, index)
                    status, body = request(self.port, 'POST', '/api.php',
                                           {'hash': self.key, 'level': 'error', 'message': message}, timeout=10)
                    if status == 200 and body.get('ok') is True:
                        with self.lock:
                            self.api_php[body['id']] = message
                else:
                    event_id = uuid.uuid4().hex
                    status, body = request(self.port, 'POST', '/api/%d/store/' % self.project_id,
                                           {'event_id': event_id, 'message': 'sentry %s' % self.label,
                                            'level': 'error'},
                                           sentry_auth(self.key),
                                           timeout=10)
                    if status == 200:
                        assert body['id'] == event_id
                        with self.lock:
                            self.sentry.add(event_id)
            except (OSError, http.client.HTTPException, ValueError):
                self.unanswered += 1
                if self.stop.is_set():
                    return
                time.sleep(0.01)

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self.threads)


def check_everything_acknowledged_is_stored(port, key, loads):
    events = all_events(port, key)
    by_row = {e['id']: e for e in events}
    event_ids = [e['eventId'] for e in events if e['eventId']]
    assert len(event_ids) == len(set(event_ids)), 'a Sentry event is stored twice'
    for load in loads:
        lost = [row for row in load.api_php if row not in by_row]
        assert not lost, 'round %s: %d acknowledged api.php events lost, e.g. %s' % (load.label, len(lost), lost[:5])
        wrong = [row for row, message in load.api_php.items() if by_row[row]['message'] != message]
        assert not wrong, 'round %s: stored under another id: %s' % (load.label, wrong[:5])
        missing = load.sentry - set(event_ids)
        assert not missing, 'round %s: %d acknowledged Sentry events lost, e.g. %s' % (
            load.label, len(missing), sorted(missing)[:5])
    return events


def test_acknowledged_events_survive_sigkill_mid_load_three_times(servers):
    server = servers()
    project = create_project('http://127.0.0.1:%d' % server.port, 'durable')
    key, project_id = project['hash'], project['id']
    loads = []
    for round_number in range(3):
        load = Load(server.port, key, project_id, 'r%d' % round_number)
        loads.append(load)
        load.start()
        deadline = time.monotonic() + 8
        while load.acknowledged() < 400 + 100 * round_number and time.monotonic() < deadline:
            time.sleep(0.02)
        assert load.acknowledged() > 0, 'nothing was acknowledged in round %d' % round_number
        server.kill()  # mid-load: requests are in flight
        load.join()
        server = servers()  # the same database
        check_everything_acknowledged_is_stored(server.port, key, loads)
    events = all_events(server.port, key)
    total_acknowledged = sum(len(l.api_php) + len(l.sentry) for l in loads)
    assert len(events) >= total_acknowledged
    # the issue counts survived too: they equal the stored events per issue
    status, issues = request(server.port, 'GET', '/api/v1/issues?limit=500&key=' + key)
    per_issue = {}
    for event in events:
        per_issue[event['issueId']] = per_issue.get(event['issueId'], 0) + 1
    assert {i['id']: i['count'] for i in issues['issues']} == per_issue
    # and it still takes new events after all that
    status, body = request(server.port, 'POST', '/api.php', {'hash': key, 'level': 'error', 'message': 'after'})
    assert status == 200 and body['ok'] is True
    server.stop()
    conn = sqlite3.connect(server.db)
    try:
        assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    finally:
        conn.close()


def raw_store_request(port, project_id, key, event_id):
    body = json.dumps({'event_id': event_id, 'message': 'retried event', 'level': 'error'}).encode()
    return (b'POST /api/%d/store/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n'
            b'X-Sentry-Auth: %s\r\nContent-Length: %d\r\n\r\n' % (
                project_id, port, sentry_auth(key)['X-Sentry-Auth'].encode(), len(body)) + body)


def test_a_sentry_event_retried_after_an_unanswered_request_is_stored_once(servers):
    server = servers()
    project = create_project('http://127.0.0.1:%d' % server.port, 'retry')
    key, project_id = project['hash'], project['id']
    event_ids = [uuid.uuid4().hex for _ in range(8)]
    sockets = []
    for index, event_id in enumerate(event_ids):
        sock = socket.create_connection(('127.0.0.1', server.port), timeout=5)
        sock.sendall(raw_store_request(server.port, project_id, key, event_id))
        sockets.append(sock)
        if index == 3:
            time.sleep(0.3)  # the first ones very likely committed, the rest likely not
    server.kill()  # nobody read an answer
    for sock in sockets:
        sock.close()
    server = servers()
    headers = sentry_auth(key)
    for event_id in event_ids:
        for _ in range(2):  # the client's retry, and a retry of the retry
            status, body = request(server.port, 'POST', '/api/%d/store/' % project_id,
                                   {'event_id': event_id, 'message': 'retried event', 'level': 'error'}, headers)
            assert status == 200 and body['id'] == event_id
    events = all_events(server.port, key)
    stored = [e['eventId'] for e in events]
    assert sorted(stored) == sorted(event_ids), 'each retried event must be stored exactly once'
    status, issues = request(server.port, 'GET', '/api/v1/issues?key=' + key)
    assert [i['count'] for i in issues['issues']] == [len(event_ids)]


def test_the_same_event_id_sent_concurrently_and_by_envelope_is_stored_once(servers):
    server = servers()
    project = create_project('http://127.0.0.1:%d' % server.port, 'dupes')
    key, project_id = project['hash'], project['id']
    headers = sentry_auth(key)
    event_id = uuid.uuid4().hex
    answers = []

    def send(kind):
        if kind == 'store':
            answers.append(request(server.port, 'POST', '/api/%d/store/' % project_id,
                                   {'event_id': event_id, 'message': 'twin'}, headers))
        else:
            payload = json.dumps({'message': 'twin'}).encode()
            body = (json.dumps({'event_id': event_id}).encode() + b'\n{"type":"event","length":%d}\n' % len(payload)
                    + payload)
            answers.append(request(server.port, 'POST', '/api/%d/envelope/' % project_id, body, headers))

    threads = [threading.Thread(target=send, args=('store' if i % 2 else 'envelope',)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 12
    assert all(status == 200 and body['id'] == event_id for status, body in answers), answers
    events = all_events(server.port, key)
    assert [e['eventId'] for e in events] == [event_id]
    status, issues = request(server.port, 'GET', '/api/v1/issues?key=' + key)
    assert [i['count'] for i in issues['issues']] == [1]
