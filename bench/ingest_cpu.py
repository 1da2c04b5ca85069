"""The request thread's CPU per error item, in process: what parsing,
validating, building the model event, grouping and packing cost before the
writer takes the item, for Open Sentry batches of 20, api.php and SeeStack
errors posted to the WSGI app from this thread (the request thread; the
writer has its own). Also the writer thread's and the whole
process's CPU per item.

    python bench/ingest_cpu.py [--items 2000] [--repeats 5] [MODULE.py ...]

Each MODULE.py is a copy of errorcapture.py (say `git show REV:errorcapture.py >
/tmp/ec_REV.py`) to compare in the same run; by default the one beside bench/.
Rounds alternate between modules; medians are quoted, with each module's
request-thread CPU as a ratio of the first module's. Under a minute with the
defaults: it may run without the heavy lock.
"""
import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import templates  # noqa: E402
from inprocess import cpu_of, load  # noqa: E402

DIALECTS = ('open_sentry_batch20', 'api_php', 'seestack_error')


class Target(object):
    """One module's app, with a project, ready to post each dialect's bodies.
    Requests go to the WSGI callable directly, with the environ a WSGI server
    gives it, so the CPU measured is the server's own."""

    def __init__(self, module):
        self.directory = tempfile.mkdtemp(prefix='ingest-cpu-')
        self.app = module.make_app(db_path=os.path.join(self.directory, 'bench.db'))
        status, body = self.call('POST', '/api/v1/projects', b'{"name": "bench"}', {})
        assert status.startswith('201') or status.startswith('200'), (status, body)
        self.key = json.loads(body)['project']['key']
        self.texts = {'open_sentry_batch20': templates.open_sentry_batch(20),
                      'api_php': templates.api_php(self.key),
                      'seestack_error': templates.seestack_error()}

    def call(self, method, path, body, headers):
        environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '', 'SERVER_NAME': '127.0.0.1',
                   'SERVER_PORT': '8000', 'REMOTE_ADDR': '127.0.0.1', 'SERVER_PROTOCOL': 'HTTP/1.1',
                   'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(body), 'wsgi.errors': sys.stderr,
                   'wsgi.multithread': True, 'wsgi.multiprocess': False, 'wsgi.run_once': False,
                   'wsgi.version': (1, 0), 'CONTENT_TYPE': 'application/json', 'CONTENT_LENGTH': str(len(body)),
                   'HTTP_HOST': '127.0.0.1:8000'}
        environ.update(('HTTP_' + name.upper().replace('-', '_'), value) for name, value in headers.items())
        answer = []
        chunks = self.app(environ, lambda status, response_headers, exc_info=None: answer.append(status))
        try:
            body = b''.join(chunks)
        finally:
            if hasattr(chunks, 'close'):
                chunks.close()
        return answer[0], body

    def post(self, dialect):
        body = templates.expand(self.texts[dialect]).replace('0' * 32, uuid.uuid4().hex).encode('utf-8')
        if dialect == 'open_sentry_batch20':
            path, headers, items, expected = '/v1/ingest', {'X-Open-Sentry-Key': self.key}, 20, '202'
        elif dialect == 'api_php':
            path, headers, items, expected = '/api.php', {}, 1, '200'
        else:
            path, headers, items, expected = '/ingest/v1/errors', {'X-SeeStack-Key': self.key}, 1, '202'
        status, answer = self.call('POST', path, body, headers)
        assert status.startswith(expected), (status, answer)
        return items

    def measure(self, dialect, requests):
        """-> (request-thread, writer-thread, process) CPU us per item."""
        writer = self.app.store.writer
        items, thread, process, written = 0, time.thread_time(), time.process_time(), cpu_of(writer)
        for _ in range(requests):
            items += self.post(dialect)
        thread, process, written = (time.thread_time() - thread, time.process_time() - process,
                                    cpu_of(writer) - written)
        return thread / items * 1e6, written / items * 1e6, process / items * 1e6

    def close(self):
        self.app.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('modules', nargs='*', default=[os.path.join(os.path.dirname(HERE), 'errorcapture.py')])
    parser.add_argument('--items', type=int, default=2000,
                        help='error items per round for Open Sentry (batches of 20); half as many for the others')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--dialects', default=','.join(DIALECTS))
    args = parser.parse_args()
    dialects = args.dialects.split(',')
    targets = [(path, Target(load(path, 'errorcapture_ingest_%d' % n))) for n, path in enumerate(args.modules)]
    try:
        for _, target in targets:  # warm up: caches, the first issue of each fingerprint
            for dialect in dialects:
                target.measure(dialect, 10)
        results = {(path, dialect): [] for path, _ in targets for dialect in dialects}
        for repeat in range(args.repeats):
            for dialect in dialects:
                order = targets if repeat % 2 == 0 else targets[::-1]
                for path, target in order:
                    requests = args.items // 20 if dialect == 'open_sentry_batch20' else args.items // 2
                    results[path, dialect].append(target.measure(dialect, requests))
    finally:
        for _, target in targets:
            target.close()
    print('| dialect | module | request-thread CPU us/item | ratio | writer CPU us/item | process CPU us/item |')
    print('|---|---|---|---|---|---|')
    for dialect in dialects:
        first = None
        for path, _ in targets:
            rounds = results[path, dialect]
            medians = [statistics.median(r[i] for r in rounds) for i in range(3)]
            first = first or medians[0]
            print('| %s | %s | %.1f | %.2f | %.1f | %.1f |' % (dialect, os.path.basename(path), medians[0],
                                                              medians[0] / first, medians[1], medians[2]))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
