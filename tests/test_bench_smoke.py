"""Smoke test of the benchmark harness (bench/run.py --quick).

Runs every scenario for about a second at one connection against a read
database of a few thousand events, then checks that the table has the expected
rows and that its numbers parse. It never asserts timings: the machine is shared
and noisy, and bench/README.md is where performance is judged.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", "run.py")

SCENARIOS = ["noop", "noop_writer", "api_php", "seestack_error", "sentry_envelope", "sentry_browser_minified",
             "sentry_browser_mapped", "sentry_browser", "open_sentry_batch20", "seestack_http_batch100",
             "read_errors_since", "read_issues", "read_issue_facets"]
STORAGE = ["api_php", "seestack_error", "sentry_envelope", "sentry_browser_minified", "sentry_browser_mapped",
           "sentry_browser", "open_sentry_batch20", "seestack_http_batch100"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None,
                       reason="wrk is not on PATH (Debian package wrk: apt-get install wrk); "
                              "the benchmark drives its load with it"),
]


def number(text):
    """A table cell as a float ('-' is None); raises if it does not parse."""
    text = text.strip()
    if text == "-":
        return None
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "result.json"
    proc = subprocess.run([sys.executable, RUN, "--quick", "--json", str(out), "--markdown"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert proc.returncode == 0, "bench/run.py --quick failed:\n%s\n%s" % (
        proc.stdout.decode(errors="replace")[-3000:], proc.stderr.decode(errors="replace")[-5000:])
    return proc.stdout.decode(), json.loads(out.read_text())


def table_rows(text, is_header):
    """The header line and {scenario: cells} of the plain-text table whose header matches."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if is_header(line))
    rows = {}
    for line in lines[header + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return lines[header], rows


def test_table_has_every_scenario_and_numbers_parse(quick_run):
    text, _ = quick_run
    header, rows = table_rows(text, lambda line: line.startswith("scenario "))
    assert header.split() == ["scenario", "conns", "req/s", "items/s", "p50", "ms", "p99", "ms",
                                     "vs", "no-op", "non-2xx", "RSS", "max", "MB", "RSS", "med", "MB",
                                     "CPU", "%", "CPU", "us/req", "spread", "%"]
    assert sorted(rows) == sorted(SCENARIOS)
    for name, cells in rows.items():
        assert len(cells) == 13, cells
        assert number(cells[1]) == 1  # --quick: one connection
        values = [number(c) for c in cells[2:]]
        assert all(v is None or v >= 0 for v in values), cells
        assert values[0] > 0, "no request completed for %s" % name  # requests/s
        assert number(cells[6]) is not None  # ratio to the baseline


def test_json_results(quick_run):
    _, result = quick_run
    by_name = {r["scenario"]: r for r in result["rows"]}
    assert sorted(by_name) == sorted(SCENARIOS)
    for r in result["rows"]:
        for field in ("requests_per_s", "items_per_s", "p50_ms", "p99_ms", "vs_noop", "rss_max_mb",
                      "rss_median_mb"):
            assert isinstance(r[field], (int, float)), (r["scenario"], field, r[field])
        assert r["requests"] > 0
        by_thread = r["cpu_us_per_request_by_thread"]
        assert sorted(by_thread) == sorted(["http loop", "workers", "writer", "other"]), r
        assert all(isinstance(v, int) and v >= 0 for v in by_thread.values()), (r["scenario"], by_thread)
        assert isinstance(r["cpu_us_per_request_threads_total"], int), r
        assert r["cpu_us_per_request_threads_total"] >= 0, r
        assert isinstance(r["cpu_us_per_request_extra_vs_noop"], int), r
    assert by_name["noop"]["vs_noop"] == 1.0
    assert by_name["noop"]["cpu_us_per_request_by_thread"]["writer"] == 0
    assert by_name["noop"]["cpu_us_per_request_extra_vs_noop"] == 0
    assert by_name["open_sentry_batch20"]["items_per_request"] == 20
    assert by_name["seestack_http_batch100"]["items_per_request"] == 100
    storage = {s["scenario"]: s for s in result["storage"]}
    assert sorted(storage) == sorted(STORAGE)
    for s in storage.values():
        assert s["stored_items"] and s["stored_items"] >= s["accepted_items"] > 0, s
        assert s["bytes_per_item"] > 0 and s["raw_bytes_per_item"] > 0
    assert result["targets"], "the run checks no target"
    # Every target passes or fails, except the one reference line: the floor.
    info = [t for t in result["targets"] if t["ok"] is None]
    assert [t["target"] for t in info] == ["floor: noop_writer @1 conns vs no-op (for reference)"]
    assert all(isinstance(t["ok"], bool) for t in result["targets"] if t not in info)


def test_floor_goes_through_the_writer(quick_run):
    """The floor baseline is the no-op route plus a real commit by ErrorCapture's
    writer thread: the writer does work there, and none in the plain no-op."""
    _, result = quick_run
    by_name = {r["scenario"]: r for r in result["rows"]}
    assert by_name["noop_writer"]["kind"] == "baseline"
    assert by_name["noop_writer"]["cpu_us_per_request_by_thread"]["writer"] > 0
    assert by_name["noop"]["cpu_us_per_request_by_thread"]["writer"] == 0


def test_markdown_table(quick_run):
    text, _ = quick_run
    md = [line for line in text.splitlines() if line.startswith("| ")]
    assert md[0].startswith("| scenario | conns | req/s | items/s | p50 ms | p99 ms | vs no-op |")
    assert any(line.startswith("| sentry_envelope | 1 |") for line in md)
    assert any(line.startswith("| scenario | conns | HTTP loop us/req | workers us/req | writer us/req |")
               for line in md)


def test_per_thread_cpu_table(quick_run):
    text, _ = quick_run
    _, rows = table_rows(text, lambda line: line.startswith("scenario ") and "HTTP loop" in line)
    assert sorted(rows) == sorted(SCENARIOS)
    for name, cells in rows.items():
        assert len(cells) == 8, cells
        values = [number(c) for c in cells[1:7]]
        assert all(v is not None and v >= 0 for v in values), cells
        number(cells[7])  # extra vs no-op: parses (it may be negative)
    assert number(rows["noop"][7]) == 0


def test_workers_table(quick_run):
    """api.php, Sentry envelopes and Open Sentry batches at 1 and (where
    errorcapture.py has --workers) 2 worker processes, each process's RSS
    measured, every acknowledged item stored."""
    text, result = quick_run
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run
    expected = [1, 2] if run.supports_workers(os.path.join(ROOT, "errorcapture.py")) else [1]
    rows = result["workers_rows"]
    assert sorted({(r["scenario"], r["workers"]) for r in rows}) == sorted(
        (name, w) for name in ("api_php", "sentry_envelope", "open_sentry_batch20") for w in expected)
    for r in rows:
        assert r["requests_per_s"] > 0 and r["vs_1_worker"] is not None, r
        assert r["processes"] >= r["workers"], r
        assert 0 < r["rss_max_mb_per_process"] <= r["rss_max_mb_total"], r
        assert r["stored_items"] >= r["accepted_items"] > 0, r
    assert "Workers (errorcapture --workers N" in text
    header, _ = table_rows(text, lambda line: line.startswith("scenario ") and "vs 1 worker" in line)
    assert header.split()[:3] == ["scenario", "workers", "conns"]


def test_workers_table_says_how_the_cpus_were_shared(quick_run):
    """The workers table names wrk's CPU and what wrk and the servers used."""
    text, result = quick_run
    line = next(l for l in text.splitlines() if l.startswith("Workers (errorcapture --workers N"))
    assert "every server is started on every CPU" in line and "CPU, all their processes together" in line
    for r in result["workers_rows"]:
        # each worker's CPUs, read at the end of each load: within the CPUs it was started on
        for text in r["cpus"].split():
            parts = text.split("|")
            assert len(parts) == r["workers"], r
            for part in parts:
                allowed = set()
                for piece in part.replace("/", ",").split(","):
                    low, _, high = piece.partition("-")
                    allowed.update(range(int(low), int(high or low) + 1))
                assert allowed and allowed <= set(os.sched_getaffinity(0)), r
    if result["settings"]["wrk_cpu"] is not None:
        assert "wrk pinned to CPU %d" % result["settings"]["wrk_cpu"] in line
    for r in result["workers_rows"]:
        assert 0 <= r["wrk_cpu_percent"] <= 100 and r["server_cpu_percent"] >= 0, r
        # CPU per item of all the server's processes, and of the writer threads alone (the serial part)
        assert r["cpu_us_per_item"] > 0 and r["writer_us_per_item"] is not None, r
        assert 0 <= r["writer_us_per_item"] <= r["cpu_us_per_item"], r
    for r in result["rows"]:
        assert r["wrk_cpu_percent"] is not None and r["wrk_cpu_percent"] >= 0, r


def test_no_collapse_and_workers_targets_are_checked_per_step():
    """More connections never fewer req/s: every step of every series of the
    main and the workers table is checked (a drop within the stated noise
    passes, a larger one fails), and RSS per process is checked."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run
    args = run.parse_args(["--connections", "8,32,64", "--scenarios", "api_php,open_sentry_batch20"])

    def row(name, conns, rps, **extra):
        return dict(dict(scenario=name, kind=run.BY_NAME[name].kind, connections=conns, requests_per_s=rps,
                         items_per_s=rps * run.BY_NAME[name].items, vs_noop=0.5, p99_ms=1.0, rss_max_mb=50.0,
                         rss_median_mb=40.0), **extra)
    rows = [row("api_php", 8, 1000), row("api_php", 32, 990), row("api_php", 64, 700),
            row("open_sentry_batch20", 8, 100), row("open_sentry_batch20", 32, 120),
            row("open_sentry_batch20", 64, 130)]
    workers = [row(name, conns, rps, workers=w, vs_1_worker=vs, rss_max_mb_per_process=rss, stored_items=None)
               for name, w, conns, rps, vs, rss in [
                   ("api_php", 1, 8, 800, 1.0, 60.0), ("api_php", 1, 32, 780, 1.0, 61.0),
                   ("api_php", 1, 64, 790, 1.0, 62.0),
                   ("api_php", 2, 8, 900, 1.1, 55.0), ("api_php", 2, 32, 1200, 1.54, 81.5),
                   ("api_php", 2, 64, 1300, 1.65, 56.0)]]
    targets = {t["target"]: t for t in run.check_targets(args, rows, [], None, workers)}

    def result(prefix):
        [t] = [t for name, t in targets.items() if name.startswith(prefix)]
        return t
    assert result("api_php: more")["ok"] is False
    assert "-29%" in result("api_php: more")["measured"]   # 990 -> 700 at 64
    assert result("open_sentry_batch20: more")["ok"] is True
    assert result("api_php, 1 worker(s): more")["ok"] is True          # 800 -> 780 (-2.5%): noise
    assert result("api_php, 2 worker(s): more")["ok"] is True
    assert result("api_php @32 conns: 2 workers >= 1.5x")["ok"] is True  # the 32, not the run's 64
    assert result("RSS per process < 80 MB")["ok"] is False
    assert "81.5 MB" in result("RSS per process < 80 MB")["measured"]


def test_before_after_in_one_run(tmp_path):
    """--workers-only --old-app: only the workers table, for two copies of
    errorcapture.py interleaved, and new / old per row."""
    out = tmp_path / "result.json"
    old = tmp_path / "ec_old.py"
    shutil.copy(os.path.join(ROOT, "errorcapture.py"), old)
    proc = subprocess.run([sys.executable, RUN, "--quick", "--workers-only", "--workers-scenarios", "api_php",
                           "--old-app", str(old), "--old-server-arg=--log-level=warning", "--json", str(out)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-5000:]
    result = json.loads(out.read_text())
    text = proc.stdout.decode()
    assert result["rows"] == [] and result["storage"] == []
    assert [(r["scenario"], r["workers"]) for r in result["workers_rows"]] == [("api_php", 1), ("api_php", 2)]
    assert [(r["scenario"], r["workers"]) for r in result["old_workers_rows"]] == [("api_php", 1), ("api_php", 2)]
    for r in result["before_after"]:
        assert r["ratio"] == round(r["new_items_per_s"] / r["old_items_per_s"], 2) and r["ratio"] > 0, r
    assert "Before/after: items/s of" in text and str(old) in text
    # --old-server-arg: the old servers' own setting, and only theirs
    assert "Before/after: items/s of %s (new) against %s --log-level=warning (old)" % (
        os.path.join(ROOT, "errorcapture.py"), old) in text
    for label, info in result["started_from"].items():
        assert ("--log-level=warning" in info["argv"]) == label.endswith("@old"), info
    # Each server ran the file it was meant to, in every worker: the old one a
    # copy of ec_old.py named errorcapture.py (what a worker of any revision
    # loads), never the checkout's errorcapture.py.
    started = result["started_from"]
    assert sorted(started) == ["api_php@w1", "api_php@w1@old", "api_php@w2", "api_php@w2@old"]
    for label, info in started.items():
        assert os.path.basename(info["app"]) == "errorcapture.py", info
        if label.endswith("@old"):
            assert info["app"] != os.path.join(ROOT, "errorcapture.py")
            assert info["sha256"] == hashlib.sha256(old.read_bytes()).hexdigest()
        commands = info["worker_commands"]
        assert len(commands) == (2 if "@w2" in label else 0), info
        for line in commands:
            assert repr(info["app"]) in line or repr(os.path.dirname(info["app"])) in line, line
