"""Requests the HTTP server refuses before the application sees them (a body
over its limit, an unreadable Content-Length, oversized headers, an unknown
Transfer-Encoding) are answered with a 4xx in the JSON of the dialect that
owns the path, as every other error is; against a real waitress server."""
import json

import pytest

import hostile_corpus as hc

OVER_THE_SERVER_LIMIT = str(30 << 20)  # waitress refuses bodies over 21 MiB before reading them


def raw_answer(port, head):
    """Send a request head (and no body) on a fresh connection; the answer."""
    answer = hc.send(port, None, None, raw=head.encode('latin-1'), timeout=15)
    assert answer.status is not None, answer
    return answer


def request_head(method, path, *headers):
    return '\r\n'.join(['%s %s HTTP/1.1' % (method, path), 'Host: 127.0.0.1'] + list(headers)) + '\r\n\r\n'


def body_of(answer):
    assert answer.header('content-type') == 'application/json', answer
    assert answer.header('connection') == 'close'
    return json.loads(answer.body)


@pytest.mark.parametrize('path, check', [
    ('/api.php', lambda body: body['ok'] is False and 'Too Large' in body['error']),
    ('/ingest/v1/errors', lambda body: body['success'] is False and body['error']['code'] == 'PAYLOAD_TOO_LARGE'
     and set(body['meta']) == {'requestId', 'timestamp'}),
    ('/v1/ingest', lambda body: body == {'error': 'Payload too large'}),
    ('/api/1/envelope/', lambda body: 'Too Large' in body['detail']),
    ('/api/1/store/', lambda body: 'Too Large' in body['detail']),
])
def test_a_body_over_the_server_limit_is_413_in_the_dialect_format(live_server, path, check):
    answer = raw_answer(live_server.port, request_head('POST', path, 'Content-Type: application/json',
                                                       'Content-Length: ' + OVER_THE_SERVER_LIMIT))
    assert answer.status == 413
    body = body_of(answer)
    assert check(body), body


@pytest.mark.parametrize('path, check', [
    ('/api.php?hash=x', lambda body: body['ok'] is False and 'Content-Length' in body['error']),
    ('/ingest/v1/http-requests', lambda body: body['error']['code'] == 'BAD_REQUEST'
     and 'Content-Length' in body['error']['message']),
    ('/v1/ingest', lambda body: body == {'error': 'Invalid payload'}),
    ('/api/7/envelope/?sentry_key=k', lambda body: 'Content-Length' in body['detail']),
])
def test_an_unreadable_content_length_is_400_in_the_dialect_format(live_server, path, check):
    answer = raw_answer(live_server.port, request_head('POST', path, 'Content-Length: twelve'))
    assert answer.status == 400
    body = body_of(answer)
    assert check(body), body


def test_oversized_headers_are_431_in_the_format_of_the_path_sent(live_server):
    answer = raw_answer(live_server.port, request_head('POST', '/ingest/v1/errors?x=1', 'X-SeeStack-Key: k',
                                                       'X-Padding: ' + 'p' * (1 << 20)))
    assert answer.status == 431
    body = body_of(answer)
    assert body['success'] is False and 'Header Fields Too Large' in body['error']['message']


def test_an_unknown_transfer_encoding_is_a_4xx_not_a_5xx(live_server):
    answer = raw_answer(live_server.port, request_head('POST', '/v1/ingest', 'Transfer-Encoding: gzip'))
    assert answer.status == 400
    assert body_of(answer) == {'error': 'Invalid payload'}


def test_the_server_keeps_serving_after_refusing(live_server):
    raw_answer(live_server.port, request_head('POST', '/api.php', 'Content-Length: ' + OVER_THE_SERVER_LIMIT))
    project = live_server.project('after')
    answer = hc.send(live_server.port, 'POST', '/api.php', json.dumps(
        {'hash': project['hash'], 'level': 'error', 'message': 'still here'}).encode(),
        [('Content-Type', 'application/json')])
    assert answer.status == 200 and answer.json['ok'] is True
