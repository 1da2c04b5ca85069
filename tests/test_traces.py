"""One trace across every kind (docs/read-api.md, "Traces"): errors,
transactions with their spans, logs, HTTP requests and AI generations of a
trace on one timeline; a transaction lists its errors, a replay its errors,
an error names its trace and replay."""
import json

import errorcapture
from helpers import create_project, sentry_auth

NOW = errorcapture.now()
TRACE = 'a' * 32


def iso(offset):
    return errorcapture.iso(NOW + offset)


def test_a_trace_brings_every_kind_in_time_order(client):
    project = create_project(client, 'trace')
    key, seestack, open_sentry = project['hash'], {'X-SeeStack-Key': project['hash']}, {
        'X-Open-Sentry-Key': project['hash']}
    # a Sentry transaction with two spans, starting 10 s ago and lasting 2 s
    envelope_tx = {'type': 'transaction', 'transaction': 'GET /checkout', 'event_id': 'b' * 32,
                   'start_timestamp': NOW - 10, 'timestamp': NOW - 8,
                   'contexts': {'trace': {'trace_id': TRACE, 'span_id': 'c' * 16, 'op': 'http.server'}},
                   'spans': [{'span_id': 'd' * 16, 'parent_span_id': 'c' * 16, 'op': 'db', 'description': 'SELECT 1',
                              'start_timestamp': NOW - 9.5, 'timestamp': NOW - 9.0, 'trace_id': TRACE}]}
    answer = client.post('/api/%d/store/' % project['id'], json.dumps(envelope_tx), headers=sentry_auth(key),
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 200, answer.body
    error = {'event_id': 'e' * 32, 'level': 'error', 'timestamp': NOW - 9.2,
             'exception': {'values': [{'type': 'KeyError', 'value': "'cart'"}]},
             'contexts': {'trace': {'trace_id': TRACE, 'span_id': 'd' * 16}, 'replay': {'replay_id': 'r' * 32}}}
    assert client.post('/api/%d/store/' % project['id'], json.dumps(error), headers=sentry_auth(key),
                       content_type='application/json').status_int == 200
    client.post('/ingest/v1/logs', json.dumps({'level': 'warn', 'message': 'slow cart', 'traceId': TRACE,
                                               'timestamp': iso(-9.3)}), headers=seestack,
                content_type='application/json')
    client.post('/ingest/v1/http-requests', json.dumps({'requests': [{
        'traceId': TRACE, 'direction': 'outbound', 'method': 'GET', 'host': 'stock', 'path': '/items',
        'statusCode': 502, 'durationMs': 30, 'timestamp': iso(-8.9)}]}), headers=seestack,
        content_type='application/json')
    client.post('/v1/ingest', json.dumps({'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt-x',
                                          'inputTokens': 10, 'traceId': TRACE, 'timestamp': iso(-8.5)}),
                headers=open_sentry, content_type='application/json')
    # other traces stay out
    client.post('/ingest/v1/logs', json.dumps({'level': 'info', 'message': 'elsewhere', 'traceId': 'f' * 32}),
                headers=seestack, content_type='application/json')

    answer = client.get('/api/v1/traces/%s?key=%s' % (TRACE, key)).json
    assert answer['traceId'] == TRACE and not answer['truncated']
    assert [item['kind'] for item in answer['items']] == [
        'transaction', 'span', 'log', 'error', 'http_request', 'ai_generation']
    assert answer['counts'] == {'transaction': 1, 'span': 1, 'log': 1, 'error': 1, 'http_request': 1,
                                'ai_generation': 1}
    by_kind = {item['kind']: item for item in answer['items']}
    assert by_kind['transaction']['name'] == 'GET /checkout' and by_kind['transaction']['durationMs'] == 2000
    assert by_kind['span']['description'] == 'SELECT 1' and by_kind['span']['transactionId'] == by_kind[
        'transaction']['id']
    assert by_kind['error']['title'] == "KeyError: 'cart'" and by_kind['error']['replayId'] == 'r' * 32
    assert by_kind['http_request']['statusCode'] == 502 and by_kind['log']['message'] == 'slow cart'
    assert by_kind['ai_generation']['model'] == 'gpt-x'
    times = [item['timestamp'] for item in answer['items']]
    assert times == sorted(times) and all(t.endswith('Z') for t in times)
    assert answer['durationMs'] >= 2000

    # the links: an error names its trace and replay, a transaction lists its errors
    event = client.get('/api/v1/events/%d?key=%s' % (by_kind['error']['id'], key)).json['event']
    assert (event['traceId'], event['replayId']) == (TRACE, 'r' * 32)
    tx = client.get('/api/v1/transactions/%d?key=%s' % (by_kind['transaction']['id'], key)).json
    assert [e['id'] for e in tx['errors']] == [by_kind['error']['id']] and tx['errors'][0]['traceId'] == TRACE
    summary = client.get('/api/v1/events?key=' + key).json['events'][0]
    assert summary['traceId'] == TRACE
    assert client.get('/api/v1/traces/%s?key=%s' % ('0' * 32, key), expect_errors=True).status_int == 404
    limited = client.get('/api/v1/traces/%s?key=%s&limit=2' % (TRACE, key)).json
    assert len(limited['items']) == 2 and limited['truncated']


def test_a_replay_lists_its_errors(client):
    project = create_project(client, 'replay')
    key = project['hash']
    session = 's' * 32
    client.post('/ingest/v1/replay', json.dumps({'fingerprint': 'f', 'sessionId': session, 'events': [{
        'eventType': 'click', 'eventData': '{}', 'url': 'http://x/', 'timestampMillis': int(NOW * 1000)}]}),
        headers={'X-SeeStack-Key': key}, content_type='application/json')
    event = errorcapture.make_error_event('test', message='in the replay', contexts={'replay': {'replay_id': session}})
    client.wsgi.store.events.add(project['id'], [event])
    client.wsgi.store.events.add(project['id'], [errorcapture.make_error_event('test', message='elsewhere')])
    answer = client.get('/api/v1/replays/%s?key=%s' % (session, key)).json
    assert [e['message'] for e in answer['errors']] == ['in the replay']


def test_a_seestack_error_with_its_session_id_is_listed_by_that_replay(client):
    project = create_project(client, 'seestack-replay')
    key, seestack = project['hash'], {'X-SeeStack-Key': project['hash']}
    session = 'sess_8f3a2c1b'  # the seed's session
    client.post('/ingest/v1/replay', json.dumps({'fingerprint': session, 'sessionId': session, 'events': [{
        'eventType': 'navigation', 'eventData': '{"from":"/home","to":"/checkout"}', 'url': 'https://myapp.com/checkout',
        'timestampMillis': int(NOW * 1000)}]}), headers=seestack, content_type='application/json')
    for body in ({'exceptionClass': 'TypeError', 'message': 'in the session', 'sessionId': session},
                 {'exceptionClass': 'RangeError', 'message': 'named in metadata', 'metadata': {'sessionId': session}},
                 {'exceptionClass': 'Error', 'message': 'elsewhere'}):
        assert client.post('/ingest/v1/errors', json.dumps(body), headers=seestack,
                           content_type='application/json').json['success']
    answer = client.get('/api/v1/replays/%s?key=%s' % (session, key)).json
    assert sorted(e['message'] for e in answer['errors']) == ['RangeError: named in metadata',
                                                              'TypeError: in the session']


def test_traces_are_per_project(client):
    mine, other = create_project(client, 'a'), create_project(client, 'b')
    event = errorcapture.make_error_event('test', message='m', contexts={'trace': {'trace_id': TRACE}})
    client.wsgi.store.events.add(mine['id'], [event])
    assert client.get('/api/v1/traces/%s?key=%s' % (TRACE, mine['hash'])).json['counts'] == {'error': 1}
    assert client.get('/api/v1/traces/%s?key=%s' % (TRACE, other['hash']), expect_errors=True).status_int == 404


def test_seestack_and_open_sentry_errors_join_their_trace(client):
    """A SeeStack error (the seed's curl body plus traceId / spanId, the names its HTTP requests and logs
    use; or in metadata, where SeeStack's own server keeps them) and an Open Sentry error item (the seed's
    error item plus traceId / spanId, as its ai_generation items link to a trace) land on the timeline of
    the Open Sentry transaction and SeeStack HTTP request of that trace."""
    project = create_project(client, 'dialect-traces')
    key, seestack, open_sentry = project['hash'], {'X-SeeStack-Key': project['hash']}, {
        'X-Open-Sentry-Key': project['hash']}
    trace = 'trace-abc-123'  # the seed's own trace id
    assert client.post('/v1/ingest', json.dumps({
        'type': 'transaction', 'name': 'GET /api/checkout', 'traceId': trace, 'durationMs': 245, 'status': 'ok',
        'environment': 'production', 'timestamp': iso(-10),
        'spans': [{'spanId': 'span-1', 'op': 'db.query', 'description': 'SELECT * FROM orders', 'durationMs': 40,
                   'parentSpanId': 'root-span-id'}]}), headers=open_sentry,
        content_type='application/json').status_int == 202
    client.post('/ingest/v1/http-requests', json.dumps({'requests': [{
        'traceId': trace, 'direction': 'outbound', 'method': 'POST', 'host': 'payments.stripe.com',
        'path': '/v1/charges', 'statusCode': 200, 'durationMs': 320, 'timestamp': iso(-9)}]}), headers=seestack,
        content_type='application/json')
    seestack_error = {
        'exceptionClass': 'TypeError', 'message': "Cannot read properties of undefined (reading 'userId')",
        'stackTrace': ['at getUserId (auth.js:42:18)', 'at validateSession (session.js:17:5)'],
        'level': 'error', 'environment': 'production', 'release': 'v2.1.0',
        'user': {'id': 'usr_1234', 'email': 'dev@example.com'}, 'metadata': {'route': '/dashboard'},
        'timestamp': iso(-8), 'traceId': trace, 'spanId': 'span-1'}
    assert client.post('/ingest/v1/errors', json.dumps(seestack_error), headers=seestack,
                       content_type='application/json').json['success']
    in_metadata = dict(seestack_error, exceptionClass='RangeError', timestamp=iso(-7),
                       metadata={'route': '/dashboard', 'traceId': trace})
    del in_metadata['traceId'], in_metadata['spanId']
    client.post('/ingest/v1/errors', json.dumps(in_metadata), headers=seestack, content_type='application/json')
    assert client.post('/v1/ingest', json.dumps([{
        'type': 'error', 'exception': {'type': 'Error', 'value': 'payment failed', 'stacktrace': {'frames': [
            {'filename': 'app/page.tsx', 'function': 'loadData', 'lineno': 42, 'colno': 12, 'inApp': True}]}},
        'tags': {'region': 'us-east'}, 'environment': 'production', 'release': 'web@2.4.1',
        'timestamp': iso(-6), 'traceId': trace, 'spanId': 'span-1'},
        {'type': 'error', 'exception': {'type': 'Error', 'value': 'no trace'}, 'timestamp': iso(-5)}]),
        headers=open_sentry, content_type='application/json').status_int == 202

    answer = client.get('/api/v1/traces/%s?key=%s' % (trace, key)).json
    assert [(item['kind'], item.get('title')) for item in answer['items'] if item['kind'] != 'span'] == [
        ('transaction', None), ('http_request', None),
        ('error', "TypeError: Cannot read properties of undefined (reading 'userId')"),
        ('error', "RangeError: Cannot read properties of undefined (reading 'userId')"),
        ('error', 'Error: payment failed')]
    errors = [item for item in answer['items'] if item['kind'] == 'error']
    assert [e['spanId'] for e in errors] == ['span-1', None, 'span-1']
    event = client.get('/api/v1/events/%d?key=%s' % (errors[0]['id'], key)).json['event']
    assert (event['traceId'], event['spanId'], event['dialect']) == (trace, 'span-1', 'seestack')
    open_sentry_event = client.get('/api/v1/events/%d?key=%s' % (errors[2]['id'], key)).json['event']
    assert (open_sentry_event['traceId'], open_sentry_event['dialect']) == (trace, 'open-sentry')
    # the transaction lists the errors of its trace, whichever dialect sent them
    tx = client.get('/api/v1/transactions/%d?key=%s' % (answer['items'][0]['id'], key)).json
    assert sorted(e['id'] for e in tx['errors']) == sorted(e['id'] for e in errors)


def test_a_trace_id_that_is_not_a_string_is_refused_in_each_dialects_format(client):
    project = create_project(client, 'bad-trace')
    answer = client.post('/ingest/v1/errors', json.dumps({'exceptionClass': 'E', 'message': 'm', 'traceId': 7}),
                         headers={'X-SeeStack-Key': project['hash']}, content_type='application/json',
                         expect_errors=True)
    assert answer.status_int == 422 and answer.json['error']['details'] == {'traceId': 'must be a string'}
    answer = client.post('/v1/ingest', json.dumps({'type': 'error', 'exception': {'type': 'E', 'value': 'v'},
                                                   'spanId': ['x']}),
                         headers={'X-Open-Sentry-Key': project['hash']}, content_type='application/json',
                         expect_errors=True)
    assert answer.status_int == 400 and answer.json['error'] == 'Invalid payload'
    assert client.get('/api/v1/issues?key=' + project['hash']).json['issues'] == []
