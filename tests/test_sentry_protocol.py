"""The Sentry SDK protocol with hand-built requests: envelopes and the store
endpoint (/api/<project id>/envelope/ and /store/), authentication, envelope
framing, compressed bodies, size limits, every item type we accept, and how a
Sentry event maps onto the event model read back through the read API."""
import gzip
import json
import time
import uuid
import zlib

import pytest

import errorcapture
from helpers import create_project, sentry_auth

MIB = 1 << 20


# -- helpers ---------------------------------------------------------------------

class Project(object):
    def __init__(self, client, name='sentry'):
        answer = create_project(client, name)
        self.client, self.id, self.key = client, answer['id'], answer['hash']
        self.dsn = answer['dsn']

    @property
    def envelope_url(self):
        return '/api/%d/envelope/' % self.id

    @property
    def store_url(self):
        return '/api/%d/store/' % self.id

    def auth(self, key=None):
        return sentry_auth(key or self.key, client='handmade/1.0')

    def post(self, url, body, headers=None, auth=True):
        all_headers = dict(self.auth() if auth else {})
        all_headers.update(headers or {})
        return self.client.post(url, body, headers=all_headers, content_type='application/x-sentry-envelope',
                                expect_errors=True)

    def send(self, body, headers=None, auth=True):
        return self.post(self.envelope_url, body, headers, auth)

    def read(self, path, **params):
        params['key'] = self.key
        answer = self.client.get(path, params=params)
        assert answer.status_int == 200, answer.body
        return answer.json

    def issues(self):
        return self.read('/api/v1/issues')['issues']

    def events(self):
        return self.read('/api/v1/events')['events']

    def event(self, row_id=None):
        if row_id is None:
            row_id = self.events()[0]['id']
        return self.read('/api/v1/events/%d' % row_id)['event']


@pytest.fixture
def project(client):
    return Project(client)


def new_id():
    return uuid.uuid4().hex


def line(obj):
    return json.dumps(obj).encode('utf-8')


def envelope(items, header=None, lengths=True, final_newline=True):
    """items: [(item header dict, payload bytes or JSON-able)]."""
    header = {} if header is None else header
    parts = [line(header)]
    for item_header, payload in items:
        if not isinstance(payload, bytes):
            payload = line(payload)
        item_header = dict(item_header)
        if lengths and 'length' not in item_header:
            item_header['length'] = len(payload)
        parts += [line(item_header), payload]
    body = b'\n'.join(parts)
    return body + b'\n' if final_newline else body


def error_event(value='something broke', type_='ValueError', **fields):
    event = {'event_id': new_id(), 'platform': 'python', 'level': 'error',
             'exception': {'values': [{'type': type_, 'value': value, 'stacktrace': {'frames': [
                 {'filename': 'app.py', 'function': 'main', 'module': 'app', 'lineno': 10, 'in_app': True}]}}]}}
    event.update(fields)
    return event


def event_envelope(event, **options):
    return envelope([({'type': 'event'}, event)], header={'event_id': event['event_id']}, **options)


def assert_stored(project, event, answer):
    assert answer.status_int == 200, answer.body
    assert answer.json == {'id': event['event_id']}
    assert event['event_id'] in [e['eventId'] for e in project.events()]


def assert_refused(answer, status):
    assert answer.status_int == status, answer.body
    assert isinstance(answer.json.get('detail'), str) and answer.json['detail'], answer.json


# -- authentication --------------------------------------------------------------

def test_auth_with_x_sentry_auth(project):
    event = error_event()
    assert_stored(project, event, project.send(event_envelope(event)))
    assert project.issues()[0]['title'] == 'ValueError: something broke'


def test_auth_with_sentry_key_parameter(project):
    event = error_event()
    answer = project.client.post(project.envelope_url + '?sentry_key=%s&sentry_version=7' % project.key,
                                 event_envelope(event), content_type='application/x-sentry-envelope',
                                 expect_errors=True)
    assert_stored(project, event, answer)


def test_auth_with_envelope_dsn(project):
    event = error_event()
    header = {'event_id': event['event_id'], 'dsn': 'http://%s@errors.example.com/%d' % (project.key, project.id),
              'sent_at': '2026-11-23T10:00:00.000Z'}
    body = envelope([({'type': 'event'}, event)], header=header)
    assert_stored(project, event, project.send(body, auth=False))


def test_auth_with_the_dsn_the_project_shows(project):
    """The DSN from /api.php?action=generate works as the envelope's dsn."""
    event = error_event()
    body = envelope([({'type': 'event'}, event)], header={'event_id': event['event_id'], 'dsn': project.dsn})
    assert_stored(project, event, project.send(body, auth=False))


def test_auth_without_key_is_401(project):
    assert_refused(project.send(event_envelope(error_event()), auth=False), 401)
    assert project.issues() == []


@pytest.mark.parametrize('where', ['header', 'query', 'dsn'])
def test_auth_with_wrong_key_is_403(project, where):
    wrong = 'f' * 32
    event = error_event()
    if where == 'header':
        answer = project.send(event_envelope(event), headers=project.auth(wrong), auth=False)
    elif where == 'query':
        answer = project.client.post(project.envelope_url + '?sentry_key=' + wrong, event_envelope(event),
                                     expect_errors=True)
    else:
        body = envelope([({'type': 'event'}, event)], header={'dsn': 'http://%s@h/%d' % (wrong, project.id)})
        answer = project.send(body, auth=False)
    assert_refused(answer, 403)
    assert project.issues() == []


def test_key_of_another_project_is_403(client):
    first, second = Project(client, 'first'), Project(client, 'second')
    event = error_event()
    answer = client.post(first.envelope_url, event_envelope(event), headers=second.auth(),
                         content_type='application/x-sentry-envelope', expect_errors=True)
    assert_refused(answer, 403)
    answer = client.post(first.store_url, line(event), headers=second.auth(), content_type='application/json',
                         expect_errors=True)
    assert_refused(answer, 403)
    assert first.issues() == [] and second.issues() == []


def test_unknown_project_id_is_403(project):
    answer = project.client.post('/api/9999/envelope/', event_envelope(error_event()), headers=project.auth(),
                                 expect_errors=True)
    assert_refused(answer, 403)


def test_trailing_slash_is_optional(project):
    event = error_event()
    answer = project.client.post('/api/%d/envelope' % project.id, event_envelope(event), headers=project.auth(),
                                 expect_errors=True)
    assert_stored(project, event, answer)


# -- envelope framing ------------------------------------------------------------

def test_items_without_length(project):
    event = error_event()
    assert_stored(project, event, project.send(event_envelope(event, lengths=False)))


def test_missing_final_newline(project):
    for lengths in (True, False):
        event = error_event('no final newline %s' % lengths)
        assert_stored(project, event, project.send(event_envelope(event, lengths=lengths, final_newline=False)))
    assert len(project.events()) == 2


def test_length_allows_newlines_inside_the_payload(project):
    event = error_event('pretty printed')
    pretty = json.dumps(event, indent=2).encode()
    body = envelope([({'type': 'event'}, pretty)], header={'event_id': event['event_id']})
    assert_stored(project, event, project.send(body))


def test_length_counts_bytes_not_characters(project):
    event = error_event('caf\u00e9 \u2615 \u00fcber \U0001f600')
    payload = json.dumps(event, ensure_ascii=False).encode('utf-8')
    body = b'{}\n' + line({'type': 'event', 'length': len(payload)}) + b'\n' + payload + b'\n'
    assert_stored(project, event, project.send(body))
    assert project.issues()[0]['title'] == 'ValueError: caf\u00e9 \u2615 \u00fcber \U0001f600'


def test_empty_payloads_and_mixed_items(project):
    event = error_event('with friends')
    body = envelope([
        ({'type': 'client_report'}, b''),
        ({'type': 'event'}, event),
        ({'type': 'attachment', 'filename': 'empty.txt'}, b''),
    ], header={'event_id': event['event_id']})
    assert_stored(project, event, project.send(body))


def test_length_zero_then_more_items(project):
    event = error_event()
    body = (b'{}\n' + line({'type': 'client_report', 'length': 0}) + b'\n\n'
            + line({'type': 'event'}) + b'\n' + line(event) + b'\n')
    assert_stored(project, event, project.send(body))


def test_unknown_item_types_are_skipped(project):
    event = error_event('after the unknown')
    body = envelope([({'type': 'something_from_the_future'}, {'anything': [1, 2, 3]}),
                     ({'type': 'hologram', 'content_type': 'application/octet-stream'}, b'\x00\x01\x02\n\n'),
                     ({'type': 'event'}, event)], header={'event_id': event['event_id']})
    assert_stored(project, event, project.send(body))
    assert len(project.issues()) == 1


def test_blank_lines_between_items(project):
    event = error_event()
    body = (b'{}\n\n' + line({'type': 'session'}) + b'\n' + line({'sid': new_id(), 'status': 'ok'})
            + b'\n\n\n' + line({'type': 'event'}) + b'\n' + line(event) + b'\n\n')
    assert_stored(project, event, project.send(body))


def test_binary_attachment_with_length(project):
    """An attachment's bytes may contain newlines and things that look like items."""
    event = error_event('after the attachment')
    blob = b'\x00\xff\n\n' + line({'type': 'event'}) + b'\n' + line(error_event('NOT AN EVENT')) + b'\n\x89PNG'
    body = envelope([({'type': 'attachment', 'filename': 'dump.bin', 'attachment_type': 'event.attachment'},
                      blob), ({'type': 'event'}, event)], header={'event_id': event['event_id']})
    assert_stored(project, event, project.send(body))
    assert [i['title'] for i in project.issues()] == ['ValueError: after the attachment']


def test_envelope_with_only_a_header(project):
    answer = project.send(b'{"sent_at": "2026-11-23T10:00:00Z"}\n')
    assert answer.status_int == 200, answer.body
    answer = project.send(b'{}')
    assert answer.status_int == 200, answer.body


@pytest.mark.parametrize('body', [
    b'not json\n' + line({'type': 'event'}) + b'\n{}\n',
    b'[1, 2]\n' + line({'type': 'event'}) + b'\n{}\n',
    b'{}\n{"type": "event", \n{}\n',
    b'{}\n{"no_type": 1}\n{}\n',
    b'{}\n' + line({'type': 'event'}) + b'\n{"exception": \n',
    b'{}\n' + line({'type': 'event', 'length': -3}) + b'\n{}\n',
    b'{}\n' + line({'type': 'event', 'length': 'ten'}) + b'\n{}\n',
    b'{"event_id": "not-an-id"}\n' + line({'type': 'event'}) + b'\n{}\n',
    b'\xff\xfe\n' + line({'type': 'event'}) + b'\n{}\n',
])
def test_malformed_envelopes_are_400(project, body):
    assert_refused(project.send(body), 400)
    assert project.issues() == []


def test_length_longer_than_the_body_is_400(project):
    event = error_event()
    payload = line(event)
    body = b'{}\n' + line({'type': 'event', 'length': len(payload) + 50}) + b'\n' + payload + b'\n'
    assert_refused(project.send(body), 400)
    assert project.issues() == []


# -- compression -----------------------------------------------------------------

def test_gzip_body(project):
    event = error_event('gzipped')
    answer = project.send(gzip.compress(event_envelope(event)), headers={'Content-Encoding': 'gzip'})
    assert_stored(project, event, answer)


def test_deflate_zlib_wrapped(project):
    event = error_event('zlib deflate')
    answer = project.send(zlib.compress(event_envelope(event)), headers={'Content-Encoding': 'deflate'})
    assert_stored(project, event, answer)


def test_deflate_raw(project):
    event = error_event('raw deflate')
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = compressor.compress(event_envelope(event)) + compressor.flush()
    answer = project.send(raw, headers={'Content-Encoding': 'deflate'})
    assert_stored(project, event, answer)


def test_corrupt_gzip_is_400(project):
    body = gzip.compress(event_envelope(error_event()))
    assert_refused(project.send(body[:len(body) // 2], headers={'Content-Encoding': 'gzip'}), 400)
    assert_refused(project.send(event_envelope(error_event()), headers={'Content-Encoding': 'gzip'}), 400)
    assert project.issues() == []


def test_brotli(project):
    try:
        import brotli
    except ImportError:
        answer = project.send(b'\x1b\x00\x00', headers={'Content-Encoding': 'br'})
        assert_refused(answer, 415)
        assert 'brotli' in answer.json['detail']
        assert 'gzip' in answer.json['detail']  # says what to send instead
        return
    event = error_event('brotli')
    answer = project.send(brotli.compress(event_envelope(event)), headers={'Content-Encoding': 'br'})
    assert_stored(project, event, answer)


def test_unknown_encoding_is_415(project):
    answer = project.send(event_envelope(error_event()), headers={'Content-Encoding': 'zstd'})
    assert_refused(answer, 415)
    assert 'zstd' in answer.json['detail']
    assert project.issues() == []


# -- size limits -----------------------------------------------------------------

def test_event_item_over_1_mib_is_413(project):
    event = error_event('x' * (MIB + 100))
    assert_refused(project.send(event_envelope(event)), 413)
    assert_refused(project.post(project.store_url, line(event), headers={'Content-Type': 'application/json'}), 413)
    assert project.issues() == []


def test_big_attachment_does_not_count_as_an_event(project):
    event = error_event('next to a big attachment')
    body = envelope([({'type': 'attachment', 'filename': 'big.bin'}, b'a' * (2 * MIB)), ({'type': 'event'}, event)],
                    header={'event_id': event['event_id']})
    assert_stored(project, event, project.send(body))


def gzip_bomb(size):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk, parts = b'\0' * MIB, []
    for _ in range(size // MIB):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return b''.join(parts)


def test_gzip_bomb_is_413_and_the_server_lives_on(live_server):
    import urllib.error
    import urllib.request
    created = live_server.project('bomb')
    bomb = gzip_bomb(200 * MIB)
    assert len(bomb) < MIB
    request = urllib.request.Request(
        '%s/api/%d/envelope/' % (live_server.url, created['id']), data=bomb, method='POST',
        headers=dict(sentry_auth(created['key']), **{'Content-Encoding': 'gzip',
                                                      'Content-Type': 'application/x-sentry-envelope'}))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())['detail']
    # still alive and still storing
    event = error_event('after the bomb')
    request = urllib.request.Request(
        '%s/api/%d/envelope/' % (live_server.url, created['id']), data=event_envelope(event), method='POST',
        headers=sentry_auth(created['key']))
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.loads(answer.read()) == {'id': event['event_id']}


def test_body_over_the_compressed_limit_is_413(project):
    answer = project.send(b'{}\n' + b'a' * (errorcapture.LIMIT_SENTRY_COMPRESSED + 10))
    assert answer.status_int == 413


# -- store endpoint --------------------------------------------------------------

def test_store_endpoint(project):
    event = error_event('stored directly')
    answer = project.post(project.store_url, line(event), headers={'Content-Type': 'application/json'})
    assert answer.status_int == 200, answer.body
    assert answer.json == {'id': event['event_id']}
    assert project.issues()[0]['title'] == 'ValueError: stored directly'


def test_an_event_from_a_clock_far_ahead_takes_the_time_it_arrived(project):
    """As Relay does: more than a minute in the future is a wrong clock, and an
    issue's last seen must not stick in 2099."""
    event = error_event('clock ahead', timestamp='2099-01-01T00:00:00Z')
    assert_stored(project, event, project.send(event_envelope(event)))
    (issue,) = project.issues()
    shown = project.events()[0]
    assert shown['timestamp'] == shown['received'] and not shown['timestamp'].startswith('2099')
    assert issue['lastSeen'] == shown['received']
    near = error_event('clock a little ahead', timestamp=time.time() + 30)
    assert_stored(project, near, project.send(event_envelope(near)))
    kept = [e for e in project.events() if e['eventId'] == near['event_id']][0]
    assert kept['timestamp'] > kept['received']  # within a minute: the client's own time


def test_store_endpoint_answers_a_transaction_with_its_event_id(project):
    """Relay answers /store/ with the id of what it took, transactions included."""
    tx = {'type': 'transaction', 'event_id': new_id(), 'transaction': 'GET /cart', 'start_timestamp': 1795000000.0,
          'timestamp': 1795000000.25, 'contexts': {'trace': {'trace_id': 'e' * 32, 'span_id': 'f' * 16}}}
    answer = project.post(project.store_url, line(tx), headers={'Content-Type': 'application/json'})
    assert answer.status_int == 200 and answer.json == {'id': tx['event_id']}
    assert [t['name'] for t in project.read('/api/v1/transactions/list')['transactions']] == ['GET /cart']


def test_an_envelope_posted_to_store_is_read_as_an_envelope(project):
    """Relay parses a /store/ body sent as application/x-sentry-envelope as an
    envelope; a lone event under that type is still an event."""
    event = error_event('via store as an envelope')
    answer = project.post(project.store_url, event_envelope(event))
    assert_stored(project, event, answer)
    lone = error_event('lone event, envelope type')
    assert_stored(project, lone, project.post(project.store_url, line(lone)))


def test_store_endpoint_gzip_and_query_key(project):
    event = error_event('stored gzipped')
    answer = project.client.post(project.store_url + '?sentry_key=' + project.key, gzip.compress(line(event)),
                                 headers={'Content-Encoding': 'gzip'}, content_type='application/json',
                                 expect_errors=True)
    assert answer.status_int == 200, answer.body
    assert answer.json == {'id': event['event_id']}
    assert project.issues()[0]['title'] == 'ValueError: stored gzipped'


def test_store_endpoint_refuses_bad_input(project):
    assert_refused(project.post(project.store_url, b'{nope'), 400)
    assert_refused(project.post(project.store_url, b'[1]'), 400)
    assert_refused(project.post(project.store_url, line(error_event()), auth=False), 401)
    assert project.issues() == []


def test_store_endpoint_without_event_id_gets_one(project):
    event = error_event('no id')
    del event['event_id']
    answer = project.post(project.store_url, line(event))
    assert answer.status_int == 200, answer.body
    assert len(answer.json['id']) == 32
    assert project.events()[0]['eventId'] == answer.json['id']


def test_same_event_id_twice_is_stored_once(project):
    event = error_event('sent twice')
    assert_stored(project, event, project.send(event_envelope(event)))
    again = project.send(event_envelope(event))
    assert again.status_int == 200 and again.json == {'id': event['event_id']}
    again = project.post(project.store_url, line(event))
    assert again.status_int == 200
    issues = project.issues()
    assert len(issues) == 1 and issues[0]['count'] == 1
    assert len(project.read('/api/v1/issues/%d/events' % issues[0]['id'])['events']) == 1


def test_same_event_id_in_dashed_form_is_the_same_event(project):
    event = error_event('uuid with dashes')
    assert_stored(project, event, project.send(event_envelope(event)))
    dashed = dict(event, event_id=str(uuid.UUID(event['event_id'])))
    answer = project.post(project.store_url, line(dashed))
    assert answer.status_int == 200
    assert project.issues()[0]['count'] == 1


def test_two_events_same_bug_one_issue(project):
    for _ in range(2):
        assert project.send(event_envelope(error_event('same bug'))).status_int == 200
    issues = project.issues()
    assert len(issues) == 1 and issues[0]['count'] == 2


# -- other item types ------------------------------------------------------------

def test_session_items_are_accepted(project):
    session = {'sid': new_id(), 'did': 'user-1', 'init': True, 'started': '2026-11-23T10:00:00.000Z',
               'timestamp': '2026-11-23T10:00:01.000Z', 'status': 'ok', 'errors': 0,
               'attrs': {'release': 'shop@1.0', 'environment': 'production'}}
    sessions = {'aggregates': [{'started': '2026-11-23T10:00:00Z', 'exited': 5, 'errored': 1}],
                'attrs': {'release': 'shop@1.0'}}
    report = {'timestamp': 1732356000.0, 'discarded_events': [{'reason': 'queue_overflow', 'category': 'error',
                                                               'quantity': 2}]}
    body = envelope([({'type': 'session'}, session), ({'type': 'sessions'}, sessions),
                     ({'type': 'client_report'}, report),
                     ({'type': 'attachment', 'filename': 'log.txt', 'content_type': 'text/plain'}, b'hello\nworld')])
    answer = project.send(body)
    assert answer.status_int == 200, answer.body
    assert project.issues() == []
    assert project.read('/api/v1/transactions/list')['transactions'] == []


def test_transaction_item(project):
    start = 1795000000.0  # 2026-11-18
    tx = {'type': 'transaction', 'event_id': new_id(), 'transaction': 'GET /checkout', 'platform': 'python',
          'start_timestamp': start, 'timestamp': start + 0.5, 'environment': 'production', 'release': 'shop@1.0',
          'contexts': {'trace': {'trace_id': 'a' * 32, 'span_id': 'b' * 16, 'op': 'http.server', 'status': 'ok'}},
          'spans': [
              {'span_id': 'c' * 16, 'parent_span_id': 'b' * 16, 'op': 'db.query', 'description': 'SELECT 1',
               'start_timestamp': start + 0.1, 'timestamp': start + 0.25, 'status': 'ok'},
              {'span_id': 'd' * 16, 'parent_span_id': 'c' * 16, 'op': 'http.client', 'description': 'GET /api',
               'start_timestamp': start + 0.3, 'timestamp': start + 0.45},
          ]}
    body = envelope([({'type': 'transaction'}, tx)], header={'event_id': tx['event_id']})
    answer = project.send(body)
    assert answer.status_int == 200, answer.body
    assert project.issues() == []
    listed = project.read('/api/v1/transactions/list')['transactions']
    assert [t['name'] for t in listed] == ['GET /checkout']
    assert abs(listed[0]['durationMs'] - 500) < 0.01
    assert listed[0]['traceId'] == 'a' * 32 and listed[0]['status'] == 'ok'
    shown = project.read('/api/v1/transactions/%d' % listed[0]['id'])['transaction']
    assert shown['op'] == 'http.server' and shown['environment'] == 'production'
    spans = {s['spanId']: s for s in shown['spans']}
    db, http = spans['c' * 16], spans['d' * 16]
    assert db['op'] == 'db.query' and db['description'] == 'SELECT 1' and db['parentSpanId'] == 'b' * 16
    assert abs(db['startMs'] - 100) < 0.01 and abs(db['durationMs'] - 150) < 0.01
    assert abs(http['startMs'] - 300) < 0.01 and abs(http['durationMs'] - 150) < 0.01
    # the same transaction again is not stored twice
    assert project.send(body).status_int == 200
    assert len(project.read('/api/v1/transactions/list')['transactions']) == 1


def checkin(slug, status, check_in_id=None, **fields):
    payload = {'check_in_id': check_in_id or new_id(), 'monitor_slug': slug, 'status': status}
    payload.update(fields)
    return envelope([({'type': 'check_in'}, payload)])


def test_check_in_crontab_in_progress_then_ok(project):
    config = {'schedule': {'type': 'crontab', 'value': '0 3 * * *'}, 'checkin_margin': 10, 'max_runtime': 30,
              'timezone': 'Europe/Berlin'}
    run = new_id()
    answer = project.send(checkin('nightly-report', 'in_progress', run, monitor_config=config))
    assert answer.status_int == 200, answer.body
    monitors = project.read('/api/v1/monitors')['monitors']
    assert len(monitors) == 1
    monitor = monitors[0]
    assert monitor['slug'] == 'nightly-report'
    assert monitor['schedule'] == '0 3 * * *' and monitor['grace'] == 10
    assert monitor['maxRuntime'] == 30 and monitor['timezone'] == 'Europe/Berlin'
    assert monitor['status'] == 'running'
    answer = project.send(checkin('nightly-report', 'ok', run, duration=1.5, monitor_config=config))
    assert answer.status_int == 200, answer.body
    shown = project.read('/api/v1/monitors/nightly-report')
    assert shown['monitor']['status'] == 'healthy'
    assert shown['monitor']['lastStatus'] == 'success'
    assert [h['status'] for h in shown['history']] == ['success', 'in_progress']
    assert shown['history'][0]['durationMs'] == 1500


def test_check_in_interval_schedule_and_error(project):
    config = {'schedule': {'type': 'interval', 'value': 2, 'unit': 'hour'}, 'checkin_margin': 5}
    assert project.send(checkin('sync-job', 'ok', monitor_config=config)).status_int == 200
    monitor = project.read('/api/v1/monitors/sync-job')['monitor']
    assert monitor['schedule'] == '2h' and monitor['grace'] == 5 and monitor['status'] == 'healthy'
    assert project.send(checkin('sync-job', 'error', monitor_config=config)).status_int == 200
    shown = project.read('/api/v1/monitors/sync-job')
    assert shown['monitor']['status'] == 'failed'
    assert [h['status'] for h in shown['history']] == ['failed', 'success']


def test_check_in_updates_the_monitor_config(project):
    first = {'schedule': {'type': 'crontab', 'value': '*/10 * * * *'}, 'checkin_margin': 3}
    assert project.send(checkin('changing', 'ok', monitor_config=first)).status_int == 200
    second = {'schedule': {'type': 'interval', 'value': 1, 'unit': 'day'}, 'checkin_margin': 60}
    assert project.send(checkin('changing', 'ok', monitor_config=second)).status_int == 200
    monitor = project.read('/api/v1/monitors/changing')['monitor']
    assert monitor['schedule'] == '1d' and monitor['grace'] == 60


def test_check_in_for_an_existing_monitor_without_config(project):
    created = project.client.post_json('/api/v1/monitors?key=' + project.key,
                                       {'slug': 'made-by-hand', 'name': 'By hand', 'schedule': '1h', 'grace': 5})
    assert created.status_int == 201
    assert project.send(checkin('made-by-hand', 'ok')).status_int == 200
    shown = project.read('/api/v1/monitors/made-by-hand')
    assert shown['monitor']['status'] == 'healthy' and shown['monitor']['name'] == 'By hand'
    assert [h['status'] for h in shown['history']] == ['success']


def test_check_in_with_config_keeps_the_name_of_an_existing_monitor(project):
    """monitor_config updates the schedule settings, as in Sentry; the name
    someone gave the monitor stays."""
    created = project.client.post_json('/api/v1/monitors?key=' + project.key,
                                       {'slug': 'nightly-backup', 'name': 'Nightly DB backup', 'schedule': '1d'})
    assert created.status_int == 201
    config = {'schedule': {'type': 'crontab', 'value': '0 3 * * *'}, 'checkin_margin': 30}
    assert project.send(checkin('nightly-backup', 'ok', monitor_config=config)).status_int == 200
    monitor = project.read('/api/v1/monitors/nightly-backup')['monitor']
    assert (monitor['name'], monitor['schedule'], monitor['grace']) == ('Nightly DB backup', '0 3 * * *', 30)


def test_check_in_slug_is_made_url_safe_as_sentry_does(project):
    config = {'schedule': {'type': 'interval', 'value': 1, 'unit': 'day'}}
    assert project.send(checkin('Weekly Report / EU', 'ok', monitor_config=config)).status_int == 200
    assert project.send(checkin('weekly report / eu', 'error')).status_int == 200  # the same monitor
    (monitor,) = project.read('/api/v1/monitors')['monitors']
    assert (monitor['slug'], monitor['name']) == ('weekly-report-eu', 'Weekly Report / EU')
    shown = project.read('/api/v1/monitors/weekly-report-eu')
    assert [h['status'] for h in shown['history']] == ['failed', 'success']


@pytest.mark.parametrize('payload', [
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'weird'},
    {'check_in_id': 'x', 'status': 'ok'},
    {'check_in_id': 'x', 'monitor_slug': '!!!', 'status': 'ok'},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'crontab', 'value': 'every day'}}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'interval', 'value': 0, 'unit': 'hour'}}},
    # found by the fuzzing pass (tests/test_fuzz.py): each was a 500, or stored what cannot be read back
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': ['ok']},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': {}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'interval', 'value': 1, 'unit': ['hour']}}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'interval', 'value': 10 ** 12, 'unit': 'year'}}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok', 'duration': 1e308,
     'monitor_config': {'schedule': {'type': 'crontab', 'value': '0 * * * *'}}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok', 'duration': -5,
     'monitor_config': {'schedule': {'type': 'crontab', 'value': '0 * * * *'}}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'crontab', 'value': '0 * * * *'}, 'timezone': '../../etc/passwd'}},
    {'check_in_id': 'x', 'monitor_slug': 'job', 'status': 'ok',
     'monitor_config': {'schedule': {'type': 'crontab', 'value': '9' * 5000 + 'm'}}},
])
def test_bad_check_in_is_400(project, payload):
    assert_refused(project.send(envelope([({'type': 'check_in'}, payload)])), 400)
    assert project.read('/api/v1/monitors')['monitors'] == []


def test_log_items(project):
    logs = {'items': [
        {'timestamp': 1795000000.25, 'level': 'info', 'body': 'user logged in', 'trace_id': 'e' * 32,
         'attributes': {'service.name': {'value': 'auth', 'type': 'string'},
                        'user.id': {'value': '42', 'type': 'string'}}},
        {'timestamp': 1795000001.0, 'level': 'warn', 'body': 'slow query', 'attributes': {}},
        {'timestamp': 1795000002.0, 'level': 'error', 'body': 'payment failed'},
    ]}
    body = envelope([({'type': 'log', 'item_count': 3,
                       'content_type': 'application/vnd.sentry.items.log+json'}, logs)])
    answer = project.send(body)
    assert answer.status_int == 200, answer.body
    shown = project.read('/api/v1/logs')['logs']
    assert [l['message'] for l in shown] == ['payment failed', 'slow query', 'user logged in']
    assert [l['level'] for l in shown] == ['error', 'warn', 'info']
    first = shown[2]
    assert first['service'] == 'auth' and first['traceId'] == 'e' * 32
    assert first['timestamp'] == '2026-11-18T11:06:40.250Z'
    assert '42' in json.dumps(first['metadata'])
    assert [l['message'] for l in project.read('/api/v1/logs', level='error')['logs']] == ['payment failed']


# -- event mapping ---------------------------------------------------------------

RICH_FRAMES_OUTER = [
    {'filename': 'shop/views.py', 'abs_path': '/srv/shop/views.py', 'function': 'checkout', 'module': 'shop.views',
     'lineno': 20, 'in_app': True},
    {'filename': 'shop/cart.py', 'abs_path': '/srv/shop/cart.py', 'function': 'price_of', 'module': 'shop.cart',
     'lineno': 7, 'in_app': True},
]
RICH_FRAMES_RAISED = [
    {'filename': 'django/core/handlers/base.py',
     'abs_path': '/usr/lib/python3/site-packages/django/core/handlers/base.py', 'function': 'get_response',
     'module': 'django.core.handlers.base', 'lineno': 181, 'in_app': False},
    {'filename': 'shop/payments.py', 'abs_path': '/srv/shop/payments.py', 'function': 'charge',
     'module': 'shop.payments', 'lineno': 42, 'colno': 9, 'in_app': True,
     'context_line': "        raise PaymentError('card declined')",
     'pre_context': ['def charge(card, amount):', '    if card.declined:'],
     'post_context': ['', 'def refund(charge_id):'],
     'vars': {'amount': 1999, 'card': '<Card ****4242>', 'retries': [1, 2]}},
]


def rich_event(**changes):
    event = {
        'event_id': new_id(), 'timestamp': '2026-11-23T10:00:00.123Z', 'platform': 'python', 'level': 'error',
        'logger': 'shop.payments', 'server_name': 'web-1', 'release': 'shop@1.2.3', 'environment': 'production',
        'transaction': '/checkout',
        'tags': {'region': 'eu-west', 'customer': 'acme'},
        'user': {'id': '42', 'email': 'jane@example.com', 'ip_address': '10.0.0.7'},
        'contexts': {'os': {'name': 'Linux', 'version': '6.1'}, 'runtime': {'name': 'CPython', 'version': '3.11.7'}},
        'extra': {'cart_size': 3},
        'request': {'method': 'POST', 'url': 'https://shop.example/checkout', 'query_string': 'coupon=X',
                    'data': {'sku': 'A1'}, 'headers': {'User-Agent': 'Mozilla/5.0'}},
        'breadcrumbs': {'values': [
            {'timestamp': 1795427999.0, 'category': 'http', 'type': 'http', 'level': 'info',
             'message': 'GET /cart', 'data': {'status_code': 200}},
            {'timestamp': '2026-11-23T09:59:59.500Z', 'category': 'ui.click', 'message': 'button#pay'},
        ]},
        'exception': {'values': [
            {'type': 'KeyError', 'value': "'sku'", 'module': 'builtins',
             'stacktrace': {'frames': RICH_FRAMES_OUTER}},
            {'type': 'PaymentError', 'value': 'card declined', 'module': 'shop.payments',
             'mechanism': {'type': 'generic', 'handled': True},
             'stacktrace': {'frames': RICH_FRAMES_RAISED}},
        ]},
        'sdk': {'name': 'sentry.python', 'version': '2.75.0'},
    }
    event.update(changes)
    return event


def send_event(project, event):
    answer = project.send(event_envelope(event))
    assert answer.status_int == 200, answer.body
    row = next(e for e in project.events() if e['eventId'] == event['event_id'])
    return project.event(row['id'])


def test_exception_chain_and_frames(project):
    stored = send_event(project, rich_event())
    issue = project.issues()[0]
    assert issue['title'] == 'PaymentError: card declined'  # the last value is the one raised
    assert issue['type'] == 'PaymentError' and issue['value'] == 'card declined'
    assert 'charge' in issue['culprit']
    assert [e['type'] for e in stored['exception']] == ['KeyError', 'PaymentError']
    raised = stored['exception'][-1]
    assert raised['value'] == 'card declined' and raised['module'] == 'shop.payments'
    library, own = raised['frames']
    assert library['inApp'] is False and library['function'] == 'get_response'
    assert own['inApp'] is True
    assert own['filename'] == 'shop/payments.py' and own['absPath'] == '/srv/shop/payments.py'
    assert own['function'] == 'charge' and own['module'] == 'shop.payments'
    assert own['lineno'] == 42 and own['colno'] == 9
    assert own['contextLine'] == "        raise PaymentError('card declined')"
    assert own['preContext'] == ['def charge(card, amount):', '    if card.declined:']
    assert own['postContext'] == ['', 'def refund(charge_id):']
    assert own['vars']['amount'] == 1999 and own['vars']['card'] == '<Card ****4242>'
    assert [f['function'] for f in stored['exception'][0]['frames']] == ['checkout', 'price_of']


def test_a_chain_of_thousands_of_exceptions_keeps_the_raised_one_and_its_nearest_causes(project):
    """36,000 tiny chained exceptions fit in one 1 MiB event; the event keeps
    the last 100 (the raised one last), not 900 KB for the viewer to draw."""
    event = error_event(exception={'values': [{'type': 'Cause%d' % i, 'value': 'v'} for i in range(5000)]})
    stored = send_event(project, event)
    assert [e['type'] for e in stored['exception']] == ['Cause%d' % i for i in range(4900, 5000)]
    assert project.issues()[0]['title'] == 'Cause4999: v'


def test_event_fields(project):
    stored = send_event(project, rich_event())
    assert stored['kind'] == 'error'
    assert len(stored['eventId']) == 32
    assert stored['timestamp'] == '2026-11-23T10:00:00.123Z'
    assert stored['level'] == 'error'
    assert stored['release'] == 'shop@1.2.3' and stored['environment'] == 'production'
    assert stored['serverName'] == 'web-1'
    assert stored['platform'] == 'python'
    assert stored['tags'] == {'region': 'eu-west', 'customer': 'acme'}
    assert stored['user'] == {'id': '42', 'email': 'jane@example.com', 'ip_address': '10.0.0.7'}
    assert stored['contexts']['os'] == {'name': 'Linux', 'version': '6.1'}
    assert stored['contexts']['runtime']['version'] == '3.11.7'
    assert stored['extra'] == {'cart_size': 3}
    request = stored['request']
    assert request['method'] == 'POST' and request['url'] == 'https://shop.example/checkout'
    assert request['query'] == 'coupon=X' and request['data'] == {'sku': 'A1'}
    assert request['headers'] == {'User-Agent': 'Mozilla/5.0'}
    crumbs = stored['breadcrumbs']
    assert [c['message'] for c in crumbs] == ['GET /cart', 'button#pay']
    assert crumbs[0]['category'] == 'http' and crumbs[0]['level'] == 'info' and crumbs[0]['type'] == 'http'
    assert crumbs[0]['data'] == {'status_code': 200}
    assert crumbs[0]['timestamp'] == '2026-11-23T09:59:59.000Z'
    assert crumbs[1]['timestamp'] == '2026-11-23T09:59:59.500Z'
    issue = project.issues()[0]
    assert issue['lastRelease'] == 'shop@1.2.3' and issue['environments'] == ['production']
    assert issue['level'] == 'error'


def test_breadcrumbs_as_a_list_and_tags_as_pairs(project):
    event = rich_event(breadcrumbs=[{'timestamp': 1795427999.0, 'category': 'query', 'message': 'SELECT 1'}],
                       tags=[['region', 'us-east'], ['build', '77']])
    stored = send_event(project, event)
    assert [c['message'] for c in stored['breadcrumbs']] == ['SELECT 1']
    assert stored['tags'] == {'region': 'us-east', 'build': '77'}


def test_exception_as_a_bare_list(project):
    event = error_event()
    event['exception'] = [{'type': 'OSError', 'value': 'disk full'}]
    stored = send_event(project, event)
    assert stored['exception'][-1]['type'] == 'OSError'
    assert project.issues()[0]['title'] == 'OSError: disk full'


def test_message_as_a_string(project):
    event = {'event_id': new_id(), 'level': 'info', 'message': 'Deploy finished in 42s'}
    stored = send_event(project, event)
    assert stored['message'] == 'Deploy finished in 42s'
    assert stored['level'] == 'info'
    issue = project.issues()[0]
    assert issue['title'] == 'Deploy finished in 42s' and issue['level'] == 'info'


def test_logentry_with_params(project):
    event = {'event_id': new_id(), 'level': 'warning',
             'logentry': {'message': 'User %s failed to log in %d times', 'params': ['bob', 3]}}
    stored = send_event(project, event)
    assert stored['message'] == 'User bob failed to log in 3 times'
    assert stored['level'] == 'warning'
    issue = project.issues()[0]
    assert issue['title'] == 'User bob failed to log in 3 times' and issue['level'] == 'warning'


def test_message_as_a_legacy_object(project):
    event = {'event_id': new_id(), 'message': {'message': 'Queue %s is full', 'params': ['emails']}}
    assert send_event(project, event)['message'] == 'Queue emails is full'


def test_message_with_a_synthetic_exception(project):
    """What @sentry/node sends for captureMessage: the message plus a synthetic
    exception (no type, mechanism.synthetic) that only carries the stack. Sentry
    ignores a synthetic exception's type: the issue is the message."""
    event = {'event_id': new_id(), 'level': 'warning', 'message': 'node says hello', 'platform': 'node',
             'exception': {'values': [{'value': 'node says hello', 'mechanism': {
                 'type': 'generic', 'handled': True, 'synthetic': True}, 'stacktrace': {'frames': [
                     {'filename': '/srv/app/client.js', 'module': 'client', 'function': 'main', 'lineno': 22,
                      'colno': 8, 'in_app': True}]}}]}}
    stored = send_event(project, event)
    assert stored['message'] == 'node says hello'
    issue = project.issues()[0]
    assert issue['level'] == 'warning'
    assert issue['title'] == 'node says hello'


def test_logentry_formatted_wins(project):
    event = {'event_id': new_id(),
             'logentry': {'message': 'Order %s', 'params': ['7'], 'formatted': 'Order 7 was refused'}}
    assert send_event(project, event)['message'] == 'Order 7 was refused'


def test_logentry_messages_with_different_params_group_together(project):
    for name in ('alice', 'bob'):
        event = {'event_id': new_id(), 'logentry': {'message': 'User %s not found', 'params': [name]}}
        assert project.send(event_envelope(event)).status_int == 200
    issues = project.issues()
    assert len(issues) == 1 and issues[0]['count'] == 2


@pytest.mark.parametrize('level,expected', [('fatal', 'fatal'), ('error', 'error'), ('warning', 'warning'),
                                            ('info', 'info'), ('debug', 'debug')])
def test_levels(project, level, expected):
    stored = send_event(project, error_event(level=level))
    assert stored['level'] == expected
    assert project.issues()[0]['level'] == expected


def test_custom_fingerprint_groups_different_exceptions(project):
    first = error_event('first kind', type_='ValueError', fingerprint=['payment-provider-down'])
    second = error_event('second kind', type_='TimeoutError', fingerprint=['payment-provider-down'])
    second['exception']['values'][0]['stacktrace']['frames'][0]['function'] = 'elsewhere'
    for event in (first, second):
        assert project.send(event_envelope(event)).status_int == 200
    issues = project.issues()
    assert len(issues) == 1 and issues[0]['count'] == 2
    assert send_event(project, error_event('third', fingerprint=['payment-provider-down']))['fingerprint'] == [
        'payment-provider-down']


def test_default_fingerprint_part(project):
    """{{ default }} keeps the normal grouping and adds to it."""
    for tenant in ('tenant-a', 'tenant-b', 'tenant-a'):
        assert project.send(event_envelope(error_event('same bug', fingerprint=['{{ default }}', tenant]))
                            ).status_int == 200
    counts = sorted(i['count'] for i in project.issues())
    assert counts == [1, 2]
    other = error_event('another bug', type_='KeyError', fingerprint=['{{ default }}', 'tenant-a'])
    assert project.send(event_envelope(other)).status_int == 200
    assert len(project.issues()) == 3


def test_default_grouping_ignores_line_numbers_and_values(project):
    for lineno, value in ((10, 'user 17 missing'), (14, 'user 18 missing')):
        event = error_event(value)
        event['exception']['values'][0]['stacktrace']['frames'][0]['lineno'] = lineno
        assert project.send(event_envelope(event)).status_int == 200
    assert [i['count'] for i in project.issues()] == [2]


def test_release_and_environment_tracked_on_the_issue(project):
    for release, environment in (('shop@1.0', 'staging'), ('shop@1.1', 'production')):
        assert project.send(event_envelope(error_event('tracked', release=release, environment=environment))
                            ).status_int == 200
    issue = project.issues()[0]
    assert issue['lastRelease'] == 'shop@1.1'
    assert sorted(issue['environments']) == ['production', 'staging']
    detail = project.read('/api/v1/issues/%d' % issue['id'])['issue']
    assert sorted(detail['releases']) == ['shop@1.0', 'shop@1.1']
    assert [i['id'] for i in project.read('/api/v1/issues', environment='staging')['issues']] == [issue['id']]


@pytest.mark.parametrize('change', [
    {'level': 5}, {'release': ['x']}, {'user': 'bob'}, {'tags': 'a=b'}, {'tags': [['only-one']]},
    {'fingerprint': 'not-a-list'}, {'event_id': 'zzz'}, {'timestamp': 'last tuesday'},
])
def test_bad_event_fields_are_400(project, change):
    event = error_event(**change)
    body = envelope([({'type': 'event'}, event)])
    assert_refused(project.send(body), 400)
    assert project.issues() == []


def test_event_read_back_through_api_php(project):
    """Sentry errors show up in the ErrorCapture API's error list too."""
    assert project.send(event_envelope(rich_event())).status_int == 200
    errors = project.client.get('/api.php?action=errors&hash=%s&since=0' % project.key).json['errors']
    assert len(errors) == 1
    assert 'card declined' in errors[0]['message']
