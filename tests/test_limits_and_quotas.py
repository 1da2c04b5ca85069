"""Size limits per dialect (413 in the dialect's format), truncation of oversized
fields inside accepted events (with a visible marker), per-project quotas (429
with Retry-After, and X-Sentry-Rate-Limits on Sentry endpoints) and writer
backpressure (503 with Retry-After instead of an unbounded queue)."""
import gzip
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

import errorcapture
from helpers import create_project, sentry_auth
import hostile_corpus as hc


# -- helpers ---------------------------------------------------------------------

def envelope(event, event_id=None):
    header = {'event_id': event_id} if event_id else {}
    payload = json.dumps(event).encode()
    return (json.dumps(header).encode() + b'\n' + json.dumps({'type': 'event', 'length': len(payload)}).encode()
            + b'\n' + payload + b'\n')


class Dialects(object):
    """One error submission per dialect, through webtest; every call returns the TestResponse."""

    def __init__(self, client, key, project_id):
        self.client, self.key, self.project_id = client, key, project_id

    def post(self, path, body, headers=None):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return self.client.post(path, body, headers=headers or {}, content_type='application/json',
                                expect_errors=True)

    def api_php(self, message='api.php error', **extra):
        return self.post('/api.php', dict({'hash': self.key, 'level': 'error', 'message': message}, **extra))

    def seestack(self, message='seestack error', **extra):
        return self.post('/ingest/v1/errors', dict({'exceptionClass': 'TypeError', 'message': message}, **extra),
                         {'X-SeeStack-Key': self.key})

    def open_sentry(self, message='open sentry error', **extra):
        return self.post('/v1/ingest', dict({'type': 'error', 'exception': {'type': 'TypeError', 'value': message}},
                                            **extra), {'X-Open-Sentry-Key': self.key})

    def sentry_store(self, message='sentry error', **extra):
        return self.post('/api/%d/store/' % self.project_id, dict({'message': message}, **extra),
                         sentry_auth(self.key))

    def sentry_envelope(self, message='sentry envelope error', **extra):
        return self.post('/api/%d/envelope/' % self.project_id, envelope(dict({'message': message}, **extra)),
                         sentry_auth(self.key))


DIALECT_OF = {'api_php': 'errorcapture', 'seestack': 'seestack', 'open_sentry': 'open-sentry',
              'sentry_store': 'sentry', 'sentry_envelope': 'sentry'}


from hostile_corpus import Reply  # noqa: E402


def assert_error(response, status, dialect):
    reply = Reply(response)
    assert reply.status == status, reply
    problem = hc.format_problem(dialect, reply)
    assert problem is None, '%s: %r' % (problem, reply)
    return reply


def read_event(client, key, event_row_id):
    answer = client.get('/api/v1/events/%d?key=%s' % (event_row_id, key))
    return answer.json['event']


def latest_event(client, key):
    events = client.get('/api/v1/events?key=%s&limit=1' % key).json['events']
    assert events, 'no event stored'
    return read_event(client, key, events[0]['id'])


def event_count(client, key):
    return len(client.get('/api/v1/events?key=%s&limit=500' % key).json['events'])


@pytest.fixture
def project(client):
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    return Dialects(client, key, project_id)


# -- size limits -------------------------------------------------------------------

def padded(build, size):
    """build(text) -> body bytes; returns the body whose length is exactly size."""
    empty = len(build(''))
    body = build('x' * (size - empty))
    assert len(body) == size
    return body


@pytest.mark.parametrize('name,path,limit,header,dialect,build', [
    ('api.php', '/api.php', errorcapture.LIMIT_API_PHP, None, 'errorcapture',
     lambda key, text: {'hash': key, 'level': 'error', 'message': text}),
    ('seestack errors', '/ingest/v1/errors', errorcapture.LIMIT_SEESTACK, 'X-SeeStack-Key', 'seestack',
     lambda key, text: {'exceptionClass': 'E', 'message': text}),
    ('seestack logs', '/ingest/v1/logs', errorcapture.LIMIT_SEESTACK, 'X-SeeStack-Key', 'seestack',
     lambda key, text: {'level': 'info', 'message': text}),
    ('open sentry', '/v1/ingest', errorcapture.LIMIT_OPEN_SENTRY, 'X-Open-Sentry-Key', 'open-sentry',
     lambda key, text: {'type': 'error', 'exception': {'type': 'E', 'value': text}}),
    ('sentry store', '/api/{id}/store/', errorcapture.LIMIT_SENTRY_EVENT, 'X-Sentry-Auth', 'sentry',
     lambda key, text: {'message': text}),
])
def test_body_limits_per_dialect(client, name, path, limit, header, dialect, build):
    """A body of exactly the limit is taken; one byte more is refused with 413
    in the dialect's format, and nothing is stored."""
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    headers = {}
    if header == 'X-Sentry-Auth':
        headers = sentry_auth(key)
    elif header:
        headers = {header: key}
    url = path.format(id=project_id)

    def body_of(text):
        return json.dumps(build(key, text)).encode()

    at_limit = client.post(url, padded(body_of, limit), headers=headers, content_type='application/json',
                           expect_errors=True)
    assert 200 <= at_limit.status_int < 300, at_limit.body[:300]
    over = client.post(url, padded(body_of, limit + 1), headers=headers, content_type='application/json',
                       expect_errors=True)
    assert_error(over, 413, dialect)


def test_limit_constants_are_the_documented_ones():
    assert errorcapture.LIMIT_OPEN_SENTRY == 256 * 1024
    assert errorcapture.LIMIT_SENTRY_EVENT == 1024 * 1024
    assert errorcapture.LIMIT_SENTRY_COMPRESSED == 20 * 1024 * 1024
    assert errorcapture.LIMIT_API_PHP == 1024 * 1024
    assert errorcapture.LIMIT_SEESTACK == 1024 * 1024


def test_sentry_envelope_item_over_the_event_limit_is_413(project):
    event = {'message': 'm' * (errorcapture.LIMIT_SENTRY_EVENT + 10)}
    answer = project.post('/api/%d/envelope/' % project.project_id, envelope(event), sentry_auth(project.key))
    assert_error(answer, 413, 'sentry')
    assert event_count(project.client, project.key) == 0


def test_sentry_event_limit_applies_after_decompression(project):
    """Small on the wire, over 1 MiB once decoded: refused 413."""
    body = gzip.compress(json.dumps({'message': 'm' * (2 * errorcapture.LIMIT_SENTRY_EVENT)}).encode())
    assert len(body) < 100000
    for path in ('/api/%d/store/', '/api/%d/envelope/'):
        payload = body if 'store' in path else gzip.compress(
            envelope({'message': 'm' * (2 * errorcapture.LIMIT_SENTRY_EVENT)}))
        answer = project.client.post(path % project.project_id, payload,
                                     headers=dict(sentry_auth(project.key), **{'Content-Encoding': 'gzip'}),
                                     content_type='application/json', expect_errors=True)
        assert_error(answer, 413, 'sentry')


def test_sentry_compressed_body_limit(project):
    """Past 20 MiB as sent, a Sentry body is refused before it is decoded."""
    limit = errorcapture.LIMIT_SENTRY_COMPRESSED
    body = os.urandom(limit + 1)
    answer = project.client.post('/api/%d/envelope/' % project.project_id, body,
                                 headers=dict(sentry_auth(project.key), **{'Content-Encoding': 'gzip'}),
                                 content_type='application/x-sentry-envelope', expect_errors=True)
    assert_error(answer, 413, 'sentry')


def test_sentry_envelope_with_many_small_events_under_the_compressed_limit_is_taken(project):
    """The per-event limit is per item: an envelope of several events each under
    1 MiB, together over it, is fine."""
    header = b'{}\n'
    items = b''
    for index in range(3):
        payload = json.dumps({'message': 'part %d ' % index + 'p' * (600 << 10),
                              'event_id': uuid.uuid4().hex}).encode()
        items += b'{"type":"event","length":%d}\n' % len(payload) + payload + b'\n'
    answer = project.client.post('/api/%d/envelope/' % project.project_id, gzip.compress(header + items),
                                 headers=dict(sentry_auth(project.key), **{'Content-Encoding': 'gzip'}),
                                 content_type='application/x-sentry-envelope', expect_errors=True)
    assert answer.status_int == 200, answer.body[:300]
    assert event_count(project.client, project.key) == 3


# -- truncation with a visible marker -------------------------------------------------

def test_a_900_kb_message_through_api_php_is_stored_truncated(project):
    message = 'A' * (900 << 10)
    answer = project.api_php(message)
    assert answer.status_int == 200, answer.body[:300]
    event = read_event(project.client, project.key, answer.json['id'])
    stored = event['message']
    assert stored.startswith('A' * 1000)
    assert len(stored) < len(message)
    assert 'truncated' in stored
    assert len(stored) <= errorcapture.MAX_STRING + 100
    # the errors action shows the same bounded message
    rows = project.client.get('/api.php?action=errors&hash=%s' % project.key).json['errors']
    assert 'truncated' in rows[-1]['message'] and len(rows[-1]['message']) < len(message)


@pytest.mark.parametrize('dialect', ['seestack', 'open_sentry', 'sentry_store', 'sentry_envelope'])
def test_long_messages_are_truncated_in_every_dialect(project, dialect):
    text = 'B' * (200 << 10)
    answer = getattr(project, dialect)(text)
    assert 200 <= answer.status_int < 300, answer.body[:300]
    event = latest_event(project.client, project.key)
    shown = [event.get('message') or ''] + [e.get('value') or '' for e in event.get('exception') or []]
    longest = max(shown, key=len)
    assert longest.startswith('B' * 1000)
    assert 'truncated' in longest and len(longest) < len(text)


def frames_event(count, named_every=1000):
    """A Sentry event with `count` frames, most of them empty objects so the
    whole event stays under the 1 MiB per-event limit."""
    frames = []
    for index in range(count):
        if index % named_every == 0 or index == count - 1:
            frames.append({'filename': 'f%d.py' % index, 'function': 'fn%d' % index, 'lineno': index + 1,
                           'in_app': True})
        else:
            frames.append({})
    return {'event_id': uuid.uuid4().hex, 'platform': 'python',
            'exception': {'values': [{'type': 'RecursionError', 'value': 'too deep',
                                      'stacktrace': {'frames': frames}}]}}


def test_a_100000_frame_stack_through_gzip_sentry_store_is_truncated_with_a_marker(project):
    event = frames_event(100000)
    raw = json.dumps(event, separators=(',', ':')).encode()
    assert len(raw) < errorcapture.LIMIT_SENTRY_EVENT
    answer = project.client.post('/api/%d/store/' % project.project_id, gzip.compress(raw),
                                 headers=dict(sentry_auth(project.key), **{'Content-Encoding': 'gzip'}),
                                 content_type='application/json', expect_errors=True)
    assert answer.status_int == 200, answer.body[:300]
    assert answer.json['id'] == event['event_id']
    stored = latest_event(project.client, project.key)
    frames = stored['exception'][-1]['frames']
    assert len(frames) <= errorcapture.MAX_FRAMES + 1
    markers = [f for f in frames if 'truncated' in json.dumps(f)]
    assert markers, 'no visible truncation marker among the frames'
    assert str(100000 - errorcapture.MAX_FRAMES) in json.dumps(markers[0])
    assert frames[0].get('function') == 'fn0'           # the outermost call is kept
    assert frames[-1].get('function') == 'fn99999'      # and so is the frame that raised


def test_a_100000_frame_stack_over_the_event_limit_is_413_even_when_small_compressed(project):
    event = frames_event(100000, named_every=1)
    raw = json.dumps(event).encode()
    assert len(raw) > errorcapture.LIMIT_SENTRY_EVENT
    answer = project.client.post('/api/%d/store/' % project.project_id, gzip.compress(raw),
                                 headers=dict(sentry_auth(project.key), **{'Content-Encoding': 'gzip'}),
                                 content_type='application/json', expect_errors=True)
    assert_error(answer, 413, 'sentry')


def test_a_long_seestack_stack_trace_is_truncated_with_a_marker(project):
    lines = ['at handler%d (/srv/app/file%d.js:%d:%d)' % (i, i, i + 1, 7) for i in range(5000)]
    answer = project.seestack('deep', stackTrace=lines)
    assert answer.status_int == 202, answer.body[:300]
    frames = latest_event(project.client, project.key)['exception'][-1]['frames']
    assert len(frames) <= errorcapture.MAX_FRAMES + 1
    assert any('truncated' in json.dumps(f) for f in frames)


def test_wide_and_deep_free_form_data_is_bounded_with_markers(project):
    extra = {'k%d' % i: i for i in range(5000)}
    extra['deep'] = json.loads('[' * 50 + ']' * 50)
    extra['long'] = 'L' * 100000
    answer = project.sentry_store('wide', extra=extra, breadcrumbs=[{'message': 'crumb %d' % i}
                                                                     for i in range(1000)])
    assert answer.status_int == 200, answer.body[:300]
    stored = latest_event(project.client, project.key)
    shown = json.dumps(stored['extra'])
    assert len(stored['extra']) <= errorcapture.MAX_ITEMS + 1
    assert 'truncated' in shown
    assert len(stored['breadcrumbs']) <= errorcapture.MAX_BREADCRUMBS
    assert stored['breadcrumbs'][-1]['message'] == 'crumb 999'  # the newest are kept


# -- quotas ------------------------------------------------------------------------

@pytest.fixture
def frozen_minute(monkeypatch):
    """Pin the server's clock one second into a minute, so a per-minute quota
    window cannot roll over in the middle of a test. Returns a setter."""
    start = (int(time.time()) // 60) * 60 + 1.0
    clock = {'now': start}
    monkeypatch.setattr(errorcapture, 'now', lambda: clock['now'])

    def advance(seconds):
        clock['now'] += seconds
    advance.start = start
    return advance


def assert_rate_limited(response, dialect, sentry=False):
    reply = assert_error(response, 429, dialect)
    retry_after = reply.header('Retry-After')
    assert retry_after is not None and retry_after.isdigit(), reply.headers
    assert 1 <= int(retry_after) <= 60
    if sentry:
        limits = reply.header('X-Sentry-Rate-Limits')
        assert limits, 'no X-Sentry-Rate-Limits header: %r' % reply.headers
        first = limits.split(',')[0].split(':')
        assert first[0] == retry_after and len(first) >= 3, limits
        # the categories the quota counts, so SDKs keep sending sessions and client reports
        assert set(first[1].split(';')) == {'default', 'error', 'transaction', 'log_item', 'monitor'}, limits
    return reply


@pytest.mark.parametrize('dialect', ['api_php', 'seestack', 'open_sentry', 'sentry_store', 'sentry_envelope'])
def test_rate_limit_option_answers_429_in_each_dialect(make, frozen_minute, dialect):
    client = make(rate_limit=5, sweep_interval=0)
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    send = getattr(Dialects(client, key, project_id), dialect)
    for index in range(5):
        answer = send('within quota %d' % index)
        assert 200 <= answer.status_int < 300, answer.body[:300]
    reply = assert_rate_limited(send('over quota'), DIALECT_OF[dialect], sentry=dialect.startswith('sentry'))
    assert int(reply.header('Retry-After')) == 59  # the window ends with the minute
    assert event_count(client, key) == 5  # the refused event was not stored
    frozen_minute(60)  # the next minute: a fresh window
    answer = send('next minute')
    assert 200 <= answer.status_int < 300, answer.body[:300]


def test_quota_is_per_project(make, frozen_minute):
    client = make(rate_limit=2, sweep_interval=0)
    first, second = create_project(client, 'a'), create_project(client, 'b')
    a, b = Dialects(client, first['hash'], first['id']), Dialects(client, second['hash'], second['id'])
    assert a.api_php().status_int == 200 and a.api_php().status_int == 200
    assert_rate_limited(a.api_php(), 'errorcapture')
    assert b.api_php().status_int == 200  # another project's quota is untouched


def test_per_project_rate_limit_setting_overrides_the_option(make, frozen_minute):
    client = make(sweep_interval=0)  # no global quota
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    answer = client.put('/api/v1/project?key=' + key, json.dumps({'rateLimit': 3}), content_type='application/json')
    assert answer.json['project']['settings']['rateLimit'] == 3
    p = Dialects(client, key, project_id)
    for dialect in ('api_php', 'seestack', 'sentry_store'):
        assert 200 <= getattr(p, dialect)().status_int < 300
    assert_rate_limited(p.sentry_envelope(), 'sentry', sentry=True)
    assert_rate_limited(p.open_sentry(), 'open-sentry')
    # another project on the same server has no quota
    other_project = create_project(client, 'other')
    other = Dialects(client, other_project['hash'], other_project['id'])
    for _ in range(10):
        assert other.api_php().status_int == 200
    # lifting the setting lifts the quota
    client.put('/api/v1/project?key=' + key, json.dumps({'rateLimit': 0}), content_type='application/json')
    assert p.api_php().status_int == 200


def test_a_batch_larger_than_the_remaining_quota_is_refused_whole(make, frozen_minute):
    client = make(rate_limit=5, sweep_interval=0)
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    assert Dialects(client, key, project_id).api_php().status_int == 200  # 4 of 5 left this minute
    item = {'traceId': 't', 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/',
            'statusCode': 200, 'durationMs': 1, 'timestamp': hc.iso_now()}
    answer = client.post('/ingest/v1/http-requests', json.dumps({'requests': [item] * 8}),
                         headers={'X-SeeStack-Key': key}, content_type='application/json', expect_errors=True)
    assert_rate_limited(answer, 'seestack')
    assert client.get('/api/v1/http-requests?key=' + key).json['requests'] == []


def test_a_batch_larger_than_the_whole_limit_gets_in_when_it_opens_a_minute(make, frozen_minute):
    """Otherwise a client whose batches outgrow the limit would be told to
    retry forever: the batch is taken in a fresh minute, which it fills."""
    client = make(rate_limit=5, sweep_interval=0)
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    item = {'traceId': 't', 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/',
            'statusCode': 200, 'durationMs': 1, 'timestamp': hc.iso_now()}

    def batch():
        return client.post('/ingest/v1/http-requests', json.dumps({'requests': [item] * 8}),
                           headers={'X-SeeStack-Key': key}, content_type='application/json', expect_errors=True)
    assert batch().status_int == 202
    assert len(client.get('/api/v1/http-requests?key=' + key).json['requests']) == 8
    assert_rate_limited(batch(), 'seestack')
    assert_rate_limited(Dialects(client, key, project_id).api_php(), 'errorcapture')  # the minute is full
    frozen_minute(60)
    assert batch().status_int == 202


# -- backpressure ---------------------------------------------------------------------

class BlockedWriter(object):
    """Occupies the writer with a job that waits on a gate, then fills its
    queue with harmless jobs, so the next submission finds the queue full."""

    def __init__(self, app, fill):
        self.app, self.gate, self.entered = app, threading.Event(), threading.Event()
        self.threads = []

        def blocker(conn):
            self.entered.set()
            self.gate.wait(30)

        self._spawn(blocker)
        assert self.entered.wait(10), 'the writer never ran the blocking job'
        for _ in range(fill):
            self._spawn(lambda conn: None)
        deadline = time.monotonic() + 10
        while app.store.writer.queued() < fill:
            assert time.monotonic() < deadline, 'the queue did not fill'
            time.sleep(0.01)

    def _spawn(self, job):
        thread = threading.Thread(target=self.app.store.write, args=(job,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def release(self):
        self.gate.set()
        for thread in self.threads:
            thread.join(30)


def test_a_full_writer_queue_answers_503_with_retry_after_in_every_dialect(make):
    client = make(max_queue=3, sweep_interval=0)
    created = create_project(client, 'limits')
    key, project_id = created['hash'], created['id']
    p = Dialects(client, key, project_id)
    blocked = BlockedWriter(client.wsgi, fill=3)
    try:
        for dialect in ('api_php', 'seestack', 'open_sentry', 'sentry_store', 'sentry_envelope'):
            reply = assert_error(getattr(p, dialect)('while blocked'), 503, DIALECT_OF[dialect])
            assert reply.header('Retry-After', '').isdigit(), reply.headers
        heartbeat = client.post('/ingest/v1/heartbeat', json.dumps({'slug': 'x', 'status': 'success'}),
                                headers={'X-SeeStack-Key': key}, content_type='application/json', expect_errors=True)
        assert_error(heartbeat, 503, 'seestack')
        # the queue never grew past its bound, and reads do not need the writer
        assert client.wsgi.store.writer.queued() <= 3
        assert client.get('/api/v1/issues?key=' + key).status_int == 200
    finally:
        blocked.release()
    assert p.api_php('after the writer caught up').status_int == 200
    assert event_count(client, key) == 1  # only the event after the jam; the refused ones were not stored


@pytest.mark.slow
def test_a_flood_against_a_slowed_writer_gets_503_not_an_unbounded_queue(live_server_factory):
    """A real server with max_queue=4 and a writer held by a slow job: 40
    concurrent submissions get either 200 (queued within the bound, answered
    once the writer resumes, or sent after it did) or 503 with Retry-After;
    the queue never exceeds its bound; everything answered 200 is stored."""
    server = live_server_factory(max_queue=4, sweep_interval=0)
    key = server.project()['hash']
    blocked = BlockedWriter(server.app, fill=0)
    answers, peak = [], [0]

    def submit(index):
        body = json.dumps({'hash': key, 'level': 'error', 'message': 'flood %d' % index}).encode()
        request = urllib.request.Request(server.url + '/api.php', body, {'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                answers.append((answer.status, dict(answer.headers), json.loads(answer.read())))
        except urllib.error.HTTPError as error:
            answers.append((error.code, dict(error.headers), json.loads(error.read())))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while sum(1 for a in answers if a[0] == 503) < 10 and time.monotonic() < deadline:
        peak[0] = max(peak[0], server.app.store.writer.queued())
        time.sleep(0.01)
    peak[0] = max(peak[0], server.app.store.writer.queued())
    blocked.release()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a[0] for a in answers)
    assert len(answers) == 40
    assert set(statuses) <= {200, 503}, statuses
    refused = [a for a in answers if a[0] == 503]
    assert refused, 'no submission was refused while the writer was blocked'
    for status, headers, body in refused:
        assert headers.get('Retry-After', '').isdigit(), headers
        assert body['ok'] is False and body['error']
    assert peak[0] <= 4
    accepted = [a[2]['id'] for a in answers if a[0] == 200]
    stored = {row['id'] for row in json.loads(urllib.request.urlopen(
        server.url + '/api/v1/events?limit=500&key=' + key, timeout=30).read())['events']}
    assert set(accepted) <= stored
