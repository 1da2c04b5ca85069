"""Disk use: what an event costs in the database file, against its raw JSON."""
import json
import os
import sqlite3
import sys
import uuid

import errorcapture

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bench'))
import templates  # noqa: E402  the ~3 KB event as sentry-sdk sends it, as the benchmark uses


def on_disk(path):
    """Bytes of the database and its WAL, once the WAL is checkpointed and
    truncated, as it is when the server stops."""
    conn = sqlite3.connect(path)
    try:
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    finally:
        conn.close()
    return sum(os.path.getsize(p) for p in (path, path + '-wal') if os.path.exists(p))


def test_sentry_sized_events_take_little_more_than_their_json(tmp_path):
    path = str(tmp_path / 'size.db')
    store = errorcapture.Store(path)
    project = store.create_project('size')
    store.close()
    empty = on_disk(path)
    events = [templates.expand(templates.sentry_event(3000)).replace('0' * 32, uuid.uuid4().hex, 1)
              for _ in range(400)]
    raw = sum(len(text.encode('utf-8')) for text in events) / len(events)
    assert 2800 <= raw <= 3300

    store = errorcapture.Store(path)
    for start in range(0, len(events), 8):  # batches as the writer sees them under load
        models = [errorcapture.sentry_error_event(json.loads(text)) for text in events[start:start + 8]]
        results = store.events.add(project['id'], models)
        assert not any(r['duplicate'] for r in results)
    assert store.query('SELECT COUNT(*) FROM events')[0][0] == 400
    store.close()
    per_event = (on_disk(path) - empty) / len(events)
    # The benchmark's storage target. (With 4 KiB pages such a row fills a page
    # alone, 1.41-1.46x; 2 KiB pages made it 1.07x but left 1-2 KB events a
    # page each, 29% more disk for the read benchmark's mix, so pages stay 4 KiB.)
    assert per_event <= 1.5 * raw, (per_event, raw)


def test_small_seestack_errors_stay_within_one_and_a_half_times_their_json(tmp_path):
    """A SeeStack error is ~415 bytes of JSON, so fixed per-row costs weigh; the
    stack is kept as the lines sent (frames are parsed again when read)."""
    path = str(tmp_path / 'seestack.db')
    store = errorcapture.Store(path)
    project = store.create_project('size')
    store.close()
    empty = on_disk(path)
    bodies = [templates.expand(templates.seestack_error()).replace('0' * 32, uuid.uuid4().hex)
              for _ in range(1000)]
    raw = sum(len(text.encode('utf-8')) for text in bodies) / len(bodies)

    store = errorcapture.Store(path)
    for start in range(0, len(bodies), 8):
        models = [errorcapture.seestack_error_event(json.loads(text), errorcapture.Validation())
                  for text in bodies[start:start + 8]]
        store.events.add(project['id'], models)
    (event,) = store.events.latest(project['id'], limit=1)[0]
    store.close()
    assert [f['function'] for f in event['exception'][-1]['frames']] == [
        'Object.<anonymous>', 'validateSession', 'getUserId']
    per_event = (on_disk(path) - empty) / len(bodies)
    assert per_event <= 1.5 * raw, (per_event, raw)
