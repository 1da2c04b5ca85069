"""Session replays from the Sentry SDK (replay_event + replay_recording, rrweb
events behind a header line, zlib-compressed by default) become replay
sessions in the same store and read API as SeeStack's: a readable, masked
timeline, linked both ways to the errors recorded in them."""
import json
import time
import zlib

import pytest

REPLAY = '0ece3294d43b4eb49b02d349c74f8328'
T0 = int((time.time() - 120) * 1000)  # ms


@pytest.fixture
def project(client):
    return client.get('/api.php?action=generate&name=replays').json


def envelope(*items, event_id=REPLAY):
    """items: (header dict, payload bytes or JSON-able)."""
    out = [json.dumps({'event_id': event_id, 'sent_at': '2026-12-01T12:00:00.000Z',
                       'sdk': {'name': 'sentry.javascript.browser', 'version': '11.12.0'}}).encode()]
    for header, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header = dict(header, length=len(data)) if header['type'] == 'replay_recording' else header
        out += [json.dumps(header).encode(), data]
    return b'\n'.join(out)


def post(client, project, body, status=200):
    return client.post('/api/%d/envelope/?sentry_key=%s&sentry_version=7' % (project['id'], project['key']), body,
                       headers={'Content-Type': 'text/plain;charset=UTF-8'}, status=status)


def replay_event(segment=0, **extra):
    event = {'type': 'replay_event', 'replay_id': REPLAY, 'event_id': REPLAY, 'segment_id': segment,
             'replay_start_timestamp': T0 / 1000.0, 'timestamp': T0 / 1000.0 + 10 + segment,
             'error_ids': [], 'trace_ids': ['07342263c5f44e1f9103dcda10f49de9'], 'replay_type': 'session',
             'urls': ['https://shop.example/checkout'], 'environment': 'production', 'release': 'shop-web@2.0.0',
             'platform': 'javascript'}
    event.update(extra)
    return event


def crumb(at, category, message=None, **data):
    payload = {'timestamp': at / 1000.0, 'type': 'default', 'category': category}
    if message:
        payload['message'] = message
    if data:
        payload['data'] = data
    return {'type': 5, 'timestamp': at, 'data': {'tag': 'breadcrumb', 'payload': payload}}


def perf(at_s, op, description, end_s=None, **data):
    return {'type': 5, 'timestamp': at_s, 'data': {'tag': 'performanceSpan', 'payload': {
        'op': op, 'description': description, 'startTimestamp': at_s, 'endTimestamp': end_s or at_s, 'data': data}}}


RRWEB = [
    {'type': 4, 'timestamp': T0, 'data': {'href': 'https://shop.example/checkout', 'width': 1200, 'height': 800}},
    {'type': 2, 'timestamp': T0 + 5, 'data': {'node': {'type': 0, 'childNodes': [], 'id': 1},
                                               'initialOffset': {'left': 0, 'top': 0}}},
    {'type': 3, 'timestamp': T0 + 50, 'data': {'source': 1, 'positions': [{'x': 1, 'y': 2, 'id': 9, 'timeOffset': 0}]}},
    crumb(T0 + 900, 'ui.input', 'body > form > input#card', nodeId=13),
    {'type': 3, 'timestamp': T0 + 910, 'data': {'source': 5, 'text': '4111', 'isChecked': False, 'id': 13}},
    {'type': 3, 'timestamp': T0 + 990, 'data': {'source': 5, 'text': '4111 1111 1111 1111', 'isChecked': False,
                                                'id': 13}},
    crumb(T0 + 1200, 'ui.click', 'body > form > button#pay', nodeId=15,
          node={'id': 15, 'tagName': 'button', 'textContent': 'Pay now', 'attributes': {'id': 'pay'}}),
    crumb(T0 + 1201, 'console', 'paying order 17', logger='console', arguments=['paying order 17']),
    perf((T0 + 1202) / 1000.0, 'resource.fetch', 'https://shop.example/api/pay', (T0 + 1450) / 1000.0,
         method='POST', statusCode=500, request={'size': 120}, response={'size': 45}),
    crumb(T0 + 1500, 'sentry.feedback', feedbackId='f' * 32),
    perf(T0 / 1000.0, 'navigation.navigate', 'https://shop.example/checkout', (T0 + 400) / 1000.0, size=1439),
    perf((T0 + 600) / 1000.0, 'web-vital', 'largest-contentful-paint', value=604, rating='good'),
    crumb(T0 + 2000, 'replay.mutations', 'many'),
]


def recording(events, segment=0, compress=True):
    body = json.dumps(events).encode()
    return json.dumps({'segment_id': segment}).encode() + b'\n' + (zlib.compress(body) if compress else body)


def replay_of(client, project, replay_id=REPLAY):
    return client.get('/api/v1/replays/' + replay_id, {'key': project['key']}).json


def timeline(replay):
    return [(event['eventType'], json.loads(event['eventData'])) for event in replay['events']]


def test_a_recording_becomes_a_readable_timeline(client, project):
    post(client, project, envelope(({'type': 'replay_event'}, replay_event()),
                                   ({'type': 'replay_recording'}, recording(RRWEB))))
    replay = replay_of(client, project)
    assert (replay['source'], replay['environment'], replay['release'], replay['segments']) == (
        'sentry', 'production', 'shop-web@2.0.0', 1)
    assert replay['traceIds'] == ['07342263c5f44e1f9103dcda10f49de9']
    assert timeline(replay) == [
        ('navigation', {'to': 'https://shop.example/checkout', 'method': 'navigate'}),
        ('web_vital', {'name': 'largest-contentful-paint', 'value': 604, 'rating': 'good'}),
        ('input', {'target': 'body > form > input#card', 'value': '[MASKED]'}),  # one entry for the typing
        ('click', {'target': 'body > form > button#pay', 'text': 'Pay now'}),
        ('console', {'level': 'log', 'message': 'paying order 17'}),
        ('network', {'method': 'POST', 'url': 'https://shop.example/api/pay', 'statusCode': 500, 'durationMs': 248,
                     'requestSize': 120, 'responseSize': 45}),
        ('feedback', {'feedbackId': 'f' * 32}),
    ]
    stamps = [event['timestampMillis'] for event in replay['events']]
    assert stamps == [T0, T0 + 600, T0 + 900, T0 + 1200, T0 + 1201, T0 + 1202, T0 + 1500]  # seconds became ms
    assert all(event['url'] == 'https://shop.example/checkout' for event in replay['events'])
    sessions = client.get('/api/v1/replays', {'key': project['key']}).json['sessions']
    assert [(s['sessionId'], s['source'], s['events'], s['errorCount']) for s in sessions] == [
        (REPLAY, 'sentry', 7, 0)]
    assert '4111' not in json.dumps(replay)


def test_an_uncompressed_recording_is_taken(client, project):
    post(client, project, envelope(({'type': 'replay_event'}, replay_event()),
                                   ({'type': 'replay_recording'}, recording(RRWEB[:1], compress=False))))
    assert timeline(replay_of(client, project)) == [
        ('navigation', {'to': 'https://shop.example/checkout', 'method': 'navigate'})]


def test_segments_add_up_and_a_retried_segment_is_stored_once(client, project):
    first = envelope(({'type': 'replay_event'}, replay_event(0)), ({'type': 'replay_recording'}, recording(RRWEB)))
    post(client, project, first)
    post(client, project, first)  # the SDK retries
    second = [crumb(T0 + 5000, 'navigation', **{'from': '/checkout', 'to': '/receipt'}),
              perf((T0 + 5001) / 1000.0, 'navigation.push', 'https://shop.example/receipt')]
    post(client, project, envelope(({'type': 'replay_event'}, replay_event(1, urls=['https://shop.example/receipt'])),
                                   ({'type': 'replay_recording'}, recording(second, segment=1))))
    replay = replay_of(client, project)
    assert replay['segments'] == 2 and len(replay['events']) == 8
    assert timeline(replay)[-1] == ('navigation', {'to': 'https://shop.example/receipt', 'method': 'push'})
    session = client.get('/api/v1/replays', {'key': project['key']}).json['sessions'][0]
    assert session['urls'] == ['https://shop.example/checkout', 'https://shop.example/receipt']


def error_event(event_id, replay_id=REPLAY, where='tags'):
    event = {'event_id': event_id, 'platform': 'javascript', 'timestamp': T0 / 1000.0 + 1.3,
             'exception': {'values': [{'type': 'TypeError', 'value': "reading 'card'", 'stacktrace': {'frames': [
                 {'filename': 'https://shop.example/app.js', 'function': 'pay', 'lineno': 1, 'colno': 5}]}}]}}
    if where == 'tags':
        event['tags'] = {'replayId': replay_id}
    else:
        event['contexts'] = {'replay': {'replay_id': replay_id}}
    return event


def test_errors_and_their_replay_are_linked_both_ways(client, project):
    post(client, project, envelope(({'type': 'event'}, error_event('a' * 32)), event_id='a' * 32))
    post(client, project, envelope(({'type': 'event'}, error_event('b' * 32, where='contexts')), event_id='b' * 32))
    post(client, project, envelope(({'type': 'event'}, error_event('c' * 32, replay_id='d' * 32)), event_id='c' * 32))
    post(client, project, envelope(({'type': 'replay_event'}, replay_event(error_ids=['a' * 32])),
                                   ({'type': 'replay_recording'}, recording(RRWEB))))
    replay = replay_of(client, project)
    assert sorted(error['eventId'] for error in replay['errors']) == ['a' * 32, 'b' * 32]
    assert all(error['issueId'] for error in replay['errors'])
    event = client.get('/api/v1/events/%d' % replay['errors'][0]['id'], {'key': project['key']}).json['event']
    assert event['replayId'] == REPLAY
    sessions = client.get('/api/v1/replays', {'key': project['key']}).json['sessions']
    assert sessions[0]['errorCount'] == 2


def test_a_replay_event_alone_opens_the_session(client, project):
    post(client, project, envelope(({'type': 'replay_event'}, replay_event())))
    replay = replay_of(client, project)
    assert replay['events'] == [] and replay['segments'] == 1 and replay['source'] == 'sentry'


def test_a_recording_bomb_is_refused(client, project):
    bomb = b'[' + b'0,' * (12 << 20) + b'0]'  # 24 MiB of JSON, about 24 KiB as zlib
    body = json.dumps({'segment_id': 0}).encode() + b'\n' + zlib.compress(bomb, 9)
    answer = post(client, project, envelope(({'type': 'replay_recording'}, body)), status=413)
    assert 'exceeds' in answer.json['detail']
    assert client.get('/api/v1/replays', {'key': project['key']}).json['sessions'] == []


@pytest.mark.parametrize('payload, why', [
    (zlib.compress(b'[]'), 'header'),                                   # no header line
    (b'{"segment_id": 0}\n' + b'\x78\x9c not zlib', 'deflate'),         # broken compression
    (b'{"segment_id": 0}\n' + zlib.compress(b'{"not": "a list"}'), 'array'),
    (b'{"segment_id": 0}\n' + zlib.compress(b'[{"type": 3,'), 'invalid replay_recording payload'),
])
def test_a_bad_recording_is_refused_by_name(client, project, payload, why):
    answer = post(client, project, envelope(({'type': 'replay_event'}, replay_event()),
                                            ({'type': 'replay_recording'}, payload)), status=400)
    assert why in answer.json['detail']


def test_a_bad_replay_id_is_refused(client, project):
    answer = post(client, project, envelope(({'type': 'replay_event'}, replay_event(replay_id='nope', event_id='x')),
                                            event_id=None), status=400)
    assert 'replay_id' in answer.json['detail']


def test_sessions_are_pruned_with_age(client, project):
    post(client, project, envelope(({'type': 'event'}, error_event('a' * 32)), event_id='a' * 32))
    post(client, project, envelope(({'type': 'replay_event'}, replay_event()),
                                   ({'type': 'replay_recording'}, recording(RRWEB))))
    store = client.wsgi.store
    store.retention.prune_telemetry(project['id'], time.time() + 1)
    assert client.get('/api/v1/replays', {'key': project['key']}).json['sessions'] == []
    client.get('/api/v1/replays/' + REPLAY, {'key': project['key']}, status=404)
    assert store.query('SELECT COUNT(*) FROM replay_events')[0][0] == 0
