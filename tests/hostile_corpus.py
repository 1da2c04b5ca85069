"""The hostile-input corpus, as data and generators, plus the raw HTTP client
the hostile tests send it with.

Nothing here starts a server or asserts anything: test_hostile_input.py (and
test_limits_and_quotas.py) pick the endpoints and cases they need.

Vocabulary:

- An ``Endpoint`` is one place the server takes input: its method, its path
  (formatted with the project id, key and a fixture issue id), how the key is
  sent, a *valid* base payload, the dialect its errors are answered in, and
  which of its fields are numbers, required, or free-form.
- A ``Case`` is one hostile request for one endpoint, with what the answer must
  be: ``REJECT`` (a 4xx in the dialect's own error format), ``TOLERATE``
  (accepted, or a 4xx in the dialect's format; never a 5xx), ``TOO_LARGE``
  (413 in the dialect's format), or ``ACCEPT`` (a 2xx: the controls). Requests
  the HTTP server refuses before the application sees them (bad Content-Length,
  oversized headers) are held to the dialect's format too.
"""
import functools
import gzip
import json
import random
import socket
import struct
import time
import zlib

REJECT = 'reject'
TOLERATE = 'tolerate'
TOO_LARGE = 'too-large'
ACCEPT = 'accept'

MB = 1 << 20
TEN_MB = 10 * MB
HUGE_INT = 10 ** 400


###############################################################################
# A raw HTTP client: every byte of the request is ours, every wait is bounded.
###############################################################################

class Reply(object):
    """A webtest response seen through hostile_corpus.format_problem."""

    def __init__(self, response):
        self.status = response.status_int
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.body = response.body
        try:
            self.json = json.loads(response.body)
        except ValueError:
            self.json = None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return '<%d %s>' % (self.status, self.body[:300])


class Answer(object):
    """What came back: status (None if nothing), headers (lower-case names),
    body bytes, parsed JSON (or None), and what went wrong on the wire."""

    def __init__(self, status=None, headers=None, body=b'', timed_out=False, error=None, elapsed=0.0):
        self.status, self.headers, self.body = status, headers or {}, body
        self.timed_out, self.error, self.elapsed = timed_out, error, elapsed
        try:
            self.json = json.loads(body.decode('utf-8')) if body else None
        except ValueError:
            self.json = None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        if self.status is None:
            return '<no answer: %s>' % ('timed out' if self.timed_out else self.error)
        return '<%s %s>' % (self.status, self.body[:300])


def _as_bytes(value):
    return value if isinstance(value, bytes) else str(value).encode('latin-1')


def build_request(method, path, body=b'', headers=(), port=0, content_length=None):
    """Request bytes. content_length None: the body's length; False: no header;
    anything else: sent as given (lies included)."""
    lines = [_as_bytes('%s %s HTTP/1.1' % (method, path)), _as_bytes('Host: 127.0.0.1:%d' % port),
             b'Connection: close']
    if content_length is None:
        content_length = len(body) if (body or method in ('POST', 'PUT', 'PATCH')) else False
    if content_length is not False:
        lines.append(b'Content-Length: ' + _as_bytes(content_length))
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        lines.append(_as_bytes(name) + b': ' + _as_bytes(value))
    return b'\r\n'.join(lines) + b'\r\n\r\n' + body


def parse_response(data):
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep or not head.startswith(b'HTTP/'):
        return None, {}, data
    lines = head.split(b'\r\n')
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b':')
        headers[name.strip().decode('latin-1').lower()] = value.strip().decode('latin-1')
    if 'content-length' in headers:
        try:
            body = body[:int(headers['content-length'])]
        except ValueError:
            pass
    return status, headers, body


def send(port, method, path, body=b'', headers=(), timeout=30.0, content_length=None, half_close=False,
         raw=None):
    """One request on a fresh connection (Connection: close); reads the answer
    until the server closes or timeout passes. Never raises for wire trouble:
    a reset after a complete answer still counts as that answer."""
    started = time.monotonic()
    data = raw if raw is not None else build_request(method, path, body, headers, port, content_length)
    sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    error, timed_out, received = None, False, []
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered early and closed (431, 413...)
            error = exc
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(1 << 16)
            except socket.timeout:
                timed_out = True
                break
            except OSError as exc:
                error = error or exc
                break
            if not chunk:
                break
            received.append(chunk)
    finally:
        sock.close()
    status, response_headers, response_body = parse_response(b''.join(received))
    return Answer(status, response_headers, response_body, timed_out and status is None, error,
                  time.monotonic() - started)


###############################################################################
# Dialect error formats
###############################################################################

def format_problem(dialect, answer):
    """None when answer is an error in the dialect's own format, else what is wrong."""
    body = answer.json
    if not (answer.header('content-type') or '').startswith('application/json'):
        return 'Content-Type is %r, not JSON' % answer.header('content-type')
    if not isinstance(body, dict):
        return 'body is not a JSON object'
    if dialect == 'errorcapture':
        if body.get('ok') is False and isinstance(body.get('error'), str) and body['error']:
            return None
        return 'expected {"ok": false, "error": "..."}'
    if dialect == 'seestack':
        error = body.get('error')
        if (body.get('success') is False and isinstance(error, dict) and isinstance(error.get('code'), str)
                and isinstance(error.get('message'), str) and isinstance(body.get('meta'), dict)):
            return None
        return 'expected {"success": false, "error": {"code", "message"}, "meta": {...}}'
    if dialect in ('open-sentry', 'read'):
        if isinstance(body.get('error'), str) and body['error']:
            return None
        return 'expected {"error": "..."}'
    if dialect == 'sentry':
        if isinstance(body.get('detail'), str) and body['detail']:
            return None
        return 'expected {"detail": "..."}'
    raise ValueError(dialect)


def judge(dialect, expect, answer):
    """None when answer meets expect, else a one-line description of the miss."""
    status = answer.status
    if status is None:
        return 'no answer (%s)' % ('timed out' if answer.timed_out else answer.error)
    if status >= 500:
        return 'got %d (a 5xx)' % status
    if expect in (TOLERATE, ACCEPT) and 200 <= status < 300:
        return None
    if expect == ACCEPT:
        return 'expected a 2xx, got %d' % status
    if expect == TOO_LARGE and status != 413:
        return 'expected 413, got %d' % status
    if not 400 <= status < 500:
        return 'expected a 4xx, got %d' % status
    problem = format_problem(dialect, answer)
    return None if problem is None else '%d not in the %s format: %s' % (status, dialect, problem)


###############################################################################
# Endpoints
###############################################################################

def iso_now():
    return time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime())


class Endpoint(object):
    """One input of the server. ``base()`` returns a fresh valid payload;
    paths are dotted ('requests.0.statusCode')."""

    def __init__(self, name, dialect, method, path, base, key_header=None, key_prefix='', numbers=(),
                 required=(), freeform=(), strings=(), envelope=False, body_limit=None, compressed_ok=False):
        self.name, self.dialect, self.method, self.path = name, dialect, method, path
        self._base = base
        self.key_header, self.key_prefix = key_header, key_prefix
        self.numbers = numbers      # (path, strict): strict fields refuse huge, infinite and negative numbers
        self.required = required    # paths whose wrong type or absence must be refused
        self.freeform = freeform    # paths that take any JSON (depth and width bounded by the server)
        self.strings = strings      # main text fields (first: where a 10 MB string goes)
        self.envelope = envelope    # Sentry envelope: the payload travels as an item
        self.body_limit = body_limit
        self.compressed_ok = compressed_ok  # decodes Content-Encoding (Sentry)

    def base(self):
        return json.loads(json.dumps(self._base() if callable(self._base) else self._base))

    def url(self, ctx):
        return self.path.format(**ctx)

    def headers(self, ctx, key=None):
        key = ctx['key'] if key is None else key
        if self.key_header is None:
            return []
        return [(self.key_header, _as_bytes(self.key_prefix) + _as_bytes(key) if isinstance(key, bytes)
                 else self.key_prefix + key)]

    def wrap(self, payload_bytes):
        """The body for a payload: Sentry envelopes carry it as an event item."""
        if not self.envelope:
            return payload_bytes
        return (b'{"sent_at":"%s"}\n{"type":"event","length":%d}\n' % (iso_now().encode(), len(payload_bytes))
                + payload_bytes + b'\n')

    def __repr__(self):
        return self.name


def sentry_event():
    return {
        'message': 'hostile corpus', 'level': 'error', 'platform': 'python', 'logger': 'corpus',
        'timestamp': time.time(), 'environment': 'prod', 'release': '1.0', 'server_name': 'web-1',
        'exception': {'values': [{'type': 'ValueError', 'value': 'bad value', 'module': 'app',
                                  'stacktrace': {'frames': [{'filename': 'app.py', 'function': 'handler',
                                                             'lineno': 10, 'colno': 4, 'in_app': True,
                                                             'context_line': 'x = y',
                                                             'vars': {'a': 1}}]}}]},
        'tags': {'browser': 'firefox'}, 'extra': {'order': 17}, 'user': {'id': 'u1'},
        'contexts': {'os': {'name': 'Linux'}}, 'request': {'method': 'GET', 'url': 'http://x/y', 'data': {'q': 1}},
        'breadcrumbs': {'values': [{'message': 'clicked', 'category': 'ui', 'data': {'id': 1}}]},
        'fingerprint': ['{{ default }}'],
    }


ENDPOINTS = [
    Endpoint('api.php', 'errorcapture', 'POST', '/api.php', lambda: {
        'hash': '{key}', 'level': 'Warning', 'message': 'hostile corpus', 'file': '/var/www/index.php', 'line': 42,
        'hostname': 'web-1', 'request': {'method': 'GET', 'url': 'http://x/?a=1', 'get': {'a': '1'}, 'post': {'b': 2}}},
        numbers=[('line', False)], required=['hash', 'level', 'message'],
        freeform=['request.post', 'request.get'], strings=['message', 'level', 'file', 'hostname'],
        body_limit=1 << 20),
    Endpoint('seestack errors', 'seestack', 'POST', '/ingest/v1/errors', lambda: {
        'exceptionClass': 'java.lang.IllegalStateException', 'message': 'hostile corpus', 'level': 'error',
        'stackTrace': ['at com.acme.Foo.bar(Foo.java:10)'], 'environment': 'prod', 'release': '1.0',
        'timestamp': iso_now(), 'user': {'id': 'u1'}, 'metadata': {'order': 17}, 'tags': {'a': 'b'},
        'request': {'url': 'http://x/'}, 'fingerprint': 'fp'},
        key_header='X-SeeStack-Key', numbers=[('timestamp', True)], required=['exceptionClass', 'message'],
        freeform=['metadata', 'user', 'request'], strings=['message', 'exceptionClass', 'environment'],
        body_limit=1 << 20),
    Endpoint('seestack http-requests', 'seestack', 'POST', '/ingest/v1/http-requests', lambda: {
        'requests': [{'traceId': 'trace-1', 'direction': 'inbound', 'method': 'GET', 'host': 'api.example.com',
                      'path': '/users', 'statusCode': 200, 'durationMs': 12.5, 'requestSize': 10,
                      'responseSize': 20, 'userId': 'u1', 'timestamp': iso_now()}]},
        key_header='X-SeeStack-Key',
        numbers=[('requests.0.statusCode', True), ('requests.0.durationMs', True), ('requests.0.requestSize', True)],
        required=['requests', 'requests.0.traceId', 'requests.0.host', 'requests.0.path', 'requests.0.direction',
                  'requests.0.method', 'requests.0.timestamp'],
        strings=['requests.0.path', 'requests.0.host'], body_limit=1 << 20),
    Endpoint('seestack replay', 'seestack', 'POST', '/ingest/v1/replay', lambda: {
        'fingerprint': 'sess-1', 'sessionId': 'sess-1',
        'events': [{'eventType': 'click', 'eventData': '{"x": 1}', 'url': 'http://x/',
                    'timestampMillis': int(time.time() * 1000)}]},
        key_header='X-SeeStack-Key', numbers=[('events.0.timestampMillis', True)],
        required=['fingerprint', 'sessionId', 'events', 'events.0.eventType', 'events.0.eventData',
                  'events.0.timestampMillis'],
        strings=['events.0.eventData', 'sessionId'], body_limit=1 << 20),
    Endpoint('seestack logs', 'seestack', 'POST', '/ingest/v1/logs', lambda: {
        'logs': [{'level': 'info', 'message': 'hostile corpus', 'service': 'api', 'traceId': 't1',
                  'metadata': {'a': 1}, 'timestamp': iso_now()}]},
        key_header='X-SeeStack-Key', numbers=[('logs.0.timestamp', True)],
        required=['logs.0.level', 'logs.0.message'], freeform=['logs.0.metadata'],
        strings=['logs.0.message', 'logs.0.service'], body_limit=1 << 20),
    Endpoint('seestack heartbeat', 'seestack', 'POST', '/ingest/v1/heartbeat', lambda: {
        'slug': 'hostile-job', 'status': 'success', 'durationMs': 5, 'message': 'done'},
        key_header='X-SeeStack-Key', numbers=[('durationMs', True)], required=['slug', 'status'],
        strings=['message', 'slug'], body_limit=1 << 20),
    Endpoint('open sentry', 'open-sentry', 'POST', '/v1/ingest', lambda: [
        {'type': 'error', 'message': 'hostile corpus', 'level': 'error', 'environment': 'prod', 'release': '1.0',
         'timestamp': iso_now(), 'tags': {'a': 'b'}, 'user': {'id': 'u1'},
         'exception': {'type': 'TypeError', 'value': 'x is undefined',
                       'stacktrace': {'frames': [{'filename': 'app.js', 'function': 'f', 'lineno': 1, 'colno': 2,
                                                  'inApp': True}]}},
         'breadcrumbs': [{'message': 'clicked'}]},
        {'type': 'transaction', 'name': 'GET /users', 'traceId': 'trace-1', 'durationMs': 12, 'status': 'ok',
         'spans': [{'spanId': 's1', 'op': 'db', 'durationMs': 1}]},
        {'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt-4o', 'inputTokens': 10, 'outputTokens': 5,
         'totalCostUsd': 0.01, 'latencyMs': 100, 'status': 'ok', 'metadata': {'a': 1}}],
        key_header='X-Open-Sentry-Key',
        numbers=[('1.durationMs', True), ('2.inputTokens', True), ('2.latencyMs', True),
                 ('0.exception.stacktrace.frames.0.lineno', False)],
        required=['0.type', '0.exception', '0.exception.type', '0.exception.value', '1.name', '1.traceId',
                  '1.durationMs', '2.provider', '2.model', '2.inputTokens'],
        freeform=['2.metadata'], strings=['0.message', '0.exception.value'], body_limit=256 << 10),
    Endpoint('sentry store', 'sentry', 'POST', '/api/{project_id}/store/', sentry_event,
             key_header='X-Sentry-Auth', key_prefix='Sentry sentry_version=7, sentry_key=',
             numbers=[('timestamp', True), ('exception.values.0.stacktrace.frames.0.lineno', False)],
             freeform=['extra', 'contexts', 'user', 'request.data', 'exception.values.0.stacktrace.frames.0.vars',
                       'breadcrumbs.values.0.data'],
             strings=['message', 'exception.values.0.value', 'exception.values.0.stacktrace.frames.0.context_line'],
             body_limit=1 << 20, compressed_ok=True),
    Endpoint('sentry envelope', 'sentry', 'POST', '/api/{project_id}/envelope/', sentry_event,
             key_header='X-Sentry-Auth', key_prefix='Sentry sentry_version=7, sentry_key=',
             numbers=[('timestamp', True), ('exception.values.0.stacktrace.frames.0.lineno', False)],
             freeform=['extra', 'contexts', 'user', 'request.data', 'breadcrumbs.values.0.data'],
             strings=['message', 'exception.values.0.value'], envelope=True, body_limit=1 << 20,
             compressed_ok=True),
    # read API: bodies of status changes, project settings and monitors
    Endpoint('read issue status', 'read', 'POST', '/api/v1/issues/{issue_id}?key={key}', {'status': 'resolved'},
             required=['status'], strings=['status'], body_limit=64 << 10),
    Endpoint('read project settings', 'read', 'PUT', '/api/v1/project?key={key}', {
        'name': 'hostile', 'retentionEvents': 1000, 'retentionDays': 30},
        numbers=[('retentionEvents', True), ('retentionDays', True)], strings=['name'], body_limit=64 << 10),
    Endpoint('read monitors', 'read', 'POST', '/api/v1/monitors?key={key}', lambda: {
        'slug': 'job-%d' % random.randrange(10 ** 9), 'name': 'Job', 'schedule': '5m', 'grace': 5},
        numbers=[('grace', True)], required=['slug', 'schedule'], strings=['name'], body_limit=64 << 10),
]
ENDPOINTS_BY_NAME = {e.name: e for e in ENDPOINTS}
INGEST = [e for e in ENDPOINTS if e.dialect != 'read']


###############################################################################
# Payload surgery
###############################################################################

def get_path(obj, path):
    for part in path.split('.'):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def set_path(obj, path, value):
    parts = path.split('.')
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    last = parts[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value
    return obj


def delete_path(obj, path):
    parts = path.split('.')
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    if isinstance(obj, dict):
        obj.pop(parts[-1], None)


def leaf_paths(obj, prefix=''):
    """Every path in a payload (dict keys, and the first element of lists)."""
    out = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = prefix + key
            out.append(path)
            out += leaf_paths(value, path + '.')
    elif isinstance(obj, list) and obj:
        path = prefix + '0'
        if prefix:
            out.append(path)
        out += leaf_paths(obj[0], path + '.')
    return out


RAW = '\u0000RAW\u0000'


def with_raw(payload, path, raw_text):
    """JSON text of payload with the value at path replaced by raw_text
    (anything, valid JSON or not)."""
    payload = json.loads(json.dumps(payload))
    set_path(payload, path, RAW)
    text = json.dumps(payload)
    return text.replace(json.dumps(RAW), raw_text).encode('utf-8')


def kind_of(value):
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    if value is None:
        return 'null'
    return type(value).__name__


WRONG_TYPES = [('number', 12345), ('bool', True), ('null', None), ('str', 'not-the-right-type'), ('list', [1, 'a']),
               ('dict', {'k': 'v'})]


###############################################################################
# Generators of big and compressed things (streaming: no 1 GB in memory)
###############################################################################

@functools.lru_cache(maxsize=None)
def zero_bomb(kind, size=1 << 30):
    """`size` zero bytes compressed as gzip, zlib ('deflate') or raw deflate,
    built from one compressed 1 MiB block repeated (each block ends with a
    full flush, so every repetition is byte-identical): about 1 MB for 1 GB,
    and the test itself never holds the 1 GB."""
    chunk = bytes(MB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    count = size // MB
    raw = block * count + tail
    if kind == 'raw-deflate':
        return raw
    crc, adler = 0, 1
    for _ in range(count):
        if kind == 'gzip':
            crc = zlib.crc32(chunk, crc)
        else:
            adler = zlib.adler32(chunk, adler)
    if kind == 'gzip':
        return b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff' + raw + struct.pack('<II', crc, size & 0xffffffff)
    if kind == 'deflate':
        return b'\x78\xda' + raw + struct.pack('>I', adler)
    raise ValueError(kind)


def deep_list(depth):
    return b'[' * depth + b']' * depth


def deep_object(depth):
    return b'{"a":' * depth + b'1' + b'}' * depth


def garbage(size, seed=1234):
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


###############################################################################
# The corpus
###############################################################################

class Case(object):
    """One hostile request. body: bytes (already wrapped for envelopes unless
    wrapped=False); headers: extra headers; expect: REJECT...; key: the key to
    send (None: the fixture's); content_length: as for build_request."""

    def __init__(self, name, body, expect, headers=(), key=None, content_length=None, path=None, method=None):
        self.name, self.body, self.expect = name, body, expect
        self.headers, self.key, self.content_length = list(headers), key, content_length
        self.path, self.method = path, method

    def __repr__(self):
        return '<Case %s>' % self.name


def after_first_byte(body, insert):
    return body[:1] + insert + body[1:]


def encoded(payload):
    return json.dumps(payload).encode('utf-8')


def payload_with_key(endpoint, payload, ctx):
    """api.php carries its key in the body."""
    if endpoint.name == 'api.php' and isinstance(payload, dict) and payload.get('hash') == '{key}':
        payload['hash'] = ctx['key']
    return payload


def corpus(endpoint, ctx, heavy=True):
    """Yield every Case for endpoint. ctx: {'key', 'project_id', 'issue_id',
    'other_key'}. heavy=False leaves out the 10 MB bodies and the bombs."""
    e = endpoint

    def base():
        return payload_with_key(e, e.base(), ctx)

    def case(name, payload_bytes, expect, **kw):
        return Case(name, e.wrap(payload_bytes), expect, **kw)

    def fresh():  # a new valid payload (monitors need a new slug each time)
        return encoded(base())

    valid = fresh()
    yield case('control: the valid base payload', valid, ACCEPT)

    # -- malformed JSON --
    for label, text in [('empty body', b''), ('whitespace', b'   \r\n'), ('unclosed object', b'{'),
                        ('dangling key', b'{"a":'), ('missing colon', b'{"a" 1}'), ('single quotes', b"{'a': 1}"),
                        ('unclosed array', b'[1, 2'), ('trailing garbage', valid + b' trailing'),
                        ('two documents', valid + valid), ('comment', b'{/* c */"a": 1}'),
                        ('trailing comma', b'{"a": 1,}'), ('bare word', b'undefined'),
                        ('truncated valid payload', valid[:len(valid) // 2]),
                        ('random bytes', garbage(4096)), ('form encoded', b'a=1&b=2'),
                        ('xml', b'<?xml version="1.0"?><error/>')]:
        yield case('malformed JSON: ' + label, text, REJECT)
    for label, text in [('null', b'null'), ('true', b'true'), ('number', b'123'), ('string', b'"error"'),
                        ('empty array', b'[]'), ('array of numbers', b'[1, 2, 3]')]:
        yield case('wrong top-level type: ' + label, text, REJECT)
    yield case('empty object', b'{}', TOLERATE)

    # -- wrong types in every field, and missing required fields --
    payload = base()
    for path in leaf_paths(payload):
        original = get_path(payload, path)
        for kind, wrong in WRONG_TYPES:
            if kind == kind_of(original):
                continue
            mutated = base()
            set_path(mutated, path, wrong)
            expect = REJECT if path in e.required else TOLERATE
            if kind == 'number' and path.endswith('timestamp'):
                expect = TOLERATE  # epoch seconds are a documented alternative to ISO-8601 text
            yield case('wrong type: %s = %s' % (path, json.dumps(wrong)), encoded(mutated), expect)
    for path in e.required:
        mutated = base()
        delete_path(mutated, path)
        yield case('missing required field: %s' % path, encoded(mutated), REJECT)

    # -- nesting --
    yield case('nesting: 10,000-level [[[...]]] body', deep_list(10000), REJECT)
    yield case('nesting: 10,000-level {"a":{"a":...}} body', deep_object(10000), REJECT)
    for path in (e.freeform or e.strings)[:2]:
        yield case('nesting: 10,000-level list in %s' % path, with_raw(base(), path, deep_list(10000).decode()),
                   REJECT)
    for path in e.freeform:
        yield case('nesting: 900-level list in %s' % path, with_raw(base(), path, deep_list(900).decode()),
                   TOLERATE)
        yield case('nesting: 900-level object in %s' % path, with_raw(base(), path, deep_object(900).decode()),
                   TOLERATE)
    if e.dialect == 'sentry':
        yield case('nesting: 900-level list in tags', with_raw(base(), 'tags', '{"t": %s}' % deep_list(900).decode()),
                   TOLERATE)
        # Sentry also takes tags as [key, value] pairs; a key that is itself a list or object
        for key in ('["a"]', '{"a": 1}', 'null'):
            yield case('tags pair with a %s key' % key, with_raw(base(), 'tags', '[[%s, "b"]]' % key), TOLERATE)

    # -- a 10 MB string, and one just under the body limit --
    if heavy:
        big = base()
        set_path(big, e.strings[0], 'x' * TEN_MB)
        yield case('10 MB string in %s' % e.strings[0], encoded(big), TOO_LARGE)
    if e.body_limit:
        near = base()
        set_path(near, e.strings[0], '')
        room = e.body_limit - len(e.wrap(encoded(near))) - 64
        set_path(near, e.strings[0], 'y' * room)
        yield case('string just under the body limit in %s' % e.strings[0], encoded(near), TOLERATE)
        over = base()
        set_path(over, e.strings[0], 'z' * (e.body_limit + 1))
        yield case('string just over the body limit in %s' % e.strings[0], encoded(over), TOO_LARGE)

    # -- invalid UTF-8, NUL bytes, surrogates --
    for label, junk in [('0xff 0xfe', b'\xff\xfe'), ('overlong slash', b'\xc0\xaf'),
                        ('truncated sequence', b'\xe2\x82'), ('encoded surrogate', b'\xed\xa0\x80'),
                        ('latin-1 text', 'caf\u00e9'.encode('latin-1'))]:
        yield case('invalid UTF-8 (%s) in %s' % (label, e.strings[0]),
                   with_raw(base(), e.strings[0], '"before__JUNK__after"').replace(b'__JUNK__', junk), REJECT)
    yield case('UTF-16 body', '\ufeff'.encode('utf-16-le') + json.dumps(base()).encode('utf-16-le'), REJECT)
    yield case('raw NUL byte inside a string',
               with_raw(base(), e.strings[0], '"a__NUL__b"').replace(b'__NUL__', b'\x00'), REJECT)
    yield case('raw NUL byte between tokens', after_first_byte(fresh(), b'\x00'), REJECT)
    for path in e.strings:
        yield case('escaped NUL (\\u0000) in %s' % path, with_raw(base(), path, '"a\\u0000b\\u0000"'), TOLERATE)
        yield case('lone surrogate (\\ud800) in %s' % path, with_raw(base(), path, '"a\\ud800b"'), TOLERATE)
        yield case('reversed surrogate pair in %s' % path, with_raw(base(), path, '"\\udc00\\ud800"'), TOLERATE)
    if isinstance(base(), dict):
        yield case('NUL and surrogate in an object key', after_first_byte(fresh(), b'"k\\u0000\\ud800": 1, '),
                   TOLERATE)

    # -- huge, infinite, negative numbers --
    for path, strict in e.numbers:
        for literal in ('NaN', 'Infinity', '-Infinity'):
            yield case('number %s in %s' % (literal, path), with_raw(base(), path, literal), REJECT)
        for literal in ('1e999', '-1e999', str(HUGE_INT), '-' + str(HUGE_INT), '-1'):
            label = literal if len(literal) < 20 else literal[:-len(str(HUGE_INT))] + '10**400'
            yield case('number %s in %s' % (label, path), with_raw(base(), path, literal),
                       REJECT if strict else TOLERATE)
        yield case('number 1e-400 in %s' % path, with_raw(base(), path, '1e-400'), TOLERATE)
        yield case('number 1.5 in %s' % path, with_raw(base(), path, '1.5'), TOLERATE)
    for path in e.freeform:
        for literal in ('1e999', str(HUGE_INT), '-' + str(HUGE_INT), '[1e999, -1e999]'):
            label = literal if len(literal) < 20 else '10**400'
            yield case('number %s in free-form %s' % (label, path), with_raw(base(), path, literal), TOLERATE)

    # -- duplicate keys --
    payload = base()
    target = payload[0] if isinstance(payload, list) else payload
    prefix = '0.' if isinstance(payload, list) else ''
    top_level = [p for p in list(e.required) + list(e.strings)
                 if p.startswith(prefix) and '.' not in p[len(prefix):]]
    if top_level:
        field = top_level[0]  # a required field where there is one
        name = field[len(prefix):]
        text = json.dumps(target)
        bad = json.dumps(12345)
        last_bad = (text[:-1] + ', %s: %s}' % (json.dumps(name), bad)).encode()
        first_bad = ('{%s: %s, ' % (json.dumps(name), bad) + text[1:]).encode()
        if isinstance(payload, list):
            rest = b''.join(b', ' + encoded(item) for item in payload[1:])
            last_bad, first_bad = b'[' + last_bad + rest + b']', b'[' + first_bad + rest + b']'
        yield case('duplicate key %s, the last one invalid' % field, last_bad,
                   REJECT if field in e.required else TOLERATE)
        yield case('duplicate key %s, the first one invalid' % field, first_bad, TOLERATE)
        many = (text[:-1] + ''.join(', %s: "dup%d"' % (json.dumps(name), i) for i in range(2000)) + '}').encode()
        if isinstance(payload, list):
            many = b'[' + many + b']'
        yield case('duplicate key %s repeated 2000 times' % field, many, TOLERATE)

    # -- wrong and lying Content-Encoding --
    plain = e.wrap(fresh())
    yield Case('Content-Encoding gzip, plain body', plain, REJECT, headers=[('Content-Encoding', 'gzip')])
    yield Case('Content-Encoding deflate, garbage body', garbage(2048, 7), REJECT,
               headers=[('Content-Encoding', 'deflate')])
    yield Case('Content-Encoding gzip, truncated gzip', gzip.compress(plain)[:-12], REJECT,
               headers=[('Content-Encoding', 'gzip')])
    yield Case('Content-Encoding gzip, gzip with a bad checksum', gzip.compress(plain)[:-8] + b'\0' * 8, REJECT,
               headers=[('Content-Encoding', 'gzip')])
    yield Case('Content-Encoding br, garbage body', garbage(512, 9), REJECT, headers=[('Content-Encoding', 'br')])
    if e.compressed_ok:
        yield Case('Content-Encoding compress (unsupported)', plain, REJECT, headers=[('Content-Encoding', 'compress')])
        yield Case('Content-Encoding gzip, deflate data', zlib.compress(plain), REJECT,
                   headers=[('Content-Encoding', 'gzip')])
        if heavy:
            big = base()
            set_path(big, e.strings[0], 'x' * TEN_MB)
            yield Case('10 MB string, gzip-compressed', gzip.compress(e.wrap(encoded(big)), 6), TOO_LARGE,
                       headers=[('Content-Encoding', 'gzip')])
    if heavy:
        for kind, header in (('gzip', 'gzip'), ('deflate', 'deflate'), ('raw-deflate', 'deflate')):
            yield Case('%s bomb (1 GB of zeros)' % kind, zero_bomb(kind), REJECT,
                       headers=[('Content-Encoding', header)])

    # -- headers --
    if e.key_header:
        yield case('100 KB key header', fresh(), REJECT, key='k' * (100 << 10))
        yield case('key header with invalid UTF-8', fresh(), REJECT, key=b'\xff\xfe\xc0')
        yield case('key header with a NUL byte', fresh(), REJECT, key=b'a\x00b')
        yield case('empty key header', fresh(), REJECT, key='')
        yield case('unknown key', fresh(), REJECT, key='0' * 32)
        if e.dialect == 'sentry':
            yield case('another project\'s key', fresh(), REJECT, key=ctx['other_key'])
            yield case('X-Sentry-Auth without sentry_key', fresh(), REJECT, key='',
                       headers=[('X-Sentry-Auth', 'Sentry sentry_version=7')])
    else:
        yield case('100 KB Content-Type header', fresh(), TOLERATE,
                   headers=[('Content-Type', 'application/json; x=' + 'a' * (100 << 10))])
    yield case('100 KB unrelated header', fresh(), TOLERATE, headers=[('X-Padding', 'p' * (100 << 10))])
    yield case('1,000 small headers', fresh(), TOLERATE, headers=[('X-H%d' % i, 'v') for i in range(1000)])
    yield case('1 MB header (past the HTTP server\'s header limit)', fresh(), REJECT,
               headers=[('X-Padding', 'p' * MB)])

    # -- Content-Length lies the HTTP server settles at once --
    yield case('Content-Length negative', fresh(), REJECT, content_length='-5')
    yield case('Content-Length not a number', fresh(), REJECT, content_length='abc')
    yield case('Content-Length 10**20, no body', b'', REJECT, content_length=str(10 ** 20))
    body = fresh()
    yield case('two different Content-Length headers', body, REJECT,
               headers=[('Content-Length', str(len(e.wrap(body)) + 1))])


def envelope_cases(ctx):
    """Sentry envelope framing attacks (bodies are complete envelopes)."""
    event = encoded(sentry_event())
    header = b'{"sent_at":"%s"}' % iso_now().encode()
    yield Case('envelope: header is not JSON', b'{not json\n{"type":"event"}\n' + event, REJECT)
    yield Case('envelope: header is a list', b'[1]\n{"type":"event"}\n' + event, REJECT)
    yield Case('envelope: header event_id malformed', b'{"event_id":"zz"}\n{"type":"event"}\n' + event, REJECT)
    yield Case('envelope: header event_id 10**400', b'{"event_id":%s}\n{"type":"event"}\n' % str(HUGE_INT).encode()
               + event, REJECT)
    yield Case('envelope: item header without type', header + b'\n{"length":2}\n{}\n', REJECT)
    yield Case('envelope: item header not JSON', header + b'\n{type: event}\n' + event, REJECT)
    yield Case('envelope: item length past the end', header + b'\n{"type":"event","length":999999}\n' + event,
               REJECT)
    yield Case('envelope: item length negative', header + b'\n{"type":"event","length":-4}\n' + event, REJECT)
    yield Case('envelope: item length 10**400', header + b'\n{"type":"event","length":%s}\n' %
               str(HUGE_INT).encode() + event, REJECT)
    yield Case('envelope: item length a float', header + b'\n{"type":"event","length":2.5}\n' + event, REJECT)
    yield Case('envelope: item length NaN', header + b'\n{"type":"event","length":NaN}\n' + event, REJECT)
    yield Case('envelope: 5,000 empty attachment items', header + b'\n' +
               b'{"type":"attachment","length":0}\n\n' * 5000, REJECT)
    yield Case('envelope: event item 2 MB (past the per-event limit)',
               header + b'\n{"type":"event"}\n' + encoded(dict(sentry_event(), message='m' * (2 * MB))), TOO_LARGE)
    yield Case('envelope: transaction item with wrong types',
               header + b'\n{"type":"transaction"}\n' + encoded({'transaction': 5, 'timestamp': 'x'}), REJECT)
    yield Case('envelope: check_in item with wrong types',
               header + b'\n{"type":"check_in"}\n' + encoded({'monitor_slug': [], 'status': 7}), REJECT)
    yield Case('envelope: log item with wrong types',
               header + b'\n{"type":"log"}\n' + encoded({'items': 'nope'}), REJECT)
    yield Case('envelope: dsn of another project in the header, no auth header',
               b'{"dsn":"http://%s@127.0.0.1/%d"}\n{"type":"event"}\n' % (ctx['other_key'].encode(),
                                                                          ctx['project_id']) + event, REJECT,
               key='')
    yield Case('envelope: only a header', header, TOLERATE)
    yield Case('envelope: unknown item type', header + b'\n{"type":"no-such-type"}\n{}\n', TOLERATE)


def read_query_cases(ctx):
    """Hostile query strings and path ids for the read API and /api.php's GET actions.
    Each: (name, path, dialect)."""
    key = ctx['key']
    huge = str(HUGE_INT)
    out = []
    for name, value in [('limit', '1e999'), ('limit', '-1'), ('limit', huge), ('limit', 'NaN'), ('limit', ''),
                        ('cursor', 'garbage'), ('cursor', '1e999~1'), ('cursor', 'nan~1'), ('cursor', huge + '~1'),
                        ('cursor', '1~' + huge), ('cursor', '~'), ('cursor', '1~2~3'), ('changedSince', huge),
                        ('changedSince', '-1'), ('changedSince', '1e999'), ('status', 'bogus'), ('sort', 'bogus'),
                        ('level', '%00'), ('q', '%00%ff'), ('q', '%25_%5C'), ('environment', 'e' * 10000)]:
        out.append(('issues ?%s=%s' % (name, value[:20]), '/api/v1/issues?key=%s&%s=%s' % (key, name, value), 'read'))
    for path in ['/api/v1/events/%s?key=%s' % (huge, key), '/api/v1/events/-1?key=%s' % key,
                 '/api/v1/issues/%s?key=%s' % (huge, key), '/api/v1/issues/%s/events?key=%s' % (huge, key),
                 '/api/v1/issues/%d/events?key=%s&cursor=%s' % (ctx['issue_id'], key, huge),
                 '/api/v1/transactions/%s?key=%s' % (huge, key), '/api/v1/events?key=%s&cursor=%s' % (key, huge),
                 '/api/v1/events?key=%s&cursor=-%s' % (key, huge),
                 '/api/v1/logs?key=%s&since=%s' % (key, huge), '/api/v1/logs?key=%s&since=-1' % key,
                 '/api/v1/logs?key=%s&limit=%s' % (key, huge),
                 '/api/v1/http-requests?key=%s&cursor=%s' % (key, huge),
                 '/api/v1/http-requests?key=%s&status=999x' % key,
                 '/api/v1/http-requests/stats?key=%s&hours=%s' % (key, huge),
                 '/api/v1/transactions?key=%s&hours=%s' % (key, huge),
                 '/api/v1/transactions/list?key=%s&cursor=%s' % (key, huge),
                 '/api/v1/ai?key=%s&days=%s' % (key, huge),
                 '/api/v1/replays?key=%s&cursor=%s~s' % (key, huge), '/api/v1/replays?key=%s&cursor=~' % key,
                 '/api/v1/replays/%%00?key=%s' % key, '/api/v1/monitors/%%ff%%fe?key=%s' % key,
                 '/api/v1/issues?key=%ff%fe', '/api/v1/issues?key=' + 'k' * 100000,
                 '/api/v1/issues?key=%00', '/api/v1/project?key=%s%%00' % key]:
        out.append((path[:90], path, 'read'))
    for query in ['since=%s' % huge, 'since=-1', 'since=1e999', 'limit=%s' % huge, 'limit=0', 'hash=%ff%fe',
                  'hash=' + 'h' * 300]:
        path = '/api.php?action=errors&hash=%s&%s' % (key, query) if not query.startswith('hash') else \
            '/api.php?action=errors&' + query
        out.append(('api.php errors ' + query[:40], path, 'errorcapture'))
    return out
