"""Source maps with the real tools, end to end: a small app bundled and minified
by esbuild (--bundle --minify --sourcemap) together with @sentry/browser;
`sentry-cli sourcemaps inject` + `sentry-cli sourcemaps upload` (current major)
against a live server; the legacy `sentry-cli@2 releases files R
upload-sourcemaps` and a never-injected `sourcemaps upload --release` matched by
release and URL; then headless Chromium runs the minified bundle from another
origin and the stored event's top frame names the original file, function and
line. npm packages are installed once and cached (skipped, with the reason,
without node/npm or the registry)."""
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest

import errorcapture
from helpers import chromium, npm_modules

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN_TOKEN = 'sourcemaps-admin-token'

CART_JS = """\
// the shop's cart: prices are summed, big totals refused
export function computeTotal(items) {
  let total = 0;
  for (const item of items) {
    total += item.price;
  }
  if (total > 10) {
    throw new Error('total too large: ' + total);
  }
  return total;
}
"""
CART_THROW_LINE = 8

MAIN_JS = """\
import * as Sentry from '@sentry/browser';
import { computeTotal } from './cart.js';

Sentry.init({ dsn: window.SENTRY_DSN, release: window.SENTRY_RELEASE });

function checkout() {
  return computeTotal([{ price: 7 }, { price: 9 }]);
}

setTimeout(checkout, 0);
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script>window.SENTRY_DSN = %s; window.SENTRY_RELEASE = %s;</script>
<script src="%s"></script></head><body>shop</body></html>"""


def run(command, cwd, env=None, timeout=180):
    done = subprocess.run(command, cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    assert done.returncode == 0, '%s failed:\n%s\n%s' % (' '.join(command), done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout + done.stderr


class Site(object):
    """The shop's static files on their own origin (not ErrorCapture's)."""

    def __init__(self, root):
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def tools():
    current = npm_modules('@sentry/cli', 'esbuild', '@sentry/browser')
    legacy = npm_modules('@sentry/cli@2')
    return {'cli': str(current / 'node_modules' / '.bin' / 'sentry-cli'),
            'esbuild': str(current / 'node_modules' / '.bin' / 'esbuild'),
            'cli2': str(legacy / 'node_modules' / '.bin' / 'sentry-cli'), 'modules': current / 'node_modules'}


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    app = errorcapture.make_app(str(tmp_path_factory.mktemp('sourcemaps') / 'live.db'), admin_token=ADMIN_TOKEN)
    handle = errorcapture.serve_in_background(app, '127.0.0.1', 0)
    yield handle
    handle.stop()


def api(server, method, path, body=None, token=ADMIN_TOKEN):
    request = urllib.request.Request(server.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope='module')
def shop(tools, server, tmp_path_factory):
    """The project, its upload token, and the built site: /injected (debug ids)
    and /static (never injected, for the release-and-URL paths)."""
    project = api(server, 'POST', '/api/v1/projects', {'name': 'shop'})['project']
    token = api(server, 'POST', '/api/v1/projects/%d/tokens' % project['id'], {'name': 'ci'})['token']
    root = tmp_path_factory.mktemp('shop')
    (root / 'src').mkdir()
    (root / 'src' / 'cart.js').write_text(CART_JS)
    (root / 'src' / 'main.js').write_text(MAIN_JS)
    (root / 'node_modules').symlink_to(tools['modules'], target_is_directory=True)
    run([tools['esbuild'], 'src/main.js', '--bundle', '--minify', '--sourcemap', '--outfile=site/static/app.min.js'],
        root)
    shutil.copytree(str(root / 'site' / 'static'), str(root / 'site' / 'injected'))
    for name, release in (('debug-id', ''), ('legacy', 'shop@2.0'), ('release', 'shop@3.0')):
        script = '/injected/app.min.js' if name == 'debug-id' else '/static/app.min.js'
        (root / 'site' / (name + '.html')).write_text(PAGE % (json.dumps(project['dsn']), json.dumps(release or None),
                                                              script))
    return {'project': project, 'token': token['value'], 'root': root, 'site': Site(root / 'site')}


def cli_env(server, token):
    return {'SENTRY_URL': server.url, 'SENTRY_AUTH_TOKEN': token, 'SENTRY_ORG': 'errorcapture',
            'SENTRY_LOG_LEVEL': 'warn'}


@pytest.fixture(scope='module')
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def newest_event(server, key, release=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen('%s/api/v1/events?key=%s' % (server.url, key), timeout=10) as answer:
            events = [e for e in json.loads(answer.read())['events'] if e.get('release') == release]
        if events:
            with urllib.request.urlopen('%s/api/v1/events/%d?key=%s' % (server.url, events[0]['id'], key),
                                        timeout=10) as answer:
                return json.loads(answer.read())['event']
        time.sleep(0.2)
    raise AssertionError('no event with release %r arrived' % release)


def throw_in_browser(browser, shop, page):
    browser.get(shop['site'].url + '/' + page)


def assert_mapped_to_cart(event, how):
    raised = event['exception'][-1]
    top = raised['frames'][-1]
    assert top['filename'].endswith('src/cart.js'), top
    assert top['function'] == 'computeTotal', top
    assert top['lineno'] == CART_THROW_LINE, top
    assert top['contextLine'].strip() == "throw new Error('total too large: ' + total);", top
    assert top['sourceMap']['resolvedWith'] == how, top
    caller = raised['frames'][-2]   # named from its declaration in the minified file
    assert (caller['filename'], caller['function']) == ('src/main.js', 'checkout'), caller
    minified = raised['rawFrames'][-1]
    assert minified['filename'].endswith('/app.min.js'), minified   # the minified frame stays beside it
    assert minified['function'] != 'computeTotal' and minified['colno'] > 100, minified


def test_debug_id_upload_then_a_browser_error_is_mapped(tools, server, shop, browser):
    site = shop['root'] / 'site'
    out = run([tools['cli'], 'sourcemaps', 'inject', 'injected'], site)
    assert 'debug id' in out.lower()
    run([tools['cli'], 'sourcemaps', 'upload', '--project', 'shop', 'injected'], site,
        env=cli_env(server, shop['token']))
    throw_in_browser(browser, shop, 'debug-id.html')
    event = newest_event(server, shop['project']['key'])
    assert_mapped_to_cart(event, 'debug-id')
    # the viewer shows the original frames, and the minified ones on demand
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(server.url + '/health')
    browser.execute_script('localStorage.setItem("errorcapture.key", arguments[0]);', shop['project']['key'])
    browser.get('%s/#/events/%d' % (server.url, event['id']))
    files = lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="frame-filename"]')]
    WebDriverWait(browser, 10).until(lambda _: files())
    assert files()[0] == 'src/cart.js'
    functions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="frame-function"]')]
    assert functions[:2] == ['computeTotal', 'checkout']
    browser.find_element(By.CSS_SELECTOR, '[data-testid="toggle-minified-frames"]').click()
    WebDriverWait(browser, 10).until(lambda _: files() and files()[0].endswith('/injected/app.min.js'))


def test_legacy_release_files_upload_with_sentry_cli_2(tools, server, shop, browser):
    site = shop['root'] / 'site'
    env = cli_env(server, ADMIN_TOKEN)  # the admin token works for uploads too
    run([tools['cli2'], 'releases', 'new', '--project', 'shop', 'shop@2.0'], site, env=env)
    run([tools['cli2'], 'releases', '--project', 'shop', 'files', 'shop@2.0', 'upload-sourcemaps',
         '--url-prefix', '~/static', 'static'], site, env=env)
    throw_in_browser(browser, shop, 'legacy.html')
    assert_mapped_to_cart(newest_event(server, shop['project']['key'], release='shop@2.0'), 'release')


def test_current_major_upload_by_release_and_url_prefix_without_debug_ids(tools, server, shop, browser):
    site = shop['root'] / 'site'
    env = cli_env(server, shop['token'])
    run([tools['cli'], 'releases', 'new', '--project', 'shop', 'shop@3.0'], site, env=env)
    run([tools['cli'], 'sourcemaps', 'upload', '--project', 'shop', '--release', 'shop@3.0',
         '--url-prefix', '~/static', 'static'], site, env=env)
    throw_in_browser(browser, shop, 'release.html')
    assert_mapped_to_cart(newest_event(server, shop['project']['key'], release='shop@3.0'), 'release')


def test_a_bad_token_is_refused_in_sentry_clis_words(tools, server, shop):
    done = subprocess.run([tools['cli'], 'sourcemaps', 'upload', '--project', 'shop', 'injected'],
                          cwd=str(shop['root'] / 'site'), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **cli_env(server, 'ab' * 32)))
    assert done.returncode != 0
    assert 'http status: 401' in done.stderr, done.stderr
