"""A clear cut short by SIGKILL leaves every issue's count equal to its stored
events (issue 16, item 8): the server runs as a real process, clears a big
project and is killed while the clear is under way."""
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

import pytest

import errorcapture
from helpers import free_port

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS, ISSUES = 150000, 300



def seed(db):
    """A project with EVENTS events over ISSUES issues, counts right, written
    straight into a database the server made (quicker than 150,000 requests)."""
    app = errorcapture.make_app(db, sweep_interval=0)
    try:
        project = app.store.create_project('big', key='b' * 32)
    finally:
        app.close()
    conn = sqlite3.connect(db)
    with conn:
        received = time.time()
        per_issue = EVENTS // ISSUES
        conn.executemany(
            'INSERT INTO issues(id, project_id, fingerprint, title, level, count, first_seen, last_seen)'
            ' VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            [(n, project['id'], 'f%d' % n, 'Issue %d' % n, 'error', per_issue, received, received)
             for n in range(1, ISSUES + 1)])
        conn.executemany('INSERT INTO issue_hours(issue_id, hour, count) VALUES (?, ?, ?)',
                         [(n, int(received // 3600), per_issue) for n in range(1, ISSUES + 1)])
        conn.executemany('INSERT INTO events(project_id, issue_id, received, data) VALUES (?, ?, ?, ?)',
                         ((project['id'], 1 + n % ISSUES, received, '{"message":"m","level":"error"}')
                          for n in range(EVENTS)))
    conn.close()
    return project


def mismatches(db):
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute('SELECT i.id, i.count, (SELECT COUNT(*) FROM events e WHERE e.issue_id=i.id)'
                            ' FROM issues i').fetchall()
        orphans = conn.execute('SELECT COUNT(*) FROM events WHERE issue_id NOT IN (SELECT id FROM issues)').fetchone()
        left = conn.execute('SELECT COUNT(*) FROM events').fetchone()[0]
        return [row for row in rows if row[1] != row[2]], orphans[0], left
    finally:
        conn.close()


def start_server(db, port, log):
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'errorcapture.py'), '--db', db, '--port', str(port),
                             '--sweep-interval', '0', '--log-level', 'warning'], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, 'the server exited'
        try:
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            connection.request('GET', '/health')
            if connection.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail('the server did not come up')


def events_left(db):
    conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5)
    try:
        return conn.execute('SELECT COUNT(*) FROM events').fetchone()[0]
    finally:
        conn.close()


def test_a_clear_killed_midway_leaves_counts_equal_to_stored_events(tmp_path):
    db = str(tmp_path / 'clear.db')
    project = seed(db)
    assert mismatches(db) == ([], 0, EVENTS)
    killed_midway = 0
    with open(str(tmp_path / 'server.log'), 'ab') as log:
        for attempt in range(3):
            port = free_port()
            proc = start_server(db, port, log)
            try:
                before = events_left(db)

                def clear():
                    try:
                        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
                        connection.request('POST', '/api.php?action=clear&hash=' + project['key'])
                        connection.getresponse().read()
                    except (OSError, http.client.HTTPException):
                        pass  # cut off by the kill
                threading.Thread(target=clear, daemon=True).start()
                deadline = time.monotonic() + 60
                while events_left(db) == before and time.monotonic() < deadline:
                    time.sleep(0.005)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            wrong, orphans, left = mismatches(db)
            assert wrong == [] and orphans == 0, 'after kill %d: %d issues miscounted, e.g. %r; %d orphans' % (
                attempt + 1, len(wrong), wrong[:5], orphans)
            if 0 < left < before:
                killed_midway += 1
            if left == 0:
                break
    assert killed_midway, 'no kill landed in the middle of a clear'
    # a clear after the crash finishes the job
    with open(str(tmp_path / 'server.log'), 'ab') as log:
        port = free_port()
        proc = start_server(db, port, log)
        try:
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
            connection.request('POST', '/api.php?action=clear&hash=' + project['key'])
            assert json.loads(connection.getresponse().read())['ok'] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    conn = sqlite3.connect(db)
    assert conn.execute('SELECT COUNT(*) FROM events').fetchone()[0] == 0
    assert conn.execute('SELECT COUNT(*) FROM issues').fetchone()[0] == 0
    conn.close()
