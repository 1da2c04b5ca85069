"""The Bugsink peer benchmark's own parts, without Bugsink or load: its
fixtures are envelopes the real sentry-sdk sent, and once rewritten for a
target (DSN, key, a fresh event id where wrk fills it in) ErrorCapture stores
each of them as an event of that project. The benchmark itself
(bench/peer_bugsink.py) is not part of the suite: it installs Bugsink and
measures speed."""
import json
import os
import sys

import pytest

from helpers import create_project, sentry_auth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import peer_bugsink  # noqa: E402


def test_arguments_default_to_the_issue_targets_load():
    args = peer_bugsink.parse_args([])
    assert args.connections == 32 and args.duration == 10 and args.pin == 'shared'
    # one ErrorCapture process per core (at most 4, as Bugsink's own gunicorn configuration)
    assert args.workers == max(1, min(len(os.sched_getaffinity(0)), 4))
    args = peer_bugsink.parse_args(['--workers', '2', '--duration', '3', '--check'])
    assert args.workers == 2 and args.duration == 3 and args.check
    assert peer_bugsink.parse_args(['--workers', '0']).workers is None  # errorcapture's own default
    quick = peer_bugsink.parse_args(['--quick'])
    assert quick.duration == 5 and quick.repeats == 1 and quick.settle_timeout <= 30


def test_fixtures_are_what_sentry_sdk_sent():
    meta, envelopes = peer_bugsink.load_fixtures()
    assert meta['sdk'].startswith('sentry.python ')
    assert len(envelopes) >= 3
    for header, item, payload in envelopes:
        assert item['type'] == 'event' and len(header['event_id']) == 32
        assert payload['sdk']['name'].startswith('sentry.python')
    assert any(p.get('exception') for _, _, p in envelopes) and any(p.get('message') or p.get('logentry')
                                                                     for _, _, p in envelopes)


def test_rewritten_envelopes_are_stored_by_errorcapture(client):
    project = create_project(client, 'peer')
    dsn = 'http://%s@127.0.0.1:1/%d' % (project['key'], project['id'])
    _, envelopes = peer_bugsink.load_fixtures()
    texts = [peer_bugsink.envelope_template(e, project['key'], dsn) for e in envelopes]
    pool = peer_bugsink.templates_file(texts)
    assert pool.startswith(b'WRKTEMPLATES\n')
    sent = []
    for n, text in enumerate(texts):
        assert text.count('%%EID%%') == 2  # envelope header and event: one id per request
        body = peer_bugsink.run.templates.expand(text, '%x' % (n + 1))
        header, item, payload = body.split('\n')[:3]
        assert json.loads(item)['length'] == len(payload.encode('utf-8'))
        answer = client.post('/api/%d/envelope/' % project['id'], body.encode(),
                             headers=dict(sentry_auth(project['key']),
                                          **{'Content-Type': 'application/x-sentry-envelope'}))
        assert answer.status_int == 200, answer.body
        sent.append(json.loads(header)['event_id'])
    listed = client.get('/api/v1/events?key=%s&limit=50' % project['key']).json['events']
    assert sorted(e['eventId'] for e in listed) == sorted(sent)
