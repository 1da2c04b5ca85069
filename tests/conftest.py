"""Shared fixtures: an app through webtest, and a real waitress server."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))  # tests/ itself: `from helpers import ...`

import errorcapture  # noqa: E402
from helpers import chromium, create_project  # noqa: E402

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'errorcapture.db')


@pytest.fixture
def make(tmp_path):
    """make(**options) -> a webtest TestApp over a fresh app; closed after the test."""
    import webtest
    apps = []

    def factory(**options):
        options.setdefault('db', str(tmp_path / ('app%d.db' % len(apps))))
        app = errorcapture.make_app(**options)
        apps.append(app)
        test_app = webtest.TestApp(app)
        test_app.wsgi = app
        return test_app
    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def client(make):
    """A webtest TestApp over a fresh app with default settings."""
    return make()


@pytest.fixture
def project_key(client):
    return create_project(client)['hash']


class LiveServer(object):
    def __init__(self, app, handle):
        self.app, self.handle = app, handle
        self.url = handle.url
        self.port = handle.port

    def project(self, name='test'):
        """Create a project through the API; returns its JSON (key, id, dsn)."""
        return create_project(self, name)


@pytest.fixture
def live_server(tmp_path):
    """A real waitress server on an ephemeral port, serving a fresh database."""
    app = errorcapture.make_app(str(tmp_path / 'live.db'))
    handle = errorcapture.serve_in_background(app, '127.0.0.1', 0)
    yield LiveServer(app, handle)
    handle.stop()


@pytest.fixture
def live_server_factory(tmp_path):
    """live_server_factory(**options) -> LiveServer with those options."""
    handles = []

    def factory(**options):
        options.setdefault('db', str(tmp_path / ('live%d.db' % len(handles))))
        app = errorcapture.make_app(**options)
        handle = errorcapture.serve_in_background(app, '127.0.0.1', 0)
        handles.append(handle)
        return LiveServer(app, handle)
    yield factory
    for handle in handles:
        handle.stop()


@pytest.fixture
def chromium_driver():
    """A headless chromium (helpers.chromium) quit after the test."""
    browser = chromium()
    yield browser
    browser.quit()
