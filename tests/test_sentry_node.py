"""The official @sentry/node SDK against a running ErrorCapture (optional: needs
node and npm, and installs @sentry/node from the npm registry once into the test
cache, helpers.npm_modules; skipped with the reason when any of that is unavailable)."""
import json
import os
import shutil
import subprocess

import pytest

from helpers import npm_modules

pytestmark = pytest.mark.slow

SCRIPT = r"""
const Sentry = require('@sentry/node');
// Dedupe would drop the second, identical exception on the client
Sentry.init({dsn: process.argv[2], release: 'node-client@1.0', environment: 'test', serverName: 'node-box',
             tracesSampleRate: 0,
             integrations: (defaults) => defaults.filter((integration) => integration.name !== 'Dedupe')});

function chargeCard(order) {
  return order.payment.card.number;  // the bug: order.payment is undefined
}

function checkout(order) {
  return chargeCard(order);
}

const ids = [];
for (let attempt = 0; attempt < 2; attempt++) {
  try {
    checkout({id: attempt});
  } catch (error) {
    ids.push(Sentry.captureException(error));
  }
}
Sentry.captureMessage('node says hello', 'warning');
Sentry.flush(15000).then((flushed) => {
  console.log(JSON.stringify({flushed: flushed, eventIds: ids}));
  process.exit(flushed ? 0 : 1);
});
"""


@pytest.fixture(scope='module')
def sentry_node(tmp_path_factory):
    modules = npm_modules('@sentry/node')
    where = tmp_path_factory.mktemp('sentry-node')
    (where / 'client.js').write_text(SCRIPT)
    return shutil.which('node'), where, modules / 'node_modules'


def read(server, key, path):
    import urllib.request
    with urllib.request.urlopen('%s%s%skey=%s' % (server.url, path, '&' if '?' in path else '?', key),
                                timeout=30) as answer:
        return json.loads(answer.read())


def test_node_sdk_exception_arrives(live_server, sentry_node):
    node, where, node_path = sentry_node
    project = live_server.project('node')
    env = {k: v for k, v in os.environ.items() if not k.startswith('SENTRY_')}
    env['NODE_PATH'] = str(node_path)
    done = subprocess.run([node, 'client.js', project['dsn']], cwd=str(where), capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert sent['flushed'] is True and len(sent['eventIds']) == 2

    issues = read(live_server, project['key'], '/api/v1/issues')['issues']
    errors = [issue for issue in issues if issue['type'] == 'TypeError']
    assert len(errors) == 1, issues
    error = errors[0]
    assert error['count'] == 2
    assert "reading 'card'" in error['title'] or 'card' in error['title']
    assert error['lastRelease'] == 'node-client@1.0'
    events = read(live_server, project['key'], '/api/v1/issues/%d/events' % error['id'])['events']
    assert sorted(e['eventId'] for e in events) == sorted(sent['eventIds'])
    event = read(live_server, project['key'], '/api/v1/events/%d' % events[0]['id'])['event']
    assert event['platform'] == 'node' and event['serverName'] == 'node-box'
    functions = [f.get('function') for f in event['exception'][-1]['frames']]
    assert 'chargeCard' in functions and 'checkout' in functions
    assert functions.index('checkout') < functions.index('chargeCard')  # oldest call first
    # captureMessage: @sentry/node sends the message plus a synthetic exception
    # (mechanism.synthetic, no type) carrying the stack; the issue is the message
    messages = [issue for issue in issues if issue['id'] != error['id']]
    assert len(messages) == 1, issues
    assert messages[0]['level'] == 'warning'
    assert messages[0]['title'] == 'node says hello'
