"""Webhooks cannot be turned against the inside (issue 16, items 4 and 5):
targets on loopback, private, link-local or metadata addresses are refused
at configuration, at delivery after DNS, and on every redirect, unless the
operator starts the server with --allow-private-webhooks; and one project's
webhook that never answers delays nobody else's alerts, nor shutdown."""
import http.server
import json
import socket
import threading
import time

import pytest

import errorcapture
from helpers import create_project


WAIT = 20  # a bound on waiting for a delivery, not a speed claim


class Receiver(object):
    """An HTTP endpoint on a loopback address. redirect_to: answer 302 there."""

    def __init__(self, host='127.0.0.1', redirect_to=None, hang=None):
        self.requests, self.changed = [], threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                with receiver.changed:
                    receiver.requests.append((self.path, body))
                    receiver.changed.notify_all()
                if hang is not None:
                    hang.wait(WAIT)
                self.send_response(302 if redirect_to else 200)
                if redirect_to:
                    self.send_header('Location', redirect_to)
                self.send_header('Content-Length', '0')
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://%s:%d/hook' % (host, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count):
        with self.changed:
            return self.changed.wait_for(lambda: len(self.requests) >= count, WAIT)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def factory(**options):
        made.append(Receiver(**options))
        return made[-1]
    yield factory
    for receiver in made:
        receiver.close()



def set_webhook(client, key, url):
    return client.put('/api/v1/project?key=' + key, json.dumps({'webhookUrl': url}),
                      content_type='application/json', expect_errors=True)


def new_issue(client, key, message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message}),
                         content_type='application/json')
    assert answer.json['ok'] is True


@pytest.mark.parametrize('url', [
    'http://127.0.0.1:{port}/internal', 'http://localhost:{port}/', 'http://[::1]:{port}/',
    'http://2130706433:{port}/', 'http://0:{port}/', 'http://10.1.2.3/', 'http://192.168.1.1/admin',
    'http://169.254.169.254/latest/meta-data/', 'http://[::ffff:127.0.0.1]:{port}/', 'http://[fd00::1]/',
    'http://100.64.0.1/', 'http://224.0.0.1/', 'https://hooks.slack.com@127.0.0.1:{port}/',
    'http://user:pass@127.0.0.1:{port}/', 'http://127.0.0.1\\@hooks.slack.com/',
])
def test_internal_targets_are_refused_at_configuration(make, receivers, url):
    client = make(sweep_interval=0)
    receiver = receivers()
    key = create_project(client)['hash']
    answer = set_webhook(client, key, url.format(port=receiver.server.server_address[1]))
    assert answer.status_int == 400, answer.body
    assert 'webhookUrl' in answer.json['error']
    assert client.get('/api/v1/project?key=' + key).json['project']['settings']['webhookUrl'] is None


def test_the_operator_flag_allows_internal_targets(make, receivers):
    client = make(sweep_interval=0, allow_private_webhooks=True)
    receiver = receivers()
    key = create_project(client)['hash']
    assert set_webhook(client, key, receiver.url).status_int == 200
    new_issue(client, key, 'Delivered inside')
    assert receiver.wait_for(1)
    assert b'Delivered inside' in receiver.requests[0][1]
    # user@host stays refused: it only ever hides the real host
    assert set_webhook(client, key, 'https://hooks.slack.com@127.0.0.1/').status_int == 400


def test_a_stored_target_that_now_resolves_inside_is_not_called(make, receivers, caplog):
    """A name that was public when it was set may point inside at delivery
    (DNS rebinding, or a URL stored before these checks): checked again."""
    client = make(sweep_interval=0)
    receiver = receivers()
    project = create_project(client)
    key, project_id = project['hash'], project['id']
    client.wsgi.store.update_project(project_id, settings={'webhookUrl': receiver.url})
    with caplog.at_level('WARNING', logger='errorcapture'):
        new_issue(client, key, 'Should not be delivered')
        deadline = time.time() + WAIT
        while time.time() < deadline and not receiver.requests and 'internal address' not in caplog.text:
            time.sleep(0.02)
    assert receiver.requests == []
    assert 'internal address' in caplog.text


def test_a_redirect_to_an_internal_address_is_not_followed(make, receivers, monkeypatch):
    """127.0.0.2 stands in for a public address (the one allowed here); its
    302 points at 127.0.0.3, which must never be called."""
    inside = receivers(host='127.0.0.3')
    outside = receivers(host='127.0.0.2', redirect_to=inside.url)
    real = errorcapture.internal_address if hasattr(errorcapture, 'internal_address') else None
    monkeypatch.setattr(errorcapture, 'internal_address',
                        lambda address: address != '127.0.0.2' and (real(address) if real else True), raising=False)
    client = make(sweep_interval=0, allow_private_webhooks=real is None)  # main has no checks at all
    key = create_project(client)['hash']
    assert set_webhook(client, key, outside.url).status_int == 200
    new_issue(client, key, 'Redirected')
    assert outside.wait_for(1)
    time.sleep(0.5)
    assert inside.requests == []


def test_redirects_between_allowed_targets_are_followed(make, receivers):
    final = receivers()
    first = receivers(redirect_to=final.url)
    client = make(sweep_interval=0, allow_private_webhooks=True)
    key = create_project(client)['hash']
    assert set_webhook(client, key, first.url).status_int == 200
    new_issue(client, key, 'Via a redirect')
    assert final.wait_for(1)


# -- 5. one slow webhook starves nobody ------------------------------------------------------

def test_a_webhook_that_never_answers_delays_only_its_own_project(make, receivers):
    hang = threading.Event()
    try:
        slow = receivers(hang=hang)
        fast = receivers()
        client = make(sweep_interval=0, allow_private_webhooks=True)
        slow_key = create_project(client, 'slow')['hash']
        fast_key = create_project(client, 'fast')['hash']
        assert set_webhook(client, slow_key, slow.url).status_int == 200
        assert set_webhook(client, fast_key, fast.url).status_int == 200
        words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']
        names = ['%s %s' % (a, b) for a in words for b in words]  # 100 distinct issues, no numbers
        for name in names + [name + ' again' for name in names]:
            new_issue(client, slow_key, 'Slow project problem ' + name)
        assert slow.wait_for(1)
        for name in words[:3]:
            new_issue(client, fast_key, 'Fast project problem ' + name)
        assert fast.wait_for(3), 'the other project got %d of 3 alerts' % len(fast.requests)
        # and shutdown does not wait for the hanging webhook or its queue
        closer = threading.Thread(target=client.wsgi.alerter.stop, daemon=True)
        closer.start()
        closer.join(WAIT)
        assert not closer.is_alive(), 'stopping the alerter hung'
    finally:
        hang.set()
