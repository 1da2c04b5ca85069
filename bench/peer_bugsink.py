#!/usr/bin/env python3
"""ErrorCapture against Bugsink 2.6, end to end, with the same real-SDK envelopes.

    python bench/peer_bugsink.py                  # 10 s of load per target at 32 connections
    python bench/peer_bugsink.py --quick          # one 5 s load per target
    python bench/peer_bugsink.py --duration 20 --connections 8 --workers 1 --repeats 3

Installs Bugsink (`pip install 'bugsink>=2.6,<2.7'`) into its own virtualenv
under bench/.cache/, sets it up as its single-server production guide does
(bugsink-create-conf --template singleserver: SQLite, Snappea for background
digestion; migrate both databases; a superuser, a team and a project), and runs
it as its own Docker image does: gunicorn with Bugsink's
gunicorn.docker.conf.py (min(cores, 4) workers) beside bugsink-runsnappea,
which digests what the ingest view stored. ErrorCapture runs as
`python errorcapture.py --workers N` (one per core by default).

Both get the envelopes sentry-sdk really sent (bench/fixtures/, recorded by
bench/capture_sdk_envelopes.py), rewritten per target (DSN, key) and per
request (a fresh event_id; wrk fills it in), in turn, through wrk, on every
CPU with wrk pinned to the last (--pin). After each load the script polls how
many events the target has stored (rows of the project in each one's own
database file) until every acknowledged event is there, and reports events
stored per second end to end: stored / (from the start of the load until the
last one was stored), with the CPU each target's processes used for it and
wrk's own CPU.

If pip cannot install Bugsink the script says so and exits 2.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import run  # noqa: E402  (bench/run.py: Server, http, run_wrk, pinning)

FIXTURES = os.path.join(HERE, "fixtures", "sentry_python_envelopes.json")
CACHE = os.path.join(HERE, ".cache")
BUGSINK_SPEC = "bugsink>=2.6,<2.7"
TARGET_RATIO = 40.0   # issue 19: ErrorCapture >= 40x Bugsink's events stored per second
# ErrorCapture's processes: one per core, as the README recommends (Bugsink's
# own gunicorn.docker.conf.py likewise takes min(cores, 4) workers).
DEFAULT_WORKERS = max(1, min(len(os.sched_getaffinity(0)), 4))


# -- the envelopes ------------------------------------------------------------------

def load_fixtures(path=FIXTURES):
    """(fixture metadata, [(envelope header, item header, payload) as dicts]) of
    the recorded envelopes; each holds one event item."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    envelopes = []
    for text in data["envelopes"]:
        lines = text.split("\n")
        header, item, payload = json.loads(lines[0]), json.loads(lines[1]), json.loads(lines[2])
        if item.get("type") != "event" or header.get("event_id") != payload.get("event_id"):
            raise ValueError("%s: an envelope that is not one event item" % path)
        envelopes.append((header, item, payload))
    if not envelopes:
        raise ValueError("%s holds no envelopes" % path)
    return data, envelopes


def envelope_template(envelope, key, dsn, now=None):
    """The envelope as wrk's template for one target: its key and DSN, sent now,
    and %%EID%% for the event id (wrk puts a fresh one in at every request,
    32 hex characters as the SDK's, so the item length stays exact)."""
    header, item, payload = (json.loads(json.dumps(part)) for part in envelope)
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int(now % 1 * 1e6)
    header["event_id"] = payload["event_id"] = "%%EID%%"
    header["sent_at"] = stamp
    payload["timestamp"] = stamp
    if "dsn" in header:
        header["dsn"] = dsn
    if "public_key" in header.get("trace", {}):
        header["trace"]["public_key"] = key
    body = json.dumps(payload, separators=(",", ":"))
    item["length"] = len(run.templates.expand(body).encode("utf-8"))
    return "%s\n%s\n%s\n" % (json.dumps(header, separators=(",", ":")), json.dumps(item, separators=(",", ":")),
                              body)


def templates_file(texts):
    """The WRKTEMPLATES file bench/scenario.lua cycles through."""
    out = b"WRKTEMPLATES\n"
    for text in texts:
        data = text.encode("utf-8")
        out += b"%d\n%s" % (len(data), data)
    return out


# -- Bugsink ------------------------------------------------------------------------

def bugsink_venv(log):
    """The virtualenv with Bugsink 2.6 (made on first use); exits 2 if pip cannot get it."""
    venv = os.path.join(CACHE, "bugsink-venv")
    manage = os.path.join(venv, "bin", "bugsink-manage")
    if os.path.exists(manage):
        version = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                                  "import importlib.metadata as m; print(m.version('bugsink'))"],
                                 capture_output=True, text=True).stdout.strip()
        if version.startswith("2.6."):
            return venv, version
    log("installing %s into %s ..." % (BUGSINK_SPEC, venv))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True, capture_output=True)
        done = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", BUGSINK_SPEC],
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit_(2, "could not make a virtualenv for Bugsink: %s" % exc)
    if done.returncode != 0 or not os.path.exists(manage):
        raise SystemExit_(2, "pip could not install %s, so there is no peer to compare with:\n%s"
                          % (BUGSINK_SPEC, (done.stderr or done.stdout).strip()[-2000:]))
    return bugsink_venv(log)


class SystemExit_(SystemExit):
    def __init__(self, code, message):
        print("peer_bugsink: " + message, file=sys.stderr)
        SystemExit.__init__(self, code)


# What the benchmark changes in the singleserver configuration, and why.
BUGSINK_OVERRIDES = '''
# -- bench/peer_bugsink.py ------------------------------------------------------------
# No calls home: this machine reaches no outside address.
BUGSINK["PHONEHOME"] = False
# Bugsink's default quotas (1,000 events per 5 minutes, 5,000 an hour) would
# drop most of a benchmark's events unstored; ErrorCapture has no quota by default.
for _name in ("MAX_EVENTS_PER_PROJECT_PER_5_MINUTES", "MAX_EVENTS_PER_PROJECT_PER_HOUR",
              "MAX_EVENTS_PER_PROJECT_PER_MONTH", "MAX_EVENTS_PER_5_MINUTES", "MAX_EVENTS_PER_HOUR",
              "MAX_EVENTS_PER_MONTH"):
    BUGSINK[_name] = 10 ** 9
# Plain HTTP on loopback, no reverse proxy.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
'''

MAKE_PROJECT = '''
import json
from django.contrib.auth import get_user_model
from teams.models import Team
from projects.models import Project
get_user_model().objects.create_superuser("bench", "bench@example.org", "bench-password-not-secret")
team = Team.objects.create(name="bench")
project = Project.objects.create(team=team, name="bench", slug="bench", retention_max_event_count=10 ** 9)
print("PROJECT " + json.dumps({"id": project.id, "key": project.sentry_key.hex, "dsn": project.dsn}))
from django.conf import settings
print("SNAPPEA " + json.dumps({"workers": settings.SNAPPEA["NUM_WORKERS"],
                               "eager": settings.SNAPPEA["TASK_ALWAYS_EAGER"]}))
'''


class Bugsink(object):
    """A Bugsink site in `base` on `port`: gunicorn and Snappea."""

    def __init__(self, venv, base, cpus, log):
        self.venv, self.base_dir, self.log = venv, base, log
        self.bin = lambda name: os.path.join(venv, "bin", name)
        self.servers = []
        self.port = run.free_port()
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="bugsink_conf", PYTHONPATH=base)
        self.env.pop("PYTHONHOME", None)
        self.db = os.path.join(base, "db.sqlite3")
        conf = os.path.join(base, "bugsink_conf.py")
        self._run(self.bin("bugsink-create-conf"), "--template", "singleserver",
                  "--host", "127.0.0.1:%d" % self.port, "--base-dir", base, "--output-file", conf)
        with open(conf, "a") as f:
            f.write(BUGSINK_OVERRIDES)
        self._run(self.bin("bugsink-manage"), "migrate", "--no-input")
        self._run(self.bin("bugsink-manage"), "migrate", "snappea", "--database=snappea", "--no-input")
        out = self._run(self.bin("bugsink-manage"), "shell", "-c", MAKE_PROJECT)
        line = [l for l in out.splitlines() if l.startswith("PROJECT ")][-1]
        self.project = json.loads(line[len("PROJECT "):])
        line = [l for l in out.splitlines() if l.startswith("SNAPPEA ")][-1]
        self.snappea = json.loads(line[len("SNAPPEA "):])
        if self.snappea["eager"]:
            raise SystemExit("bugsink: the singleserver configuration digests in the request (TASK_ALWAYS_EAGER); "
                             "this benchmark expects Snappea")
        self.cpus = cpus

    def _run(self, *argv):
        done = subprocess.run(argv, env=self.env, cwd=self.base_dir, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit("bugsink: %s failed:\n%s" % (" ".join(argv[:3]), (done.stdout + done.stderr)[-3000:]))
        return done.stdout

    def start(self):
        gunicorn_conf = subprocess.run(
            [self.bin("python"), "-c", "import bugsink, os; print(os.path.join(os.path.dirname(bugsink.__file__),"
                                       " 'gunicorn.docker.conf.py'))"],
            capture_output=True, text=True, check=True).stdout.strip()
        # the worker count that file gives on this machine (min(cores, 4)), for the output
        conf = {}
        with open(gunicorn_conf) as f:
            exec(compile(f.read(), gunicorn_conf, "exec"), conf)
        self.gunicorn_workers = conf.get("workers")
        web = run.Server("bugsink-gunicorn", [self.bin("gunicorn"), "--config", gunicorn_conf,
                                              "--bind", "127.0.0.1:%d" % self.port, "bugsink.wsgi"],
                         self.base_dir, self.cpus, self.env)
        web.port, web.base = self.port, "http://127.0.0.1:%d" % self.port
        self.servers.append(web)
        snappea = run.Server("bugsink-snappea", [self.bin("bugsink-runsnappea")], self.base_dir, self.cpus,
                             self.env)
        self.servers.append(snappea)
        web.wait_ready("/health/ready", timeout=120)
        self.web = web
        return self

    def stored(self):
        conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM events_event WHERE project_id = ?",
                                (self.project["id"],)).fetchone()[0]
        finally:
            conn.close()

    def pids(self):
        return [s.pid for s in self.servers]

    def close(self):
        for s in reversed(self.servers):
            s.close()


class ErrorCapture(object):
    def __init__(self, app, base, cpus, workers, extra_args):
        self.db = os.path.join(base, "errorcapture.db")
        # retention off, as for Bugsink: the stored count must only grow
        # a copy named errorcapture.py where --app is named otherwise: what its workers run too
        self.app = run.staged_app(app, base)
        argv = [sys.executable, self.app, "--host", "127.0.0.1", "--port", "{port}", "--db", self.db,
                "--retention-events", "0"] + extra_args
        if workers is not None:
            argv += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORCAPTURE_")}
        self.web = run.Server("errorcapture", argv, base, cpus, env)
        self.web.wait_ready("/health")
        if workers is not None and workers > 1:
            run.check_workers_run(self.web, self.app, workers)
        status, body = run.http("POST", self.web.base + "/api/v1/projects", {"name": "bench"})
        if status not in (200, 201):
            raise SystemExit("errorcapture: creating a project failed: %s %r" % (status, body))
        project = body["project"]
        self.project = {"id": project["id"], "key": project["key"],
                        "dsn": "http://%s@127.0.0.1:%d/%d" % (project["key"], self.web.port, project["id"])}

    def stored(self):
        """Events of the project: rows in its events table, read from the
        database file as Bugsink's are (no request to the server under test)."""
        conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM events WHERE project_id = ?",
                                (self.project["id"],)).fetchone()[0]
        finally:
            conn.close()

    def pids(self):
        return [self.web.pid]

    def close(self):
        self.web.close()


# -- the measurement ------------------------------------------------------------------

def tree_cpu(pids):
    """{pid: CPU seconds} of every process of the targets' process trees now."""
    return {p: run.cpu_seconds(p) or 0.0 for root in pids for p in run.process_tree(root)}


def cpu_since(before, pids):
    """CPU seconds the trees used since `before` (tree_cpu); a process that
    started in between counts from 0, one that ended in between is lost."""
    now = tree_cpu(pids)
    return sum(max(0.0, cpu - before.get(p, 0.0)) for p, cpu in now.items())


def measure(target, name, template_path, headers, args, wrk_cpu, log):
    """One load on one target: wrk for args.duration s, then wait until it has
    stored every acknowledged event (or nothing moved for args.settle_timeout s).
    The target's CPU (every process of it) is counted over load and drain."""
    before = target.stored()
    pids = target.pids()
    cpu0 = tree_cpu(pids)
    started = time.time()
    res = run.run_wrk(target.web.base, "POST", "/api/%d/envelope/" % target.project["id"], template_path,
                      headers, args.connections, args.duration, wrk_cpu, max(60, args.duration * 3))
    load_end = time.time()
    cpu_load = cpu_since(cpu0, pids)
    accepted = res["requests"] - res["status_errors"]
    stored, last_change, done_at = target.stored() - before, time.time(), None
    stored_at_load_end = stored
    while True:
        if stored >= accepted:
            done_at = time.time()
            break
        if time.time() - last_change > args.settle_timeout:
            break
        time.sleep(0.2)
        now_stored = target.stored() - before
        if now_stored != stored:
            stored, last_change = now_stored, time.time()
    end = done_at or last_change
    cpu_all = cpu_since(cpu0, pids)
    secs = res["duration_us"] / 1e6
    row = dict(target=name, connections=args.connections, requests=res["requests"], accepted=accepted,
               non_2xx=res["status_errors"] + res["connect_errors"] + res["read_errors"] + res["write_errors"]
               + res["timeouts"],
               acknowledged_per_s=round(accepted / secs, 1), p99_ms=round(res["p99_us"] / 1000.0, 1),
               stored=stored, all_stored=done_at is not None, stored_at_load_end=stored_at_load_end,
               backlog_s=round(max(0.0, end - load_end), 1), end_to_end_s=round(end - started, 2),
               stored_per_s=round(stored / max(1e-6, end - started), 1),
               server_cpu_percent_load=round(100.0 * cpu_load / max(1e-6, load_end - started)),
               server_cpu_seconds=round(cpu_all, 2),
               cpu_ms_per_stored_event=round(1000.0 * cpu_all / stored, 2) if stored else None,
               wrk_cpu_percent=res.get("wrk_cpu_percent"))
    log("  %-12s c=%d  acknowledged %d (%.0f/s), stored %d%s in %.1f s: %.1f events stored/s end to end; "
        "server CPU %d%% under load, %.2f ms per stored event; wrk CPU %s%%"
        % (name, args.connections, accepted, row["acknowledged_per_s"], stored,
           "" if row["all_stored"] else " (NOT all: gave up)", row["end_to_end_s"], row["stored_per_s"],
           row["server_cpu_percent_load"], row["cpu_ms_per_stored_event"] or 0, row["wrk_cpu_percent"]))
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="ErrorCapture vs Bugsink 2.6, events stored per second end to end "
                                            "(see bench/README.md)")
    p.add_argument("--duration", type=int, default=10, help="seconds of load per target and repeat (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="one 5 s load per target, giving up after 30 s without progress: about 1-2 minutes "
                        "with Bugsink installed (its set-up is ~30 s of that)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--repeats", type=int, default=1, help="loads per target, interleaved; medians (default 1)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help="errorcapture.py --workers N (default %d: one per core, what the README recommends for "
                        "a box of this size; 0: not passed, errorcapture's own default)" % DEFAULT_WORKERS)
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for errorcapture.py")
    p.add_argument("--settle-timeout", type=float, default=120.0,
                   help="give up waiting for stored events after this many seconds without progress (default 120)")
    p.add_argument("--pin", choices=["shared", "apart", "none"], default="shared",
                   help="shared (default): both servers on every CPU, wrk pinned to the last, which it shares "
                        "with them (as bench/run.py's workers table); apart: wrk on the last CPU, both servers "
                        "on the others; none: no pinning")
    p.add_argument("--app", default=run.APP, help="path of errorcapture.py")
    p.add_argument("--fixtures", default=FIXTURES, help="recorded envelopes (bench/capture_sdk_envelopes.py)")
    p.add_argument("--json", dest="json_out", default=None, help="write the results to this JSON file")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
    p.add_argument("--check", action="store_true",
                   help="set both up, send each envelope once, wait until both stored them, and stop (no load)")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.repeats = 5, 1
        a.settle_timeout = min(a.settle_timeout, 30.0)
    if a.workers == 0:
        a.workers = None
    return a


def median(values):
    return run.median(values)


def main(argv=None):
    args = parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    fixture_meta, envelopes = load_fixtures(args.fixtures)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not on PATH (Debian: apt-get install -y wrk)")
    venv, version = bugsink_venv(log)
    ncpu = len(os.sched_getaffinity(0))
    wrk_cpu = server_cpus = None
    if args.pin != "none" and ncpu >= 2 and shutil.which("taskset"):
        cpus = sorted(os.sched_getaffinity(0))
        wrk_cpu = cpus[-1]
        if args.pin == "apart":
            server_cpus = ",".join(str(c) for c in cpus[:-1])
    tmp = tempfile.mkdtemp(prefix="ecpeer-")
    targets = []
    try:
        log("Bugsink %s: configuring in %s ..." % (version, tmp))
        bugsink_dir = os.path.join(tmp, "bugsink")
        os.makedirs(bugsink_dir)
        bugsink = Bugsink(venv, bugsink_dir, server_cpus, log)
        targets.append(bugsink)
        bugsink.start()
        ec_dir = os.path.join(tmp, "errorcapture")
        os.makedirs(ec_dir)
        ec = ErrorCapture(args.app, ec_dir, server_cpus, args.workers, args.server_arg)
        targets.append(ec)
        plan = []
        for name, target in (("errorcapture", ec), ("bugsink", bugsink)):
            key, dsn = target.project["key"], target.project["dsn"]
            texts = [envelope_template(e, key, dsn) for e in envelopes]
            path = os.path.join(tmp, name + ".templates")
            with open(path, "wb") as f:
                f.write(templates_file(texts))
            headers = {"Content-Type": "application/x-sentry-envelope",
                       "X-Sentry-Auth": "Sentry sentry_key=%s, sentry_version=7, sentry_client=%s"
                                        % (key, fixture_meta["sdk"].replace(" ", "/"))}
            for n, text in enumerate(texts):  # each once before measuring: a refused one would measure error pages
                status, answer = run.http("POST", target.web.base + "/api/%d/envelope/" % target.project["id"],
                                          run.templates.expand(text, "%x" % (n + 1)).encode(), headers)
                if status != 200:
                    raise SystemExit("%s refused the envelope: %s %r" % (name, status, answer))
            plan.append((name, target, path, headers))
        deadline = time.time() + 120
        while any(t.stored() < len(envelopes) for _, t, _, _ in plan):  # the probes, digested
            if time.time() > deadline:
                raise SystemExit("the probe envelopes were not stored within 120 s")
            time.sleep(0.2)
        if args.check:
            log("check: both stored the %d probe envelopes (Bugsink %s, ErrorCapture %s)"
                % (len(envelopes), bugsink.stored(), ec.stored()))
            return None
        log("load: %d s at %d connections per target, %d repeat(s); %d envelopes from %s in turn; "
            "wrk on CPU %s, servers on CPU %s" % (args.duration, args.connections, args.repeats, len(envelopes),
                                                 fixture_meta["sdk"], wrk_cpu if wrk_cpu is not None else "any",
                                                 server_cpus or "any"))
        load_before = os.getloadavg()
        raw = {"errorcapture": [], "bugsink": []}
        for rep in range(args.repeats):
            order = plan if rep % 2 == 0 else plan[::-1]
            for name, target, path, headers in order:
                raw[name].append(measure(target, name, path, headers, args, wrk_cpu, log))
        load_after = os.getloadavg()
    finally:
        for t in reversed(targets):
            t.close()
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for name in ("errorcapture", "bugsink"):
        runs = raw[name]
        rows.append(dict(target=name, runs=len(runs), connections=args.connections,
                         accepted=sum(r["accepted"] for r in runs), stored=sum(r["stored"] for r in runs),
                         all_stored=all(r["all_stored"] for r in runs),
                         non_2xx=sum(r["non_2xx"] for r in runs),
                         acknowledged_per_s=median([r["acknowledged_per_s"] for r in runs]),
                         p99_ms=median([r["p99_ms"] for r in runs]),
                         backlog_s=median([r["backlog_s"] for r in runs]),
                         stored_per_s=median([r["stored_per_s"] for r in runs]),
                         server_cpu_percent_load=median([r["server_cpu_percent_load"] for r in runs]),
                         cpu_ms_per_stored_event=median([r["cpu_ms_per_stored_event"] for r in runs]),
                         wrk_cpu_percent=median([r["wrk_cpu_percent"] for r in runs])))
    ec_rate, bs_rate = rows[0]["stored_per_s"], rows[1]["stored_per_s"]
    ratio = ec_rate / bs_rate if bs_rate else None
    result = dict(rows=rows, ratio=ratio, raw=raw, settings=dict(
        bugsink=version, bugsink_gunicorn_workers=bugsink.gunicorn_workers,
        bugsink_snappea_workers=bugsink.snappea["workers"], errorcapture_workers=args.workers, pin=args.pin,
        app=args.app, duration=args.duration, connections=args.connections,
        repeats=args.repeats, wrk_cpu=wrk_cpu, server_cpus=server_cpus, cpus=ncpu, sdk=fixture_meta["sdk"],
        envelopes=len(envelopes), loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in load_after]))
    print(render(result, args.markdown))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def render(result, markdown=False):
    s = result["settings"]
    cpus = ("both servers on every CPU, wrk pinned to CPU %s, which it shares with them" % s["wrk_cpu"]
            if s["wrk_cpu"] is not None and not s["server_cpus"] else
            "wrk on CPU %s, both servers on CPU %s" % (s["wrk_cpu"], s["server_cpus"])
            if s["wrk_cpu"] is not None else "no pinning")
    head = ("Peer comparison, end to end: %d s of load x %d repeat(s) per target at %d connections (medians); "
            "%d %s envelopes in turn; Bugsink %s (gunicorn %s sync workers from its gunicorn.docker.conf.py "
            "+ Snappea %s workers, singleserver configuration), ErrorCapture %s; %d CPUs, %s; load average "
            "%.2f before, %.2f after"
            % (s["duration"], s["repeats"], s["connections"], s["envelopes"], s["sdk"], s["bugsink"],
               s["bugsink_gunicorn_workers"], s["bugsink_snappea_workers"],
               "--workers %d" % s["errorcapture_workers"] if s["errorcapture_workers"] is not None
               else "with its default --workers", s["cpus"], cpus, s["loadavg_before"][0], s["loadavg_after"][0]))
    headers = ["target", "acknowledged", "stored", "non-2xx", "acknowledged/s", "p99 ms", "backlog s",
               "server CPU % under load", "server CPU ms/event", "wrk CPU %", "events stored/s end to end"]
    body = [[r["target"], run.fmt(r["accepted"]), run.fmt(r["stored"]) + ("" if r["all_stored"] else " (not all)"),
             run.fmt(r["non_2xx"]), run.fmt(r["acknowledged_per_s"]), run.fmt(r["p99_ms"], 1),
             run.fmt(r["backlog_s"], 1), run.fmt(r["server_cpu_percent_load"]),
             run.fmt(r["cpu_ms_per_stored_event"], 2), run.fmt(r["wrk_cpu_percent"]),
             run.fmt(r["stored_per_s"], 1)] for r in result["rows"]]
    ratio = result["ratio"]
    verdict = [["ErrorCapture vs Bugsink, events stored/s end to end >= %gx" % TARGET_RATIO,
                "%.1fx" % ratio if ratio is not None else "-",
                "PASS" if ratio is not None and ratio >= TARGET_RATIO else "FAIL"]]
    return "\n".join([head, "", run.table(headers, body, markdown), "",
                      run.table(["target", "measured", "result"], verdict, markdown, align=["l", "r", "l"])])


if __name__ == "__main__":
    main()
