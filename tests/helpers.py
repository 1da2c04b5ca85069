"""The helpers every test file shares: one home per need, not copies.

    from helpers import free_port, create_project, sentry_auth, npm_modules, chromium, Receiver

(tests/ is on sys.path: pytest puts it there for its rootdir-less test files,
and conftest.py makes sure of it.) Fixtures that wrap these live in conftest.py."""
import hashlib
import http.server
import json
import os
import re
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request

import pytest

NPM_CACHE = pathlib.Path(os.path.expanduser('~')) / '.cache' / 'errorcapture-tests' / 'npm'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or (
    '/usr/bin/chromium' if os.path.exists('/usr/bin/chromium') else None)
CHROMEDRIVER = shutil.which('chromedriver') or (
    '/usr/bin/chromedriver' if os.path.exists('/usr/bin/chromedriver') else None)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def create_project(target, name='test'):
    """Create a project through `GET /api.php?action=generate` and return its JSON
    (hash, key, id, name, dsn, endpoints). target: a webtest TestApp, a LiveServer
    (anything with .url) or a base URL string."""
    query = '/api.php?' + urllib.parse.urlencode({'action': 'generate', 'name': name})
    if isinstance(target, str) or hasattr(target, 'url'):
        base = target if isinstance(target, str) else target.url
        with urllib.request.urlopen(base.rstrip('/') + query, timeout=30) as answer:
            return json.loads(answer.read())
    answer = target.get(query)
    assert answer.status_int == 200, answer.body
    return answer.json


def sentry_auth(key, version=7, client='test/1.0'):
    """The X-Sentry-Auth header a Sentry SDK sends for that project key."""
    return {'X-Sentry-Auth': 'Sentry sentry_version=%s, sentry_client=%s, sentry_key=%s' % (version, client, key)}


def _package_name(spec):
    """'@sentry/node@8' -> '@sentry/node'; 'esbuild@0.20' -> 'esbuild'."""
    scope = spec.startswith('@')
    return ('@' if scope else '') + spec[1 if scope else 0:].split('@')[0]


def npm_modules(*specs):
    """A directory whose node_modules holds the npm packages `specs`, installed
    once and cached under ~/.cache/errorcapture-tests/npm/<digest of the specs>.
    Skips the test, with the reason, when node or npm is missing or the install
    fails (no registry). Run scripts with NODE_PATH=<dir>/node_modules, or from
    inside the directory."""
    node, npm = shutil.which('node'), shutil.which('npm')
    if not node or not npm:
        pytest.skip('needs node and npm on PATH')
    digest = hashlib.sha256(json.dumps(sorted(specs)).encode()).hexdigest()[:16]
    where = NPM_CACHE / digest
    names = [_package_name(spec) for spec in specs]
    if (where / '.installed').exists():
        return where
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=digest + '-', dir=str(NPM_CACHE)))
    try:
        (staging / 'package.json').write_text(json.dumps({'name': 'errorcapture-tests', 'version': '1.0.0',
                                                          'private': True}))
        try:
            done = subprocess.run([npm, 'install', '--no-audit', '--no-fund', '--loglevel=error'] + list(specs),
                                  cwd=str(staging), capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip('npm install %s timed out' % ' '.join(specs))
        missing = [name for name in names if not (staging / 'node_modules' / name).is_dir()]
        if done.returncode != 0 or missing:
            pytest.skip('npm install %s failed: %s' % (' '.join(specs), done.stderr.strip()[-500:] or done.returncode))
        (staging / '.installed').write_text('\n'.join(specs) + '\n')
        try:
            staging.rename(where)  # atomic: a concurrent run sees all of it or none
        except OSError:
            if not (where / '.installed').exists():  # pragma: no cover - another run left half a directory
                raise
    finally:
        if staging.exists():
            shutil.rmtree(str(staging), ignore_errors=True)
    return where


def chromium(window_size=(1400, 1000), arguments=(), browser_log=True, page_load_timeout=30):
    """A headless Debian chromium driven by selenium through /usr/bin/chromedriver,
    with a throwaway profile; skips the test when selenium, chromium or chromedriver
    is missing. The caller quits it (or uses the `chromium_driver` fixture)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - depends on the machine
        pytest.skip('browser tests skipped: selenium not installed')
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip('browser tests skipped: chromium/chromedriver not installed')
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
                '--no-first-run', '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--window-size=%d,%d' % tuple(window_size),
                '--user-data-dir=%s' % profile) + tuple(arguments):
        options.add_argument(arg)
    if browser_log:
        options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    try:
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    browser.set_page_load_timeout(page_load_timeout)
    quit_browser = browser.quit

    def quit_and_remove_profile():
        try:
            quit_browser()
        finally:
            shutil.rmtree(profile, ignore_errors=True)
    browser.quit = quit_and_remove_profile
    return browser


def post_envelope(client, project, body):
    """POST a Sentry envelope (bytes) to project (create_project's JSON) through a
    webtest TestApp, with its key; asserts the 200 an SDK expects and returns the answer."""
    answer = client.post('/api/%d/envelope/' % project['id'], body, headers=sentry_auth(project['hash']),
                         content_type='application/x-sentry-envelope')
    assert answer.status_int == 200, answer.body
    return answer


RECEIVER_WAIT = 20  # seconds: a generous bound for any webhook delivery


class Receiver(object):
    """A webhook endpoint on 127.0.0.1:<ephemeral>, standing in for Slack.
    fail_first: answer 500 to that many attempts first. gate: when given,
    each request waits for it (bounded) before answering."""

    def __init__(self, fail_first=0, gate=None):
        self.fail_first, self.gate = fail_first, gate
        self.attempts, self.delivered = [], []
        self.entered = threading.Event()
        self.changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length)
                with receiver.changed:
                    number = len(receiver.attempts) + 1
                    record = {'path': self.path, 'headers': dict(self.headers), 'body': body,
                              'json': json.loads(body.decode('utf-8'))}
                    receiver.attempts.append(record)
                    receiver.changed.notify_all()
                if receiver.gate is not None:
                    receiver.entered.set()
                    receiver.gate.wait(RECEIVER_WAIT)
                status = 500 if number <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header('Content-Type', 'text/plain')
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')
                if status == 200:
                    with receiver.changed:
                        receiver.delivered.append(record)
                        receiver.changed.notify_all()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d/hooks/test' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count, what='delivered'):
        with self.changed:
            ok = self.changed.wait_for(lambda: len(getattr(self, what)) >= count, RECEIVER_WAIT)
        assert ok, 'expected %d %s alerts within %d s, got %d: %r' % (
            count, what, RECEIVER_WAIT, len(getattr(self, what)), [r['json'] for r in getattr(self, what)])
        return [r['json'] for r in getattr(self, what)]

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def thread_cpus(pid):
    """The CPUs each thread of a process may run on: {tid: 'Cpus_allowed_list'}."""
    allowed = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid)) as status:
                allowed[tid] = re.search(r'Cpus_allowed_list:\s*(\S+)', status.read()).group(1)
        except OSError:
            pass  # a thread that ended
    return allowed
