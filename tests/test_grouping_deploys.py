"""Grouping that survives deploys: a bundle's content hash or version in a file
name or module does not make a new issue at every deploy (as Sentry's JavaScript
grouping drops them), while the frames shown keep their real names."""
import json
import uuid

import pytest

import errorcapture
from helpers import create_project, sentry_auth


@pytest.mark.parametrize('shipped, grouped', [
    ('main.3f2a1b9c.js', 'main.js'),                     # webpack [name].[contenthash:8]
    ('chunk-4f3a9b.js', 'chunk.js'),
    ('index-a1b2c3d4e5.js', 'index.js'),                 # Next.js /_next/static/chunks/pages/
    ('app.js?v=123', 'app.js'),                          # cache-busting query
    ('index-BkTq3xY2.js', 'index.js'),                   # Vite /assets/
    ('index-CSu-5KYt.js', 'index.js'),                   # Vite hashes may hold "-"
    ('index-DiwrgTda.js', 'index.js'),                   # ... or no digit at all
    ('out-LJ4GZ5FD.js', 'out.js'),                       # esbuild
    ('polyfills.4f2c8e91a7b3d5e6f001.js', 'polyfills.js'),
    ('runtime~main.5e3a1c2b.js', 'runtime~main.js'),
    ('jquery-3.6.0.min.js', 'jquery.min.js'),            # a version
    ('app-v2.mjs', 'app.mjs'),
    ('page.DEADBEEF.tsx', 'page.tsx'),
])
def test_build_marks_are_left_out_for_grouping(shipped, grouped):
    assert errorcapture.grouping_file_name(shipped) == grouped


@pytest.mark.parametrize('name', [
    'vendor.js', 'step-1.js', 'UserCard.js', 'ui.UserCard.js', 'my-component.js', 'date-fns.js', 'lodash.min.js',
    'react-dom.production.min.js', 'Widget-facade.js', 'a-b-c.js', 'app.py', 'main.3f2a1b9c.py', 'Main.java',
])
def test_names_without_build_marks_are_kept(name):
    assert errorcapture.grouping_file_name(name) == name


def test_javascript_modules_lose_their_hash_and_others_keep_theirs():
    assert errorcapture.grouping_module('dist:main.3f2a1b9c') == 'dist:main'
    assert errorcapture.grouping_module('app/chunk-4f3a9b') == 'app/chunk'
    python = {'module': 'shop.v2.views', 'filename': 'shop/v2/views.py', 'function': 'f'}
    assert errorcapture.frame_location(python) == 'shop.v2.views:f'


def test_hostile_file_names_cost_linear_time():
    """Client text goes through string scanning, not a pattern that can backtrack."""
    for name in ('a1b2c-' * 5000 + '.js', '-' * 30000 + '.js', '1.' * 15000 + 'js', 'Ab1-' * 8000 + 'x.js'):
        assert isinstance(errorcapture.grouping_file_name(name), str)


def browser_event(url, function='renderCart', value="Cannot read properties of undefined (reading 'price')"):
    return {'event_id': uuid.uuid4().hex, 'platform': 'javascript', 'exception': {'values': [{
        'type': 'TypeError', 'value': value, 'mechanism': {'type': 'onerror', 'handled': False},
        'stacktrace': {'frames': [
            {'filename': url, 'function': 'HTMLButtonElement.onClick', 'lineno': 1, 'colno': 4021, 'in_app': True},
            {'filename': url, 'function': function, 'lineno': 1, 'colno': 10233, 'in_app': True}]}}]}}


def send(client, project, event):
    payload = json.dumps(event).encode()
    body = b'\n'.join([json.dumps({'event_id': event['event_id']}).encode(),
                       json.dumps({'type': 'event', 'length': len(payload)}).encode(), payload])
    answer = client.post('/api/%d/envelope/' % project['id'], body, headers=sentry_auth(project['hash']))
    assert answer.json == {'id': event['event_id']}


@pytest.mark.parametrize('before, after', [
    ('https://shop.example/static/js/main.3f2a1b9c.js', 'https://shop.example/static/js/main.9b7c2d4e.js'),
    ('https://shop.example/_next/static/chunks/pages/index-a1b2c3d4e5.js',
     'https://shop.example/_next/static/chunks/pages/index-f6e5d4c3b2.js'),
    ('https://shop.example/assets/index-BkTq3xY2.js', 'https://shop.example/assets/index-Qz9_aV-1.js'),
    ('https://shop.example/app.js?v=123', 'https://shop.example/app.js?v=124'),
    ('https://shop.example/js/chunk-4f3a9b.js', 'https://shop.example/js/chunk-7c1d0e.js'),
])
def test_the_same_error_after_a_deploy_is_the_same_issue(client, before, after):
    project = create_project(client)
    send(client, project, browser_event(before))
    send(client, project, browser_event(after))
    issues = client.get('/api/v1/issues', params={'key': project['hash']}).json['issues']
    assert len(issues) == 1 and issues[0]['count'] == 2, issues
    # the frames shown keep the names the browser reported
    rows = client.get('/api/v1/issues/%d/events' % issues[0]['id'], params={'key': project['hash']}).json['events']
    shown = set()
    for row in rows:
        event = client.get('/api/v1/events/%d' % row['id'], params={'key': project['hash']}).json['event']
        shown.update(f['filename'] for f in event['exception'][-1]['frames'])
    assert shown == {before, after}


def test_a_different_file_is_still_a_different_issue(client):
    project = create_project(client)
    send(client, project, browser_event('https://shop.example/static/js/main.3f2a1b9c.js'))
    send(client, project, browser_event('https://shop.example/static/js/checkout.3f2a1b9c.js'))
    issues = client.get('/api/v1/issues', params={'key': project['hash']}).json['issues']
    assert len(issues) == 2
