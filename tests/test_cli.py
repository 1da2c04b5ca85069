"""The command line: `python errorcapture.py --help` documents every setting,
and a real server process started from it takes errors, honours flags over
ERRORCAPTURE_* variables, and stops cleanly on SIGTERM and SIGINT with
everything it acknowledged on disk."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import errorcapture
from helpers import free_port, thread_cpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'errorcapture.py')

pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGTERM') or os.name != 'posix', reason='POSIX signals')


def readme_settings():
    """(flags, environment variable) of each row of the README's configuration table."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as readme:
        rows = [line for line in readme if line.startswith('| `--')]
    settings = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip('|').split('|')]
        flags = re.findall(r'`(--[a-z-]+)`', cells[0])
        (env,) = re.findall(r'`(ERRORCAPTURE_[A-Z_]+)`', cells[1])
        settings.append((flags, env))
    return settings


def clean_environ(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith('ERRORCAPTURE_')}
    env['COLUMNS'] = '200'
    env.update(extra)
    return env


# -- --help ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def help_text():
    done = subprocess.run([sys.executable, SCRIPT, '--help'], capture_output=True, text=True, timeout=60,
                          env=clean_environ(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_documents_every_option(help_text):
    for name, kind, default, _ in errorcapture.OPTIONS:
        flag = '--' + name.replace('_', '-')
        assert re.search(r'(^|\s)%s\b' % re.escape(flag), help_text), flag
        assert 'ERRORCAPTURE_' + name.upper() in help_text, name
        if kind is bool:
            assert '--no-' + flag[2:] in help_text, flag


def test_help_documents_every_readme_setting(help_text):
    settings = readme_settings()
    assert len(settings) >= 14
    for flags, env in settings:
        for flag in flags:
            assert re.search(r'(^|[\s,])%s\b' % re.escape(flag), help_text), flag
        assert env in help_text, env


def test_readme_table_lists_every_option():
    documented = {env for _, env in readme_settings()}
    for name, _, _, _ in errorcapture.OPTIONS:
        assert 'ERRORCAPTURE_' + name.upper() in documented, name


# -- a real server process ----------------------------------------------------------------------

class Server(object):
    def __init__(self, tmp_path, args, env=None, port=None):
        self.port = port or free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.log = open(str(tmp_path / ('server-%d.log' % self.port)), 'w+')
        command = [sys.executable, SCRIPT] + args
        if port is None:
            command += ['--port', str(self.port)]
        # SIGINT at its default, as in a terminal (a shell may start background jobs ignoring it)
        self.process = subprocess.Popen(command, cwd=str(tmp_path), env=env or clean_environ(),
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.wait_until_up()

    def wait_until_up(self):
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError('server exited with %s:\n%s' % (self.process.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.url + '/health', timeout=2) as answer:
                    if json.loads(answer.read()) == {'status': 'ok'}:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.kill()
        raise AssertionError('server did not come up:\n' + self.output())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, signum):
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError('server ignored signal %d:\n%s' % (signum, self.output()))
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def servers():
    started = []
    yield started
    for server in started:
        server.kill()
        server.log.close()


def start(servers, tmp_path, args, **kwargs):
    server = Server(tmp_path, args, **kwargs)
    servers.append(server)
    return server


def post(url, body):
    request = urllib.request.Request(url + '/api.php', json.dumps(body).encode(), {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def errors(url, key):
    with urllib.request.urlopen('%s/api.php?action=errors&hash=%s' % (url, key), timeout=10) as answer:
        return json.loads(answer.read())['errors']


EVENT = {'hash': 'cli-project', 'level': 'Fatal Error', 'message': 'Allowed memory size exhausted',
         'file': '/var/www/app/report.php', 'line': 118}


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_signal_stops_cleanly_and_keeps_acknowledged_events(servers, tmp_path, signum):
    server = start(servers, tmp_path, ['--db', 'cli.db'])
    assert post(server.url, EVENT) == (200, {'ok': True, 'id': 1})
    assert server.stop(signum) == 0, server.output()
    assert 'Traceback' not in server.output()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + '/health', timeout=5)

    # restarted on the same database, the event is there
    again = start(servers, tmp_path, ['--db', 'cli.db'])
    (row,) = errors(again.url, 'cli-project')
    assert (row['id'], row['level'], row['message'], row['file'], row['line']) == (
        1, 'Fatal Error', 'Allowed memory size exhausted', '/var/www/app/report.php', 118)
    assert again.stop(signal.SIGTERM) == 0


def test_environment_configures_the_server_and_flags_win(servers, tmp_path):
    env_port, flag_port = free_port(), free_port()
    env = clean_environ(ERRORCAPTURE_PORT=str(env_port), ERRORCAPTURE_DB=str(tmp_path / 'env.db'),
                        ERRORCAPTURE_AUTO_CREATE='off')
    server = start(servers, tmp_path, ['--port', str(flag_port)], env=env, port=flag_port)
    # the flag's port, not the environment's
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen('http://127.0.0.1:%d/health' % env_port, timeout=5)
    # ERRORCAPTURE_AUTO_CREATE=off is in force
    status, body = post(server.url, EVENT)
    assert status == 403 and body['ok'] is False
    assert server.stop(signal.SIGTERM) == 0
    # ERRORCAPTURE_DB chose the database file
    assert os.path.exists(str(tmp_path / 'env.db'))


def test_environment_port_without_a_flag(servers, tmp_path):
    port = free_port()
    env = clean_environ(ERRORCAPTURE_PORT=str(port), ERRORCAPTURE_DB=str(tmp_path / 'env.db'))
    server = start(servers, tmp_path, [], env=env, port=port)
    assert post(server.url, EVENT)[0] == 200
    assert server.stop(signal.SIGTERM) == 0


def test_bad_flag_value_exits_with_a_message(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, '--port', 'eighty'], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path), env=clean_environ())
    assert done.returncode != 0
    assert '--port' in done.stderr
    assert not os.path.exists(str(tmp_path / 'errorcapture.db'))


def test_bad_environment_value_exits_with_a_message(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                          env=clean_environ(ERRORCAPTURE_AUTO_CREATE='maybe'))
    assert done.returncode != 0
    assert 'maybe' in done.stderr
    assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('args, env, named', [
    (['--retention-days', '-1'], {}, '--retention-days'),      # would have deleted every event
    (['--retention-events', '-5'], {}, '--retention-events'),
    (['--threads', '0'], {}, '--threads'),                     # would have answered nobody
    (['--port', '70000'], {}, '--port'),
    (['--max-queue', '0'], {}, '--max-queue'),                 # would have answered every ingest 503
    (['--synchronous', 'sometimes'], {}, '--synchronous'),
    (['--log-level', 'loud'], {}, '--log-level'),
    ([], {'ERRORCAPTURE_THREADS': 'zero'}, 'ERRORCAPTURE_THREADS'),
    ([], {'ERRORCAPTURE_RETENTION_DAYS': '-3'}, 'ERRORCAPTURE_RETENTION_DAYS'),
])
def test_values_that_cannot_work_are_refused_by_name(tmp_path, args, env, named):
    done = subprocess.run([sys.executable, SCRIPT, '--port', '0'] + args, capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path), env=clean_environ(**env))
    assert done.returncode == 2
    assert done.stderr.startswith('errorcapture: ') and named in done.stderr, done.stderr
    assert 'Traceback' not in done.stderr
    assert not os.path.exists(str(tmp_path / 'errorcapture.db'))


def test_make_app_refuses_a_negative_retention(tmp_path):
    with pytest.raises(ValueError, match='retention-days'):
        errorcapture.make_app(str(tmp_path / 'x.db'), retention_days=-1)
    app = errorcapture.make_app(str(tmp_path / 'y.db'), synchronous='FULL', sweep_interval=0)
    try:
        assert app.settings['synchronous'] == 'full'  # asked for power-loss durability: gets it
        assert app.store.writer.conn.execute('PRAGMA synchronous').fetchone()[0] == 2
    finally:
        app.close()


def test_a_database_that_cannot_be_opened_is_a_message(tmp_path):
    missing = str(tmp_path / 'no' / 'such' / 'dir' / 'x.db')
    done = subprocess.run([sys.executable, SCRIPT, '--port', '0', '--db', missing], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path), env=clean_environ())
    assert done.returncode == 2
    assert 'cannot open the database' in done.stderr and missing in done.stderr
    assert 'Traceback' not in done.stderr


def test_an_sqlite_too_old_for_the_schema_is_refused_clearly(tmp_path, monkeypatch, capsys):
    """SQLite before 3.35 has no RETURNING or DROP COLUMN: the server says so at
    start instead of failing in the middle of a migration or of the first write."""
    monkeypatch.setattr(errorcapture.sqlite3, 'sqlite_version_info', (3, 31, 1))
    db = str(tmp_path / 'old.db')
    with pytest.raises(errorcapture.sqlite3.NotSupportedError):
        errorcapture.make_app(db)
    cpus = os.sched_getaffinity(0) if hasattr(os, 'sched_getaffinity') else None
    assert errorcapture.main(['--db', db, '--port', str(free_port())]) not in (0, None)
    err = capsys.readouterr().err
    assert 'needs SQLite 3.35.0 or newer' in err and '3.31.1' in err
    assert not os.path.exists(db)
    if cpus is not None:  # a server that never started leaves its caller's CPUs alone
        assert os.sched_getaffinity(0) == cpus


# -- --cpu-affinity -------------------------------------------------------------------------

needs_two_cpus = pytest.mark.skipif(not hasattr(os, 'sched_getaffinity') or len(os.sched_getaffinity(0)) < 2
                                    or not os.path.isdir('/proc/self/task'),
                                    reason='CPU affinity needs Linux and at least 2 CPUs to choose from')


@needs_two_cpus
def test_a_single_server_keeps_every_thread_on_one_cpu_by_default(servers, tmp_path):
    server = start(servers, tmp_path, ['--db', str(tmp_path / 'one.db')])
    assert post(server.url, EVENT)[0] == 200  # every thread it starts for a request exists now
    allowed = thread_cpus(server.process.pid)
    assert len(allowed) > 8  # waitress's threads, the writer, the background ones
    assert len(set(allowed.values())) == 1 and allowed.popitem()[1].isdigit(), allowed


@needs_two_cpus
def test_cpu_affinity_off_leaves_the_threads_to_the_operating_system(servers, tmp_path):
    everything = subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True).stdout
    every_cpu = re.search(r'Cpus_allowed_list:\s*(\S+)', everything).group(1)
    server = start(servers, tmp_path, ['--db', str(tmp_path / 'off.db'), '--cpu-affinity', 'off'])
    assert post(server.url, EVENT)[0] == 200
    assert set(thread_cpus(server.process.pid).values()) == {every_cpu}


def test_the_least_used_cpu_is_chosen_and_a_small_difference_does_not_move_a_process():
    before = {0: (1000, 2000), 1: (1000, 2000), 2: (1000, 2000)}
    # over 100 ticks: others used CPU 0 fully, CPU 1 half, CPU 2 not at all
    after = {0: (1100, 2100), 1: (1050, 2100), 2: (1000, 2100)}
    assert errorcapture.least_used_cpu([0, 1, 2], before, after) == 2
    assert errorcapture.least_used_cpu([0, 1], before, after) == 1
    # CPU 0 was busy with this process itself: not a reason to leave it
    assert errorcapture.least_used_cpu([0, 1, 2], before, after, current=0, own_ticks=100) == 0
    # 10% of a core more on the current CPU than on another is below the margin: it stays
    near = {0: (1010, 2100), 1: (1000, 2100), 2: (1000, 2100)}
    assert errorcapture.least_used_cpu([0, 1, 2], before, near, current=0) == 0
    # another process took the current CPU over: it moves
    assert errorcapture.least_used_cpu([0, 1, 2], before, after, current=0) == 2
