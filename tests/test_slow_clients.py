"""Slow clients cannot lock everyone out (issue 16, item 6): one client
address holds at most --connections-per-client connections, and a request
must arrive in time (a byte every few seconds no longer keeps a connection
forever). Loopback only: 127.0.0.2 plays the stranger, 127.0.0.1 the user."""
import http.client
import socket
import threading
import time

import pytest

import errorcapture

WAIT = 10  # bounds on waiting, not speed claims


def slow_socket(port, source='127.0.0.2'):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(WAIT)
    sock.connect(('127.0.0.1', port))
    sock.sendall(b'GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
    return sock


def healthy(port):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=WAIT)
    try:
        connection.request('GET', '/health')
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def server(tmp_path):
    handles = []

    def start(**options):
        app = errorcapture.make_app(str(tmp_path / ('slow%d.db' % len(handles))), sweep_interval=0, **options)
        handles.append(errorcapture.serve_in_background(app, '127.0.0.1', 0))
        return handles[-1]
    yield start
    for handle in handles:
        handle.stop()


def test_a_thousand_slow_connections_from_one_address_leave_room_for_others(server):
    handle = server()
    sockets = []
    try:
        for _ in range(1100):  # more than waitress's connection limit of 1,000
            sockets.append(slow_socket(handle.port))
        time.sleep(0.5)  # let the server accept what it will
        assert [healthy(handle.port) for _ in range(4)] == [200] * 4
        # the stranger kept no more than its share
        open_ones = 0
        for sock in sockets:
            sock.setblocking(False)
            try:
                open_ones += sock.recv(1) != b''
            except BlockingIOError:
                open_ones += 1
            except OSError:
                pass
        assert open_ones <= 128, open_ones
    finally:
        for sock in sockets:
            sock.close()


def test_connections_per_client_is_a_setting(server):
    handle = server(connections_per_client=0)  # no cap
    sockets = [slow_socket(handle.port) for _ in range(200)]
    try:
        time.sleep(0.3)
        for sock in sockets:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # still open, nothing answered yet
    finally:
        for sock in sockets:
            sock.close()


def test_a_request_trickling_in_is_cut_off(server, monkeypatch):
    monkeypatch.setattr(errorcapture, 'HEADER_DEADLINE', 1.0)
    handle = server()
    sock = slow_socket(handle.port, '127.0.0.1')
    closed = False
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b'x')  # a byte every 0.3 s defeats an idle timeout
                sock.settimeout(0.3)
                closed = sock.recv(1) == b''
            except socket.timeout:
                pass
            except OSError:
                closed = True
    finally:
        sock.close()
    assert closed, 'the trickling request was never cut off'
    assert healthy(handle.port) == 200


def test_a_big_body_at_a_fair_rate_is_not_cut_off(server, monkeypatch):
    monkeypatch.setattr(errorcapture, 'HEADER_DEADLINE', 1.0)
    monkeypatch.setattr(errorcapture, 'BODY_MIN_RATE', 100 << 10)
    handle = server()
    key = http.client.HTTPConnection('127.0.0.1', handle.port, timeout=WAIT)
    key.request('GET', '/api.php?action=generate')
    import json
    project = json.loads(key.getresponse().read())
    body = json.dumps({'hash': project['hash'], 'level': 'error', 'message': 'm' * (300 << 10)}).encode()
    sock = socket.create_connection(('127.0.0.1', handle.port), timeout=WAIT)
    try:
        sock.sendall(b'POST /api.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n'
                     b'Content-Length: %d\r\n\r\n' % len(body))
        for start in range(0, len(body), 64 << 10):  # 300 KiB in about 1.5 s: past the header deadline
            sock.sendall(body[start:start + (64 << 10)])
            time.sleep(0.3)
        answer = sock.recv(200)
    finally:
        sock.close()
    assert answer.startswith(b'HTTP/1.1 200'), answer


def test_the_server_loop_leaves_a_connection_alone_while_its_request_thread_sends(tmp_path):
    """A request thread sends its own small answer while it holds the
    connection's output lock. Polling that socket for writing meanwhile
    returns at once and the loop cannot take the lock: it would spin and
    starve the very thread it waits for. Once the thread lets go, the loop
    flushes whatever is left, as before."""
    app = errorcapture.make_app(str(tmp_path / 'loop.db'), sweep_interval=0)
    server = errorcapture.create_server(app, '127.0.0.1', 0, 1)
    ours, theirs = socket.socketpair()
    channel = server.channel_class(server, ours, ('127.0.0.1', 5), server.adj, map={})
    held, let_go = threading.Event(), threading.Event()

    def request_thread():
        with channel.outbuf_lock:
            held.set()
            let_go.wait(WAIT)
    try:
        channel.requests = [object()]  # a request is being served
        channel.total_outbufs_len = 200  # with its answer half written
        sender = threading.Thread(target=request_thread)
        sender.start()
        assert held.wait(WAIT)
        assert not channel.writable()
        let_go.set()
        sender.join(WAIT)
        assert channel.writable()
    finally:
        let_go.set()
        channel.requests = []
        channel.close()
        theirs.close()
        server.close()
        app.close()
