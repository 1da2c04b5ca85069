"""Open Sentry telemetry ingest (POST /v1/ingest items of type transaction and
ai_generation, tests/seeds/open-sentry-ingest-api.txt) and its read API
(transactions, AI usage; docs/read-api.md). Open Sentry errors are in
test_open_sentry.py."""
import json
import os
import re
from datetime import datetime, timedelta, timezone

import pytest

from helpers import create_project

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds', 'open-sentry-ingest-api.txt'),
          encoding='utf-8') as _seed:
    OPEN_SENTRY_SEED = _seed.read()

UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')


def open_sentry_example(marker):
    head = OPEN_SENTRY_SEED.index('{', OPEN_SENTRY_SEED.index(marker))
    return json.JSONDecoder().raw_decode(OPEN_SENTRY_SEED, head)[0]


def iso_ago(seconds):
    stamp = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (stamp.microsecond // 1000)


def read(client, url, key, **params):
    params['key'] = key
    answer = client.get(url, params=params)
    assert answer.status_int == 200, answer.body
    return answer.json


# -- Open Sentry transactions and AI generations ----------------------------------

def open_sentry(client, key, body):
    return client.post('/v1/ingest', json.dumps(body).encode(), headers={'X-Open-Sentry-Key': key},
                       content_type='application/json', expect_errors=True)


TX_SEED = open_sentry_example('Transaction item (type: "transaction")')
AI_SEED = open_sentry_example('AI generation item (type: "ai_generation")')


def test_open_sentry_seed_examples_found():
    assert TX_SEED['type'] == 'transaction' and TX_SEED['name'] == 'GET /api/checkout'
    assert AI_SEED['type'] == 'ai_generation' and AI_SEED['model'] == 'anthropic/claude-sonnet-4'


def test_open_sentry_transaction_seed(client):
    key = create_project(client, 'telemetry')['hash']
    answer = open_sentry(client, key, TX_SEED)
    assert answer.status_int == 202, answer.body
    assert UUID.match(answer.json['id'])
    listed = read(client, '/api/v1/transactions/list', key)['transactions']
    assert len(listed) == 1
    summary = listed[0]
    assert summary['name'] == 'GET /api/checkout' and summary['traceId'] == 'trace-abc-123'
    assert summary['durationMs'] == 245 and summary['status'] == 'ok'
    assert summary['timestamp'] == '2026-05-30T12:00:02.000Z'
    tx = read(client, '/api/v1/transactions/%d' % summary['id'], key)['transaction']
    assert tx['name'] == 'GET /api/checkout' and tx['environment'] == 'production'
    assert len(tx['spans']) == 1
    span = tx['spans'][0]
    assert span['spanId'] == 'span-1' and span['op'] == 'db.query'
    assert span['description'] == 'SELECT * FROM orders' and span['durationMs'] == 40
    assert span['parentSpanId'] == 'root-span-id'


def test_open_sentry_ai_generation_seed(client):
    key = create_project(client, 'telemetry')['hash']
    answer = open_sentry(client, key, AI_SEED)
    assert answer.status_int == 202, answer.body
    usage = read(client, '/api/v1/ai', key, days=365)
    assert usage['totals']['count'] == 1
    assert usage['totals']['inputTokens'] == 1200 and usage['totals']['outputTokens'] == 340
    assert abs(usage['totals']['costUsd'] - 0.00482) < 1e-9
    recent = usage['recent'][0]
    assert recent['provider'] == 'openrouter' and recent['model'] == 'anthropic/claude-sonnet-4'
    assert recent['latencyMs'] == 1820 and recent['status'] == 'ok'
    assert recent['timestamp'] == '2026-05-30T12:00:03.000Z'


def test_open_sentry_mixed_batch(client):
    key = create_project(client, 'telemetry')['hash']
    batch = [
        {'type': 'error', 'exception': {'type': 'Error', 'value': 'mixed batch error'}},
        dict(TX_SEED, timestamp=iso_ago(60)),
        dict(AI_SEED, timestamp=iso_ago(60)),
    ]
    answer = open_sentry(client, key, batch)
    assert answer.status_int == 202, answer.body
    issues = read(client, '/api/v1/issues', key)['issues']
    assert [i['title'] for i in issues] == ['Error: mixed batch error']
    assert len(read(client, '/api/v1/transactions/list', key)['transactions']) == 1
    assert read(client, '/api/v1/ai', key)['totals']['count'] == 1


@pytest.mark.parametrize('bad', [
    lambda: dict(TX_SEED, traceId=None),
    lambda: {k: v for k, v in TX_SEED.items() if k != 'traceId'},
    lambda: {k: v for k, v in TX_SEED.items() if k != 'name'},
    lambda: dict(TX_SEED, durationMs=-5),
    lambda: dict(TX_SEED, durationMs='245'),
    lambda: dict(TX_SEED, status='weird'),
    lambda: dict(AI_SEED, inputTokens=-1),
    lambda: {k: v for k, v in AI_SEED.items() if k != 'inputTokens'},
    lambda: {k: v for k, v in AI_SEED.items() if k != 'model'},
    lambda: dict(AI_SEED, status='weird'),
    lambda: dict(TX_SEED, type='metric'),
])
def test_open_sentry_batch_with_one_bad_item_stores_nothing(client, bad):
    key = create_project(client, 'telemetry')['hash']
    batch = [{'type': 'error', 'exception': {'type': 'Error', 'value': 'should not be stored'}},
             dict(TX_SEED), dict(AI_SEED), bad()]
    answer = open_sentry(client, key, batch)
    assert answer.status_int == 400, answer.body
    assert answer.json['error'] == 'Invalid payload'
    assert read(client, '/api/v1/issues', key)['issues'] == []
    assert read(client, '/api/v1/transactions/list', key)['transactions'] == []
    assert read(client, '/api/v1/ai', key, days=365)['totals']['count'] == 0


def test_transaction_summary_by_name(client):
    key = create_project(client, 'telemetry')['hash']
    batch = []
    for duration in (100, 200, 300, 400, 1000):
        batch.append(dict(TX_SEED, name='GET /api/checkout', durationMs=duration, timestamp=iso_ago(300),
                          spans=[]))
    batch.append(dict(TX_SEED, name='POST /api/pay', durationMs=50, status='error', timestamp=iso_ago(300)))
    batch.append(dict(TX_SEED, name='GET /old', durationMs=10, timestamp=iso_ago(3 * 86400)))
    assert open_sentry(client, key, batch).status_int == 202
    summary = {t['name']: t for t in read(client, '/api/v1/transactions', key, hours=24)['transactions']}
    assert set(summary) == {'GET /api/checkout', 'POST /api/pay'}
    checkout = summary['GET /api/checkout']
    assert checkout['count'] == 5 and checkout['errors'] == 0
    assert checkout['p50'] == 300
    assert checkout['p95'] == 1000
    assert checkout['avg'] == 400
    assert summary['POST /api/pay']['errors'] == 1
    wider = {t['name'] for t in read(client, '/api/v1/transactions', key, hours=24 * 7)['transactions']}
    assert 'GET /old' in wider
    by_name = read(client, '/api/v1/transactions/list', key, name='POST /api/pay')['transactions']
    assert [t['name'] for t in by_name] == ['POST /api/pay'] and by_name[0]['status'] == 'error'


def test_ai_usage_totals_by_model_and_over_time(client):
    key = create_project(client, 'telemetry')['hash']
    batch = [
        dict(AI_SEED, model='gpt-4o', provider='openai', inputTokens=100, outputTokens=10, totalCostUsd=0.01,
             latencyMs=500, timestamp=iso_ago(120)),
        dict(AI_SEED, model='gpt-4o', provider='openai', inputTokens=300, outputTokens=30, totalCostUsd=0.03,
             latencyMs=700, status='error', timestamp=iso_ago(120)),
        dict(AI_SEED, inputTokens=1000, outputTokens=200, totalCostUsd=0.5, latencyMs=1500, timestamp=iso_ago(60)),
        dict(AI_SEED, inputTokens=5, outputTokens=5, totalCostUsd=9.0, timestamp=iso_ago(30 * 86400)),
    ]
    assert open_sentry(client, key, batch).status_int == 202
    usage = read(client, '/api/v1/ai', key, days=1)
    assert usage['totals']['count'] == 3
    assert usage['totals']['inputTokens'] == 1400 and usage['totals']['outputTokens'] == 240
    assert abs(usage['totals']['costUsd'] - 0.54) < 1e-6
    assert usage['totals']['errors'] == 1
    models = {(m['provider'], m['model']): m for m in usage['byModel']}
    assert set(models) == {('openai', 'gpt-4o'), ('openrouter', 'anthropic/claude-sonnet-4')}
    gpt = models[('openai', 'gpt-4o')]
    assert gpt['count'] == 2 and gpt['inputTokens'] == 400 and gpt['outputTokens'] == 40
    assert abs(gpt['costUsd'] - 0.04) < 1e-6
    assert gpt['p50LatencyMs'] in (500, 600, 700)
    assert sum(b['count'] for b in usage['overTime']) == 3
    assert sum(b['inputTokens'] for b in usage['overTime']) == 1400
    assert all(ISO_MS_Z.match(b['bucket']) and b['bucket'].endswith(':00:00.000Z') for b in usage['overTime'])
    month = read(client, '/api/v1/ai', key, days=60)
    assert month['totals']['count'] == 4
