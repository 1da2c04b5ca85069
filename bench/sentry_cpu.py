"""Server CPU per Sentry envelope, in process: the envelopes sentry-sdk 2.75.0
really sent (bench/fixtures/sentry_python_envelopes.json), bench/templates.py's
sentry_envelope, @sentry/browser's compressed error + span envelope pairs and
a raven-style /store/ event, each posted through the WSGI app of make_app (no
sockets, no waitress) from several threads, so the writer group-commits as it
does under load. Reports the CPU per request of the request threads and the
writer together (other threads, another module's included, are not counted)
and the writer thread's share, for copies of
errorcapture.py from several commits in one run; rounds alternate between
modules and medians are quoted. A GET /health request is the floor (routing,
guard, reply) and an /api.php event the smallest ingest, for comparison.

    python bench/sentry_cpu.py [--requests 600] [--threads 8] [--repeats 5]
                               [--scenarios recorded,template,browser,store] [MODULE.py ...]
    python bench/sentry_cpu.py --profile [--scenarios recorded] [MODULE.py]
    python bench/sentry_cpu.py --instructions 300 [--scenarios recorded] [MODULE.py ...]

Each MODULE.py is a copy of errorcapture.py (`git show REV:errorcapture.py >
/tmp/ec_REV.py`); by default the one beside bench/. --profile runs the first
module's requests on the calling thread under cProfile (the writer thread is
not profiled; its CPU is printed beside) and prints the top functions.
--instructions N counts instructions instead (valgrind's callgrind, every
thread): each module and scenario runs N requests on one thread (every request
commits alone, so the writer's share is larger than under load) and once with
none, and (at N - at 0) / N is printed per request: a number that other jobs
on a shared box do not move, where CPU time moves by 10%. About a minute of
CPU per module and scenario at N = 300.
In-process and under a minute: it needs no heavy lock.
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import templates  # noqa: E402
from inprocess import load  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures", "sentry_python_envelopes.json")
SCENARIOS = ("recorded", "template", "browser", "store")


def recorded_templates(key, dsn):
    """The recorded envelopes with this project's key and DSN, %%EID%% for the event id."""
    with open(FIXTURES, encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for text in data["envelopes"]:
        lines = text.split("\n")
        header, item, payload = json.loads(lines[0]), json.loads(lines[1]), json.loads(lines[2])
        stamp = templates.iso_now()
        header["event_id"] = payload["event_id"] = "%%EID%%"
        header["sent_at"] = payload["timestamp"] = stamp
        if "dsn" in header:
            header["dsn"] = dsn
        if "public_key" in header.get("trace", {}):
            header["trace"]["public_key"] = key
        body = templates.compact(payload)
        item["length"] = len(templates.expand(body).encode("utf-8"))
        out.append("%s\n%s\n%s\n" % (templates.compact(header), templates.compact(item), body))
    return out, data["sdk"].replace(" ", "/")


class Requests(object):
    """The requests of one scenario against one project: a list of
    (path, query, headers, body maker) taken in turn."""

    def __init__(self, scenario, project_id, key, needed):
        dsn = "http://%s@127.0.0.1:9/%d" % (key, project_id)
        envelope = "/api/%d/envelope/" % project_id
        python_auth = "Sentry sentry_key=%s, sentry_version=7, sentry_client=%%s" % key
        self.entries = []
        if scenario == "recorded":
            texts, client = recorded_templates(key, dsn)
            headers = {"Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": python_auth % client}
            for text in texts:
                self.entries.append((envelope, "", headers, self.with_ids(text)))
        elif scenario == "template":
            text, _ = templates.sentry_envelope(key, dsn)
            headers = {"Content-Type": "application/x-sentry-envelope",
                       "X-Sentry-Auth": python_auth % "sentry.python/2.75.0"}
            self.entries.append((envelope, "", headers, self.with_ids(text)))
        elif scenario == "browser":
            # compressed bodies carry their own ids: enough distinct pairs that no
            # target sees one twice (every target has the same key and project id)
            bodies, _, encoding = templates.sentry_browser_pool(key, dsn, count=needed // 2 + 1)
            query = "sentry_version=7&sentry_key=%s&sentry_client=sentry.javascript.browser%%2F11.12.0" % key
            headers = {"Content-Type": "text/plain;charset=UTF-8", "Content-Encoding": encoding}
            self.entries.extend((envelope, query, headers, (lambda b=body: b)) for body in bodies)
        elif scenario == "store":
            event = json.loads(templates.expand(templates.sentry_event()))
            event.pop("event_id")
            headers = {"Content-Type": "application/json",
                       "X-Sentry-Auth": python_auth % "raven-python/6.10.0"}
            text = json.dumps(event)
            self.entries.append(("/api/%d/store/" % project_id, "", headers,
                                 lambda: text.encode("utf-8")))
        elif scenario == "api_php":  # for comparison: the smallest ingest dialect
            text = templates.api_php(key)
            self.entries.append(("/api.php", "", {"Content-Type": "application/json"}, lambda: text.encode()))
        elif scenario == "health":
            self.entries.append(("/health", "", {}, lambda: b""))
        else:
            raise SystemExit("unknown scenario %r" % scenario)


    @staticmethod
    def with_ids(text):
        def make():
            return text.replace("%%EID%%", uuid.uuid4().hex).replace("%%ID%%", uuid.uuid4().hex).encode("utf-8")
        return make

    def take(self, start, count):
        """count requests from the start-th on, their bodies made now."""
        out = []
        for n in range(start, start + count):
            path, query, headers, make = self.entries[n % len(self.entries)]
            out.append((path, query, headers, make()))
        return out


def environ_for(path, query, headers, body):
    method = "GET" if path == "/health" else "POST"
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
           "HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
           "wsgi.multiprocess": False, "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body))}
    for name, value in headers.items():
        if name == "Content-Type":
            env["CONTENT_TYPE"] = value
        else:
            env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app, request):
    path, query, headers, body = request
    status = []
    chunks = app(environ_for(path, query, headers, body), lambda s, h, exc=None: status.append(s))
    body = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    if not status or not status[0].startswith("2"):
        raise SystemExit("%s refused: %s %r" % (path, status, body[:300]))


KEY = "0123456789abcdef0123456789abcdef"


class Target(object):
    """One module's app on a fresh database, with a project (the same key and id in each)."""

    def __init__(self, path, module):
        self.path, self.module = path, module
        self.directory = tempfile.mkdtemp(prefix="sentry-cpu-")
        self.app = module.make_app(os.path.join(self.directory, "bench.db"), sweep_interval=0,
                                   retention_events=0, log_level="warning")
        project = self.app.store.create_project("bench", key=KEY)
        self.project_id, self.key = project["id"], project["key"]
        self.taken = {}

    def take(self, requests, scenario, count):
        start = self.taken.get(scenario, 0)
        self.taken[scenario] = start + count
        return requests.take(start, count)

    def close(self):
        self.app.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def writer_cpu(store):
    return time.clock_gettime(time.pthread_getcpuclockid(store.writer.ident))


def one_round(target, requests, scenario, count, threads):
    """-> (CPU us per request, writer CPU us per request): the CPU of the
    request threads and of this target's writer, so that what another
    module's threads do meanwhile is not counted."""
    for request in target.take(requests, scenario, 3):  # warm up: first-use caches, the project cache
        call(target.app, request)
    bodies = [target.take(requests, scenario, count // threads) for _ in range(threads)]  # ids made beforehand
    spent = []

    def run(chunk):
        start = time.thread_time()
        for request in chunk:
            call(target.app, request)
        spent.append(time.thread_time() - start)
    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in bodies]
    done = sum(len(chunk) for chunk in bodies)
    writer = writer_cpu(target.app.store)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    time.sleep(0.05)  # the writer's work after it woke the last request
    writer = writer_cpu(target.app.store) - writer
    return (sum(spent) + writer) / done * 1e6, writer / done * 1e6


def profile(target, requests, scenario, count, top):
    for request in target.take(requests, scenario, 3):
        call(target.app, request)
    made = target.take(requests, scenario, count)
    profiler = cProfile.Profile(time.thread_time)  # CPU of this thread, not time spent waiting for the writer
    writer, cpu = writer_cpu(target.app.store), time.process_time()
    profiler.enable()
    for request in made:
        call(target.app, request)
    profiler.disable()
    cpu, writer = time.process_time() - cpu, writer_cpu(target.app.store) - writer
    print("%s, %s: %d requests on one thread under cProfile: process CPU %.0f us/request, writer thread %.0f"
          % (os.path.basename(target.path), scenario, count, cpu / count * 1e6, writer / count * 1e6))
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def instructions_of(module, scenario, count):
    """Instructions callgrind counts for a run of --just-run count."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
            os.path.abspath(__file__), "--just-run", str(count), "--scenarios", scenario, module]
    done = subprocess.run(argv, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit("callgrind failed for %s %s:\n%s" % (module, scenario, done.stderr[-2000:]))
    return int(found.group(1))


def count_instructions(modules, scenarios, count):
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    scenarios = [s for s in scenarios if s != "health"] or scenarios
    print("| scenario | module | instructions per request | vs %s |" % os.path.basename(modules[0]))
    print("|---|---|---|---|")
    for scenario in scenarios:
        first = None
        for module in modules:
            per = (instructions_of(module, scenario, count) - instructions_of(module, scenario, 0)) / count
            first = first or per
            print("| %s | %s | %.0f | %.3f |" % (scenario, os.path.basename(module), per, per / first))
            sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=[os.path.join(os.path.dirname(HERE), "errorcapture.py")])
    parser.add_argument("--requests", type=int, default=600, help="requests per scenario per round")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenarios", default="health,recorded,template,browser,store",
                        help="comma-separated, of health,api_php," + ",".join(SCENARIOS))
    parser.add_argument("--profile", action="store_true", help="cProfile the first module's first scenario")
    parser.add_argument("--top", type=int, default=35, help="functions --profile prints")
    parser.add_argument("--instructions", type=int, metavar="N",
                        help="count instructions per request under callgrind, N requests per module and scenario")
    parser.add_argument("--just-run", type=int, metavar="N", help=argparse.SUPPRESS)  # what --instructions runs
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.instructions is not None:
        return count_instructions(args.modules, scenarios, args.instructions)
    modules = [(path, load(path, "errorcapture_sentry_cpu_%d" % n)) for n, path in enumerate(args.modules)]
    needed = (args.requests + 3) * args.repeats + 3
    if args.just_run is not None:
        target = Target(*modules[0])
        try:
            requests = Requests(scenarios[0], target.project_id, KEY, args.just_run + 40)
            for request in target.take(requests, scenarios[0], 20):  # warm, as at 0
                call(target.app, request)
            for request in target.take(requests, scenarios[0], args.just_run):
                call(target.app, request)
        finally:
            target.close()
        return
    if args.profile:
        target = Target(*modules[0])
        scenario = scenarios[0] if scenarios[0] != "health" or len(scenarios) == 1 else scenarios[1]
        try:
            profile(target, Requests(scenario, target.project_id, KEY, needed), scenario, args.requests, args.top)
        finally:
            target.close()
        return
    targets = [Target(path, module) for path, module in modules]
    requests = {s: Requests(s, targets[0].project_id, KEY, needed) for s in scenarios}
    results = {(t.path, s): [] for t in targets for s in scenarios}
    try:
        order = random.Random(19)
        for _ in range(args.repeats):
            for scenario in scenarios:
                for target in order.sample(targets, len(targets)):  # no module always first
                    results[target.path, scenario].append(one_round(target, requests[scenario], scenario,
                                                                             args.requests, args.threads))
    finally:
        for target in targets:
            target.close()
    first = targets[0].path
    print("| scenario | module | CPU us/request | request threads | writer | vs %s: all, request threads |"
          % os.path.basename(first))
    print("|---|---|---|---|---|---|")
    for scenario in scenarios:
        base = [statistics.median(r[0] for r in results[first, scenario]),
                statistics.median(r[0] - r[1] for r in results[first, scenario])]
        for target in targets:
            rounds = results[target.path, scenario]
            cpu, own = statistics.median(r[0] for r in rounds), statistics.median(r[0] - r[1] for r in rounds)
            print("| %s | %s | %.0f | %.0f | %.0f | %.2f, %.2f |" % (
                scenario, os.path.basename(target.path), cpu, own, statistics.median(r[1] for r in rounds),
                cpu / base[0], own / base[1] if base[1] else 1.0))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
