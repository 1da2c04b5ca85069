"""Streamed spans (Sentry `span` items, the span v2 container that @sentry/node
and @sentry/browser 11 send by default) become transactions with their span
tree, whatever order their envelopes arrive in; transaction statuses keep
Sentry's words; browser web vitals stay with the page load."""
import json
import time

import pytest

import errorcapture

TRACE = '4b1c2d3e4f5061728394a5b6c7d8e9f0'
ROOT, QUERY, CHARGE, ENCODE = 'a000000000000001', 'a000000000000002', 'a000000000000003', 'a000000000000004'
V2 = 'application/vnd.sentry.items.span.v2+json'


@pytest.fixture
def project(client):
    return client.get('/api.php?action=generate&name=spans').json


def post(client, project, *items, status=200, header=None):
    """POST an envelope of (item header, payload) as the JS SDK does (key in the query)."""
    lines = [json.dumps(header or {'sent_at': '2026-12-01T12:00:00.000Z', 'sdk': {'name': 'sentry.javascript.node'}})]
    for item_header, payload in items:
        lines += [json.dumps(item_header), payload if isinstance(payload, str) else json.dumps(payload)]
    return client.post('/api/%d/envelope/?sentry_key=%s&sentry_version=7' % (project['id'], project['key']),
                       '\n'.join(lines).encode(), headers={'Content-Type': 'text/plain;charset=UTF-8'}, status=status)


def attrs(**values):
    out = {}
    for key, value in values.items():
        kind = 'boolean' if isinstance(value, bool) else 'integer' if isinstance(value, int) else \
            'double' if isinstance(value, float) else 'string'
        out[key.replace('__', '.')] = {'value': value, 'type': kind}
    return out


def span(span_id, name, op, start, end, parent=ROOT, segment=ROOT, status='ok', trace=TRACE, **extra):
    attributes = {'sentry.op': op, 'sentry.segment.id': segment, 'sentry.segment.name': 'POST /checkout',
                  'sentry.release': 'shop@3.1.0', 'sentry.environment': 'test'}
    attributes.update({k.replace('__', '.'): v for k, v in extra.items()})
    out = {'trace_id': trace, 'span_id': span_id, 'name': name, 'start_timestamp': start, 'end_timestamp': end,
           'is_segment': span_id == segment, 'status': status, 'attributes': attrs(**{
               k.replace('.', '__'): v for k, v in attributes.items()})}
    if parent and span_id != segment:
        out['parent_span_id'] = parent
    return out


def container(*spans):
    return ({'type': 'span', 'item_count': len(spans), 'content_type': V2}, {'version': 2, 'items': list(spans)})


T0 = time.time() - 60
CHILDREN = [span(QUERY, 'SELECT * FROM orders', 'db.query', T0 + 0.010, T0 + 0.030),
            span(CHARGE, 'POST https://payments.example/charge', 'http.client', T0 + 0.035, T0 + 0.090,
                 status='error', **{'sentry.status.message': 'deadline_exceeded'}),
            span(ENCODE, 'encode body', 'serialize', T0 + 0.036, T0 + 0.040, parent=CHARGE)]
SEGMENT = span(ROOT, 'POST /checkout', 'http.server', T0, T0 + 0.120, parent=None)


def transactions(client, project, **params):
    params['key'] = project['key']
    return client.get('/api/v1/transactions/list', params).json['transactions']


def transaction(client, project, tx_id):
    return client.get('/api/v1/transactions/%d' % tx_id, {'key': project['key']}).json['transaction']


def only_transaction(client, project):
    listed = transactions(client, project)
    assert len(listed) == 1, listed
    return transaction(client, project, listed[0]['id'])


def check_checkout(tx):
    assert tx['name'] == 'POST /checkout' and tx['op'] == 'http.server' and tx['source'] == 'spans'
    assert tx['traceId'] == TRACE and tx['segmentSpanId'] == ROOT and tx['status'] == 'ok'
    assert tx['durationMs'] == pytest.approx(120, abs=0.01)
    assert (tx['release'], tx['environment']) == ('shop@3.1.0', 'test')
    assert [(s['spanId'], s['depth']) for s in tx['spans']] == [(QUERY, 0), (CHARGE, 0), (ENCODE, 1)]
    by_id = {s['spanId']: s for s in tx['spans']}
    assert by_id[QUERY]['startMs'] == pytest.approx(10, abs=0.01)
    assert by_id[QUERY]['durationMs'] == pytest.approx(20, abs=0.01)
    assert by_id[CHARGE]['status'] == 'deadline_exceeded' and by_id[QUERY]['status'] == 'ok'
    assert by_id[ENCODE]['parentSpanId'] == CHARGE and by_id[ENCODE]['op'] == 'serialize'
    assert by_id[QUERY]['description'] == 'SELECT * FROM orders'
    assert by_id[QUERY]['attributes']['sentry.op'] == 'db.query'


def test_one_container_makes_a_transaction_with_its_span_tree(client, project):
    post(client, project, container(*(CHILDREN + [SEGMENT])))
    check_checkout(only_transaction(client, project))


def test_segment_arriving_after_its_children_still_makes_it_whole(client, project):
    post(client, project, container(*CHILDREN[:2]))
    assert transactions(client, project) == []  # nothing to show until the root arrives
    post(client, project, container(CHILDREN[2]))
    post(client, project, container(SEGMENT))
    check_checkout(only_transaction(client, project))


def test_children_arriving_after_the_segment_join_it(client, project):
    post(client, project, container(SEGMENT))
    assert only_transaction(client, project)['spans'] == []
    post(client, project, container(*CHILDREN))
    check_checkout(only_transaction(client, project))


def test_a_child_without_segment_id_finds_it_through_its_parent(client, project):
    orphan = span(ENCODE, 'encode body', 'serialize', T0 + 0.036, T0 + 0.040, parent=CHARGE)
    del orphan['attributes']['sentry.segment.id']
    post(client, project, container(orphan))
    post(client, project, container(*(CHILDREN[:2] + [SEGMENT])))
    check_checkout(only_transaction(client, project))


def test_a_retried_envelope_is_stored_once(client, project):
    for _ in range(2):
        post(client, project, container(*(CHILDREN + [SEGMENT])))
    assert len(only_transaction(client, project)['spans']) == 3


def test_two_segments_of_one_trace_are_two_transactions(client, project):
    other = span('b000000000000001', 'GET /api/cart', 'http.client', T0 + 1, T0 + 1.2, parent=None,
                 segment='b000000000000001')
    post(client, project, container(*(CHILDREN + [SEGMENT, other])))
    names = sorted(tx['name'] for tx in transactions(client, project))
    assert names == ['GET /api/cart', 'POST /checkout']


def test_streamed_status_keeps_sentry_words(client, project):
    failing = [span('c000000000000001', 'nightly-batch', 'task', T0, T0 + 1, parent=None, segment='c000000000000001',
                    status='error', **{'sentry.status.message': 'internal_error'}),
               span('c000000000000002', 'GET /missing', 'http.server', T0, T0 + 1, parent=None,
                    segment='c000000000000002', status='error', **{'http.response.status_code': 404}),
               span('c000000000000003', 'flaky', 'task', T0, T0 + 1, parent=None, segment='c000000000000003',
                    status='error', **{'sentry.status.message': 'Connection Refused'})]
    post(client, project, container(*failing))
    statuses = {tx['name']: tx['status'] for tx in transactions(client, project)}
    assert statuses == {'nightly-batch': 'internal_error', 'GET /missing': 'not_found', 'flaky': 'internal_error'}
    summary = client.get('/api/v1/transactions', {'key': project['key']}).json['transactions']
    assert {row['name']: row['errors'] for row in summary} == {'nightly-batch': 1, 'GET /missing': 1, 'flaky': 1}


def transaction_event(status, **extra):
    event = {'type': 'transaction', 'transaction': 'GET /orders', 'event_id': '%032x' % abs(hash(status)),
             'start_timestamp': T0, 'timestamp': T0 + 0.5, 'platform': 'javascript',
             'contexts': {'trace': {'trace_id': TRACE, 'span_id': ROOT, 'op': 'pageload', 'status': status}},
             'spans': [{'span_id': QUERY, 'parent_span_id': ROOT, 'trace_id': TRACE, 'op': 'http.client',
                        'description': 'GET /api', 'start_timestamp': T0 + 0.1, 'timestamp': T0 + 0.2,
                        'status': 'unavailable', 'data': {'http.response.status_code': 503}}]}
    event.update(extra)
    return event


def test_transaction_events_keep_status_words_and_measurements(client, project):
    event = transaction_event('deadline_exceeded', measurements={
        'lcp': {'value': 1234.5, 'unit': 'millisecond'}, 'cls': {'value': 0.12, 'unit': ''},
        'fcp': {'value': 400, 'unit': 'millisecond'}, 'fid': {'value': 3, 'unit': 'millisecond'}})
    post(client, project, ({'type': 'transaction'}, event))
    tx = only_transaction(client, project)
    assert tx['status'] == 'deadline_exceeded' and tx['source'] == 'transaction'
    assert tx['webVitals'] == {'lcp': {'value': 1234.5, 'unit': 'millisecond'}, 'cls': {'value': 0.12, 'unit': ''},
                               'fcp': {'value': 400.0, 'unit': 'millisecond'}}
    assert tx['spans'][0]['status'] == 'unavailable'
    assert tx['spans'][0]['attributes'] == {'http.response.status_code': 503}
    summary = client.get('/api/v1/transactions', {'key': project['key']}).json['transactions']
    assert summary[0]['errors'] == 1


def test_cancelled_and_unknown_are_not_failures(client, project):
    for status in ('cancelled', 'unknown', 'ok'):
        event = transaction_event(status)
        event['contexts']['trace']['span_id'] = '%016x' % abs(hash(status))
        post(client, project, ({'type': 'transaction'}, event))
    summary = client.get('/api/v1/transactions', {'key': project['key']}).json['transactions']
    assert (summary[0]['count'], summary[0]['errors']) == (3, 0)


def test_spans_split_from_a_transaction_join_it(client, project):
    """@sentry/* in static mode sends gen_ai spans as a span container beside the transaction."""
    llm = span('d000000000000001', 'chat gpt-4o', 'gen_ai.chat', T0 + 0.2, T0 + 0.4)
    post(client, project, ({'type': 'transaction'}, transaction_event('ok')), container(llm))
    tx = only_transaction(client, project)
    assert sorted(s['op'] for s in tx['spans']) == ['gen_ai.chat', 'http.client']


def test_version1_span_items_are_taken(client, project):
    post(client, project, container(SEGMENT))
    v1 = {'trace_id': TRACE, 'span_id': QUERY, 'parent_span_id': ROOT, 'segment_id': ROOT, 'op': 'db.query',
          'description': 'SELECT 1', 'start_timestamp': T0 + 0.01, 'timestamp': T0 + 0.02, 'status': 'ok',
          'data': {'db.system': 'postgresql'}}
    post(client, project, ({'type': 'span'}, v1))
    spans = only_transaction(client, project)['spans']
    assert [(s['description'], s['attributes']['db.system']) for s in spans] == [('SELECT 1', 'postgresql')]


def test_page_load_is_named_by_its_path_and_keeps_web_vitals(client, project):
    page = span('e000000000000001', 'Pageload', 'pageload', T0, T0 + 0.9, parent=None, segment='e000000000000001',
                **{'sentry.segment.name.source': 'url', 'url.path': '/checkout', 'browser.web_vital.ttfb.value': 61.2,
                   'browser.web_vital.fcp.value': 604, 'sentry.replay_id': 'f' * 32})
    request = span('e000000000000002', 'Request', 'browser.request', T0 + 0.01, T0 + 0.05, parent='e000000000000001',
                   segment='e000000000000001')
    post(client, project, container(request, page))
    # LCP comes later, when the page is hidden: a span of its own
    lcp = span('e000000000000003', 'Largest contentful paint', 'ui.webvital.lcp', T0 + 0.6, T0 + 0.6,
               parent='e000000000000001', segment='e000000000000001', **{'browser.web_vital.lcp.value': 604})
    post(client, project, container(lcp))
    tx = only_transaction(client, project)
    assert tx['name'] == '/checkout' and tx['op'] == 'pageload' and tx['replayId'] == 'f' * 32
    assert tx['webVitals'] == {'ttfb': {'value': 61.2, 'unit': 'millisecond'},
                               'fcp': {'value': 604.0, 'unit': 'millisecond'},
                               'lcp': {'value': 604.0, 'unit': 'millisecond'}}
    assert [s['op'] for s in tx['spans']] == ['browser.request', 'ui.webvital.lcp']
    assert tx['attributes']['url.path'] == '/checkout'


def test_a_transaction_keeps_at_most_max_spans(client, project, monkeypatch):
    monkeypatch.setattr(errorcapture, 'MAX_SPANS', 2)
    post(client, project, container(*CHILDREN))
    post(client, project, container(SEGMENT))
    assert len(only_transaction(client, project)['spans']) == 2


@pytest.mark.parametrize('bad, field', [
    ({'span_id': QUERY, 'start_timestamp': T0, 'end_timestamp': T0}, 'span.trace_id'),
    ({'trace_id': TRACE, 'span_id': 'xyz', 'start_timestamp': T0, 'end_timestamp': T0}, 'span.span_id'),
    ({'trace_id': TRACE, 'span_id': QUERY, 'end_timestamp': T0}, 'span.start_timestamp'),
    ('not a span', 'span'),
])
def test_a_bad_span_is_refused_by_name(client, project, bad, field):
    answer = post(client, project, container(bad), status=400)
    assert field in answer.json['detail']
    assert transactions(client, project) == []


def test_a_bad_container_is_refused(client, project):
    answer = post(client, project, ({'type': 'span', 'content_type': V2}, {'version': 2, 'items': 'nope'}),
                  status=400)
    assert 'items' in answer.json['detail']


def test_spans_are_pruned_with_age(make, tmp_path):
    client = make()
    project = client.get('/api.php?action=generate&name=old').json
    post(client, project, container(*CHILDREN))  # waiting for a segment that never comes
    store = client.wsgi.store
    assert store.query('SELECT COUNT(*) FROM spans')[0][0] == 3
    store.retention.prune_telemetry(project['id'], time.time() + 1)
    assert store.query('SELECT COUNT(*) FROM spans')[0][0] == 0


def test_streamed_spans_are_on_their_trace(client, project):
    post(client, project, container(*(CHILDREN + [SEGMENT])))
    trace = client.get('/api/v1/traces/' + TRACE, {'key': project['key']}).json
    spans = [(item['spanId'], item['op']) for item in trace['items'] if item['kind'] == 'span']
    assert sorted(spans) == sorted([(QUERY, 'db.query'), (CHARGE, 'http.client'), (ENCODE, 'serialize')])
    assert trace['counts']['transaction'] == 1
