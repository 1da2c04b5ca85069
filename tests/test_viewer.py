"""Browser tests for the web viewer (static/index.html + app.js).

A real waitress server (the ``live_server`` fixture from conftest.py) gets data
through the public ingest endpoints, and headless Chromium drives the page.
Screenshots of the main views land in tests/screenshots/.

Skipped as a whole when selenium, chromium or chromedriver is missing.
"""
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from helpers import CHROMEDRIVER, CHROMIUM, chromium, create_project, sentry_auth

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

if webdriver is None or not CHROMIUM or not CHROMEDRIVER:
    pytest.skip('browser tests skipped: chromium/chromedriver not installed', allow_module_level=True)

pytestmark = pytest.mark.browser

HERE = os.path.dirname(os.path.abspath(__file__))
SCREENSHOTS = os.path.join(HERE, 'screenshots')

# Hostile strings stored in every client-controlled field.  If any of them ever
# turns into markup, window.__xss becomes 1 (or an element with an on* handler appears).
XSS = [
    '<img src=x onerror="window.__xss=1">',
    '<script>window.__xss=1</script>',
    'javascript:window.__xss=1',
    '"><svg onload=window.__xss=1>',
]
XSS_ALL = ' '.join(XSS)


# ---------------------------------------------------------------------------
# HTTP helpers (ingest and read API)
# ---------------------------------------------------------------------------

def http(method, url, body=None, headers=None):
    """-> (status, parsed JSON or raw text)."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode('utf-8')
        headers.setdefault('Content-Type', 'application/json')
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw.decode('utf-8'))
    except ValueError:
        return status, raw.decode('utf-8', 'replace')


def ok(result, what):
    status, body = result
    assert 200 <= status < 300, '%s answered %s: %r' % (what, status, body)
    return body


class Project(object):
    """A fresh project on the live server plus helpers to feed it data."""

    def __init__(self, server, name='viewer-test'):
        self.base = server.url
        self.project = create_project(server, name)
        self.key = self.project['key']
        self.id = self.project['id']

    # -- ingest ------------------------------------------------------------
    def api_php(self, message, level='Warning', **extra):
        body = dict(hash=self.key, level=level, message=message, **extra)
        return ok(http('POST', self.base + '/api.php', body), 'POST /api.php')

    def seestack(self, path, body):
        return ok(http('POST', self.base + '/ingest/v1/' + path, body, {'X-SeeStack-Key': self.key}),
                  'POST /ingest/v1/' + path)

    def open_sentry(self, items):
        return ok(http('POST', self.base + '/v1/ingest', items, {'X-Open-Sentry-Key': self.key}),
                  'POST /v1/ingest')

    def sentry_store(self, event):
        return ok(http('POST', '%s/api/%s/store/' % (self.base, self.id), event,
                       sentry_auth(self.key, client='viewer-tests/1.0')),
                  'POST /api/%s/store/' % self.id)

    # -- read API ------------------------------------------------------------
    def read(self, path, **params):
        params['key'] = self.key
        url = self.base + path + '?' + urllib.parse.urlencode(params)
        return ok(http('GET', url), 'GET ' + path)

    def issue_matching(self, text):
        """Wait until an issue whose title contains text exists; return it."""
        deadline = time.time() + 10
        while time.time() < deadline:
            for issue in self.read('/api/v1/issues', status='all', limit=100)['issues']:
                if text in (issue.get('title') or '') or text in (issue.get('value') or ''):
                    return issue
            time.sleep(0.1)
        raise AssertionError('no issue with %r' % text)


def sentry_event(value='bad token', release='shop@1.2.3', marker=None, xss=False):
    """A Sentry store payload: chained exception, frames with context, breadcrumbs, request..."""
    x = (lambda s: s + ' ' + XSS_ALL) if xss else (lambda s: s)
    return {
        'event_id': uuid.uuid4().hex,
        'level': 'error',
        'platform': 'python',
        'environment': x('production'),
        'release': x(release),
        'server_name': x('web-1'),
        'exception': {'values': [
            {'type': x('KeyError'), 'value': x("'user'"), 'stacktrace': {'frames': [
                {'filename': x('app/session.py'), 'function': x('load_session'), 'lineno': 21, 'in_app': True,
                 'context_line': x("    return store['user']")},
            ]}},
            {'type': x('ValueError'), 'value': x(value), 'stacktrace': {'frames': [
                {'filename': 'lib/server.py', 'function': 'serve_forever', 'lineno': 310, 'in_app': False,
                 'context_line': '        self._handle(request)'},
                {'filename': 'app/views.py', 'function': 'checkout', 'lineno': 55, 'in_app': True,
                 'pre_context': ['def checkout(request):', '    token = request.headers["X-Token"]'],
                 'context_line': '    user = check_token(token)',
                 'post_context': ['    return render(user)']},
                {'filename': x('app/auth.py'), 'function': x('check_token'), 'lineno': 12, 'colno': 9,
                 'in_app': True,
                 'pre_context': ['def check_token(token):', '    if not token:'],
                 'context_line': x("        raise ValueError('bad token')"),
                 'post_context': ['    return lookup(token)'],
                 'vars': {'token': x("'abc'")}},
            ]}},
        ]},
        'breadcrumbs': {'values': [
            {'timestamp': time.time() - 5, 'category': x('http'), 'message': x('GET /cart'), 'level': 'info',
             'type': 'http', 'data': {'url': x('/cart')}},
            {'timestamp': time.time() - 1, 'category': x('ui.click'), 'message': x('clicked pay' + (marker or '')),
             'level': 'info'},
        ]},
        'tags': {x('region'): x('eu-west'), 'browser': x('Firefox')},
        'user': {'id': x('u-42'), 'email': x('dev@example.com'), 'username': x('dev')},
        'request': {'method': 'POST', 'url': XSS[2] if xss else 'https://shop.example/checkout?step=2',
                    'query_string': 'step=2',
                    'headers': {'User-Agent': x('Mozilla/5.0'), x('X-Custom'): x('yes')},
                    'data': {'card': '[Filtered]'}},
        'extra': {'cart_size': 3},
    }


# ---------------------------------------------------------------------------
# Browser fixtures and helpers
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def driver():
    browser = chromium()  # one browser for the module: starting chromium costs seconds
    yield browser
    browser.quit()


class Page(object):
    """Drives the viewer for one project on one live server."""

    def __init__(self, driver, server, project=None):
        self.d = driver
        self.server = server
        self.project = project
        self.loads = 0

    def open(self, route, key=None):
        """Load the page fresh (a real navigation) at #<route> with the key stored."""
        key = key if key is not None else (self.project.key if self.project else '')
        self.d.get(self.server.url + '/health')
        self.d.execute_script('localStorage.clear(); if (arguments[0]) localStorage.setItem("errorcapture.key", arguments[0]);', key)
        self.loads += 1
        self.d.get('%s/?load=%d#%s' % (self.server.url, self.loads, route))
        self.wait_css('#main')

    def go(self, route):
        """Hash navigation inside the running page (no reload)."""
        self.d.execute_script('location.hash = arguments[0];', route)

    def wait(self, predicate, timeout=10, message=''):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: predicate())
        except TimeoutException:
            self.screenshot('failure')
            raise AssertionError('timed out waiting: %s\npage text:\n%s' % (message, self.text()[:3000]))

    def wait_css(self, selector, timeout=10):
        return self.wait(lambda: self.d.find_elements(By.CSS_SELECTOR, selector), timeout, selector)[0]

    def wait_count(self, selector, count, timeout=10):
        return self.wait(lambda: len(self.all(selector)) >= count and self.all(selector), timeout,
                         '%d x %s' % (count, selector))

    def tid(self, testid):
        return '[data-testid="%s"]' % testid

    def all(self, selector):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def text(self):
        return self.d.execute_script('return document.body.innerText;') or ''

    def wait_text(self, text, timeout=10):
        return self.wait(lambda: text in self.text(), timeout, 'text %r' % text)

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        self.d.execute_script('window.scrollTo(0, 0);')
        height = self.d.execute_script('return Math.max(document.body.scrollHeight, 900);')
        target = min(int(height) + 40, 3200)
        self.d.set_window_size(1400, target)
        deadline = time.time() + 2
        while time.time() < deadline and self.d.execute_script('return window.innerHeight;') < min(height, target - 200):
            time.sleep(0.05)
        time.sleep(0.1)
        self.d.save_screenshot(os.path.join(SCREENSHOTS, name + '.png'))
        self.d.set_window_size(1400, 1000)

    def csp_violations(self):
        try:
            entries = self.d.get_log('browser')
        except Exception:  # pragma: no cover - logging capability unsupported
            return []
        return [e['message'] for e in entries
                if 'Content Security Policy' in e.get('message', '') or 'Refused to' in e.get('message', '')]

    def assert_inert(self, where):
        """No script ran and no element with an event-handler attribute or javascript: link exists."""
        state = self.d.execute_script('''
            var bad = [];
            document.querySelectorAll("*").forEach(function (el) {
              for (var i = 0; i < el.attributes.length; i++) {
                var a = el.attributes[i];
                if (/^on/i.test(a.name)) bad.push(el.tagName + " " + a.name);
                if (/href|src|action/i.test(a.name) && /^\\s*javascript:/i.test(a.value)) bad.push(el.tagName + " " + a.name + "=" + a.value);
              }
            });
            return {xss: typeof window.__xss, bad: bad,
                    scripts: document.scripts.length,
                    imgs: document.querySelectorAll("main img").length};
        ''')
        assert state['xss'] == 'undefined', 'window.__xss was set on %s' % where
        assert state['bad'] == [], 'dangerous attributes on %s: %r' % (where, state['bad'])
        assert state['scripts'] == 1, 'extra <script> elements on %s' % where
        assert state['imgs'] == 0, '<img> injected on %s' % where


@pytest.fixture
def project(live_server):
    return Project(live_server)


@pytest.fixture
def page(driver, live_server, project):
    p = Page(driver, live_server, project)
    p.csp_violations()  # drop logs from earlier tests
    yield p
    assert p.csp_violations() == [], 'the page broke the Content-Security-Policy'


# ---------------------------------------------------------------------------
# Getting in: create a project, paste a key
# ---------------------------------------------------------------------------

def test_setup_create_project_shows_key_dsn_and_snippets(page):
    page.open('/issues', key='')
    page.wait_css(page.tid('create-form'))
    assert page.d.execute_script('return location.hash') == '#/setup'
    page.one(page.tid('project-name-input')).send_keys('shop-frontend')
    page.one(page.tid('create-submit')).click()
    key_el = page.wait_css(page.tid('project-key'))
    key = key_el.text.strip()
    assert len(key) == 32 and all(c in '0123456789abcdef' for c in key)
    assert page.d.execute_script('return localStorage.getItem("errorcapture.key")') == key
    origin = page.server.url
    dsn = page.one(page.tid('project-dsn')).text
    assert dsn.startswith('http://%s@127.0.0.1:' % key) and dsn.rstrip('/').split('/')[-1].isdigit()
    for name in ('curl', 'python', 'node', 'bash', 'sentry'):
        code = page.one(page.tid('snippet-' + name)).find_element(By.TAG_NAME, 'pre').text
        if name == 'sentry':
            assert 'sentry_sdk.init(dsn="%s")' % dsn in code
        else:
            assert key in code and origin + '/api.php' in code, name
    assert 'sys.excepthook' in page.one(page.tid('snippet-python')).text
    assert 'uncaughtException' in page.one(page.tid('snippet-node')).text
    assert 'report_error()' in page.one(page.tid('snippet-bash')).text
    assert page.one(page.tid('project-name')).text == 'shop-frontend'
    page.screenshot('setup')
    # the snippet really works: the curl one-liner's body reaches the project
    ok(http('POST', origin + '/api.php', {'hash': key, 'level': 'Error', 'message': 'from snippet'}), 'api.php')
    page.one(page.tid('go-issues')).click()
    page.wait_text('from snippet')


def test_paste_existing_key(page):
    page.project.api_php('pasted key works')
    page.open('/setup', key='')
    page.one(page.tid('key-input')).send_keys('0' * 32)
    page.one(page.tid('key-submit')).click()
    page.wait(lambda: page.one(page.tid('key-error')).is_displayed(), message='bad key refused')
    box = page.one(page.tid('key-input'))
    box.clear()
    box.send_keys(page.project.key)
    page.one(page.tid('key-submit')).click()
    page.wait_text('pasted key works')
    assert page.d.execute_script('return location.hash') == '#/issues'
    assert page.d.execute_script('return localStorage.getItem("errorcapture.key")') == page.project.key


# ---------------------------------------------------------------------------
# Issues: live list, filters, sparkline
# ---------------------------------------------------------------------------

def test_issue_list_updates_live_without_reload(page):
    p = page.project
    p.api_php('Undefined variable $cart', file='/var/www/cart.php', line=12)
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 1)
    page.d.execute_script('window.__sameDocument = "yes";')
    assert not page.all(page.tid('new-badge'))

    p.api_php('Division by zero in invoice total', level='Fatal Error', file='/var/www/invoice.php', line=7)
    page.wait_count(page.tid('issue-row'), 2)
    first = page.all(page.tid('issue-row'))[0]
    assert 'Division by zero' in first.text, 'newest issue should be on top'
    assert first.find_elements(By.CSS_SELECTOR, page.tid('new-badge'))
    assert 'row-new' in first.get_attribute('class')

    # the same error again: the existing row changes in place (count 2) and is marked
    p.api_php('Undefined variable $cart', file='/var/www/cart.php', line=12)
    page.wait(lambda: any('$cart' in r.text and r.get_attribute('data-count') == '2'
                          for r in page.all(page.tid('issue-row'))), message='count updated in place')
    assert len(page.all(page.tid('issue-row'))) == 2
    assert page.d.execute_script('return window.__sameDocument') == 'yes', 'the page reloaded'
    # sparkline: 24 bars, the current hour is not empty
    bars = page.all(page.tid('issue-row'))[0].find_elements(By.CSS_SELECTOR, 'svg.sparkline rect')
    assert len(bars) == 24 and 'spark-bar' in bars[-1].get_attribute('class')
    page.screenshot('issues')


def test_issue_filters_and_sort(page):
    p = page.project
    for i in range(3):
        p.api_php('Disk almost full', level='Warning')
    p.api_php('Payment gateway timeout', level='Fatal Error')
    p.seestack('errors', {'exceptionClass': 'TypeError', 'message': 'staging only', 'level': 'error',
                          'environment': 'staging'})
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 3)

    Select(page.one(page.tid('filter-sort'))).select_by_value('count')
    page.wait(lambda: 'Disk almost full' in page.all(page.tid('issue-row'))[0].text, message='sorted by count')
    assert 'sort=count' in page.d.execute_script('return location.hash')

    box = page.one(page.tid('search-query'))
    assert box.get_attribute('value') == 'is:unresolved'
    box.send_keys(' gateway')
    page.one(page.tid('filter-apply')).click()
    page.wait(lambda: len(page.all(page.tid('issue-row'))) == 1 and 'gateway' in page.all(page.tid('issue-row'))[0].text,
              message='text filter')
    box.clear()
    box.send_keys('is:unresolved environment:staging')
    page.one(page.tid('filter-apply')).click()
    page.wait(lambda: len(page.all(page.tid('issue-row'))) == 1 and 'staging only' in page.all(page.tid('issue-row'))[0].text,
              message='environment filter')
    assert 'query=is%3Aunresolved+environment%3Astaging' in page.d.execute_script('return location.hash')

    # resolve one through the API; the status filter hides/shows it
    issue = p.issue_matching('staging only')
    ok(http('POST', '%s/api/v1/issues/%s?key=%s' % (p.base, issue['id'], p.key), {'status': 'resolved'}), 'resolve')
    page.open('/issues?status=resolved')
    page.wait(lambda: len(page.all(page.tid('issue-row'))) == 1 and 'staging only' in page.all(page.tid('issue-row'))[0].text,
              message='resolved filter')
    page.open('/issues?status=unresolved')
    page.wait_count(page.tid('issue-row'), 2)
    assert 'staging only' not in page.text()


def test_issue_load_more(page):
    p = page.project
    for i in range(55):
        p.api_php('Distinct problem number %d' % i, file='/srv/f%d.php' % i, line=i + 1)
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 50)
    more = page.wait_css(page.tid('issues-load-more'))
    page.wait(lambda: more.is_displayed(), message='load more visible')
    more.click()
    page.wait_count(page.tid('issue-row'), 55)
    ids = [r.get_attribute('data-issue-id') for r in page.all(page.tid('issue-row'))]
    assert len(ids) == len(set(ids)) == 55


# ---------------------------------------------------------------------------
# Issue detail and event
# ---------------------------------------------------------------------------

def test_issue_detail_stack_trace_and_actions(page):
    p = page.project
    p.sentry_store(sentry_event(release='shop@1.2.2'))
    p.sentry_store(sentry_event(release='shop@1.2.3', marker=' (latest)'))
    issue = p.issue_matching('bad token')
    page.open('/issues/%s' % issue['id'])
    title = page.wait_css(page.tid('issue-title'))
    assert 'ValueError' in title.text and 'bad token' in title.text
    page.wait(lambda: page.one(page.tid('issue-count')).text == '2', message='event count')
    releases = page.one(page.tid('issue-releases')).text
    assert 'shop@1.2.3' in releases and 'shop@1.2.2' in releases
    assert page.one(page.tid('issue-first-seen')).text and page.one(page.tid('issue-last-seen')).text

    # the latest event is shown: exception chain, raised exception first, newest frame first
    page.wait_css(page.tid('exception-chain'))
    page.wait_text('clicked pay (latest)')
    excs = page.all(page.tid('exception'))
    assert [e.find_element(By.CSS_SELECTOR, page.tid('exception-type')).text for e in excs] == ['ValueError', 'KeyError']
    frames = excs[0].find_elements(By.CSS_SELECTOR, page.tid('stack-frame'))
    assert [f.find_element(By.CSS_SELECTOR, page.tid('frame-function')).text for f in frames] == \
        ['check_token', 'checkout', 'serve_forever']
    assert 'in-app' in frames[0].get_attribute('class') and 'system' in frames[2].get_attribute('class')
    ctx = frames[0].find_element(By.CSS_SELECTOR, page.tid('context-line'))
    assert "raise ValueError('bad token')" in ctx.text and ctx.is_displayed()
    assert '12' in ctx.text
    # breadcrumbs, tags, user, request
    assert 'GET /cart' in page.one(page.tid('breadcrumbs')).text
    assert 'eu-west' in page.one(page.tid('tags')).text
    assert 'dev@example.com' in page.one(page.tid('user')).text
    req = page.one(page.tid('request'))
    assert 'Mozilla/5.0' in req.text
    link = req.find_element(By.CSS_SELECTOR, page.tid('request-url'))
    assert link.get_attribute('href').startswith('https://shop.example/checkout')
    page.screenshot('issue-detail')

    # resolve -> reopen -> ignore, each through the API
    page.one(page.tid('action-resolve')).click()
    page.wait(lambda: page.one(page.tid('issue-status')).text == 'resolved', message='resolved')
    assert p.read('/api/v1/issues/%s' % issue['id'])['issue']['status'] == 'resolved'
    page.one(page.tid('action-reopen')).click()
    page.wait(lambda: page.one(page.tid('issue-status')).text == 'unresolved', message='reopened')
    page.one(page.tid('action-ignore')).click()
    page.wait(lambda: page.one(page.tid('issue-status')).text == 'ignored', message='ignored')
    assert p.read('/api/v1/issues/%s' % issue['id'])['issue']['status'] == 'ignored'

    # the events tab lists both; picking the older one shows it, with its id in the URL
    page.one(page.tid('tab-events')).click()
    page.wait_count(page.tid('event-row'), 2)
    rows = page.all(page.tid('event-row'))
    older_id = rows[1].get_attribute('data-event-id')
    rows[1].find_elements(By.TAG_NAME, 'td')[1].click()
    page.wait(lambda: 'shop@1.2.2' in page.one(page.tid('event-release')).text, message='older event shown')
    assert page.d.execute_script('return location.hash') == '#/issues/%s/events/%s' % (issue['id'], older_id)


def deep_stack_event(value='card declined', release='shop@2.0.0'):
    """A Flask-shaped error: three library frames under two in-app frames, each with 11 lines of context."""
    context = ['    step_%d()' % i for i in range(5)]
    return {
        'event_id': uuid.uuid4().hex, 'level': 'error', 'platform': 'python', 'release': release,
        'environment': 'production', 'user': {'id': 'u-1'},
        'exception': {'values': [{'type': 'PaymentError', 'value': value, 'stacktrace': {'frames': [
            {'filename': 'lib/socketserver.py', 'function': 'serve_forever', 'lineno': 240, 'in_app': False,
             'pre_context': context, 'context_line': '    self._handle()', 'post_context': context},
            {'filename': 'lib/flask/app.py', 'function': 'wsgi_app', 'lineno': 1498, 'in_app': False,
             'pre_context': context, 'context_line': '    response = self.full_dispatch_request()', 'post_context': context},
            {'filename': 'lib/flask/app.py', 'function': 'dispatch_request', 'lineno': 880, 'in_app': False,
             'pre_context': context, 'context_line': '    return view(**req.view_args)', 'post_context': context},
            {'filename': 'shop/views.py', 'function': 'pay', 'lineno': 41, 'in_app': True,
             'pre_context': context, 'context_line': '    charge(card)', 'post_context': context},
            {'filename': 'shop/billing.py', 'function': 'charge', 'lineno': 17, 'in_app': True,
             'pre_context': context, 'context_line': "    raise PaymentError('card declined')", 'post_context': context},
        ]}}]},
        'breadcrumbs': {'values': [{'timestamp': time.time() - i, 'category': 'log', 'message': 'step %d' % i}
                                   for i in range(30)]},
        'tags': {'browser': 'Firefox'},
    }


def at_viewport(page, width, height):
    """Make the page's viewport exactly width x height CSS pixels (the window frame does not count)."""
    page.d.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                           {'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': False})


def test_issue_page_opens_on_the_error_above_the_fold(page):
    p = page.project
    p.sentry_store(deep_stack_event())
    issue = p.issue_matching('card declined')
    at_viewport(page, 1400, 900)
    try:
        page.open('/issues/%s' % issue['id'])
        page.wait_css(page.tid('exception'))
        visible = page.d.execute_script('''
            var inView = function (el) { var r = el.getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; };
            var exc = document.querySelector('[data-testid="exception"]');
            var heads = Array.from(exc.querySelectorAll('.frame.in-app > .frame-head'));
            return {viewport: [innerWidth, innerHeight],
                    type: inView(exc.querySelector('[data-testid="exception-type"]')),
                    value: inView(exc.querySelector('[data-testid="exception-value"]')),
                    frames: heads.map(inView),
                    raised: inView(exc.querySelector('[data-testid="context-line"]'))};
        ''')
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.d.save_screenshot(os.path.join(SCREENSHOTS, 'issue-1400x900.png'))
    finally:
        page.d.execute_cdp_cmd('Emulation.clearDeviceMetricsOverride', {})
    assert visible['viewport'] == [1400, 900]
    assert visible['type'] and visible['value'], 'exception type and value above the fold: %r' % visible
    assert visible['frames'] == [True, True], 'both in-app frames above the fold: %r' % visible
    assert visible['raised'], 'the line that raised is above the fold'
    # in-app frames open with their source; the three library frames fold into one line
    frames = page.all(page.tid('stack-frame'))
    in_app = [f for f in frames if f.get_attribute('data-in-app') == 'true']
    library = [f for f in frames if f.get_attribute('data-in-app') == 'false']
    assert len(in_app) == 2 and len(library) == 3
    assert all('expanded' in f.get_attribute('class') for f in in_app)
    assert not any(f.is_displayed() for f in library)
    fold = page.one(page.tid('frame-fold-toggle'))
    assert '3 more frames' in fold.text
    fold.click()
    page.wait(lambda: all(f.is_displayed() for f in library), message='library frames unfold')
    assert not any('expanded' in f.get_attribute('class') for f in library)
    # the events list is a tab, not above the trace
    assert not page.one(page.tid('tab-panel-events')).is_displayed()


def test_event_page_raw_json_and_system_frames_toggle(page):
    p = page.project
    p.sentry_store(sentry_event())
    issue = p.issue_matching('bad token')
    event = p.read('/api/v1/issues/%s/events' % issue['id'])['events'][0]
    page.open('/events/%s' % event['id'])
    raw = page.wait_css(page.tid('raw-json'))
    assert raw.tag_name == 'pre'
    data = json.loads(raw.get_attribute('textContent'))
    assert data['id'] == event['id'] and data['issueId'] == issue['id']
    assert 'ValueError' in page.one(page.tid('event-title')).text
    assert page.one(page.tid('event-issue-link')).get_attribute('href').endswith('#/issues/%s' % issue['id'])
    frames = page.all(page.tid('stack-frame'))
    assert len(frames) == 4
    page.one(page.tid('toggle-system-frames')).click()
    page.wait(lambda: sum(1 for f in page.all(page.tid('stack-frame')) if f.is_displayed()) == 3,
              message='system frames hidden')
    page.screenshot('event')


def test_api_php_event_without_stack_shows_location(page):
    p = page.project
    p.api_php('Undefined index: id', file='/var/www/app/index.php', line=42, hostname='dev-machine',
              request={'method': 'GET', 'url': 'http://localhost/page?id=5', 'get': {'id': '5'}, 'post': None})
    issue = p.issue_matching('Undefined index')
    page.open('/issues/%s' % issue['id'])
    page.wait_css(page.tid('event-detail'))
    page.wait_text('/var/www/app/index.php')
    assert 'Undefined index: id' in page.one(page.tid('issue-title')).text


def test_a_message_with_a_stack_trace_shows_its_frames(page):
    """sentry-sdk's attach_stacktrace sends a message with "stacktrace", not an exception."""
    p = page.project
    event = {'event_id': uuid.uuid4().hex, 'level': 'warning', 'platform': 'python',
             'message': 'Slow checkout: 4.2 s', 'stacktrace': {'frames': [
                 {'filename': 'shop/app.py', 'function': 'main', 'lineno': 3, 'in_app': True},
                 {'filename': 'shop/checkout.py', 'function': 'pay', 'lineno': 88, 'in_app': True,
                  'context_line': '    log.warning("Slow checkout: %s", took)'}]}}
    p.sentry_store(event)
    issue = p.issue_matching('Slow checkout')
    page.open('/issues/%s' % issue['id'])
    page.wait_css(page.tid('stacktrace-panel'))
    frames = page.all(page.tid('stack-frame'))
    assert [f.find_element(By.CSS_SELECTOR, page.tid('frame-function')).text for f in frames] == ['pay', 'main']
    assert 'Slow checkout: 4.2 s' in page.one(page.tid('event-message')).text


# ---------------------------------------------------------------------------
# Other views
# ---------------------------------------------------------------------------

def http_requests(n=30):
    now = time.time()
    out = []
    for i in range(n):
        status = 500 if i % 10 == 0 else 404 if i % 5 == 0 else 200
        out.append({'traceId': 'trace-%03d' % i, 'direction': 'inbound' if i % 2 else 'outbound',
                    'method': 'POST' if i % 3 == 0 else 'GET', 'host': 'api.myapp.com' if i % 2 else 'payments.stripe.com',
                    'path': '/api/orders/%d' % i, 'statusCode': status, 'durationMs': 5 + i * 13,
                    'requestSize': 100 + i, 'responseSize': 1000 + i, 'userId': 'usr_%d' % (i % 4),
                    'timestamp': iso(now - 60 * i)})
    return out


def iso(ts):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts)) + '.%03dZ' % int((ts % 1) * 1000)


def test_requests_view(page):
    p = page.project
    p.seestack('http-requests', {'requests': http_requests(30)})
    page.open('/requests')
    page.wait_count(page.tid('request-row'), 30)
    page.wait(lambda: page.one(page.tid('req-count')).text == '30', message='count card')
    assert page.one(page.tid('req-p50')).text.endswith('ms') or page.one(page.tid('req-p50')).text.endswith('s')
    assert page.one(page.tid('req-p95')).text not in ('', '—')
    codes = {r.get_attribute('data-code') for r in page.all(page.tid('status-code-row'))}
    assert {'200', '404', '500'} <= codes
    hist = page.one(page.tid('latency-histogram'))
    assert hist.tag_name == 'svg' and hist.find_elements(By.CSS_SELECTOR, 'rect.bar')
    assert 'payments.stripe.com' in page.one(page.tid('hosts-table')).text
    page.screenshot('requests')
    # filter by status through the filter bar
    page.one(page.tid('filter-status')).send_keys('500')
    page.one(page.tid('filter-apply')).click()
    page.wait(lambda: len(page.all(page.tid('request-row'))) == 3, message='status filter')
    # the stats cards reload beside the rows, not necessarily before them
    page.wait(lambda: page.one(page.tid('req-count')).text == '3', message='count card follows the filter')
    assert 'status=500' in page.d.execute_script('return location.hash')


def test_requests_load_more_appends_the_next_page(page):
    """The shared paged table: 50 rows, then "Load more" appends the rest once, in order."""
    page.project.seestack('http-requests', {'requests': http_requests(55)})
    page.open('/requests')
    page.wait_count(page.tid('request-row'), 50)
    assert len(page.all(page.tid('request-row'))) == 50
    more = page.one(page.tid('requests-load-more'))
    page.wait(lambda: more.is_displayed(), message='load more visible')
    more.click()
    page.wait_count(page.tid('request-row'), 55)
    page.wait(lambda: not more.is_displayed(), message='load more hidden on the last page')
    ids = [r.get_attribute('data-request-id') for r in page.all(page.tid('request-row'))]
    assert len(ids) == len(set(ids)) == 55


def test_replays_view_and_timeline(page):
    p = page.project
    base = int(time.time() * 1000) - 60000
    p.seestack('replay', {'fingerprint': 'sess_8f3a2c1b', 'sessionId': 'sess_8f3a2c1b', 'events': [
        {'eventType': 'navigation', 'eventData': json.dumps({'from': '/home', 'to': '/checkout'}),
         'url': 'https://myapp.com/home', 'timestampMillis': base},
        {'eventType': 'mouse_click', 'eventData': json.dumps({'x': 512, 'y': 340, 'target': 'button#place-order'}),
         'url': 'https://myapp.com/checkout', 'timestampMillis': base + 5123},
        {'eventType': 'input', 'eventData': json.dumps({'field': 'card-number', 'value': '[MASKED]'}),
         'url': 'https://myapp.com/checkout', 'timestampMillis': base + 7800},
    ]})
    page.open('/replays')
    row = page.wait_css(page.tid('replay-row'))
    assert 'sess_8f3a2c1b' in row.text and '3' in row.text
    row.find_element(By.CSS_SELECTOR, page.tid('replay-link')).click()
    page.wait_count(page.tid('replay-event'), 3)
    timeline = page.one(page.tid('replay-timeline'))
    assert len(timeline.find_elements(By.CSS_SELECTOR, page.tid('timeline-dot'))) == 3
    changes = page.all(page.tid('replay-url-change'))
    assert len(changes) == 2 and 'https://myapp.com/checkout' in changes[1].text
    assert 'button#place-order' in page.text() and '[MASKED]' in page.text()
    page.screenshot('replay')


def log_lines(prefix, n, service='checkout'):
    return {'logs': [{'level': ['info', 'warn', 'error'][i % 3], 'message': '%s line %d' % (prefix, i),
                      'service': service, 'traceId': 'trace-%d' % i, 'metadata': {'i': i},
                      'timestamp': iso(time.time())} for i in range(n)]}


def test_logs_view_tails_live(page):
    p = page.project
    p.seestack('logs', log_lines('boot', 3))
    page.open('/logs')
    page.wait_count(page.tid('log-row'), 3)
    page.d.execute_script('window.__sameDocument = "yes";')
    p.seestack('logs', log_lines('later', 2, service='payments'))
    page.wait_count(page.tid('log-row'), 5)
    rows = page.all(page.tid('log-row'))
    assert 'later line 1' in rows[0].text and 'row-new' in rows[0].get_attribute('class')
    assert 'payments' in rows[0].text
    assert page.d.execute_script('return window.__sameDocument') == 'yes'
    page.screenshot('logs')
    # service filter
    page.one(page.tid('filter-service')).send_keys('payments')
    page.one(page.tid('filter-apply')).click()
    page.wait(lambda: len(page.all(page.tid('log-row'))) == 2, message='service filter')


def transaction(name, duration, spans, status='ok', trace=None):
    return {'type': 'transaction', 'name': name, 'traceId': trace or uuid.uuid4().hex, 'durationMs': duration,
            'status': status, 'environment': 'production', 'spans': spans, 'timestamp': iso(time.time())}


def checkout_spans():
    return [
        {'spanId': 'root', 'op': 'http.server', 'description': 'GET /api/checkout', 'durationMs': 240},
        {'spanId': 'db1', 'parentSpanId': 'root', 'op': 'db.query', 'description': 'SELECT * FROM orders',
         'durationMs': 40},
        {'spanId': 'http1', 'parentSpanId': 'root', 'op': 'http.client', 'description': 'POST https://payments/charge',
         'durationMs': 120},
    ]


def test_performance_view_and_waterfall(page):
    p = page.project
    p.open_sentry([transaction('GET /api/checkout', 245, checkout_spans()),
                   transaction('GET /api/checkout', 180, checkout_spans()),
                   transaction('GET /api/checkout', 300, checkout_spans(), status='error'),
                   transaction('POST /api/login', 35, [])])
    page.open('/performance')
    page.wait_count(page.tid('txn-name-row'), 2)
    row = [r for r in page.all(page.tid('txn-name-row')) if 'checkout' in r.text][0]
    assert '3' in row.text
    page.screenshot('performance')
    row.find_element(By.CSS_SELECTOR, page.tid('txn-name-link')).click()
    page.wait_count(page.tid('txn-row'), 3)
    page.all(page.tid('txn-link'))[0].click()
    svg = page.wait_css(page.tid('span-waterfall'))
    page.wait(lambda: len(svg.find_elements(By.CSS_SELECTOR, page.tid('span-row'))) == 3, message='3 spans')
    labels = svg.get_attribute('textContent')
    assert 'SELECT * FROM orders' in labels and 'POST https://payments/charge' in labels
    page.screenshot('waterfall')


def test_ai_view(page):
    p = page.project
    items = []
    for i in range(4):
        items.append({'type': 'ai_generation', 'provider': 'openrouter', 'model': 'anthropic/claude-sonnet-4',
                      'inputTokens': 1200 + i, 'outputTokens': 340, 'totalCostUsd': 0.00482, 'latencyMs': 1800 + i,
                      'status': 'ok', 'timestamp': iso(time.time() - 3600 * 30 * i)})
    items.append({'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt-4o-mini', 'inputTokens': 500,
                  'outputTokens': 100, 'totalCostUsd': 0.0003, 'latencyMs': 600, 'status': 'error',
                  'timestamp': iso(time.time())})
    p.open_sentry(items)
    page.open('/ai')
    page.wait_count(page.tid('ai-model-row'), 2)
    assert page.one(page.tid('ai-total-count')).text == '5'
    assert page.one(page.tid('ai-total-cost')).text == '$0.0196'
    for chart in ('ai-cost-chart', 'ai-tokens-chart'):
        svg = page.one(page.tid(chart))
        assert svg.tag_name == 'svg' and svg.find_elements(By.CSS_SELECTOR, 'rect.bar')
    assert 'gpt-4o-mini' in page.one(page.tid('ai-models-table')).text
    page.screenshot('ai')


def test_crons_view_create_and_heartbeat(page):
    p = page.project
    page.open('/crons')
    page.wait_css(page.tid('monitors-empty'))
    page.one(page.tid('monitor-slug')).send_keys('nightly-backup')
    page.one(page.tid('monitor-name')).send_keys('Nightly backup')
    page.one(page.tid('monitor-schedule')).send_keys('0 3 * * *')
    page.one(page.tid('monitor-grace')).send_keys('5')
    page.one(page.tid('monitor-create')).click()
    row = page.wait_css(page.tid('monitor-row'))
    assert 'Nightly backup' in row.text
    assert row.find_element(By.CSS_SELECTOR, page.tid('monitor-status')).text == 'pending'
    assert p.read('/api/v1/monitors/nightly-backup')['monitor']['name'] == 'Nightly backup'
    p.seestack('heartbeat', {'slug': 'nightly-backup', 'status': 'success', 'durationMs': 1200, 'message': 'done'})
    page.wait(lambda: page.one(page.tid('monitor-status')).text not in ('pending', ''), timeout=15,
              message='status after heartbeat')
    assert page.one(page.tid('monitor-next')).text not in ('', '—')
    page.screenshot('crons')
    page.one(page.tid('monitor-link')).click()
    page.wait_count(page.tid('monitor-history-row'), 1)
    assert 'done' in page.one(page.tid('monitor-history')).text
    page.screenshot('cron-detail')


# ---------------------------------------------------------------------------
# Hostile data: every client-controlled string stays text
# ---------------------------------------------------------------------------

def test_xss_corpus_stays_inert_everywhere(page):
    p = page.project
    x = lambda s: s + ' ' + XSS_ALL  # noqa: E731
    p.api_php(x('api.php message'), level=x('Warning'), file=x('/var/www/x.php'), line=3, hostname=x('host'),
              request={'method': 'GET', 'url': XSS[2], 'get': {x('k'): x('v')}, 'post': None})
    p.sentry_store(sentry_event(value='sentry value', xss=True))
    p.seestack('errors', {'exceptionClass': x('SeeStackError'), 'message': x('seestack msg'),
                          'stackTrace': ['at %s (%s:42:18)' % (XSS[0], XSS[3])], 'level': 'error',
                          'environment': x('env'), 'release': x('rel'), 'user': {'id': x('uid'), 'email': x('e')},
                          'metadata': {x('route'): x('/dashboard')}})
    p.open_sentry([{'type': 'error', 'exception': {'type': x('OSError'), 'value': x('open sentry value'),
                                                   'stacktrace': {'frames': [{'filename': x('f.tsx'),
                                                                              'function': x('fn'),
                                                                              'lineno': 1, 'inApp': True}]}},
                    'breadcrumbs': [{'category': x('nav'), 'message': x('crumb'), 'level': 'info'}],
                    'tags': {x('t'): x('v')}, 'user': {'id': x('u')}, 'environment': x('envx'),
                    'release': x('relx')}])
    p.seestack('http-requests', {'requests': [{'traceId': x('t'), 'direction': 'inbound', 'method': 'GET',
                                               'host': x('host.example'), 'path': x('/p'), 'statusCode': 200,
                                               'durationMs': 12, 'userId': x('u'), 'timestamp': iso(time.time())}]})
    p.seestack('replay', {'fingerprint': x('fp'), 'sessionId': 'sess-xss', 'events': [
        {'eventType': x('click'), 'eventData': x('data'), 'url': XSS[2], 'timestampMillis': int(time.time() * 1000)},
        {'eventType': 'navigation', 'eventData': json.dumps({'to': XSS_ALL}), 'url': 'https://ok.example/' + XSS[0],
         'timestampMillis': int(time.time() * 1000) + 1000}]})
    p.seestack('logs', {'logs': [{'level': 'error', 'message': x('log msg'), 'service': x('svc'),
                                  'traceId': x('tr'), 'metadata': {x('m'): x('v')}, 'timestamp': iso(time.time())}]})
    p.open_sentry([transaction(x('txn name'), 100, [
        {'spanId': 's1', 'op': x('db'), 'description': x('span desc'), 'durationMs': 50}]),
        {'type': 'ai_generation', 'provider': x('prov'), 'model': x('model'), 'inputTokens': 10,
         'outputTokens': 5, 'totalCostUsd': 0.001, 'status': 'ok', 'timestamp': iso(time.time())}])
    ok(http('POST', '%s/api/v1/monitors?key=%s' % (p.base, p.key),
            {'slug': 'xss-monitor', 'name': x('monitor name'), 'schedule': '*/5 * * * *', 'grace': 5}), 'monitor')
    p.seestack('heartbeat', {'slug': 'xss-monitor', 'status': 'success', 'message': x('beat')})

    ok(http('PUT', '%s/api/v1/project?key=%s' % (p.base, p.key), {'name': x('project name')}), 'rename')
    issues = p.read('/api/v1/issues', status='all', limit=100)['issues']
    assert len(issues) >= 4
    txn_id = p.read('/api/v1/transactions/list', name=x('txn name'))['transactions'][0]['id']
    # (route, element to wait for, strings that must be on the page as text)
    routes = [
        ('/issues', 'issue-row', [issue['title'] for issue in issues]),  # titles as the server shortened them
        ('/requests', 'request-row', [x('host.example'), x('/p')]),
        ('/replays', 'replay-row', ['sess-xss', x('fp'), XSS[2]]),
        ('/replays/sess-xss', 'replay-event', ['click ' + XSS[0] + ' ' + XSS[1], x('data'), XSS[2]]),
        ('/logs', 'log-row', [x('log msg'), x('svc')]),
        ('/performance', 'txn-name-row', [x('txn name')]),
        ('/performance?name=' + urllib.parse.quote(x('txn name')), 'txn-row', [x('txn name')]),
        ('/transactions/%s' % txn_id, 'span-row', [x('txn name'), x('db') + ' — ' + x('span desc')]),
        ('/ai', 'ai-model-row', [x('prov'), x('model')]),
        ('/crons', 'monitor-row', [x('monitor name')]),
        ('/crons/xss-monitor', 'monitor-history-row', [x('monitor name'), x('beat')]),
        ('/setup', 'project-row', [x('project name')]),
        ('/settings', 'settings-form', []),
        ('/issues?query=' + urllib.parse.quote(x('q')), 'search-hint', ['javascript']),
    ]
    for issue in issues:
        routes.append(('/issues/%s' % issue['id'], 'event-detail', [issue['title']]))
        for ev in p.read('/api/v1/issues/%s/events' % issue['id'])['events']:
            routes.append(('/events/%s' % ev['id'], 'raw-json', [ev['message']]))
    sentry_issue = [i for i in issues if i['title'].startswith('ValueError')][0]
    sentry_texts = [x('app/auth.py'), x('check_token'), x('GET /cart'), x('eu-west'),
                    x('region'), x('u-42'), x('dev@example.com'), x('Mozilla/5.0'), x('X-Custom'), XSS[2],
                    x('production'), x('shop@1.2.3'), x('KeyError'), x("'user'")]
    routes.append(('/issues/%s' % sentry_issue['id'], 'stack-frame', sentry_texts))
    for route, testid, texts in routes:
        page.open(route)
        page.wait_css(page.tid(testid))
        time.sleep(0.3)  # give any (wrongly) injected handler a chance to fire
        page.assert_inert(route)
        # SVG labels may be shortened; their full text lives in <title>, so use textContent
        shown = page.d.execute_script('return document.body.innerText + "\\n" + document.body.textContent;')
        for text in texts:
            assert text in shown, 'payload %r not shown as text on %s' % (text, route)
        if route == '/issues':
            page.screenshot('xss-issues')
        if route.startswith('/events/'):
            page.screenshot('xss-event')
    # a javascript: URL from data never becomes a link
    assert not page.all('a[href^="javascript"]')
