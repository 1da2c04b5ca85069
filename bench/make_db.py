#!/usr/bin/env python3
"""Make the read benchmark's database: N error events in one project, written
through ErrorCapture's own store (store.events.add), so grouping into issues,
issue counts and hourly histograms are exactly what ingest would have made.

    python bench/make_db.py --db /tmp/read.db --events 1000000

Writes the database and, beside it, <db>.meta.json with the project key, the
event count and the `since` id that bench/run.py polls from.

The events mix the shapes the server sees: /api.php submissions (built by the
/api.php adapter) and exception events with stack frames (Sentry-like), spread
over about 2,000 issues with a skewed distribution (a few issues hold most
events) and received times over the last 7 days, newest last.
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_app(path):
    spec = importlib.util.spec_from_file_location("errorcapture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["errorcapture"] = module
    spec.loader.exec_module(module)
    return module


PHP_MESSAGES = ["Undefined index %d", "Undefined variable $user%d", "Division by zero in report %d",
                "Call to a member function get() on null (order %d)", "Trying to access array offset %d",
                "mysqli_query(): MySQL server has gone away (query %d)"]
EXC_TYPES = ["TypeError", "KeyError", "ValueError", "AttributeError", "ZeroDivisionError",
             "RuntimeError", "ConnectionError", "IndexError"]
MODULES = ["shop.views", "shop.models", "shop.cart", "shop.payments", "shop.auth", "shop.search",
           "shop.api", "shop.tasks", "shop.mail", "shop.reports"]
REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
FUNCTIONS = ["checkout", "load_user", "apply_coupon", "charge", "render_cart", "search", "sync_stock",
             "send_receipt", "login", "export_csv", "resize_image", "total", "refund", "ship"]


def api_php_event(ec):
    """The /api.php adapter (named errorcapture_event before the structure pass;
    a before/after comparison runs this script against both)."""
    return getattr(ec, "api_php_event", None) or ec.errorcapture_event


def make_events(ec, count, start_index, issues, rng, t0, span):
    """`count` model events for issue numbers drawn from a skewed distribution."""
    events = []
    for n in range(start_index, start_index + count):
        # Pareto-like: low issue numbers are much more frequent; issue 0, a
        # Sentry-like one with tags, holds about 11% (114,000 of 1,000,000),
        # the issue read_issue_facets reads
        issue = min(issues - 1, int(issues * (rng.random() ** 3.5)))
        received = t0 + span * n / TOTAL[0]
        if issue % 3 == 2:
            message = PHP_MESSAGES[issue % len(PHP_MESSAGES)] % (issue // 3)
            event = api_php_event(ec)({
                "hash": "bench", "level": ["Warning", "Notice", "Fatal Error"][(issue // 3) % 3],
                "message": message, "file": "/var/www/app/%s.php" % FUNCTIONS[issue % len(FUNCTIONS)],
                "line": 10 + issue, "hostname": "web-%d" % (n % 4)})
            event["received"] = event["timestamp"] = received
        else:
            frames = []
            depth = 3 + issue % 4
            for d in range(depth):
                module = MODULES[(issue + d) % len(MODULES)]
                function = FUNCTIONS[(issue * 7 + d) % len(FUNCTIONS)]
                if d == depth - 1:  # the raising frame: one per issue, so issues stay distinct
                    function += "_%d" % issue
                frames.append(ec.frame(filename=module.replace(".", "/") + ".py",
                                       abs_path="/srv/" + module.replace(".", "/") + ".py",
                                       function=function, module=module, lineno=10 + d * 7 + issue % 50,
                                       in_app=True, context_line="    return %s(request)" % function))
            exc = ec.exception_entry(EXC_TYPES[issue % len(EXC_TYPES)], "issue %d case %d" % (issue, n % 97),
                                     frames=frames, mechanism={"type": "generic", "handled": False})
            event = ec.make_error_event(
                "sentry", level="error", exception=[exc], timestamp=received, received=received,
                event_id=uuid.UUID(int=rng.getrandbits(128)).hex, environment="production",
                release="shop@1.%d.0" % (n * 10 // TOTAL[0]), server_name="web-%d" % (n % 4),
                platform="python", tags={"region": REGIONS[n % len(REGIONS)], "url": "/checkout"},
                contexts={"browser": {"name": BROWSERS[n % 7 % len(BROWSERS)], "version": str(100 + n % 20)},
                          "os": {"name": "Windows" if n % 3 else "macOS", "version": str(10 + n % 4)}},
                user={"id": str(n % 5000)}, transaction="/" + FUNCTIONS[issue % len(FUNCTIONS)])
        events.append(event)
    return events


TOTAL = [1]


def main(argv=None):
    p = argparse.ArgumentParser(description="make the read benchmark's database")
    p.add_argument("--db", required=True)
    p.add_argument("--events", type=int, default=1000000)
    p.add_argument("--issues", type=int, default=2000)
    p.add_argument("--days", type=float, default=7.0, help="received times span this many days up to now")
    p.add_argument("--batch", type=int, default=2000, help="events per store.events.add call (one transaction)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--app", default=os.path.join(ROOT, "errorcapture.py"))
    a = p.parse_args(argv)

    if os.path.exists(a.db):
        raise SystemExit("%s exists; remove it first" % a.db)
    ec = load_app(a.app)
    if not (hasattr(ec, "api_php_event") or hasattr(ec, "errorcapture_event")):
        raise SystemExit("errorcapture.py has no api_php_event(); make_db.py needs it")
    for name in ("Store", "make_error_event", "finish_grouping", "frame", "exception_entry"):
        if not hasattr(ec, name):
            raise SystemExit("errorcapture.py has no %s(); make_db.py needs it" % name)
    rng = random.Random(a.seed)
    TOTAL[0] = max(1, a.events)
    store = ec.Store(a.db)
    project = store.create_project(name="bench-read")
    # Store.add_events before the structure pass (see api_php_event)
    add_events = store.events.add if hasattr(store, "events") else store.add_events
    t_start = time.time()
    span = a.days * 86400
    t0 = time.time() - span
    done, last_report = 0, t_start
    ids = []
    try:
        while done < a.events:
            n = min(a.batch, a.events - done)
            events = make_events(ec, n, done, a.issues, rng, t0, span)
            results = add_events(project["id"], events)
            ids.append(results[-1]["id"])
            done += n
            if time.time() - last_report > 10:
                last_report = time.time()
                rate = done / (last_report - t_start)
                print("make_db: %d/%d events, %.0f/s" % (done, a.events, rate), file=sys.stderr, flush=True)
    finally:
        store.close()
    elapsed = time.time() - t_start
    last_id = ids[-1] if ids else 0
    meta = {"events": a.events, "key": project["key"], "projectId": project["id"], "issues": a.issues,
            "lastId": last_id, "since": max(0, last_id - 20), "seconds": round(elapsed, 1),
            "eventsPerSecond": round(a.events / elapsed, 1) if elapsed else None}
    with open(a.db + ".meta.json", "w") as f:
        json.dump(meta, f, indent=1)
    print("make_db: %d events in %.1f s (%.0f/s) -> %s" % (a.events, elapsed, a.events / max(elapsed, 1e-9),
                                                          a.db), file=sys.stderr)
    return meta


if __name__ == "__main__":
    main()
