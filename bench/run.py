#!/usr/bin/env python3
"""ErrorCapture benchmark: ingest and read throughput against a no-op baseline.

    python bench/run.py                      # full run (see bench/README.md)
    python bench/run.py --duration 5         # shorter
    python bench/run.py --quick              # seconds; what the smoke test runs

Starts errorcapture.py (one server per scenario, each on a fresh temporary
database; the read scenarios share one database of --events events made by
bench/make_db.py) and bench/noop_server.py, drives them with wrk from a
separate process, samples the server's RSS and CPU (per thread), and prints a table:
scenario, connections, requests/s, items/s, p50, p99, ratio to the no-op
baseline at the same connection count, non-2xx answers, RSS and CPU; then the
server's CPU per request by thread (HTTP loop, workers, writer, other), the
storage cost per event and a check of every target.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import templates  # noqa: E402

APP = os.path.join(ROOT, "errorcapture.py")
NOOP = os.path.join(HERE, "noop_server.py")
LUA = os.path.join(HERE, "scenario.lua")
MAKE_DB = os.path.join(HERE, "make_db.py")

# Targets (issue text); checked at the end of every run.
TARGET_SINGLE_RATIO = 0.90      # single events at 32 connections vs no-op baseline
TARGET_BATCH_ITEMS = 30000      # batched ingest items/s
TARGET_READ_P99_MS = 10.0       # reads at 1,000,000 events
TARGET_FACETS_MS = 100.0        # tag facets of the biggest issue (100,000+ events), p99 (issue 17)
TARGET_RSS_MB = 80.0            # steady RSS under load
TARGET_BYTES_RATIO = 1.5        # database bytes per event vs raw JSON bytes per event
TARGET_WORKERS_SPEEDUP = 1.5    # issue 19: 2 workers vs 1 ...
TARGET_WORKERS_CONNS = 32       # ... at 32 connections (the run's highest if it has no 32)
WORKERS_SPEEDUP_SCENARIOS = ("api_php", "sentry_envelope")  # the issue names these two


class Scenario(object):
    def __init__(self, name, kind, method, items=1, doc=""):
        self.name, self.kind, self.method, self.items = name, kind, method, items
        self.doc = doc


SCENARIOS = [
    Scenario("noop", "baseline", "POST",
             doc="no-op bottle route on waitress, same threads/switch interval, api.php body"),
    Scenario("noop_writer", "baseline", "POST",
             doc="the no-op route plus one hand-off to errorcapture's Writer thread (a one-row insert "
                 "in its group commit, then the wake-up): the floor of acknowledged-means-committed"),
    Scenario("api_php", "single", "POST",
             doc="POST /api.php, one ErrorCapture event"),
    Scenario("seestack_error", "single", "POST",
             doc="POST /ingest/v1/errors, one SeeStack error"),
    Scenario("sentry_envelope", "single", "POST",
             doc="POST /api/<id>/envelope/, one ~3 KB Sentry event"),
    Scenario("sentry_browser_minified", "single", "POST",
             doc="POST /api/<id>/envelope/, a @sentry/browser error with 10 minified frames, no source maps uploaded"),
    Scenario("sentry_browser_mapped", "single", "POST",
             doc="the same envelope after its source map (a ~450 KB map, 40,000 mappings) was uploaded the way "
                 "sentry-cli does: every frame resolved on ingest"),
    Scenario("sentry_browser", "single", "POST",
             doc="POST /api/<id>/envelope/, a browser page's pair in turn: a TypeError with breadcrumbs, "
                 "then its page load as 11 streamed spans; each envelope br (gzip without brotli)"),
    Scenario("open_sentry_batch20", "batch", "POST", items=20,
             doc="POST /v1/ingest, 20 Open Sentry error items"),
    Scenario("seestack_http_batch100", "batch", "POST", items=100,
             doc="POST /ingest/v1/http-requests, 100 HTTP request records"),
    Scenario("read_errors_since", "read", "GET",
             doc="GET /api.php?action=errors&since=<near the end>"),
    Scenario("read_issues", "read", "GET",
             doc="GET /api/v1/issues (first page)"),
    Scenario("read_issue_facets", "read", "GET",
             doc="GET /api/v1/issues/<the issue with most events>/tags (tag facets)"),
]
BY_NAME = {s.name: s for s in SCENARIOS}
SELECTABLE = [s.name for s in SCENARIOS if s.kind != "baseline"]


# -- processes ---------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw.decode() or "null")
    except ValueError:
        return status, raw.decode(errors="replace")


def browser_scenario(srv, project, mapped):
    """(envelope template, event bytes, headers) for the browser scenarios;
    with mapped, first upload the bundle's source map as `sentry-cli
    sourcemaps upload` does (a project token, chunk upload, assembly)."""
    import gzip
    import hashlib
    minified, smap, frames = templates.minified_bundle()
    if mapped:
        status, answer = http("POST", "%s/api/v1/projects/%d/tokens" % (srv.base, project["id"]), {"name": "bench"})
        if status != 201:
            raise SystemExit("creating an upload token failed: %s %r" % (status, answer))
        auth = {"Authorization": "Bearer " + answer["token"]["value"]}
        bundle = templates.artifact_bundle(minified, smap)
        checksum = hashlib.sha1(bundle).hexdigest()
        boundary = "benchboundary%s" % checksum[:12]
        body = ("--%s\r\nContent-Disposition: form-data; name=\"file_gzip\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, checksum)).encode()
        body += gzip.compress(bundle) + ("\r\n--%s--\r\n" % boundary).encode()
        status, answer = http("POST", srv.base + "/api/0/organizations/bench/chunk-upload/", body,
                              dict(auth, **{"Content-Type": "multipart/form-data; boundary=" + boundary}))
        if status != 200:
            raise SystemExit("chunk upload failed: %s %r" % (status, answer))
        status, answer = http("POST", srv.base + "/api/0/organizations/bench/artifactbundle/assemble/",
                              {"checksum": checksum, "chunks": [checksum], "projects": [project["name"]]}, auth)
        if status != 200 or answer.get("state") != "ok":
            raise SystemExit("assembling the bundle failed: %s %r" % (status, answer))
    dsn = "http://%s@127.0.0.1:%d/%d" % (project["key"], srv.port, project["id"])
    text, event_bytes = templates.browser_envelope(project["key"], dsn, frames)
    headers = {"Content-Type": "text/plain;charset=UTF-8",  # what @sentry/browser's fetch transport sends
               "X-Sentry-Auth": "Sentry sentry_key=%s, sentry_version=7, sentry_client=sentry.javascript.browser/10.5.0"
               % project["key"]}
    return text, event_bytes, headers


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Server(object):
    """A server subprocess on a free loopback port, stopped on close()."""

    def __init__(self, name, argv, log_dir, cpus=None, env=None):
        self.name = name
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        if cpus:
            argv = ["taskset", "-c", cpus] + argv  # taskset execs: same pid
        self.argv = argv
        self.log_path = os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=ROOT, start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, path="/health", timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, _ = http("GET", self.base + path, timeout=2)
                if status == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.close()
        with open(self.log_path, "rb") as f:
            tail = f.read()[-3000:].decode(errors="replace")
        raise SystemExit("%s did not answer %s within %ds; its log:\n%s" % (self.name, path, timeout, tail))

    def close(self):
        if self.proc.poll() is None:
            # SIGTERM, not SIGINT: a shell starting us in the background makes
            # its children ignore SIGINT. errorcapture.py shuts down cleanly on it.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def staged_app(app, tmp):
    """The file to start `app` from, so that a --workers server runs it in
    every worker: `app` itself when it is named errorcapture.py, else a copy
    of it named so, in a directory of its own under tmp (the viewer's static/
    linked beside it). Before 737401a a worker ran `import errorcapture` with
    the parent's directory first on sys.path: a server started from
    /tmp/ec_REV.py ran whichever errorcapture.py came next (bench/run.py's
    cwd: the checkout's) in its workers, so every --old-app comparison with 2
    workers measured the checkout against itself. A copy named errorcapture.py
    is what both ways of loading it (by that import or by the file's path) run."""
    app = os.path.abspath(app)
    if os.path.basename(app) == "errorcapture.py":
        return app
    folder = tempfile.mkdtemp(prefix="app-", dir=tmp)
    staged = os.path.join(folder, "errorcapture.py")
    shutil.copyfile(app, staged)
    for name in ("static", "docs"):
        for beside in (os.path.dirname(app), ROOT):
            if os.path.isdir(os.path.join(beside, name)):
                os.symlink(os.path.join(beside, name), os.path.join(folder, name))
                break
    return staged


def file_sha256(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def worker_cmdlines(pid):
    """{pid: command line} of the server's child processes (its --workers)."""
    out = {}
    for p in process_tree(pid)[1:]:
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                out[p] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return out


def check_workers_run(srv, app, workers, timeout=30):
    """Wait until the --workers server has its `workers` child processes and
    check that each one runs `app` (its path, or its directory first on
    sys.path, on its command line); exit with what they run otherwise."""
    deadline = time.time() + timeout
    while True:
        lines = worker_cmdlines(srv.pid)
        if len(lines) >= workers or time.time() > deadline:
            break
        time.sleep(0.1)
    # loaded by its path, or (before 737401a) imported by name with its directory first on sys.path,
    # which finds it only when it is named errorcapture.py
    named = [repr(app)] + ([repr(os.path.dirname(app))] if os.path.basename(app) == "errorcapture.py" else [])
    wrong = {p: line for p, line in lines.items() if not any(n in line for n in named)}
    if len(lines) < workers or wrong:
        srv.close()
        raise SystemExit("%s: %d of %d workers found, and these do not run %s: %r"
                         % (srv.name, len(lines), workers, app, wrong))
    return lines


def cpu_seconds(pid):
    """User + system CPU seconds the process (all its threads) has used."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# Roles of the server's OS threads in the per-thread CPU table. errorcapture.py
# names its own threads (PR_SET_NAME, so /proc/<pid>/task/<tid>/comm): ec-writer,
# ec-alerts, ec-sweeper. The main thread (tid == pid) runs waitress's HTTP event
# loop; every other thread is a waitress request worker.
THREAD_ROLES = ("http loop", "workers", "writer", "other")


def thread_role(pid, tid, comm):
    if tid == pid:
        return "http loop"
    if comm == "ec-writer":
        return "writer"
    if comm.startswith("ec-"):
        return "other"   # ec-alerts, ec-sweeper
    return "workers"


def thread_cpu(pid):
    """{tid: (comm, user + system CPU seconds)} for every thread of the process,
    from /proc/<pid>/task/<tid>/stat; {} when the process is gone."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for name in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, name)) as f:
                text = f.read()
            head, _, rest = text.rpartition(")")
            fields = rest.split()
            out[int(name)] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            continue  # the thread ended between listdir and open
    return out


def cpu_by_role(pid, before, after):
    """CPU seconds per role between two thread_cpu() snapshots. A thread that
    appeared in between counts from 0; one that ended in between is left out
    (the kernel keeps its time only in the process total)."""
    used = dict.fromkeys(THREAD_ROLES, 0.0)
    for tid, (comm, cpu1) in after.items():
        comm0, cpu0 = before.get(tid, (comm, 0.0))
        if comm0 != comm or cpu1 < cpu0:
            cpu0 = 0.0  # a reused thread id: a new thread
        used[thread_role(pid, tid, comm)] += cpu1 - cpu0
    return {role: round(v, 4) for role, v in used.items()}


class RssSampler(threading.Thread):
    """Samples VmRSS every `interval` s; also measures the CPU the process used,
    in total and per thread role (cpu_by_role: role -> seconds)."""

    def __init__(self, pid, interval=0.1):
        threading.Thread.__init__(self, daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = []
        self.stop_event = threading.Event()
        self.threads0 = thread_cpu(pid)
        self.cpu0, self.t0 = cpu_seconds(pid), time.time()
        self.cpu_percent = self.cpu_used = self.cpu_by_role = None

    def run(self):
        while not self.stop_event.is_set():
            kb = rss_kb(self.pid)
            if kb is not None:
                self.samples.append(kb)
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join()
        cpu1 = cpu_seconds(self.pid)
        threads1 = thread_cpu(self.pid)
        if self.cpu0 is not None and cpu1 is not None:
            self.cpu_used = cpu1 - self.cpu0
            self.cpu_percent = 100.0 * self.cpu_used / max(1e-6, time.time() - self.t0)
        if self.threads0 and threads1:
            self.cpu_by_role = cpu_by_role(self.pid, self.threads0, threads1)
        return self.samples


def process_tree(pid):
    """The process and its descendants (a --workers server: the parent and its
    worker processes), from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def cpus_allowed(pid):
    """The CPUs the process's threads may run on (/proc/<pid>/task/*/status
    Cpus_allowed_list), as text: "0" or "0-1", "0,1/1" if its threads differ."""
    lists = set()
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        lists.add(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return "/".join(sorted(lists)) or None


def server_cpus_text(pid):
    """Where a server's processes may run, read under load: each worker's CPUs
    joined by "|" ("0|1": two workers, one CPU each), or the process's own
    when it has no workers ("0-1": on both CPUs)."""
    tree = process_tree(pid)
    parts = [cpus_allowed(p) for p in (tree[1:] or tree)]
    return "|".join(p for p in parts if p) or None


class TreeSampler(threading.Thread):
    """Like RssSampler, over every process of a server: each process's VmRSS
    every `interval` s (rss_max_kb: pid -> its highest sample), and the CPU all
    of them used (a process that started in between counts from 0), in total
    and per thread role summed over the processes (cpu_by_role; a worker's
    ec-writer is its writer)."""

    def __init__(self, pid, interval=0.1):
        threading.Thread.__init__(self, daemon=True)
        self.pid, self.interval = pid, interval
        self.rss_max_kb = {}
        self.samples = []   # total VmRSS of the tree
        self.stop_event = threading.Event()
        self.cpu0 = {p: cpu_seconds(p) for p in process_tree(pid)}
        self.threads0 = {p: thread_cpu(p) for p in self.cpu0}
        self.t0 = time.time()
        self.cpu_percent = self.cpu_used = self.cpu_by_role = None
        self.processes = len(self.cpu0)

    def run(self):
        while not self.stop_event.is_set():
            total = 0
            for p in process_tree(self.pid):
                kb = rss_kb(p)
                if kb is not None:
                    total += kb
                    self.rss_max_kb[p] = max(kb, self.rss_max_kb.get(p, 0))
            self.samples.append(total)
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join()
        self.cpus = server_cpus_text(self.pid)
        tree = process_tree(self.pid)
        self.processes = max(self.processes, len(tree))
        used = 0.0
        for p in tree:
            cpu1 = cpu_seconds(p)
            if cpu1 is not None:
                used += cpu1 - (self.cpu0.get(p) or 0.0)
        self.cpu_used = used
        self.cpu_percent = 100.0 * used / max(1e-6, time.time() - self.t0)
        roles = dict.fromkeys(THREAD_ROLES, 0.0)
        for p in tree:
            for role, secs in cpu_by_role(p, self.threads0.get(p, {}), thread_cpu(p)).items():
                roles[role] += secs
        self.cpu_by_role = {role: round(v, 4) for role, v in roles.items()}
        return self.samples


# -- database accounting ---------------------------------------------------------------

def db_bytes(path):
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def used_bytes(path):
    """Bytes of the database file in use: pages minus free-list pages (pages
    freed by retention pruning stay in the file until VACUUM)."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page, free * page
    finally:
        conn.close()


def browser_plan(entry, key, dsn, project_id):
    """The sentry_browser scenario: a pool of compressed envelope pairs (an
    error, then its page load's spans) that scenario.lua sends in turn. The
    probes are a pair outside the pool, so the measured ones stay unseen."""
    bodies, event_bytes, encoding = templates.sentry_browser_pool(key, dsn, count=2049)
    # the browser SDK authenticates in the query string (no X-Sentry-Auth header)
    path = "/api/%d/envelope/?sentry_version=7&sentry_key=%s&sentry_client=sentry.javascript.browser%%2F11.12.0" % (
        project_id, key)
    entry.update(path=path, raw_per_item=event_bytes,
                 body_bytes=sum(len(b) for b in bodies) // len(bodies), table="events+transactions",
                 text=templates.pool_file(bodies[2:]), probes=bodies[:2])
    entry["headers"].update({"Content-Type": "text/plain;charset=UTF-8", "Content-Encoding": encoding})


def count_rows(path, table):
    """Rows in the table, or in the tables ("events+transactions")."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return sum(conn.execute("SELECT count(*) FROM %s" % name).fetchone()[0] for name in table.split("+"))
    except sqlite3.Error:
        return None
    finally:
        conn.close()


# -- wrk -------------------------------------------------------------------------------------

WRK_LINE = re.compile(r"^WRKJSON (\{.*\})\s*$", re.M)


def run_wrk(base, method, path, template_path, headers, connections, duration, cpu, timeout_s):
    """One wrk run; its WRKJSON totals plus wrk_cpu_seconds and wrk_cpu_percent,
    wrk's own user + system CPU (from wait4's rusage) over its wall time: near
    100 means the load generator, not the server, set the pace."""
    nonce = "%08x" % random.getrandbits(32)
    argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration, "--timeout", "%ds" % timeout_s,
            "-s", LUA, base, "--", nonce, method, path, template_path or "-"]
    argv += ["%s: %s" % kv for kv in headers.items()]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv  # taskset execs: the rusage is wrk's
    started = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killer = threading.Timer(duration + timeout_s + 60, proc.kill)
    killer.start()
    try:
        data = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - started
    text = data.decode(errors="replace")
    m = WRK_LINE.search(text)
    if proc.returncode != 0 or not m:
        raise RuntimeError("wrk failed (exit %d):\n%s" % (proc.returncode, text))
    res = json.loads(m.group(1))
    res["wrk_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    res["wrk_cpu_percent"] = round(100.0 * res["wrk_cpu_seconds"] / max(1e-6, wall), 1)
    return res


# -- the run ------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="ErrorCapture benchmark (see bench/README.md)")
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    p.add_argument("--repeats", type=int, default=3,
                   help="measurements per scenario and connection count, interleaved; the table "
                        "shows medians (default 3)")
    p.add_argument("--connections", default="1,8,32", help="comma-separated (default 1,8,32)")
    p.add_argument("--scenarios", default=",".join(SELECTABLE),
                   help="comma-separated subset of: %s" % ", ".join(SELECTABLE))
    p.add_argument("--events", type=int, default=1000000, help="events in the read database (default 1,000,000)")
    p.add_argument("--read-db", default=None,
                   help="read database to use; made there by bench/make_db.py if missing, and kept "
                        "(default: a temporary one, deleted after the run)")
    p.add_argument("--threads", type=int, default=None, help="waitress threads for both servers "
                   "(default: errorcapture's own default)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load per server first")
    p.add_argument("--pin", choices=["auto", "none"], default="auto",
                   help="auto: wrk runs pinned with taskset to the last CPU and the servers to the "
                        "others (with 2+ CPUs); none: no pinning")
    p.add_argument("--app", default=APP, help="path of errorcapture.py")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra argument for errorcapture.py (repeatable), e.g. --server-arg=--synchronous=full")
    p.add_argument("--json", dest="json_out", default=None, help="write all results to this JSON file")
    p.add_argument("--markdown", action="store_true", help="also print the tables as markdown")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
    p.add_argument("--workers", default="1,2",
                   help="errorcapture --workers counts for the workers table (default 1,2); '1' turns the "
                        "table off. Its servers run on every CPU (wrk still pinned to the last one)")
    p.add_argument("--workers-scenarios", default="api_php,sentry_envelope,open_sentry_batch20",
                   help="ingest scenarios the workers table measures at each --workers count "
                        "(default api_php,sentry_envelope,open_sentry_batch20)")
    p.add_argument("--workers-only", action="store_true",
                   help="measure only the workers table (its --workers-scenarios at each --workers count), "
                        "not the main table, its baselines or the reads")
    p.add_argument("--old-app", default=None,
                   help="a second errorcapture.py (e.g. `git show REV:errorcapture.py > /tmp/ec_REV.py`) "
                        "whose workers servers are measured beside --app's, interleaved in the same run: "
                        "the before/after table")
    p.add_argument("--old-server-arg", action="append", default=[],
                   help="extra argument for --old-app's servers only (repeatable): with --old-app the same file "
                        "as --app, one setting's effect in one run, e.g. --old-server-arg=--cpu-affinity=off")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for the smoke test: 1 s, 1 connection, 1 repeat, 2,000 read events")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.repeats, a.warmup = 1, 1, 0
        if a.connections == "1,8,32":
            a.connections = "1"
        if a.events == 1000000:
            a.events = 2000
    a.connections = [int(c) for c in str(a.connections).split(",") if c.strip()]
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in SELECTABLE:
            p.error("unknown scenario %r (choose from %s)" % (s, ", ".join(SELECTABLE)))
    try:
        a.workers = sorted({int(w) for w in str(a.workers).split(",") if w.strip()})
    except ValueError:
        p.error("--workers takes comma-separated numbers, e.g. 1,2")
    if not a.workers or a.workers[0] < 1:
        p.error("--workers counts must be 1 or more")
    a.workers_scenarios = [s.strip() for s in a.workers_scenarios.split(",") if s.strip()]
    for s in a.workers_scenarios:
        if s not in BY_NAME or BY_NAME[s].kind not in ("single", "batch"):
            p.error("--workers-scenarios: %r is not an ingest scenario" % s)
    # the table compares worker counts of the scenarios this run measures
    if a.workers_only:
        a.scenarios = []   # --workers-only: the workers table's scenarios, whatever --scenarios says
    else:
        a.workers_scenarios = [s for s in a.workers_scenarios if s in a.scenarios]
    if a.workers == [1] and not a.workers_only:
        a.workers_scenarios = []
    if a.workers_only and not a.workers_scenarios:
        p.error("--workers-only needs --workers-scenarios")
    if a.old_server_arg and not a.old_app:
        p.error("--old-server-arg needs --old-app (the same file as --app to compare settings)")
    if a.old_app and not a.workers_scenarios:
        p.error("--old-app compares the workers table: it needs --workers-scenarios")
    return a


def detect_app_settings(app_path):
    """Thread default and GIL switch interval that errorcapture.py uses, read from
    its source so the baseline matches it."""
    src = open(app_path, encoding="utf-8").read()
    threads = 8
    m = re.search(r"\('threads',\s*int,\s*(\d+)", src)
    if m:
        threads = int(m.group(1))
    switch = None
    m = re.search(r"setswitchinterval\(\s*([0-9.eE+-]+)\s*\)", src)
    if m:
        switch = float(m.group(1))
    else:
        m = re.search(r"\('switch_interval',\s*float,\s*([0-9.eE+-]+)", src)
        if m:
            switch = float(m.group(1))
    return threads, switch


def supports_workers(app_path):
    """Whether errorcapture.py has the --workers option (issue 19)."""
    return re.search(r"\('workers',\s*int", open(app_path, encoding="utf-8").read()) is not None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def build_read_db(args, tmp, log):
    path = args.read_db or os.path.join(tmp, "read.db")
    meta_path = path + ".meta.json"
    if os.path.exists(path) and os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        if meta.get("events") == args.events:
            log("read database: reusing %s (%d events)" % (path, meta["events"]))
            return path, meta
        raise SystemExit("%s holds %s events, not %d: delete it or pass another --read-db"
                         % (path, meta.get("events"), args.events))
    log("read database: making %d events in %s with bench/make_db.py ..." % (args.events, path))
    t0 = time.time()
    subprocess.run([sys.executable, MAKE_DB, "--db", path, "--events", str(args.events),
                    "--app", args.app], check=True)
    meta = json.load(open(meta_path))
    meta["build_seconds"] = round(time.time() - t0, 1)
    log("read database: %d events in %.0f s, %.1f MB" % (args.events, meta["build_seconds"],
                                                          db_bytes(path) / 1e6))
    return path, meta


def facets_path(base, key):
    """The facets of the read database's biggest issue (read_issue_facets);
    records its event count, which the target line names."""
    status, answer = http("GET", base + "/api/v1/issues?sort=count&limit=1&key=%s" % key)
    if status != 200 or not answer.get("issues"):
        raise SystemExit("read_issue_facets: no issue to read: %s %r" % (status, answer))
    issue = answer["issues"][0]
    FACETS_ISSUE.update(id=issue["id"], events=issue["count"])
    return "/api/v1/issues/%d/tags?key=%s" % (issue["id"], key)


FACETS_ISSUE = {}


def main(argv=None):
    args = parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not on PATH (Debian: apt-get install -y wrk)")
    for app in filter(None, (args.app, args.old_app)):
        if not os.path.exists(app):
            raise SystemExit("%s does not exist" % app)
    if args.workers_scenarios and max(args.workers) > 1 and not supports_workers(args.app):
        log("workers table: %s has no --workers option yet; measuring 1 worker only" % args.app)
        args.workers = [1]
    default_threads, switch = detect_app_settings(args.app)
    threads = args.threads or default_threads
    ncpu = len(os.sched_getaffinity(0))
    wrk_cpu = server_cpus = None
    if args.pin == "auto" and ncpu >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        wrk_cpu = cpus[-1]
        server_cpus = ",".join(str(c) for c in cpus[:-1])
    if args.pin == "auto" and shutil.which("taskset") is None:
        wrk_cpu = server_cpus = None

    tmp = tempfile.mkdtemp(prefix="ecbench-")
    servers = []
    started = time.time()
    try:
        return _run(args, log, tmp, servers, threads, switch, wrk_cpu, server_cpus, ncpu, started)
    finally:
        for s in servers:
            s.close()
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args, log, tmp, servers, threads, switch, wrk_cpu, server_cpus, ncpu, started):
    # errorcapture's defaults, whatever ERRORCAPTURE_* the caller's shell sets;
    # change settings with --server-arg so the run records them.
    ec_env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORCAPTURE_")}

    staged = {}   # app -> the file its servers start from (staged_app)

    def start_app(name, db, extra_env=None, workers=None, cpus=server_cpus, app=args.app, more_args=()):
        env = dict(ec_env)
        env.update(extra_env or {})
        if app not in staged:
            staged[app] = staged_app(app, tmp)
        argv = [sys.executable, staged[app], "--host", "127.0.0.1", "--port", "{port}", "--db", db,
                "--threads", str(threads)] + args.server_arg + list(more_args)
        if workers is not None:
            argv += ["--workers", str(workers)]
        s = Server(name, argv, tmp, cpus, env)
        servers.append(s)
        s.wait_ready("/health")
        s.app = staged[app]
        s.worker_commands = check_workers_run(s, s.app, workers) if workers is not None and workers > 1 else {}
        return s

    # The baselines (not in a --workers-only run, which has no main table).
    noop_argv = [sys.executable, NOOP, "--port", "{port}", "--threads", str(threads)]
    if switch is not None:
        noop_argv += ["--switch-interval", repr(switch)]
    noop = floor = None
    if not args.workers_only:
        noop = Server("noop", noop_argv, tmp, server_cpus)
        servers.append(noop)
        noop.wait_ready("/health")
        floor = Server("noop_writer", noop_argv + ["--writer-db", os.path.join(tmp, "noop_writer.db")], tmp,
                       server_cpus)
        servers.append(floor)
        floor.wait_ready("/health")

    plan = {}  # scenario name -> dict(server, method, path, template, headers, db, ...)
    tpl_dir = os.path.join(tmp, "templates")
    os.makedirs(tpl_dir)

    def write_template(name, text):
        path = os.path.join(tpl_dir, name + ".txt")
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    json_headers = {"Content-Type": "application/json"}
    noop_body = templates.api_php("0" * 32)
    plan["noop"] = dict(server=noop, path="/api.php", template=write_template("noop", noop_body),
                        headers=json_headers, raw_per_item=len(noop_body))
    plan["noop_writer"] = dict(plan["noop"], server=floor)

    def setup_ingest(name, label, workers=None, cpus=server_cpus, extra_env=None, app=args.app, more_args=()):
        """Start a server for the ingest scenario `name` (plan key `label`) on a
        fresh database, make its project and request, and check it is accepted."""
        sc = BY_NAME[name]
        db = os.path.join(tmp, label + ".db")
        srv = start_app(label, db, extra_env, workers=workers, cpus=cpus, app=app, more_args=more_args)
        status, body = http("POST", srv.base + "/api/v1/projects", {"name": "bench-" + name})
        if status not in (200, 201) or not isinstance(body, dict) or "project" not in body:
            raise SystemExit("creating a project on %s failed: %s %r" % (name, status, body))
        project = body["project"]
        key, pid = project["key"], project["id"]
        entry = dict(server=srv, db=db, key=key, project_id=pid, headers=dict(json_headers))
        if name == "api_php":
            text = templates.api_php(key)
            entry.update(path="/api.php", raw_per_item=len(text))
        elif name == "seestack_error":
            text = templates.seestack_error()
            entry.update(path="/ingest/v1/errors", raw_per_item=len(templates.expand(text)))
            entry["headers"]["X-SeeStack-Key"] = key
        elif name == "sentry_envelope":
            dsn = "http://%s@127.0.0.1:%d/%d" % (key, srv.port, pid)
            text, event_bytes = templates.sentry_envelope(key, dsn)
            entry.update(path="/api/%d/envelope/" % pid, raw_per_item=event_bytes,
                         body_bytes=len(templates.expand(text)))
            entry["headers"]["Content-Type"] = "application/x-sentry-envelope"
            entry["headers"]["X-Sentry-Auth"] = "Sentry sentry_key=%s, sentry_version=7, sentry_client=sentry.python/2.75.0" % key
        elif name in ("sentry_browser_minified", "sentry_browser_mapped"):
            text, event_bytes, headers = browser_scenario(srv, project, name.endswith("mapped"))
            entry.update(path="/api/%d/envelope/" % pid, raw_per_item=event_bytes,
                         body_bytes=len(templates.expand(text)),
                         # a mapped event stores the original frames, their context lines and the
                         # minified frames: more than was sent, by design, so no storage target
                         storage_checked=not name.endswith("mapped"))
            entry["headers"].update(headers)
        elif name == "sentry_browser":
            browser_plan(entry, key, "http://%s@127.0.0.1:%d/%d" % (key, srv.port, pid), pid)
            text = entry.pop("text")
        elif name == "open_sentry_batch20":
            text = templates.open_sentry_batch(sc.items)
            entry.update(path="/v1/ingest", raw_per_item=len(templates.expand(text)) / sc.items)
            entry["headers"]["X-Open-Sentry-Key"] = key
        elif name == "seestack_http_batch100":
            text = templates.seestack_http_requests(sc.items)
            entry.update(path="/ingest/v1/http-requests", raw_per_item=len(templates.expand(text)) / sc.items)
            entry["headers"]["X-SeeStack-Key"] = key
        entry["template"] = write_template(label, text)
        if "body_bytes" not in entry:
            entry["body_bytes"] = len(templates.expand(text))
        # Check the request once before measuring: a scenario that is refused
        # would otherwise measure error pages.
        for probe in entry.pop("probes", None) or [templates.expand(text, "1").encode()]:
            status, answer = http("POST", srv.base + entry["path"], probe, entry["headers"])
            if not 200 <= status < 300:
                raise SystemExit("%s: the server refused the request: %s %r" % (name, status, answer))
        entry.setdefault("table", "http_requests" if name.startswith("seestack_http") else "events")
        entry.update(scenario=name, workers=workers)
        plan[label] = entry

    for name in args.scenarios:
        if BY_NAME[name].kind != "read":
            setup_ingest(name, name)
    # The workers table: its own servers, every one on every CPU (wrk keeps the
    # last one), so that N processes can use N cores; 1 worker is measured the
    # same way, as the row the others are compared with.
    # With --old-app, the same servers of the old errorcapture.py beside them
    # (labels ending in @old), measured in the same rotation.
    worker_order, old_order, workers_measured = [], [], []
    apps = [(args.app, "", worker_order, [])]
    if args.old_app:
        apps.append((args.old_app, "@old", old_order, args.old_server_arg))
    for name in args.workers_scenarios:
        for w in args.workers:
            for app, suffix, labels, more_args in apps:
                if w > 1 and not supports_workers(app):
                    log("workers table: %s has no --workers option; no %d-worker row for it" % (app, w))
                    continue
                label = "%s@w%d%s" % (name, w, suffix)
                # retention off, so that "every acknowledged item stored" can be checked exactly
                setup_ingest(name, label, workers=w if w > 1 or supports_workers(app) else None, cpus=None,
                             extra_env={"ERRORCAPTURE_RETENTION_EVENTS": "0"}, app=app, more_args=more_args)
                labels.append(label)
                workers_measured.append(label)  # each old server right after its new one

    reads = [n for n in args.scenarios if BY_NAME[n].kind == "read"]
    read_meta = None
    if reads:
        read_db, read_meta = build_read_db(args, tmp, log)
        # retention off: the read database must keep every event it was made with
        srv = start_app("read", read_db, {"ERRORCAPTURE_RETENTION_EVENTS": "0",
                                          "ERRORCAPTURE_RETENTION_DAYS": "0"})
        key = read_meta["key"]
        for name in reads:
            if name == "read_errors_since":
                path = "/api.php?action=errors&hash=%s&since=%d" % (key, read_meta["since"])
            elif name == "read_issue_facets":
                path = facets_path(srv.base, key)
            else:
                path = "/api/v1/issues?key=%s" % key
            status, answer = http("GET", srv.base + path)
            if status != 200:
                raise SystemExit("%s: %s answered %s %r" % (name, path, status, answer))
            plan[name] = dict(server=srv, path=path, template=None, headers={}, db=read_db,
                              answer_bytes=len(json.dumps(answer)))

    order = [] if args.workers_only else ["noop", "noop_writer"] + [n for n in args.scenarios]
    measured = order + workers_measured
    total = len(measured) * len(args.connections) * args.repeats * (args.duration + 0.5)
    log("plan: %s x connections %s x %d repeats x %d s = about %.0f s; waitress threads %d, "
        "switch interval %s; wrk on CPU %s, servers on CPU %s (the workers table's on every CPU)"
        % (", ".join(measured), args.connections, args.repeats, args.duration, total, threads,
           switch if switch is not None else "default", wrk_cpu if wrk_cpu is not None else "any",
           server_cpus or "any"))

    if args.warmup > 0:
        for name in measured:
            e = plan[name]
            run_wrk(e["server"].base, BY_NAME[e.get("scenario", name)].method, e["path"], e["template"], e["headers"],
                    1, max(1, int(round(args.warmup))), wrk_cpu, 30)

    load_before = os.getloadavg()
    raw = {}  # (name, conns) -> list of measurements
    for rep in range(args.repeats):
        # Rotate the connection counts from one repeat to the next, so that a
        # machine getting busier during the run does not always hit the same one.
        k = rep % len(args.connections)
        for conns in args.connections[k:] + args.connections[:k]:
            for name in measured:
                e = plan[name]
                tree = name in worker_order or name in old_order
                sampler = (TreeSampler if tree else RssSampler)(e["server"].pid)
                sampler.start()
                res = run_wrk(e["server"].base, BY_NAME[e.get("scenario", name)].method, e["path"], e["template"],
                              e["headers"], conns, args.duration, wrk_cpu, max(30, args.duration * 3))
                res["rss_kb"] = sampler.stop()
                res["server_cpu_percent"] = sampler.cpu_percent
                res["server_cpu_seconds"] = sampler.cpu_used
                res["server_cpu_seconds_by_thread"] = sampler.cpu_by_role
                if tree:
                    res["cpus"] = sampler.cpus
                    res["rss_max_kb_by_process"] = {str(k): v for k, v in sampler.rss_max_kb.items()}
                    res["processes"] = sampler.processes
                raw.setdefault((name, conns), []).append(res)
                secs = res["duration_us"] / 1e6
                log("  [%d/%d] %-24s c=%-3d %8.0f req/s  p99 %.1f ms  non-2xx %d"
                    % (rep + 1, args.repeats, name, conns, res["requests"] / secs, res["p99_us"] / 1000.0,
                       res["status_errors"] + res["connect_errors"] + res["read_errors"] + res["write_errors"]
                       + res["timeouts"]))

    load_after = os.getloadavg()
    rows = summarize(args, order, raw)
    workers_rows = summarize_workers(args, worker_order, plan, raw)
    old_rows = summarize_workers(args, old_order, plan, raw) if old_order else []
    before_after = compare_apps(workers_rows, old_rows)
    storage = []
    for name in args.scenarios:
        e = plan[name]
        sc = BY_NAME[name]
        if sc.kind not in ("single", "batch"):
            continue
        accepted = sum(sum(r["requests"] - r["status_errors"] for r in raw[(name, c)])
                       for c in args.connections) * sc.items
        size = db_bytes(e["db"])
        stored = count_rows(e["db"], e["table"])
        # Stop the server cleanly: its last connection checkpoints the WAL into
        # the database file, which is then the settled size.
        e["server"].close()
        servers.remove(e["server"])
        settled, free = used_bytes(e["db"])
        row = dict(scenario=name, accepted_items=accepted, stored_items=stored, table=e["table"],
                   db_wal_bytes=size, settled_bytes=settled, free_bytes=free,
                   raw_bytes_per_item=round(e["raw_per_item"], 1), body_bytes=e["body_bytes"],
                   bytes_per_item=None, settled_bytes_per_item=None, ratio=None, settled_ratio=None,
                   checked=e.get("storage_checked", True))
        if stored:
            row["bytes_per_item"] = round(size / stored, 1)
            row["ratio"] = round(size / stored / e["raw_per_item"], 2)
            row["settled_bytes_per_item"] = round(settled / stored, 1)
            row["settled_ratio"] = round(settled / stored / e["raw_per_item"], 2)
        storage.append(row)

    targets = check_targets(args, rows, storage, read_meta, workers_rows)
    result = dict(
        rows=rows, storage=storage, targets=targets, workers_rows=workers_rows, old_workers_rows=old_rows,
        before_after=before_after,
        settings=dict(app=args.app, old_app=args.old_app, workers_only=args.workers_only,duration=args.duration, repeats=args.repeats, connections=args.connections,
                      threads=threads, switch_interval=switch, wrk_cpu=wrk_cpu, server_cpus=server_cpus,
                      cpus=ncpu, read_events=args.events if reads else None, server_args=args.server_arg,
                      old_server_args=args.old_server_arg,
                      workers=args.workers, workers_scenarios=args.workers_scenarios,
                      read_db_build_seconds=(read_meta or {}).get("build_seconds"),
                      python=sys.version.split()[0], wall_seconds=round(time.time() - started, 1),
                      loadavg_before=[round(x, 2) for x in load_before],
                      loadavg_after=[round(x, 2) for x in load_after]),
        raw={"%s@%d" % k: v for k, v in raw.items()},
        # what each workers-table server ran: its file, and its workers' command lines
        started_from={label: dict(app=plan[label]["server"].app, sha256=file_sha256(plan[label]["server"].app),
                                  argv=plan[label]["server"].argv,
                                  worker_commands=sorted(plan[label]["server"].worker_commands.values()))
                      for label in workers_measured},
    )
    print(render(result, markdown=False))
    if args.markdown:
        print()
        print(render(result, markdown=True))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
        log("wrote %s" % args.json_out)
    return result


def cpu_per_request_by_thread(runs):
    """(role -> us/request, total us/request) over runs with a per-thread
    measurement, medians over those runs (each role separately; total = median
    of the per-run sums), rounded to whole microseconds; (None, None) if none."""
    runs = [r for r in runs if r.get("server_cpu_seconds_by_thread") and r["requests"]]
    if not runs:
        return None, None
    per_run = [{role: r["server_cpu_seconds_by_thread"].get(role, 0.0) / r["requests"] * 1e6
                for role in THREAD_ROLES} for r in runs]
    by_role = {role: int(round(median([x[role] for x in per_run]))) for role in THREAD_ROLES}
    total = int(round(median([sum(x.values()) for x in per_run])))
    return by_role, total


def summarize(args, order, raw):
    rows = []
    base_rps = {}
    base_cpu = {}
    for name in order:
        sc = BY_NAME[name]
        for conns in args.connections:
            runs = raw[(name, conns)]
            rps = [r["requests"] / (r["duration_us"] / 1e6) for r in runs]
            ok_rps = [(r["requests"] - r["status_errors"]) / (r["duration_us"] / 1e6) for r in runs]
            rss = [kb for r in runs for kb in r["rss_kb"]]
            errors = sum(r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"]
                         + r["timeouts"] for r in runs)
            cpu = median([r.get("server_cpu_percent") for r in runs])
            cpu_per_req = median([r["server_cpu_seconds"] / r["requests"] * 1e6
                                  for r in runs if r.get("server_cpu_seconds") is not None and r["requests"]])
            row = dict(scenario=name, kind=sc.kind, connections=conns, items_per_request=sc.items,
                       requests_per_s=round(median(rps), 1),
                       items_per_s=round(median(ok_rps) * sc.items, 1),
                       p50_ms=round(median([r["p50_us"] for r in runs]) / 1000.0, 2),
                       p99_ms=round(median([r["p99_us"] for r in runs]) / 1000.0, 2),
                       errors=errors, requests=sum(r["requests"] for r in runs),
                       rss_max_mb=round(max(rss) / 1024.0, 1) if rss else None,
                       rss_median_mb=round(median(rss) / 1024.0, 1) if rss else None,
                       server_cpu_percent=cpu if cpu is None else round(cpu),
                       wrk_cpu_percent=median([r.get("wrk_cpu_percent") for r in runs]),
                       cpu_us_per_request=cpu_per_req if cpu_per_req is None else round(cpu_per_req),
                       spread_percent=(round(100.0 * (max(rps) - min(rps)) / median(rps), 0)
                                       if len(rps) > 1 and median(rps) else None),
                       runs=len(runs))
            by_thread, threads_total = cpu_per_request_by_thread(runs)
            row["cpu_us_per_request_by_thread"] = by_thread
            row["cpu_us_per_request_threads_total"] = threads_total
            if name == "noop":
                base_rps[conns] = row["requests_per_s"]
                base_cpu[conns] = threads_total
            base = base_rps.get(conns)
            row["vs_noop"] = round(row["requests_per_s"] / base, 3) if base else None
            row["cpu_us_per_request_extra_vs_noop"] = (
                threads_total - base_cpu[conns]
                if threads_total is not None and base_cpu.get(conns) is not None else None)
            rows.append(row)
    return rows


def summarize_workers(args, worker_order, plan, raw):
    """The workers table: per scenario, worker count and connection count, the
    medians, the highest VmRSS of any one process and `vs 1 worker` (req/s
    against the same scenario's 1-worker row at the same connection count).
    Also counts the events each server stored against those it acknowledged."""
    rows = []
    one = {}
    for label in worker_order:
        e = plan[label]
        sc = BY_NAME[e["scenario"]]
        stored = count_rows(e["db"], e["table"])
        accepted = sum(sum(r["requests"] - r["status_errors"] for r in raw[(label, c)])
                       for c in args.connections) * sc.items
        for conns in args.connections:
            runs = raw[(label, conns)]
            rps = [r["requests"] / (r["duration_us"] / 1e6) for r in runs]
            ok_rps = [(r["requests"] - r["status_errors"]) / (r["duration_us"] / 1e6) for r in runs]
            per_process = [kb for r in runs for kb in r.get("rss_max_kb_by_process", {}).values()]
            row = dict(scenario=e["scenario"], workers=e["workers"] or 1, connections=conns,
                       items_per_request=sc.items,
                       requests_per_s=round(median(rps), 1), items_per_s=round(median(ok_rps) * sc.items, 1),
                       p50_ms=round(median([r["p50_us"] for r in runs]) / 1000.0, 2),
                       p99_ms=round(median([r["p99_us"] for r in runs]) / 1000.0, 2),
                       errors=sum(r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"]
                                  + r["timeouts"] for r in runs),
                       processes=max(r.get("processes", 1) for r in runs),
                       rss_max_mb_per_process=round(max(per_process) / 1024.0, 1) if per_process else None,
                       rss_max_mb_total=round(max(kb for r in runs for kb in r["rss_kb"]) / 1024.0, 1)
                       if any(r["rss_kb"] for r in runs) else None,
                       server_cpu_percent=(lambda c: None if c is None else round(c))(
                           median([r.get("server_cpu_percent") for r in runs])),
                       wrk_cpu_percent=(lambda c: None if c is None else round(c))(
                           median([r.get("wrk_cpu_percent") for r in runs])),
                       # CPU per item of all the processes, and of their writer threads alone: the
                       # writers take turns, so 1e6 / writer_us_per_item bounds the box's items/s
                       cpu_us_per_item=(lambda c: None if c is None else round(c))(median(
                           [r["server_cpu_seconds"] / (r["requests"] * sc.items) * 1e6
                            for r in runs if r.get("server_cpu_seconds") is not None and r["requests"]])),
                       writer_us_per_item=(lambda c: None if c is None else round(c))(median(
                           [r["server_cpu_seconds_by_thread"]["writer"] / (r["requests"] * sc.items) * 1e6
                            for r in runs if r.get("server_cpu_seconds_by_thread") and r["requests"]])),
                       accepted_items=accepted, stored_items=stored,
                       # where its processes could run (--cpu-affinity), as read at the end of each load
                       cpus=" ".join(sorted({r["cpus"] for r in runs if r.get("cpus")})) or None,
                       spread_percent=(round(100.0 * (max(rps) - min(rps)) / median(rps), 0)
                                       if len(rps) > 1 and median(rps) else None))
            if row["workers"] == 1:
                one[(row["scenario"], conns)] = row["requests_per_s"]
            base = one.get((row["scenario"], conns))
            row["vs_1_worker"] = round(row["requests_per_s"] / base, 2) if base else None
            rows.append(row)
    return rows


def compare_apps(new_rows, old_rows):
    """The before/after table: for each workers row of --old-app, the same
    scenario, worker count and connection count of --app, and new / old."""
    new = {(r["scenario"], r["workers"], r["connections"]): r for r in new_rows}
    out = []
    for old in old_rows:
        r = new.get((old["scenario"], old["workers"], old["connections"]))
        if r is None:
            continue
        out.append(dict(scenario=old["scenario"], workers=old["workers"], connections=old["connections"],
                        old_items_per_s=old["items_per_s"], new_items_per_s=r["items_per_s"],
                        old_p99_ms=old["p99_ms"], new_p99_ms=r["p99_ms"],
                        old_rss_max_mb_per_process=old["rss_max_mb_per_process"],
                        new_rss_max_mb_per_process=r["rss_max_mb_per_process"],
                        ratio=round(r["items_per_s"] / old["items_per_s"], 2) if old["items_per_s"] else None))
    return out


# "More connections never fewer requests per second": medians of a shared,
# noisy machine move by a few per cent from one run to the next, so a drop of
# up to this fraction is read as noise and passes; anything more is a collapse.
NO_COLLAPSE_NOISE = 0.03


def no_collapse(series):
    """(ok, measured text) for rows of one scenario (and worker count) sorted by
    connections: each count's req/s against the next lower one's."""
    steps = list(zip(series, series[1:]))
    ok = all(b["requests_per_s"] >= a["requests_per_s"] * (1 - NO_COLLAPSE_NOISE) for a, b in steps)
    worst = min((b["requests_per_s"] / a["requests_per_s"] - 1 for a, b in steps if a["requests_per_s"]),
                default=0.0)
    text = " -> ".join("%.0f@%d" % (r["requests_per_s"], r["connections"]) for r in series)
    if worst <= -0.005:
        text += " (%+.0f%%)" % (100 * worst)
    return ok, text


def check_targets(args, rows, storage, read_meta, workers_rows=()):
    def find(name, conns):
        for r in rows:
            if r["scenario"] == name and r["connections"] == conns:
                return r
        return None

    out = []

    def add(target, measured, ok):
        out.append(dict(target=target, measured=measured, ok=ok))

    top = max(args.connections)
    low = min(args.connections)
    floor = find("noop_writer", top)
    if floor is not None:
        # Not a target: what any ingest that answers only after its write is
        # committed by one writer thread can reach on this machine.
        add("floor: noop_writer @%d conns vs no-op (for reference)" % top,
            "%.0f%%" % (floor["vs_noop"] * 100), None)
    for r in rows:
        if r["kind"] == "single" and r["connections"] == top:
            add("%s @%d conns >= %d%% of no-op" % (r["scenario"], top, TARGET_SINGLE_RATIO * 100),
                "%.0f%%" % (r["vs_noop"] * 100), r["vs_noop"] >= TARGET_SINGLE_RATIO)
    for name in [s for s in args.scenarios if BY_NAME[s].kind in ("single", "batch")]:
        series = sorted((r for r in rows if r["scenario"] == name), key=lambda r: r["connections"])
        if len(series) > 1:
            ok, text = no_collapse(series)
            add("%s: more connections never fewer req/s (drops up to %d%% are noise)"
                % (name, 100 * NO_COLLAPSE_NOISE), text, ok)
    for name in sorted({r["scenario"] for r in list(rows) + list(workers_rows) if BY_NAME[r["scenario"]].kind == "batch"}):
        best = max([dict(r, workers=1) for r in rows if r["scenario"] == name]
                   + [r for r in workers_rows if r["scenario"] == name], key=lambda r: r["items_per_s"])
        add("%s >= %d items/s" % (name, TARGET_BATCH_ITEMS),
            "%.0f items/s @%d conns, %d worker(s)" % (best["items_per_s"], best["connections"], best["workers"]),
            best["items_per_s"] >= TARGET_BATCH_ITEMS)
    most = max(args.workers)
    # the issue's count (32) where the run has it, else the run's highest
    at = TARGET_WORKERS_CONNS if TARGET_WORKERS_CONNS in args.connections else top
    for name in WORKERS_SPEEDUP_SCENARIOS:
        one = [r for r in workers_rows if r["scenario"] == name and r["workers"] == 1 and r["connections"] == at]
        many = [r for r in workers_rows if r["scenario"] == name and r["workers"] == most and r["connections"] == at]
        if one and many and most > 1:
            add("%s @%d conns: %d workers >= %.1fx 1 worker" % (name, at, most, TARGET_WORKERS_SPEEDUP),
                "%.2fx (%.0f vs %.0f req/s)" % (many[0]["vs_1_worker"], many[0]["requests_per_s"],
                                                one[0]["requests_per_s"]),
                many[0]["vs_1_worker"] >= TARGET_WORKERS_SPEEDUP)
    for name, w in sorted({(r["scenario"], r["workers"]) for r in workers_rows}):
        series = sorted((r for r in workers_rows if r["scenario"] == name and r["workers"] == w),
                        key=lambda r: r["connections"])
        if len(series) > 1:
            ok, text = no_collapse(series)
            add("%s, %d worker(s): more connections never fewer req/s (drops up to %d%% are noise)"
                % (name, w, 100 * NO_COLLAPSE_NOISE), text, ok)
    for r in workers_rows:
        if r["stored_items"] is not None and r is max((x for x in workers_rows if x["scenario"] == r["scenario"]
                                                       and x["workers"] == r["workers"]),
                                                      key=lambda x: x["connections"]):
            add("%s, %d worker(s): every acknowledged item stored" % (r["scenario"], r["workers"]),
                "%d stored, %d acknowledged" % (r["stored_items"], r["accepted_items"]),
                r["stored_items"] >= r["accepted_items"])
    per_process = [r for r in workers_rows if r["rss_max_mb_per_process"] is not None]
    if per_process:
        worst = max(per_process, key=lambda r: r["rss_max_mb_per_process"])
        add("RSS per process < %d MB (workers table, any process)" % TARGET_RSS_MB,
            "%.1f MB max (%s, %d workers @%d)" % (worst["rss_max_mb_per_process"], worst["scenario"],
                                                  worst["workers"], worst["connections"]),
            worst["rss_max_mb_per_process"] < TARGET_RSS_MB)
    for r in rows:
        if r["kind"] == "read" and r["scenario"] == "read_issue_facets":
            add("%s p99 < %g ms (an issue of %d events, %d conns)" % (
                r["scenario"], TARGET_FACETS_MS, FACETS_ISSUE.get("events", 0), r["connections"]),
                "%.2f ms" % r["p99_ms"], r["p99_ms"] < TARGET_FACETS_MS)
        elif r["kind"] == "read":
            events = read_meta["events"] if read_meta else 0
            add("%s p99 < %g ms (%d events, %d conns)" % (r["scenario"], TARGET_READ_P99_MS, events,
                                                          r["connections"]),
                "%.2f ms" % r["p99_ms"], r["p99_ms"] < TARGET_READ_P99_MS)
    app_rows = [r for r in rows if r["kind"] != "baseline" and r["rss_max_mb"] is not None]
    if app_rows:
        worst = max(app_rows, key=lambda r: r["rss_max_mb"])
        add("RSS under load < %d MB (max over all scenarios)" % TARGET_RSS_MB,
            "%.1f MB max (%s @%d), %.1f MB median" % (worst["rss_max_mb"], worst["scenario"],
                                                      worst["connections"],
                                                      median([r["rss_median_mb"] for r in app_rows])),
            worst["rss_max_mb"] < TARGET_RSS_MB)
    for s in storage:
        if s["checked"]:
            add("%s db+wal bytes/event <= %.1fx raw JSON" % (s["scenario"], TARGET_BYTES_RATIO),
                "%s B vs %s B raw = %sx (settled %sx)" % (s["bytes_per_item"], s["raw_bytes_per_item"],
                                                          s["ratio"], s["settled_ratio"]),
                s["ratio"] is not None and s["ratio"] <= TARGET_BYTES_RATIO)
    return out


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("{:,.%df}" % digits).format(v)
    if isinstance(v, int):
        return "{:,}".format(v)
    return str(v)


def table(headers, rows, markdown, align=None):
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join(("---:" if a == "r" else ":---") for a in align) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def workers_head(s, rows):
    """The workers table's header line: how the CPUs were shared, and what wrk
    and the servers used of them."""
    wrk = [r["wrk_cpu_percent"] for r in rows if r.get("wrk_cpu_percent") is not None]
    cpu = [r["server_cpu_percent"] for r in rows if r.get("server_cpu_percent") is not None]
    return ("Workers (errorcapture --workers N): every server is started on every CPU (%d; CPUs: where its "
            "processes' threads could run under load, 0|1 = one CPU per worker, as --cpu-affinity sets), %s; "
            "the servers used "
            "%s%% CPU, all their processes together (100 = one core); RSS per process is the highest VmRSS "
            "of any one of its processes, parent included"
            % (s["cpus"], "wrk pinned to CPU %s, which it shares with them, and used %s%% of a core"
               % (s["wrk_cpu"], "%.0f-%.0f" % (min(wrk), max(wrk)) if wrk else "?")
               if s["wrk_cpu"] is not None else "wrk unpinned",
               "%.0f-%.0f" % (min(cpu), max(cpu)) if cpu else "?"))


def workers_table(rows, markdown):
    headers = ["scenario", "workers", "conns", "req/s", "items/s", "p50 ms", "p99 ms", "vs 1 worker",
               "non-2xx", "procs", "RSS max MB/proc", "RSS max MB all", "CPU %", "wrk CPU %", "CPU us/item",
               "writer us/item", "CPUs", "spread %"]
    body = [[r["scenario"], fmt(r["workers"]), fmt(r["connections"]), fmt(r["requests_per_s"]),
             fmt(r["items_per_s"]), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
             ("%.2f" % r["vs_1_worker"]) if r["vs_1_worker"] is not None else "-", fmt(r["errors"]),
             fmt(r["processes"]), fmt(r["rss_max_mb_per_process"], 1), fmt(r["rss_max_mb_total"], 1),
             fmt(r["server_cpu_percent"]), fmt(r.get("wrk_cpu_percent")), fmt(r.get("cpu_us_per_item")),
             fmt(r.get("writer_us_per_item")), r.get("cpus") or "-", fmt(r["spread_percent"])] for r in rows]
    return table(headers, body, markdown)


def render(result, markdown):
    s = result["settings"]
    parts = []
    head = ("ErrorCapture benchmark: %d s x %d repeats per cell (medians), waitress threads %d, "
            "switch interval %s, %d CPUs, wrk pinned to CPU %s, servers to CPU %s"
            % (s["duration"], s["repeats"], s["threads"],
               s["switch_interval"] if s["switch_interval"] is not None else "default", s["cpus"],
               s["wrk_cpu"] if s["wrk_cpu"] is not None else "none (unpinned)",
               s["server_cpus"] or "any"))
    if s.get("read_events"):
        head += ", read database %s events" % fmt(s["read_events"])
    head += "; load average %.2f before, %.2f after" % (s["loadavg_before"][0], s["loadavg_after"][0])
    parts.append(head)
    if result["rows"]:
        parts.append("")
        headers = ["scenario", "conns", "req/s", "items/s", "p50 ms", "p99 ms", "vs no-op", "non-2xx",
                   "RSS max MB", "RSS med MB", "CPU %", "CPU us/req", "spread %"]
        body = [[r["scenario"], fmt(r["connections"]), fmt(r["requests_per_s"]), fmt(r["items_per_s"]),
                 fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
                 ("%.2f" % r["vs_noop"]) if r["vs_noop"] is not None else "-", fmt(r["errors"]),
                 fmt(r["rss_max_mb"], 1), fmt(r["rss_median_mb"], 1), fmt(r["server_cpu_percent"]),
                 fmt(r["cpu_us_per_request"]), fmt(r["spread_percent"])] for r in result["rows"]]
        parts.append(table(headers, body, markdown))
        parts.append("")
        # Where the server's CPU goes per request, by OS thread (/proc/<pid>/task/*/stat).
        headers = ["scenario", "conns", "HTTP loop us/req", "workers us/req", "writer us/req",
                   "other us/req", "total us/req", "extra vs no-op us/req"]
        body = []
        for r in result["rows"]:
            t = r.get("cpu_us_per_request_by_thread") or {}
            body.append([r["scenario"], fmt(r["connections"])]
                        + [fmt(t.get(role)) for role in THREAD_ROLES]
                        + [fmt(r.get("cpu_us_per_request_threads_total")),
                           fmt(r.get("cpu_us_per_request_extra_vs_noop"))])
        parts.append(table(headers, body, markdown))
    if result["storage"]:
        parts.append("")
        headers = ["storage", "items accepted", "items stored", "db+wal bytes", "bytes/item",
                   "settled bytes/item", "raw JSON bytes/item", "ratio", "settled ratio"]
        body = [[x["scenario"], fmt(x["accepted_items"]), fmt(x["stored_items"]), fmt(x["db_wal_bytes"]),
                 fmt(x["bytes_per_item"], 1), fmt(x["settled_bytes_per_item"], 1),
                 fmt(x["raw_bytes_per_item"], 1),
                 ("%.2f" % x["ratio"]) if x["ratio"] is not None else "-",
                 ("%.2f" % x["settled_ratio"]) if x["settled_ratio"] is not None else "-"]
                for x in result["storage"]]
        parts.append(table(headers, body, markdown))
    if result.get("workers_rows"):
        parts.append("")
        parts.append(workers_head(s, result["workers_rows"]))
        parts.append(workers_table(result["workers_rows"], markdown))
    if result.get("old_workers_rows"):
        parts.append("")
        parts.append("Old app: %s%s (the same servers, measured interleaved with the ones above)"
                     % (s["old_app"], "".join(" " + a for a in s.get("old_server_args") or ())))
        parts.append(workers_table(result["old_workers_rows"], markdown))
    if result.get("before_after"):
        parts.append("")
        parts.append("Before/after: items/s of %s%s (new) against %s%s (old), same run"
                     % (s["app"], "".join(" " + a for a in s["server_args"]), s["old_app"],
                        "".join(" " + a for a in s["server_args"] + (s.get("old_server_args") or []))))
        headers = ["scenario", "workers", "conns", "old items/s", "new items/s", "new / old", "old p99 ms",
                   "new p99 ms", "old RSS MB/proc", "new RSS MB/proc"]
        body = [[r["scenario"], fmt(r["workers"]), fmt(r["connections"]), fmt(r["old_items_per_s"]),
                 fmt(r["new_items_per_s"]), ("%.2f" % r["ratio"]) if r["ratio"] is not None else "-",
                 fmt(r["old_p99_ms"], 2), fmt(r["new_p99_ms"], 2), fmt(r["old_rss_max_mb_per_process"], 1),
                 fmt(r["new_rss_max_mb_per_process"], 1)] for r in result["before_after"]]
        parts.append(table(headers, body, markdown))
    if result["targets"]:
        parts.append("")
        body = [[t["target"], t["measured"], "info" if t["ok"] is None else "PASS" if t["ok"] else "FAIL"]
                for t in result["targets"]]
        parts.append(table(["target", "measured", "result"], body, markdown, align=["l", "r", "l"]))
    return "\n".join(parts)


if __name__ == "__main__":
    main()
