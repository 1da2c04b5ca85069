"""Storage faults: a database locked by another process, and a full disk
(simulated with PRAGMA max_page_count on the writer's connection, and for real
on a tiny tmpfs when this runs as root). Ingest answers 503 with Retry-After in
the dialect's format, recovers by itself, loses nothing it acknowledged, and
leaves a database that passes PRAGMA integrity_check."""
import functools
import json
import os
import random
import sqlite3
import string
import subprocess
import threading
import time
import uuid

import pytest
import webtest

import errorcapture
from helpers import create_project, sentry_auth
import hostile_corpus as hc


# -- helpers ---------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def big(n):
    """15 KiB of text, under MAX_STRING so it is stored whole, that deflate
    (stored events are deflated) cannot shrink much; each n its own, so that
    copies in one event do not compress against each other either."""
    rng = random.Random(n)
    return ''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(15 << 10))


def big_api_php(client, key, index):
    body = {'hash': key, 'level': 'error', 'message': 'full disk %d %s' % (index, big(1000 + index)),
            'request': {'method': 'POST', 'url': 'http://x/', 'post': {'f%d' % i: big(i) for i in range(40)}}}
    return client.post('/api.php', json.dumps(body), content_type='application/json', expect_errors=True)


def big_sentry(client, key, project_id, event_id):
    body = {'event_id': event_id, 'message': 'full disk sentry', 'extra': {'x%d' % i: big(i) for i in range(40)}}
    return client.post('/api/%d/store/' % project_id, json.dumps(body), headers=sentry_auth(key),
                       content_type='application/json', expect_errors=True)


from hostile_corpus import Reply  # noqa: E402


def assert_unavailable(response, dialect):
    reply = Reply(response)
    assert reply.status == 503, reply
    assert hc.format_problem(dialect, reply) is None, (hc.format_problem(dialect, reply), reply)
    assert (reply.header('Retry-After') or '').isdigit(), reply.headers
    return reply


def stored_event_ids(client, key):
    """(row ids, Sentry event ids) of every stored error event of the project."""
    rows, event_ids, cursor = set(), set(), None
    while True:
        page = client.get('/api/v1/events?limit=500&key=%s%s' % (key, '&cursor=' + cursor if cursor else '')).json
        for event in page['events']:
            rows.add(event['id'])
            if event['eventId']:
                event_ids.add(event['eventId'])
        cursor = page['nextCursor']
        if not cursor:
            return rows, event_ids


def integrity(path):
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute('PRAGMA integrity_check').fetchall()]
    finally:
        conn.close()


class Ledger(object):
    """What the server acknowledged."""

    def __init__(self):
        self.rows, self.event_ids, self.refused = set(), set(), []

    def api_php(self, response):
        if response.status_int == 200:
            self.rows.add(response.json['id'])
        else:
            self.refused.append(Reply(response))
        return response.status_int

    def sentry(self, response, event_id):
        if response.status_int == 200:
            assert response.json['id'] == event_id
            self.event_ids.add(event_id)
        else:
            self.refused.append(Reply(response))
        return response.status_int

    def assert_all_stored(self, client, key):
        rows, event_ids = stored_event_ids(client, key)
        assert self.rows <= rows, 'acknowledged api.php events lost: %s' % sorted(self.rows - rows)
        assert self.event_ids <= event_ids, 'acknowledged Sentry events lost: %s' % sorted(self.event_ids - event_ids)
        return rows, event_ids


def fill_until_full(client, key, project_id, ledger, attempts=300):
    """Alternate big api.php and Sentry events until one is refused; returns that refusal."""
    for index in range(attempts):
        if index % 2:
            event_id = uuid.uuid4().hex
            response = big_sentry(client, key, project_id, event_id)
            if ledger.sentry(response, event_id) != 200:
                return response, 'sentry'
        else:
            response = big_api_php(client, key, index)
            if ledger.api_php(response) != 200:
                return response, 'errorcapture'
    pytest.fail('the database never filled up after %d big events' % attempts)


# -- a locked database ----------------------------------------------------------------

@pytest.mark.slow
def test_a_database_locked_by_another_process_answers_503_and_recovers(make):
    client = make(sweep_interval=0)
    created = create_project(client, 'faults')
    key, project_id = created['hash'], created['id']
    ledger = Ledger()
    assert ledger.api_php(client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'before'}),
                                      content_type='application/json')) == 200
    locker = sqlite3.connect(client.wsgi.store.path, isolation_level=None, timeout=0)
    try:
        locker.execute('BEGIN EXCLUSIVE')
        # reads do not need the write lock
        assert client.get('/api/v1/issues?key=' + key).status_int == 200
        # a write waits out the busy timeout (~5 s), then is refused with 503
        refused = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'while locked'}),
                              content_type='application/json', expect_errors=True)
        assert_unavailable(refused, 'errorcapture')
        assert 'lock' in refused.json['error'].lower() or 'unavailable' in refused.json['error'].lower()
        locker.execute('ROLLBACK')

        # recovers on its own: a write waiting on the lock goes through once it is released
        locker.execute('BEGIN EXCLUSIVE')
        result = {}

        def waiting_write():
            event_id = uuid.uuid4().hex
            response = client.post('/api/%d/store/' % project_id, json.dumps({'event_id': event_id,
                                                                              'message': 'waited'}),
                                   headers=sentry_auth(key), content_type='application/json', expect_errors=True)
            result['status'] = ledger.sentry(response, event_id)

        thread = threading.Thread(target=waiting_write)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), 'the write did not wait for the lock'
        locker.execute('ROLLBACK')
        thread.join(15)
        assert result.get('status') == 200
    finally:
        if locker.in_transaction:
            locker.execute('ROLLBACK')
        locker.close()
    assert ledger.api_php(client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'after'}),
                                      content_type='application/json')) == 200
    rows, event_ids = ledger.assert_all_stored(client, key)
    assert len(rows) == 3  # before, waited, after: the refused one was not stored
    assert integrity(client.wsgi.store.path) == ['ok']


# -- a full disk, simulated ----------------------------------------------------------------

def room(store, size):
    """Pages that hold size bytes in this database (its page size is SQLite's to keep)."""
    return size // store.write(lambda conn: conn.execute('PRAGMA page_size').fetchone()[0])


def test_a_full_database_answers_503_loses_nothing_and_recovers(make):
    client = make(sweep_interval=0)
    created = create_project(client, 'faults')
    key, project_id = created['hash'], created['id']
    store = client.wsgi.store
    ledger = Ledger()
    for index in range(3):
        assert ledger.api_php(big_api_php(client, key, index)) == 200
    pages = store.write(lambda conn: conn.execute('PRAGMA page_count').fetchone()[0])
    limit = pages + room(store, 1200 << 10)
    store.write(lambda conn: conn.execute('PRAGMA max_page_count=%d' % limit))
    refused, dialect = fill_until_full(client, key, project_id, ledger)
    reply = assert_unavailable(refused, dialect)
    assert len(ledger.rows) + len(ledger.event_ids) > 3, 'the database filled before any event was taken'
    # give the space back
    store.write(lambda conn: conn.execute('PRAGMA max_page_count=1073741823'))
    assert ledger.api_php(big_api_php(client, key, 9999)) == 200
    event_id = uuid.uuid4().hex
    assert ledger.sentry(big_sentry(client, key, project_id, event_id), event_id) == 200
    rows, event_ids = ledger.assert_all_stored(client, key)
    assert len(rows) == len(ledger.rows) + len(ledger.event_ids)  # nothing refused was stored
    assert integrity(store.path) == ['ok']
    assert store.write(lambda conn: conn.execute('PRAGMA integrity_check').fetchone()[0]) == 'ok'
    assert reply.status == 503


def test_every_dialect_answers_503_while_the_database_is_full(make):
    client = make(sweep_interval=0)
    created = create_project(client, 'faults')
    key, project_id = created['hash'], created['id']
    store = client.wsgi.store
    ledger = Ledger()
    pages = store.write(lambda conn: conn.execute('PRAGMA page_count').fetchone()[0])

    def full_again():
        # the writer starts over with a fresh connection after a fault: pin the limit on whichever it has now
        store.write(lambda conn: conn.execute('PRAGMA max_page_count=%d' % (
            conn.execute('PRAGMA page_count').fetchone()[0])))

    answers = {}
    big_extra = {'extra': {'x%d' % i: big(i) for i in range(20)}}
    full_again()
    answers['sentry store'] = (client.post('/api/%d/store/' % project_id, json.dumps(dict(big_extra, message="m")),
                                           headers=sentry_auth(key), content_type='application/json',
                                           expect_errors=True), 'sentry')
    full_again()
    answers['seestack errors'] = (client.post('/ingest/v1/errors', json.dumps(
        {'exceptionClass': 'E', 'message': big(100), 'metadata': big_extra['extra']}), headers={'X-SeeStack-Key': key},
        content_type='application/json', expect_errors=True), 'seestack')
    full_again()
    answers['open sentry'] = (client.post('/v1/ingest', json.dumps(
        {'type': 'error', 'message': big(101), 'exception': {'type': 'E', 'value': big(102)}}),
        headers={'X-Open-Sentry-Key': key}, content_type='application/json', expect_errors=True), 'open-sentry')
    full_again()
    answers['api.php'] = (big_api_php(client, key, 1), 'errorcapture')
    for name, (response, dialect) in answers.items():
        assert_unavailable(response, dialect)
    store.write(lambda conn: conn.execute('PRAGMA max_page_count=1073741823'))
    assert ledger.api_php(big_api_php(client, key, 2)) == 200
    assert integrity(store.path) == ['ok']
    assert pages > 0


@pytest.mark.slow
def test_concurrent_ingest_into_a_filling_database_loses_nothing_acknowledged(live_server_factory):
    """Six clients at once (so commits hold several submissions) while the
    database runs out of room: every 200 is stored, every refusal is a 503."""
    import urllib.error
    import urllib.request
    server = live_server_factory(sweep_interval=0)
    project = server.project()
    key, project_id = project['hash'], project['id']
    store = server.app.store
    pages = store.write(lambda conn: conn.execute('PRAGMA page_count').fetchone()[0])
    limit = pages + room(store, 1600 << 10)
    store.write(lambda conn: conn.execute('PRAGMA max_page_count=%d' % limit))
    acknowledged, refused, lock = set(), [], threading.Lock()
    stop = threading.Event()

    def client_loop(worker):
        for index in range(60):
            if stop.is_set():
                return
            event_id = uuid.uuid4().hex
            body = json.dumps({'event_id': event_id, 'message': 'c%d-%d' % (worker, index),
                               'extra': {'x%d' % i: big(i) for i in range(10)}}).encode()
            request = urllib.request.Request('%s/api/%d/store/' % (server.url, project_id), body,
                                             dict(sentry_auth(key), **{'Content-Type': 'application/json'}))
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert json.loads(answer.read())['id'] == event_id
                    with lock:
                        acknowledged.add(event_id)
            except urllib.error.HTTPError as error:
                with lock:
                    refused.append((error.code, error.read()))
                if len(refused) > 20:
                    stop.set()

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    # keep the database full: each fault resets the writer's connection, so re-pin the limit
    deadline = time.monotonic() + 20
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        try:
            store.write(lambda conn: conn.execute('PRAGMA max_page_count=%d' % limit))
        except errorcapture.StorageUnavailable:
            pass
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert refused, 'nothing was refused: the database never filled'
    assert {code for code, _ in refused} == {503}, refused[:3]
    assert acknowledged, 'nothing was acknowledged'
    store.write(lambda conn: conn.execute('PRAGMA max_page_count=1073741823'))
    stored = set()
    cursor = None
    while True:
        url = '%s/api/v1/events?limit=500&key=%s%s' % (server.url, key, '&cursor=' + cursor if cursor else '')
        page = json.loads(urllib.request.urlopen(url, timeout=30).read())
        stored |= {e['eventId'] for e in page['events']}
        cursor = page['nextCursor']
        if not cursor:
            break
    assert acknowledged <= stored, 'lost: %s' % sorted(acknowledged - stored)[:5]
    assert stored == acknowledged  # and nothing refused was stored
    assert integrity(store.path) == ['ok']


# -- a full disk, for real ------------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    mountpoint = tmp_path / 'tiny'
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mountpoint)],
                            capture_output=True, timeout=30)
    if result.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: %s' % result.stderr.decode(errors='replace').strip())

    def resize(size):
        subprocess.run(['mount', '-o', 'remount,size=%s' % size, str(mountpoint)], check=True, timeout=30)
    try:
        yield mountpoint, resize
    finally:
        subprocess.run(['umount', '-l', str(mountpoint)], capture_output=True, timeout=30)


def test_a_really_full_disk_answers_503_and_recovers_when_space_returns(tiny_tmpfs):
    mountpoint, resize = tiny_tmpfs
    path = str(mountpoint / 'full.db')
    app = errorcapture.make_app(path, sweep_interval=0)
    try:
        client = webtest.TestApp(app)
        created = create_project(client, 'faults')
        key, project_id = created['hash'], created['id']
        ledger = Ledger()
        refused, dialect = fill_until_full(client, key, project_id, ledger)
        assert_unavailable(refused, dialect)
        assert ledger.rows or ledger.event_ids, 'the disk filled before any event was taken'
        # still full: still refused, and the server keeps answering reads
        assert big_api_php(client, key, 1).status_int == 503
        assert client.get('/api/v1/issues?key=' + key).status_int == 200
        resize('16m')
        assert ledger.api_php(big_api_php(client, key, 2)) == 200
        event_id = uuid.uuid4().hex
        assert ledger.sentry(big_sentry(client, key, project_id, event_id), event_id) == 200
        rows, event_ids = ledger.assert_all_stored(client, key)
        assert len(rows) == len(ledger.rows) + len(ledger.event_ids)
    finally:
        app.close()
    assert integrity(path) == ['ok']


def test_a_read_only_database_answers_503_and_recovers(make):
    # As root neither chmod nor a busy remount makes the file read-only, so the
    # fault is injected: the writer's connection is swapped for a read-only one,
    # as SQLite opens a file it may not write.
    client = make(sweep_interval=0)
    app = client.wsgi
    created = create_project(client, 'faults')
    key, project_id = created['hash'], created['id']
    ledger = Ledger()
    assert ledger.api_php(big_api_php(client, key, 0)) == 200
    writer = app.store.writer
    writer.conn = sqlite3.connect('file:%s?mode=ro' % app.store.path, uri=True, isolation_level=None,
                                  check_same_thread=False)
    refused = big_api_php(client, key, 1)
    assert_unavailable(refused, 'errorcapture')
    assert 'readonly' in refused.json['error'].replace('-', '').replace(' ', '')
    # the writer dropped the faulty connection and writes again with a fresh one
    assert ledger.api_php(big_api_php(client, key, 2)) == 200
    event_id = uuid.uuid4().hex
    assert ledger.sentry(big_sentry(client, key, project_id, event_id), event_id) == 200
    rows, _ = ledger.assert_all_stored(client, key)
    assert len(rows) == len(ledger.rows) + len(ledger.event_ids)
    assert integrity(app.store.path) == ['ok']
