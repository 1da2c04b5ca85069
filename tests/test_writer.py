"""The single writer: group commit, isolation of a failing job, acknowledged means committed."""
import contextlib
import sqlite3
import threading
import time

import errorcapture


def make_store(tmp_path):
    return errorcapture.Store(str(tmp_path / 'w.db'))


def insert_project(key):
    def job(conn):
        conn.execute('INSERT INTO projects(key, name, created) VALUES (?, ?, 0)', (key, key))
        return key
    return job


@contextlib.contextmanager
def writer_held(store):
    """The writer busy with a job that waits: submissions queue up meanwhile
    and run as one batch when the block ends."""
    gate, blocking = threading.Event(), threading.Event()

    def block(conn):
        blocking.set()
        gate.wait(10)
    blocker = threading.Thread(target=store.write, args=(block,))
    blocker.start()
    assert blocking.wait(10)
    try:
        yield
    finally:
        gate.set()
        blocker.join(10)


def test_a_failing_job_fails_alone_while_its_batch_commits(tmp_path):
    store = make_store(tmp_path)
    try:
        def broken(conn):
            conn.execute('INSERT INTO projects(key, name, created) VALUES (?, ?, 0)', ('half', 'half'))
            raise ValueError('bad job')

        results, errors = queue_as_one_batch(store, [('a', insert_project('a')), ('bad', broken),
                                                     ('b', insert_project('b'))])
        assert results == {'a': 'a', 'b': 'b'}
        assert isinstance(errors['bad'], ValueError)
        keys = {row[0] for row in store.query('SELECT key FROM projects')}
        assert keys == {'a', 'b'}  # the bad job's half-done insert was undone
    finally:
        store.close()


def queue_as_one_batch(store, jobs):
    """Submit each job from its own thread while the writer is held, so they
    run as one batch. Returns ({name: result}, {name: exception})."""
    results, errors = {}, {}

    def submit(name, job):
        try:
            results[name] = store.write(job)
        except Exception as exc:
            errors[name] = exc
    threads = [threading.Thread(target=submit, args=item) for item in jobs]
    with writer_held(store):
        for thread in threads:
            thread.start()
        deadline = time.time() + 10
        while store.writer.queued() < len(jobs) and time.time() < deadline:
            time.sleep(0.001)
        assert store.writer.queued() == len(jobs)
    for thread in threads:
        thread.join(10)
    return results, errors


def test_a_bad_statement_fails_its_own_job_not_the_batch(tmp_path):
    """sqlite3 reports a mistyped query as an OperationalError too; it is the
    job's own failure: the jobs beside it commit and the writer keeps its
    connection."""
    store = make_store(tmp_path)
    try:
        store.write(insert_project('before'))
        connection = store.writer.conn

        def bad_statement(conn):
            conn.execute('INSERT INTO projects(key, name, created) VALUES (?, ?, 0)', ('half', 'half'))
            conn.execute('SELECT * FROM no_such_table')
        results, errors = queue_as_one_batch(store, [('a', insert_project('a')), ('bad', bad_statement),
                                                     ('b', insert_project('b'))])
        assert results == {'a': 'a', 'b': 'b'}
        assert isinstance(errors['bad'], sqlite3.OperationalError)
        assert not isinstance(errors['bad'], errorcapture.StorageUnavailable)
        keys = {row[0] for row in store.query('SELECT key FROM projects')}
        assert keys == {'before', 'a', 'b'}
        assert store.writer.conn is connection
    finally:
        store.close()


def test_a_full_disk_is_a_storage_fault_for_the_whole_batch(tmp_path):
    """Disk full is the storage's fault: every submission of the batch hears
    StorageUnavailable (503, retry), nothing of it is stored, and the writer
    starts over with a fresh connection that takes the next write."""
    store = make_store(tmp_path)
    try:
        store.write(insert_project('before'))
        connection = store.writer.conn

        def fills_the_disk(conn):
            pages = conn.execute('PRAGMA page_count').fetchone()[0]
            conn.execute('PRAGMA max_page_count=%d' % pages)  # this connection's file cannot grow
            conn.execute('INSERT INTO projects(key, name, created) VALUES (?, ?, 0)', ('big', 'x' * (1 << 20)))
        results, errors = queue_as_one_batch(store, [('a', insert_project('a')), ('full', fills_the_disk),
                                                     ('b', insert_project('b'))])
        assert results == {}
        assert set(errors) == {'a', 'full', 'b'}
        assert all(isinstance(exc, errorcapture.StorageUnavailable) for exc in errors.values())
        assert {row[0] for row in store.query('SELECT key FROM projects')} == {'before'}
        store.write(insert_project('after'))
        assert store.writer.conn is not connection
        assert {row[0] for row in store.query('SELECT key FROM projects')} == {'before', 'after'}
    finally:
        store.close()


def run_as_one_batch(store, calls):
    """Hold the writer, queue each call (from its own thread, in order), then
    let them all run in one transaction. Returns each call's result."""
    results, threads = [None] * len(calls), []
    with writer_held(store):
        for index, (fn, args) in enumerate(calls):
            def call(index=index, fn=fn, args=args):
                results[index] = fn(*args)
            waiting = store.writer.queued()
            threads.append(threading.Thread(target=call))
            threads[-1].start()
            deadline = time.time() + 10
            while store.writer.queued() == waiting and time.time() < deadline:
                time.sleep(0.001)
    for thread in threads:
        thread.join(10)
    return results


def test_resolving_an_issue_in_the_batch_of_its_last_events_keeps_it_resolved(tmp_path):
    """A user resolves an issue while its events still arrive: the events
    queued before the click count, the issue stays resolved, and an event
    after the click in the same batch reopens it as a regression, with the
    regression alert."""
    store = make_store(tmp_path)
    notices = []
    store.listeners.append(lambda kind, payload: notices.append(kind))
    try:
        project = store.create_project('batch')['id']

        def event():
            return errorcapture.make_error_event('errorcapture', message='disk full', file='/srv/a.php', line=3)
        issue = store.events.add(project, [event()])[0]['issueId']
        run_as_one_batch(store, [(store.events.add, (project, [event()])),
                                 (store.issues.set_status, (project, issue, 'resolved'))])
        shown = store.issues.get(project, issue)
        assert (shown['status'], shown['regression'], shown['count']) == ('resolved', False, 2)
        assert notices == ['new_issue']

        run_as_one_batch(store, [(store.issues.set_status, (project, issue, 'unresolved')),
                                 (store.events.add, (project, [event()])),
                                 (store.issues.set_status, (project, issue, 'resolved')),
                                 (store.events.add, (project, [event()]))])
        shown = store.issues.get(project, issue)
        assert (shown['status'], shown['regression'], shown['count']) == ('unresolved', True, 4)
        assert notices == ['new_issue', 'regression']
    finally:
        store.close()


def test_a_submission_that_timed_out_is_not_stored_later(tmp_path):
    """Its client was told 503 and will send it again: storing it once the
    writer gets to it would make a duplicate."""
    store = make_store(tmp_path)
    try:
        with writer_held(store):
            try:
                store.writer.submit(insert_project('late'), timeout=0.2)
                raise AssertionError('the submission should have timed out')
            except errorcapture.StorageUnavailable:
                pass
        store.write(insert_project('next'))  # the writer has drained its queue
        keys = {row[0] for row in store.query('SELECT key FROM projects')}
        assert keys == {'next'}
    finally:
        store.close()


def test_an_acknowledged_write_is_visible_to_a_fresh_connection(tmp_path):
    store = make_store(tmp_path)
    try:
        store.write(insert_project('durable'))
        # Another process's view: a brand-new connection sees the row at once.
        other = sqlite3.connect(str(tmp_path / 'w.db'))
        assert other.execute("SELECT COUNT(*) FROM projects WHERE key='durable'").fetchone()[0] == 1
        other.close()
    finally:
        store.close()


def test_many_concurrent_submissions_share_transactions(tmp_path):
    store = make_store(tmp_path)
    commits = []
    original = store.writer._run

    def counting_run(batch):
        commits.append(len(batch))
        return original(batch)
    store.writer._run = counting_run
    try:
        threads = [threading.Thread(target=store.write, args=(insert_project('k%d' % i),)) for i in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert store.query('SELECT COUNT(*) FROM projects')[0][0] == 200
        assert sum(commits) == 200
        assert len(commits) < 200  # at least some submissions were committed together
    finally:
        store.close()


def test_migrations_set_user_version_and_are_idempotent(tmp_path):
    path = str(tmp_path / 'm.db')
    errorcapture.Store(path).close()
    errorcapture.Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute('PRAGMA user_version').fetchone()[0] == len(errorcapture.MIGRATIONS)
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    conn.close()
