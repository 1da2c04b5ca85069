"""--workers N: several server processes on one port and one database file.
Real processes and real waitress: the parent binds the port and supervises,
each worker has its own writer, and what must agree across them (grouping,
quotas, the project cache, ids, the one sweeper and alerter) agrees. Which
worker serves a connection is read from /proc (the socket's owner), so each
test reaches every worker on purpose rather than by luck."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from helpers import Receiver, create_project, free_port, sentry_auth, thread_cpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 30  # seconds: generous deadlines for polling, never a timed assertion

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc to find socket owners')


class Workers(object):
    """`errorcapture --workers N` started as an installed module is (import
    errorcapture, from another directory), its log in a file."""

    def __init__(self, tmp_path, workers=2, args=(), module=None):
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.db = str(tmp_path / 'workers.db')
        self.log = open(str(tmp_path / 'server.log'), 'w+')
        env = {k: v for k, v in os.environ.items() if not k.startswith('ERRORCAPTURE_')}
        env['PYTHONPATH'] = ROOT
        cwd = tmp_path / 'elsewhere'
        cwd.mkdir(exist_ok=True)  # a server started again on the same file
        program = [module] if module else ['-c', 'import sys, errorcapture; sys.exit(errorcapture.main())']
        self.process = subprocess.Popen(
            [sys.executable] + program + ['--workers', str(workers), '--port', str(self.port), '--db', self.db]
            + list(args),
            cwd=str(cwd), env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.count = workers
        deadline = time.time() + WAIT
        try:
            while len(self.pids()) < workers or not self.answers():
                assert self.process.poll() is None, self.output()
                assert time.time() < deadline, 'the workers did not come up:\n' + self.output()
                time.sleep(0.1)
        except AssertionError:
            self.kill()  # a parent that keeps restarting workers must not outlive the test
            raise

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def started(self):
        """Every worker pid the log says was started, in order."""
        return [int(pid) for pid in re.findall(r'worker \d+ started \(pid (\d+)\)', self.output())]

    def pids(self):
        """The worker processes alive now (children of the parent)."""
        try:
            with open('/proc/%d/task/%d/children' % (self.process.pid, self.process.pid)) as children:
                return sorted(int(pid) for pid in children.read().split())
        except OSError:
            return []

    def answers(self):
        try:
            with urllib.request.urlopen(self.url + '/health', timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def connection_per_worker(self, each=1):
        """`each` open keep-alive connections to every worker: {pid: [HTTPConnection]}."""
        by_pid = {pid: [] for pid in self.pids()}
        spare = []
        for _ in range(400):
            if all(len(conns) >= each for conns in by_pid.values()):
                break
            conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=WAIT)
            conn.request('GET', '/health')
            conn.getresponse().read()
            pid = owner(conn, self.port, by_pid)
            if pid is not None and len(by_pid[pid]) < each:
                by_pid[pid].append(conn)
            else:
                spare.append(conn)
        for conn in spare:
            conn.close()
        assert all(len(conns) >= each for conns in by_pid.values()), 'the kernel gave every connection to one worker'
        return by_pid

    def stop(self, signum=signal.SIGTERM):
        self.process.send_signal(signum)
        try:
            return self.process.wait(WAIT * 2)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError('the parent did not stop:\n' + self.output())

    def kill(self):
        pids = self.pids()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in pids:  # its workers stop by themselves once it is gone; the test does not wait for that
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()


def owner(conn, port, pids):
    """The pid (among pids) whose socket is the server end of conn: the
    /proc/net/tcp row from port to conn's own port names the socket's inode."""
    client_port = conn.sock.getsockname()[1]
    inode = None
    with open('/proc/net/tcp') as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(':')[1], 16) == port and int(fields[2].split(':')[1], 16) == client_port:
                inode = fields[9]
    target = 'socket:[%s]' % inode
    for pid in pids:
        try:
            for fd in os.listdir('/proc/%d/fd' % pid):
                try:
                    if os.readlink('/proc/%d/fd/%s' % (pid, fd)) == target:
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None


@pytest.fixture
def start(tmp_path):
    made = []

    def factory(workers=2, args=(), module=None):
        server = Workers(tmp_path, workers, args, module)
        made.append(server)
        return server
    yield factory
    for server in made:
        server.kill()


def call(conn, method, path, body=None, headers=None):
    """(status, JSON answer) over one kept-alive connection."""
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, data, dict({'Content-Type': 'application/json'}, **(headers or {})))
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read() or b'null')


def api_php(conn, key, message, **extra):
    return call(conn, 'POST', '/api.php', dict({'hash': key, 'level': 'error', 'message': message,
                                                 'file': '/srv/app.php', 'line': 7}, **extra))


def stored(url, key):
    """Every error row of the project, through the ErrorCapture API's errors action."""
    rows, since = [], 0
    while True:
        with urllib.request.urlopen('%s/api.php?action=errors&hash=%s&since=%d&limit=1000' % (url, key, since),
                                    timeout=WAIT) as answer:
            page = json.loads(answer.read())['errors']
        if not page:
            return rows
        rows.extend(page)
        since = page[-1]['id']


def issues(url, key):
    with urllib.request.urlopen('%s/api/v1/issues?key=%s&limit=100' % (url, key), timeout=WAIT) as answer:
        return json.loads(answer.read())['issues']


def test_first_events_of_one_fingerprint_at_once_on_every_worker_make_one_issue(start):
    server = start(workers=2)
    key = create_project(server.url, 'grouping')['hash']
    conns = [conn for per_pid in server.connection_per_worker(each=6).values() for conn in per_pid]
    rounds, answers = 4, []
    barrier = threading.Barrier(len(conns))
    lock = threading.Lock()

    def send(conn):
        for number in range(rounds):
            barrier.wait(WAIT)  # every client sends the first event of a new fingerprint at once
            status, body = api_php(conn, key, 'first of its kind %d' % number, file='/srv/round%d.php' % number)
            with lock:
                answers.append((number, status))
    threads = [threading.Thread(target=send, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert len(answers) == rounds * len(conns)
    assert {status for _, status in answers} == {200}
    found = sorted((issue['title'], issue['count']) for issue in issues(server.url, key))
    # one issue per fingerprint, counting every event sent to either worker
    assert len(found) == rounds, found
    assert [count for _, count in found] == [len(conns)] * rounds
    assert len(stored(server.url, key)) == rounds * len(conns)


def test_a_rate_limit_holds_across_workers(start):
    limit = 10
    server = start(workers=2, args=['--rate-limit', str(limit)])
    key = create_project(server.url, 'quota')['hash']
    conns = [per_pid[0] for per_pid in server.connection_per_worker().values()]
    while time.time() % 60 > 50:  # the whole burst inside one minute window
        time.sleep(1)
    statuses = [api_php(conns[n % len(conns)], key, 'burst %d' % n)[0] for n in range(3 * limit)]
    status, body = api_php(conns[1], key, 'one more')
    assert status == 429 and body['ok'] is False  # in the ErrorCapture API's own error format
    assert statuses.count(200) == limit and statuses.count(429) == 2 * limit, statuses
    assert len(stored(server.url, key)) == limit


def test_a_project_created_or_changed_through_one_worker_is_seen_by_the_others(start):
    server = start(workers=3)
    by_pid = server.connection_per_worker()
    first, *others = [conns[0] for conns in by_pid.values()]
    status, created = call(first, 'GET', '/api.php?action=generate&name=made-on-one')
    assert status == 200
    key = created['hash']
    for conn in others:  # the new key answers on every other worker at once
        assert api_php(conn, key, 'sent to another worker')[0] == 200
        assert call(conn, 'GET', '/api/v1/project?key=' + key)[1]['project']['name'] == 'made-on-one'
    # a change through one worker: the others had the project in their cache
    status, _ = call(first, 'PUT', '/api/v1/project?key=' + key, {'name': 'renamed', 'rateLimit': 1})
    assert status == 200
    for conn in others:
        deadline = time.time() + WAIT
        while call(conn, 'GET', '/api/v1/project?key=' + key)[1]['project']['name'] != 'renamed':
            assert time.time() < deadline, 'another worker still shows the old project'
            time.sleep(0.1)
    # and the changed setting is in force there: rateLimit 1 per minute, already used up or used now
    results = [api_php(conn, key, 'after the change %d' % n)[0] for n, conn in enumerate(others * 2)]
    assert results.count(429) >= len(results) - 1, results


def test_a_killed_worker_loses_nothing_acknowledged_and_is_replaced(start):
    server = start(workers=2)
    key = create_project(server.url, 'crash')['hash']
    by_pid = server.connection_per_worker(each=4)  # the load starts on both workers
    victim = list(by_pid)[0]
    acknowledged, failures, lock = [], [], threading.Lock()
    stop = threading.Event()

    def load(number, conn):
        sent = 0
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=WAIT)
                status, body = api_php(conn, key, 'load %d-%d' % (number, sent), file='/srv/load%d.php' % (sent % 3))
                if status == 200:
                    with lock:
                        acknowledged.append(body['id'])
                sent += 1
            except (OSError, http.client.HTTPException) as exc:  # the killed worker's connections: retry elsewhere
                with lock:
                    failures.append(repr(exc))
                conn.close()
                conn = None
    threads = [threading.Thread(target=load, args=(n, conn))
               for n, conn in enumerate(conn for conns in by_pid.values() for conn in conns)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.time() + WAIT
        while len(acknowledged) < 200:
            assert time.time() < deadline, 'no load got through'
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        # the parent starts another worker, and the port keeps taking events meanwhile
        while len(server.started()) < 3 or len(server.pids()) < 2:
            assert time.time() < deadline + WAIT, 'the killed worker was not replaced:\n' + server.output()
            time.sleep(0.05)
        before = len(acknowledged)
        while len(acknowledged) < before + 200:
            assert time.time() < deadline + 2 * WAIT, 'no load got through after the kill'
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    assert victim not in server.pids() and server.started()[-1] in server.pids()
    rows = stored(server.url, key)
    ids = {row['id'] for row in rows}
    assert set(acknowledged) <= ids  # every 2xx is on disk
    assert len(ids) == len(rows)
    # counts equal stored rows
    assert sum(issue['count'] for issue in issues(server.url, key)) == len(rows)
    assert server.stop() == 0, server.output()


def thread_names(pid):
    names = []
    for task in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/comm' % (pid, task)) as comm:
                names.append(comm.read().strip())
        except OSError:
            pass
    return names


def test_one_sweeper_and_one_alerter_serve_every_worker_and_outlive_one(start):
    server = start(workers=2, args=['--sweep-interval', '0.3', '--retention-events', '5',
                                    '--allow-private-webhooks'])
    receiver = Receiver()
    try:
        # the background threads run in the parent only
        assert {'ec-sweeper', 'ec-outbox', 'ec-alerts'} <= set(thread_names(server.process.pid))
        for pid in server.pids():
            assert not {'ec-sweeper', 'ec-outbox', 'ec-alerts'} & set(thread_names(pid))
        by_pid = server.connection_per_worker()
        conns = [per_pid[0] for per_pid in by_pid.values()]
        key = create_project(server.url, 'background')['hash']
        assert call(conns[0], 'PUT', '/api/v1/project?key=' + key, {'webhookUrl': receiver.url})[0] == 200
        # a new issue on each worker: one alert each, delivered by the parent
        for number, conn in enumerate(conns):
            assert api_php(conn, key, 'new on worker %d' % number, file='/srv/w%d.php' % number)[0] == 200
        receiver.wait_for(len(conns))
        deadline = time.time() + WAIT
        # one worker dies; the other's events still alert, and retention still runs
        os.kill(list(by_pid)[0], signal.SIGKILL)
        for number in range(12):
            assert api_php(conns[1], key, 'more %d' % number, file='/srv/more.php')[0] == 200
        receiver.wait_for(len(conns) + 1)
        while len(stored(server.url, key)) > 5:
            assert time.time() < deadline, len(stored(server.url, key))
            time.sleep(0.05)
        titles = sorted(record['json']['data']['title'] for record in receiver.delivered)
        assert len(titles) == len(set(titles)) == len(conns) + 1  # once each, not once per process
        assert sum(issue['count'] for issue in issues(server.url, key)) == len(stored(server.url, key)) == 5
    finally:
        receiver.close()


def test_an_alert_whose_parent_died_before_delivering_it_is_delivered_by_the_next_parent(start):
    gate = threading.Event()  # the webhook holds the first delivery until the parent is gone
    receiver = Receiver(gate=gate)
    try:
        server = start(workers=2, args=['--allow-private-webhooks'])
        conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=WAIT)
        key = create_project(server.url, 'crash')['hash']
        assert call(conn, 'PUT', '/api/v1/project?key=' + key, {'webhookUrl': receiver.url})[0] == 200
        assert api_php(conn, key, 'new before the crash')[0] == 200
        assert receiver.entered.wait(WAIT), 'the alert was never sent'
        server.kill()  # SIGKILL, parent and workers: the alert was taken, its webhook has not answered
        gate.set()
        again = start(workers=2, args=['--allow-private-webhooks'])
        sent = receiver.wait_for(2, 'attempts')
        assert [body['kind'] for body in sent] == ['new_issue', 'new_issue']
        assert sent[0]['data'] == sent[1]['data'] and 'new before the crash' in sent[1]['text']
        receiver.wait_for(1)
        assert again.answers()
    finally:
        receiver.close()


def test_sigterm_drains_every_worker_and_the_parent_exits_0(start):
    server = start(workers=2)
    key = create_project(server.url, 'drain')['hash']
    conns = [per_pid[0] for per_pid in server.connection_per_worker().values()]
    ids = [api_php(conn, key, 'before the stop %d' % n)[1]['id'] for n, conn in enumerate(conns)]
    workers = server.pids()
    assert server.stop(signal.SIGTERM) == 0, server.output()
    assert 'Traceback' not in server.output() and 'Fatal' not in server.output()
    for pid in workers:  # every worker is gone with it
        assert not os.path.exists('/proc/%d/status' % pid) or 'zombie' in open('/proc/%d/status' % pid).read()
    assert not server.answers()
    # restarted (one process), everything acknowledged is there
    import errorcapture
    store = errorcapture.Store(server.db)
    try:
        assert sorted(r[0] for r in store.query('SELECT id FROM events')) == sorted(ids)
    finally:
        store.close()


def test_sentry_envelopes_to_every_worker_are_all_stored_with_ids_that_never_go_back(start):
    server = start(workers=2)
    project = create_project(server.url, 'sentry')
    conns = [per_pid[0] for per_pid in server.connection_per_worker().values()]
    envelope = '\n'.join([json.dumps({}), json.dumps({'type': 'event'}), json.dumps(
        {'message': 'from a Sentry SDK', 'level': 'error', 'platform': 'python'})]).encode()
    for _ in range(5):
        for conn in conns:
            conn.request('POST', '/api/%d/envelope/' % project['id'], envelope,
                         dict(sentry_auth(project['key']), **{'Content-Type': 'application/x-sentry-envelope'}))
            answer = conn.getresponse()
            assert answer.status == 200, answer.read()
            answer.read()
    (issue,) = issues(server.url, project['key'])
    assert issue['count'] == 10
    # a clear through one worker, then events through the other: new ids and seq above every old one
    rows = stored(server.url, project['key'])
    assert call(conns[0], 'POST', '/api.php', {'action': 'clear', 'hash': project['key']})[1]['deleted'] == 10
    status, body = api_php(conns[1], project['key'], 'after the clear')
    assert status == 200 and body['id'] > max(row['id'] for row in rows)
    (new,) = issues(server.url, project['key'])
    assert new['id'] > issue['id'] and new['seq'] > issue['seq'] and new['count'] == 1


def test_source_maps_uploaded_elsewhere_resolve_on_a_worker_that_had_none(start):
    """sentry-cli uploads through one process (here the test's own, a second
    writer of the file as `errorcapture tokens` is), events reach a worker
    that knew the project had no bundles: within a second it maps them."""
    import webtest

    import errorcapture
    from test_sourcemaps_resolution import DEBUG_ID, URL, artifact_bundle, build
    from test_sourcemaps_upload import ADMIN, new_project, upload
    server = start(workers=2, args=['--admin-token', ADMIN])
    uploader = errorcapture.make_app(server.db, admin_token=ADMIN, sweep_interval=0)
    try:
        project = new_project(webtest.TestApp(uploader))
        minified, smap, frames = build(DEBUG_ID)
        conns = [per_pid[0] for per_pid in server.connection_per_worker().values()]
        event = {'platform': 'javascript', 'level': 'error',
                 'exception': {'values': [{'type': 'Error', 'value': 'total too large: 16',
                                           'stacktrace': {'frames': frames}}]},
                 'debug_meta': {'images': [{'type': 'sourcemap', 'code_file': URL, 'debug_id': DEBUG_ID}]}}

        def top_frame(conn):
            assert call(conn, 'POST', '/api/%d/store/' % project['id'], event, sentry_auth(project['key']))[0] == 200
            newest = call(conn, 'GET', '/api/v1/events?key=' + project['key'])[1]['events'][0]
            shown = call(conn, 'GET', '/api/v1/events/%d?key=%s' % (newest['id'], project['key']))[1]['event']
            return shown['exception'][-1]['frames'][-1]
        for conn in conns:  # every worker has seen the project without bundles
            assert top_frame(conn)['filename'] == URL
        upload(webtest.TestApp(uploader), ADMIN, artifact_bundle(minified, smap, DEBUG_ID))
        for conn in conns:
            deadline = time.time() + WAIT
            while top_frame(conn)['filename'] != 'src/cart.js':
                assert time.time() < deadline, 'a worker never used the uploaded source map'
                time.sleep(0.2)
    finally:
        uploader.close()


def test_workers_run_the_file_the_server_was_started_from_under_any_name(start, tmp_path):
    """A copy saved as tracker.py, beside something else called
    errorcapture.py: the workers run the copy, not the other module."""
    folder = tmp_path / 'copy'
    folder.mkdir()
    with open(os.path.join(ROOT, 'errorcapture.py')) as original:
        (folder / 'tracker.py').write_text(original.read())
    (folder / 'errorcapture.py').write_text('raise SystemExit("not the server that was started")\n')
    server = start(module=str(folder / 'tracker.py'))
    by_pid = server.connection_per_worker()
    assert len(by_pid) == 2
    for conns in by_pid.values():
        status, answer = api_php(conns[0], 'copy-key', 'from a renamed copy')
        assert status == 200, answer
    assert 'not the server that was started' not in server.output()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs 2 CPUs to spread workers over')
def test_each_worker_keeps_its_threads_on_a_cpu_of_its_own(start):
    server = start()
    allowed = {}
    for pid, conns in server.connection_per_worker().items():
        assert api_php(conns[0], 'affinity-key', 'spread')[0] == 200
        cpus = set(thread_cpus(pid).values())
        assert len(cpus) == 1 and cpus.copy().pop().isdigit(), cpus
        allowed[pid] = cpus.pop()
    assert len(set(allowed.values())) == 2, allowed
