"""The writer's CPU per stored error event, in process: model events made
once, beforehand, stored through Store.add_batch from several threads, as
requests do, so the writer group-commits. Three kinds (--kinds):
  sentry       a tag-heavy Sentry SDK error (~22 tags), one per submission, as an envelope brings it;
  open_sentry  Open Sentry error items like bench/run.py's, 20 per submission (one /v1/ingest batch),
               each with its own user id;
  api_php      an /api.php event (no tags of its own), one per submission.
Reports, per kind, items per second, the writer thread's CPU per item (what
limits ingest: it is one thread, and under --workers the commits of every
process take turns) and the whole process's CPU per item (packing runs on the
callers).

    python bench/writer_cpu.py [--events 20000] [--threads 8] [--repeats 3] [--kinds K,..] [MODULE.py ...]
    python bench/writer_cpu.py --backfill [--events 20000] [MODULE.py]

Each MODULE.py is a copy of errorcapture.py (say `git show REV:errorcapture.py >
/tmp/ec_REV.py`) to compare in the same run; by default the one beside bench/.
Rounds alternate between modules; medians are quoted. Run it under the heavy lock.
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from inprocess import cpu_of, load  # noqa: E402


def sentry_payload(n):
    """A Sentry SDK error as sentry-python sends one from a web request, with ten own tags."""
    return {
        'event_id': uuid.uuid4().hex, 'level': 'error', 'platform': 'python', 'timestamp': time.time(),
        'release': 'shop@%d.0.0' % (n % 5), 'environment': ('production', 'staging')[n % 2],
        'server_name': 'web-%d' % (n % 8), 'transaction': '/checkout/%d' % (n % 20),
        'tags': {'region': ('eu-west', 'us-east', 'ap-south')[n % 3], 'tenant': 'tenant-%d' % (n % 50),
                 'feature': 'checkout', 'plan': ('free', 'pro', 'team')[n % 3], 'shard': str(n % 16),
                 'build': 'b%d' % (n % 7), 'locale': ('en-US', 'de-DE', 'fr-FR')[n % 3], 'canary': 'no',
                 'payment': ('card', 'paypal')[n % 2], 'queue': 'default'},
        'user': {'id': 'user-%d' % (n % 500), 'email': 'user%d@example.com' % (n % 500),
                 'ip_address': '10.0.%d.%d' % (n % 200, n % 250)},
        'contexts': {'browser': {'name': ('Chrome', 'Firefox', 'Safari')[n % 3], 'version': '120.0'},
                     'os': {'name': ('Windows', 'macOS', 'Linux')[n % 3], 'version': '10'},
                     'device': {'model': 'Desktop'},
                     'trace': {'trace_id': uuid.uuid4().hex, 'span_id': uuid.uuid4().hex[:16]}},
        'request': {'method': 'POST', 'url': 'https://shop.example/checkout/%d?step=2' % (n % 20),
                    'headers': {'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36'}},
        'breadcrumbs': {'values': [{'timestamp': time.time(), 'category': 'http', 'message': 'GET /cart',
                                    'level': 'info'}] * 5},
        'exception': {'values': [{'type': 'CardDeclined%d' % (n % 40), 'value': 'card %d declined' % n,
                                  'stacktrace': {'frames': [
                                      {'filename': 'app/pay.py', 'function': 'charge', 'lineno': 40 + i,
                                       'in_app': True, 'context_line': '    gateway.charge(card)',
                                       'pre_context': ['def charge(card):'], 'post_context': ['    return']}
                                      for i in range(8)]}}]}}


def open_sentry_item(n):
    """An Open Sentry error item as bench/templates.py's batch has it (a fresh user id each)."""
    stamp = time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime())
    return {'type': 'error', 'exception': {
        'type': 'TypeError', 'value': "Cannot read property 'x' of undefined",
        'stacktrace': {'frames': [
            {'filename': 'app/layout.tsx', 'function': 'RootLayout', 'lineno': 12, 'colno': 3, 'inApp': True},
            {'filename': 'app/page.tsx', 'function': 'Page', 'lineno': 30, 'colno': 9, 'inApp': True},
            {'filename': 'app/page.tsx', 'function': 'loadData', 'lineno': 42, 'colno': 12, 'inApp': True}]}},
        'breadcrumbs': [{'category': 'navigation', 'message': 'User opened settings', 'level': 'info',
                         'timestamp': stamp},
                        {'category': 'fetch', 'message': 'GET /api/settings [200]', 'level': 'info',
                         'timestamp': stamp}],
        'tags': {'region': 'us-east'}, 'user': {'id': 'user_' + uuid.uuid4().hex}, 'environment': 'production',
        'release': 'web@2.4.1', 'timestamp': stamp}


def api_php_payload(n):
    """The /api.php event of the issue text (bench/templates.py's)."""
    return {'level': 'Warning', 'message': 'Undefined index 17', 'file': '/var/www/a.php', 'line': 42}


# kind -> (items per submission, the model item of payload n)
KINDS = {
    'sentry': (1, lambda module, n: module.sentry_error_event(sentry_payload(n))),
    'open_sentry': (20, lambda module, n: module.open_sentry_error_event(open_sentry_item(n), '',
                                                                          module.Validation())),
    'api_php': (1, lambda module, n: module.api_php_event(api_php_payload(n))),
}


def events_for(module, count, kind='sentry'):
    make = KINDS[kind][1]
    return [make(module, n) for n in range(count)]


def one_round(module, events, threads, kind='sentry'):
    """-> (items per second, writer CPU us per item, process CPU us per item)."""
    directory = tempfile.mkdtemp(prefix='writer-cpu-')
    store = module.Store(os.path.join(directory, 'bench.db'))
    try:
        project_id = store.create_project('bench')['id']
        per, make = KINDS[kind]
        store.add_batch(project_id, [('error', make(module, 0))])  # warm up
        chunks = [events[i::threads] for i in range(threads)]

        def submit(chunk):
            for start in range(0, len(chunk), per):
                store.add_batch(project_id, [('error', event) for event in chunk[start:start + per]])
        workers = [threading.Thread(target=submit, args=(chunk,)) for chunk in chunks]
        writer_cpu, process_cpu, wall = cpu_of(store.writer), time.process_time(), time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - wall
        writer_cpu, process_cpu = cpu_of(store.writer) - writer_cpu, time.process_time() - process_cpu
        return len(events) / wall, writer_cpu / len(events) * 1e6, process_cpu / len(events) * 1e6
    finally:
        store.close()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def backfill_round(module, events, threads):
    """The tag backfill's cost (Tags.backfill, migration 18): the events stored,
    then left as an upgrade from before tags leaves them (no tag rows, nothing
    interned), the store reopened and the backfill run to the end.
    -> (events per second, writer CPU us per event, steps)."""
    import sqlite3
    directory = tempfile.mkdtemp(prefix='backfill-cpu-')
    path = os.path.join(directory, 'bench.db')
    store = module.Store(path)
    try:
        project_id = store.create_project('bench')['id']
        chunks = [events[i::threads] for i in range(threads)]
        workers = [threading.Thread(target=lambda c: [store.add_batch(project_id, [('error', e)]) for e in c],
                                    args=(chunk,)) for chunk in chunks]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        store.close()
    db = sqlite3.connect(path)
    with db:
        for table in ('event_tags', 'recent_event_tags', 'issue_tags', 'issue_keys', 'issue_messages', 'tag_values',
                      'tag_keys'):
            db.execute('DELETE FROM %s' % table)
        db.execute('UPDATE events SET tag_ids=NULL')
        db.execute("INSERT OR REPLACE INTO counters VALUES ('tag_backfill_at', 0)")
        db.execute("INSERT OR REPLACE INTO counters SELECT 'tag_backfill_end', MAX(id) FROM events")
    db.close()
    store = module.Store(path)
    try:
        steps, cpu, wall = 0, cpu_of(store.writer), time.perf_counter()
        while store.tags.backfill() is not None:
            steps += 1
        wall, cpu = time.perf_counter() - wall, cpu_of(store.writer) - cpu
        return len(events) / wall, cpu / len(events) * 1e6, steps
    finally:
        store.close()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('modules', nargs='*', default=[os.path.join(os.path.dirname(HERE), 'errorcapture.py')])
    parser.add_argument('--events', type=int, default=20000)
    parser.add_argument('--threads', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--kinds', default='sentry,open_sentry,api_php',
                        help='what to store, comma-separated: %s (default all)' % ', '.join(KINDS))
    parser.add_argument('--backfill', action='store_true',
                        help='measure the tag backfill of the (one) module instead of ingest')
    args = parser.parse_args()
    if args.backfill:
        module = load(args.modules[0], 'errorcapture_bench')
        events = events_for(module, args.events)
        rounds = [backfill_round(module, [dict(e) for e in events], args.threads) for _ in range(args.repeats)]
        print('backfill of %d events: %.0f events/s, writer CPU %.1f ms per 1,000 events, %d steps (medians)' % (
            args.events, statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds),
            statistics.median(r[2] for r in rounds)))
        return
    kinds = [kind.strip() for kind in args.kinds.split(',') if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error('unknown kind %s (known: %s)' % (', '.join(unknown), ', '.join(KINDS)))
    modules = [(path, load(path, 'errorcapture_bench_%d' % n)) for n, path in enumerate(args.modules)]
    events = {(kind, path): events_for(module, args.events, kind) for kind in kinds for path, module in modules}
    results = {key: [] for key in events}
    for _ in range(args.repeats):
        for kind in kinds:
            for path, module in modules:  # modules alternate round by round: both see the same load
                for event in events[kind, path]:  # a stored event is marked; give each round fresh copies
                    event.pop('_packed', None)
                results[kind, path].append(one_round(module, [dict(e) for e in events[kind, path]], args.threads,
                                                     kind))
    print('| kind | module | items/s | writer CPU us/item | process CPU us/item | writer vs first module |')
    print('|---|---|---|---|---|---|')
    for kind in kinds:
        first = None
        for path, _ in modules:
            rounds = results[kind, path]
            medians = [statistics.median(r[i] for r in rounds) for i in range(3)]
            first = first or medians[1]
            print('| %s | %s | %.0f | %.1f | %.1f | %.2f |' % (kind, os.path.basename(path), medians[0], medians[1],
                                                                medians[2], medians[1] / first))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
