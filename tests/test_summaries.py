"""Latency summaries (HTTP request stats, transaction and AI summaries): exact
nearest-rank percentiles computed by SQLite, checked against a plain Python
reference on random data, and over a window of more than a million requests
without loading them into Python."""
import json
import math
import random
import tracemalloc

import errorcapture
from helpers import create_project


def nearest_rank(values, pct):
    """The textbook definition: the smallest value with at least pct% of the
    values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, int(math.ceil(pct / 100.0 * len(ordered)))) - 1]


def read(client, path, key, **params):
    params['key'] = key
    answer = client.get(path, params=params)
    assert answer.status_int == 200
    return answer.json


def test_http_stats_match_the_reference_on_random_data(client):
    key = create_project(client, 'summaries')['hash']
    rng = random.Random(7)
    hosts = ['api.example.com', 'cdn.example.com', 'auth.example.com']
    sent = []
    for batch in range(6):
        items = []
        for n in range(100):
            duration = rng.choice([rng.randint(0, 30), rng.randint(0, 3000), 5, 10, 250, 12000])
            item = {'traceId': 't%d-%d' % (batch, n), 'direction': 'outbound', 'method': 'GET',
                    'host': rng.choice(hosts), 'path': '/x', 'statusCode': rng.choice([200, 200, 404, 500]),
                    'durationMs': duration, 'timestamp': errorcapture.iso(errorcapture.now() - 60)}
            items.append(item)
        sent.extend(items)
        answer = client.post('/ingest/v1/http-requests', json.dumps({'requests': items}),
                             headers={'X-SeeStack-Key': key}, content_type='application/json')
        assert answer.status_int == 202
    stats = read(client, '/api/v1/http-requests/stats', key)
    durations = [item['durationMs'] for item in sent]
    assert stats['count'] == 600
    assert (stats['p50'], stats['p95'], stats['p99']) == tuple(nearest_rank(durations, p) for p in (50, 95, 99))
    for entry in stats['byHost']:
        own = [item['durationMs'] for item in sent if item['host'] == entry['host']]
        assert entry['count'] == len(own)
        assert (entry['p50'], entry['p95']) == (nearest_rank(own, 50), nearest_rank(own, 95)), entry['host']
    bounds = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
    expected, below = [], -math.inf
    for bound in bounds:  # "le": the bucket holds durations above the previous bound, up to this one
        expected.append({'le': bound, 'count': sum(1 for d in durations if below < d <= bound)})
        below = bound
    expected.append({'le': None, 'count': sum(1 for d in durations if d > bounds[-1])})
    assert stats['histogram'] == expected


def test_transaction_and_ai_summaries_match_the_reference(client):
    key = create_project(client, 'summaries')['hash']
    rng = random.Random(11)
    names = ['GET /', 'POST /checkout', 'GET /api/items']
    sent, generations = [], []
    for batch in range(10):
        items = []
        for n in range(20):
            if n % 4 == 3:
                generation = {'type': 'ai_generation', 'provider': 'openai', 'model': rng.choice(['a', 'b']),
                              'inputTokens': 10, 'latencyMs': rng.randint(50, 5000)}
                generations.append(generation)
                items.append(generation)
                continue
            transaction = {'type': 'transaction', 'name': rng.choice(names), 'traceId': 'tr%d%d' % (batch, n),
                           'durationMs': rng.choice([rng.randint(1, 900), 100, 100.5]),
                           'status': rng.choice(['ok', 'ok', 'ok', 'error'])}
            sent.append(transaction)
            items.append(transaction)
        answer = client.post('/v1/ingest', json.dumps(items), headers={'X-Open-Sentry-Key': key},
                             content_type='application/json')
        assert answer.status_int == 202
    summary = read(client, '/api/v1/transactions', key)['transactions']
    assert [row['count'] for row in summary] == sorted((row['count'] for row in summary), reverse=True)
    assert sorted(row['name'] for row in summary) == sorted(names)
    for row in summary:
        own = [t for t in sent if t['name'] == row['name']]
        durations = [t['durationMs'] for t in own]
        assert row['count'] == len(own)
        assert row['errors'] == sum(t['status'] != 'ok' for t in own)
        assert row['p50'] == nearest_rank(durations, 50) and row['p95'] == nearest_rank(durations, 95)
        assert row['avg'] == round(sum(durations) / len(durations), 3)
    ai = read(client, '/api/v1/ai', key)
    for row in ai['byModel']:
        own = [g['latencyMs'] for g in generations if g['model'] == row['model']]
        assert row['count'] == len(own) and row['p50LatencyMs'] == nearest_rank(own, 50)


def test_stats_over_a_million_requests_are_exact_and_stay_out_of_python(make):
    """More requests in the window than any cap a Python list would need: the
    percentiles are still those of every request (the slowest included), and
    answering allocates next to nothing in Python."""
    client = make(sweep_interval=0, retention_events=0, retention_days=0)
    key = create_project(client, 'summaries')['hash']
    store = client.wsgi.store
    project_id = store.project_by_key(key)['id']
    count, at = 1_100_000, errorcapture.now() - 600
    # durations 0..999 ms, then the last 100,000 requests are slow (2,000-2,999 ms)
    rows = ((project_id, at, 'outbound', 'GET', 'h%d' % (n % 3), '/p', 200, float(n % 1000 if n < 1_000_000
                                                                                 else 2000 + n % 1000))
            for n in range(count))

    def insert(conn):
        conn.executemany('INSERT INTO http_requests(project_id, timestamp, direction, method, host, path,'
                         ' status_code, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', rows)
    store.write(insert)
    tracemalloc.start()
    stats = read(client, '/api/v1/http-requests/stats', key)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats['count'] == count
    # ranks 550,000 / 1,045,000 / 1,089,000 of the sorted durations
    assert (stats['p50'], stats['p95'], stats['p99']) == (549.0, 2449.0, 2889.0)
    assert stats['histogram'][-1] == {'le': None, 'count': 0}
    assert sum(bucket['count'] for bucket in stats['histogram']) == count
    assert {entry['host'] for entry in stats['byHost']} == {'h0', 'h1', 'h2'}
    assert peak < 5 << 20, peak  # a list of the durations alone would be ~35 MB
