"""Every query the viewer's read API runs is served by an index: no full scan
of a table that grows with ingest."""
import json
import re
import sqlite3
import urllib.parse

import errorcapture
from helpers import create_project

GROWING_TABLES = ('events', 'issues', 'http_requests', 'replay_events', 'replay_sessions', 'logs',
                  'transactions', 'ai_generations', 'checkins', 'tag_keys', 'tag_values', 'issue_tags', 'issue_keys',
                  'event_tags', 'issue_messages', 'spans', 'feedback')
SEARCHES = ('release:1 region:eu !environment:y has:region level:error firstSeen:-24h text',
            '!region:eu is:regressed', 'region:[eu,us] !release:2 lastSeen:+1h', '!has:region "a phrase"')


def aliases(sql):
    """{alias: table} of the tables a statement names with an alias ("FROM event_tags d")."""
    return {alias: table for table, alias in re.findall(r'(?:FROM|JOIN)\s+(\w+)\s+(?:AS\s+)?(\w+)', sql)
            if alias.upper() not in ('WHERE', 'ON', 'ORDER', 'GROUP', 'LIMIT', 'JOIN', 'LEFT', 'INNER')}


def test_read_api_queries_use_indexes(make):
    client = make(sweep_interval=0)
    project = create_project(client, 'idx')
    key = project['hash']
    seestack = {'X-SeeStack-Key': key}
    client.post('/api.php', json.dumps({'hash': key, 'level': 'Warning', 'message': 'x 1', 'file': 'a.php', 'line': 1}))
    client.post('/ingest/v1/errors', json.dumps({'exceptionClass': 'E', 'message': 'm', 'environment': 'prod',
                                                 'release': '1', 'tags': {'region': 'eu'}}), headers=seestack)
    client.post('/ingest/v1/http-requests', json.dumps({'requests': [{
        'traceId': 't', 'direction': 'inbound', 'method': 'GET', 'host': 'h', 'path': '/p', 'statusCode': 200,
        'durationMs': 3, 'timestamp': errorcapture.iso(errorcapture.now())}]}), headers=seestack)
    client.post('/ingest/v1/replay', json.dumps({'fingerprint': 'f', 'sessionId': 's1', 'events': [{
        'eventType': 'click', 'eventData': '{}', 'url': 'http://x/', 'timestampMillis': 1711886400000}]}),
        headers=seestack)
    client.post('/ingest/v1/logs', json.dumps({'level': 'info', 'message': 'hello'}), headers=seestack)
    client.post('/v1/ingest', json.dumps([
        {'type': 'transaction', 'name': 'GET /', 'traceId': 't', 'durationMs': 5},
        {'type': 'ai_generation', 'provider': 'p', 'model': 'm', 'inputTokens': 3}]),
        headers={'X-Open-Sentry-Key': key})
    client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': 'job', 'schedule': '5m'}))
    # Sentry: an error in a replay, its streamed spans, feedback and the replay
    trace, root = '1' * 32, '2' * 16
    spans = {'version': 2, 'items': [
        {'trace_id': trace, 'span_id': '3' * 16, 'parent_span_id': root, 'name': 'q', 'start_timestamp': 1.0e9,
         'end_timestamp': 1.0e9 + 1, 'status': 'ok', 'attributes': {}},
        {'trace_id': trace, 'span_id': root, 'name': 'GET /', 'start_timestamp': 1.0e9, 'end_timestamp': 1.0e9 + 2,
         'is_segment': True, 'status': 'ok', 'attributes': {}}]}
    error = {'event_id': 'e' * 32, 'message': 'boom', 'tags': {'replayId': 'a' * 32}}
    feedback = {'type': 'feedback', 'contexts': {'feedback': {'message': 'hi', 'associated_event_id': 'e' * 32}}}
    replay = {'type': 'replay_event', 'replay_id': 'a' * 32, 'segment_id': 0, 'timestamp': 1.0e9}
    envelope = '\n'.join(json.dumps(part) for part in (
        {}, {'type': 'event'}, error, {'type': 'span', 'content_type': 'application/vnd.sentry.items.span.v2+json'},
        spans, {'type': 'feedback'}, feedback, {'type': 'replay_event'}, replay))
    client.post('/api/%d/envelope/?sentry_key=%s' % (project['id'], key), envelope.encode(),
                headers={'Content-Type': 'text/plain'})

    store = client.wsgi.store
    statements = []
    traced = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    traced.set_trace_callback(statements.append)
    store.reader().conn = traced
    # webtest calls the app on this thread, so every read below goes through `traced`
    for path in ('/api/v1/issues', '/api/v1/issues?status=unresolved&sort=count', '/api/v1/issues?changedSince=0',
                 '/api/v1/issues?q=x&level=warning&environment=prod', '/api/v1/issues/1', '/api/v1/issues/1/events',
                 '/api/v1/events', '/api/v1/events/1', '/api/v1/http-requests', '/api/v1/http-requests?status=2xx',
                 '/api/v1/http-requests/stats', '/api/v1/replays', '/api/v1/replays/s1', '/api/v1/logs',
                 '/api/v1/logs?since=0', '/api/v1/transactions', '/api/v1/transactions/list',
                 '/api/v1/transactions/1', '/api/v1/ai', '/api/v1/monitors', '/api/v1/monitors/job') + tuple(
                     '/api/v1/issues?query=' + urllib.parse.quote(query) for query in SEARCHES) + (
                 '/api/v1/issues/1/tags', '/api/v1/issues/2/tags/release', '/api/v1/tags', '/api/v1/tags/release',
                 '/api/v1/tags/release?prefix=1', '/api/v1/issues/1/events?since=0', '/api/v1/events?cursor=1.5~9',
                 '/api/v1/http-requests?since=0', '/api/v1/http-requests?cursor=1.5~9', '/api/v1/logs?before=1.5~9',
                 '/api/v1/logs?traceId=t',
                 '/api/v1/transactions/list?name=x', '/api/v1/transactions/list?since=0',
                 '/api/v1/issues/2/events/latest', '/api/v1/issues/2/events/oldest',
                 '/api/v1/issues/2/events/latest?query=region:eu', '/api/v1/issues/2/events?query=!region:us',
                 '/api/v1/projects', '/api/v1/traces/t', '/api/v1/releases', '/api/v1/releases/1',
                 '/api/v1/issues?query=firstRelease:1', '/api/v1/transactions/2', '/api/v1/feedback',
                 '/api/v1/issues/3/feedback', '/api/v1/events/3', '/api/v1/replays/' + 'a' * 32):
        client.get(path + ('&' if '?' in path else '?') + 'key=' + key)
    client.get('/api.php?action=errors&hash=%s&since=0' % key)
    selects = [s for s in statements if s.lstrip().upper().startswith('SELECT')]
    assert len(selects) > 20
    scans = []
    for sql in selects:
        for row in traced.execute('EXPLAIN QUERY PLAN ' + sql):
            detail = row[-1]
            match = re.match(r'^SCAN (?:TABLE )?(\w+)', detail)
            table = match and aliases(sql).get(match.group(1), match.group(1))
            if table in GROWING_TABLES and 'INDEX' not in detail:
                scans.append((detail, sql))
    assert scans == []
    # the check itself works: a query on an unindexed column is caught
    plan = [r[-1] for r in traced.execute("EXPLAIN QUERY PLAN SELECT * FROM logs WHERE level='info'")]
    assert any(re.match(r"^SCAN (?:TABLE )?logs", d) for d in plan)
    # ... and so is one that hides its table behind an alias
    sql = 'SELECT * FROM event_tags d WHERE d.hour=1'
    plan = [r[-1] for r in traced.execute('EXPLAIN QUERY PLAN ' + sql)]
    assert any(aliases(sql).get(re.match(r'^SCAN (\w+)', d).group(1)) == 'event_tags' for d in plan
               if d.startswith('SCAN'))
