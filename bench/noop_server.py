"""No-op baseline for the benchmark: the same stack as ErrorCapture (bottle on
waitress made by errorcapture.create_server, same thread count and GIL switch
interval) with a route that only reads the request body and answers {"ok": true}.

Whatever requests/s this reaches is the ceiling our HTTP stack allows on this
machine; bench/run.py reports every ErrorCapture scenario as a ratio to it.

With --writer-db the route also hands one tiny insert to ErrorCapture's own
Writer thread and answers only after that group commit: the floor under any
ingest where "acknowledged" means "committed by the one writer".

    python bench/noop_server.py --port 8099 [--threads 8] [--switch-interval 0.005] [--writer-db PATH]
"""
import argparse
import logging
import sys

import os

import bottle

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from errorcapture import Writer, connect, create_server, run_until_stopped  # noqa: E402  the very server setup and writer ErrorCapture uses

app = bottle.Bottle()
writer = None  # with --writer-db: errorcapture's own Writer thread


def insert_one_row(conn):
    conn.execute("INSERT INTO acks(at) VALUES (1)")


@app.route("/", method=["GET", "POST", "PUT"])
@app.route("/<path:path>", method=["GET", "POST", "PUT"])
def noop(path=""):
    bottle.request.body.read()
    if writer is not None and bottle.request.method == "POST":
        # The least "acknowledged means committed" can cost: one hand-off to
        # the writer thread, a one-row insert in its group commit, the wake-up.
        writer.submit(insert_one_row)
    return {"ok": True}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--switch-interval", type=float, default=None,
                   help="sys.setswitchinterval value (seconds); default: leave as is")
    p.add_argument("--waitress-opt", action="append", default=[], metavar="NAME=VALUE",
                   help="extra waitress.serve() keyword (int if it parses), repeatable")
    p.add_argument("--writer-db", default=None, metavar="PATH",
                   help="also commit one row per POST through errorcapture's Writer on this database "
                        "(the floor of an acknowledged-means-committed ingest)")
    a = p.parse_args(argv)
    if a.writer_db:
        global writer
        setup = connect(a.writer_db)
        setup.execute("CREATE TABLE IF NOT EXISTS acks(id INTEGER PRIMARY KEY, at INTEGER)")
        setup.close()
        writer = Writer(a.writer_db)
        writer.start()
        writer.started_ok.wait(30)
    if a.switch_interval is not None:
        sys.setswitchinterval(a.switch_interval)
    extra = {}
    for opt in a.waitress_opt:
        k, _, v = opt.partition("=")
        try:
            extra[k] = int(v)
        except ValueError:
            extra[k] = v
    options = dict(ident="noop")
    options.update(extra)
    # waitress warns "Task queue depth is N" whenever every worker is busy; a
    # baseline that printed that under load would measure logging, not the stack.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    run_until_stopped(create_server(app, a.host, a.port, a.threads, **options))


if __name__ == "__main__":
    main()
