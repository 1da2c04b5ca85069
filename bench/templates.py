"""Request bodies for the benchmark scenarios.

Every builder returns the body as text in which bench/scenario.lua replaces
  %%EID%%  with one fresh 32-hex id per request (the Sentry event_id), and
  %%ID%%   with a fresh 32-hex id at each occurrence (batch items, trace ids).
Both placeholders become exactly 32 characters, so lengths computed here with
expand() are the lengths wrk sends.
"""
import json
import time
from datetime import datetime, timezone

ID_WIDTH = 32


def expand(text, fill="0"):
    """The template with its placeholders replaced by 32-character ids."""
    return text.replace("%%EID%%", fill * ID_WIDTH).replace("%%ID%%", fill * ID_WIDTH)


def iso_now(offset=0.0):
    ts = time.time() + offset
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# -- ErrorCapture /api.php ------------------------------------------------------

def api_php(key):
    """The single event of the issue text, exactly. It carries no id of its
    own (the dialect has none); every POST stores a new event."""
    return json.dumps({"hash": key, "level": "Warning", "message": "Undefined index 17",
                       "file": "/var/www/a.php", "line": 42})


# -- SeeStack --------------------------------------------------------------------

def seestack_error():
    """One SeeStack error like the SeeStack JS SDK sends; the user id differs per
    request so no two bodies are alike."""
    return json.dumps({
        "exceptionClass": "TypeError",
        "message": "Cannot read properties of undefined (reading 'userId')",
        "stackTrace": [
            "at getUserId (auth.js:42:18)",
            "at validateSession (session.js:17:5)",
            "at Object.<anonymous> (index.js:88:3)",
        ],
        "level": "error",
        "environment": "production",
        "release": "v2.1.0",
        "user": {"id": "usr_%%ID%%"},
        "metadata": {"route": "/dashboard", "browser": "Chrome 120"},
    })


HTTP_PATHS = [("GET", "/api/orders", 200, 12), ("GET", "/api/users/me", 200, 7),
              ("POST", "/api/cart", 201, 35), ("GET", "/api/products", 200, 18),
              ("GET", "/health", 200, 1), ("POST", "/api/login", 401, 9)]


def seestack_http_requests(count=100):
    """A SeeStack batch of `count` HTTP request telemetry records."""
    ts = iso_now()
    records = []
    for i in range(count):
        method, path, status, ms = HTTP_PATHS[i % len(HTTP_PATHS)]
        records.append({"traceId": "%%ID%%", "direction": "inbound", "method": method,
                        "host": "api.myapp.com", "path": path, "statusCode": status,
                        "durationMs": ms + i % 7, "requestSize": 0, "responseSize": 64,
                        "timestamp": ts})
    return compact({"requests": records})


# -- Open Sentry -----------------------------------------------------------------

def open_sentry_batch(count=20):
    """An Open Sentry batch of `count` error items (the maximum it allows is 20)."""
    ts = iso_now()
    item = {
        "type": "error",
        "exception": {
            "type": "TypeError",
            "value": "Cannot read property 'x' of undefined",
            "stacktrace": {"frames": [
                {"filename": "app/layout.tsx", "function": "RootLayout", "lineno": 12, "colno": 3, "inApp": True},
                {"filename": "app/page.tsx", "function": "Page", "lineno": 30, "colno": 9, "inApp": True},
                {"filename": "app/page.tsx", "function": "loadData", "lineno": 42, "colno": 12, "inApp": True},
            ]},
        },
        "breadcrumbs": [
            {"category": "navigation", "message": "User opened settings", "level": "info", "timestamp": ts},
            {"category": "fetch", "message": "GET /api/settings [200]", "level": "info", "timestamp": ts},
        ],
        "tags": {"region": "us-east"},
        "user": {"id": "user_%%ID%%"},
        "environment": "production",
        "release": "web@2.4.1",
        "timestamp": ts,
    }
    return compact([item] * count)


# -- Sentry SDK envelope -----------------------------------------------------------

SOURCE = [
    "from shop.models import Order, User",
    "from shop.cache import cache",
    "",
    "def load_user(user_id):",
    "    users = cache.get_many([user_id])",
    "    return users[user_id]",
    "",
    "def checkout(request):",
    "    user = load_user(request.session['user_id'])",
    "    order = Order.open_for(user)",
    "    return order.total()",
]


def _frame(function, module, lineno, context, pre, post, vars_):
    filename = module.replace(".", "/") + ".py"
    return {"filename": filename, "abs_path": "/srv/shop/" + filename, "function": function,
            "module": module, "lineno": lineno, "pre_context": pre, "context_line": context,
            "post_context": post, "vars": vars_, "in_app": True}


def sentry_event(target_bytes=3000):
    """A Python exception event in the shape sentry-sdk 2.x captures it (frames
    with source context and local variables, breadcrumbs, contexts, sdk), about
    target_bytes of compact JSON. event_id is %%EID%%, trace_id is %%ID%%."""
    now = iso_now()
    crumbs = [
        {"category": "http", "message": "GET /cart", "level": "info", "timestamp": now, "type": "http",
         "data": {"method": "GET", "url": "https://shop.example.com/cart", "status_code": 200}},
        {"category": "query", "message": "SELECT id, email FROM users WHERE id = %s", "level": "info",
         "timestamp": now, "type": "default"},
        {"category": "cache", "message": "cache.get_many ['user:17']", "level": "info",
         "timestamp": now, "type": "default"},
    ]
    event = {
        "event_id": "%%EID%%",
        "level": "error",
        "platform": "python",
        "timestamp": now,
        "server_name": "web-3",
        "release": "shop@1.4.2",
        "environment": "production",
        "transaction": "/checkout",
        "exception": {"values": [{
            "type": "KeyError",
            "value": "17",
            "module": None,
            "mechanism": {"type": "django", "handled": False},
            "stacktrace": {"frames": [
                _frame("checkout", "shop.views", 9, SOURCE[8], SOURCE[3:8], SOURCE[9:11],
                       {"request": "<WSGIRequest: POST '/checkout'>"}),
                _frame("load_user", "shop.views", 6, SOURCE[5], SOURCE[0:5], SOURCE[6:9],
                       {"user_id": "17", "users": {}}),
            ]},
        }]},
        "breadcrumbs": {"values": crumbs},
        "contexts": {
            "trace": {"trace_id": "%%ID%%", "span_id": "89b539dd304c1c72", "parent_span_id": None,
                      "op": "http.server", "status": "internal_error"},
            "runtime": {"name": "CPython", "version": "3.11.7",
                        "build": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]"},
            "os": {"name": "Linux", "version": "6.1.0"},
        },
        "request": {"method": "POST", "url": "https://shop.example.com/checkout",
                    "query_string": "", "headers": {"Host": "shop.example.com",
                                                    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
                                                    "Accept": "text/html"}},
        "user": {"id": "17", "ip_address": "{{auto}}"},
        "tags": {"url": "/checkout", "browser": "Firefox 130"},
        "extra": {"sys.argv": ["gunicorn", "shop.wsgi"]},
        "sdk": {"name": "sentry.python.django", "version": "2.75.0",
                "packages": [{"name": "pypi:sentry-sdk", "version": "2.75.0"}],
                "integrations": ["argv", "atexit", "dedupe", "django", "excepthook", "logging",
                                 "modules", "stdlib", "threading"]},
    }
    # Grow to the target with more breadcrumbs, as a longer-lived request would have.
    n = 0
    while len(expand(compact(event))) < target_bytes - 120:
        crumbs.append({"category": "query", "message": "SELECT * FROM orders WHERE user_id = %%s LIMIT %d" % n,
                       "level": "info", "timestamp": now, "type": "default"})
        n += 1
    return compact(event)


def sentry_envelope(key, dsn, target_bytes=3000):
    """(body, event_bytes): a Sentry envelope as sentry-sdk sends it, uncompressed
    (sentry-sdk's transport_compression_level=0): envelope header, item header
    with the exact length, event JSON."""
    event = sentry_event(target_bytes)
    length = len(expand(event).encode("utf-8"))
    header = compact({"event_id": "%%EID%%", "sent_at": iso_now(), "dsn": dsn,
                      "trace": {"trace_id": "%%ID%%", "environment": "production",
                                "release": "shop@1.4.2", "public_key": key}})
    item = compact({"type": "event", "content_type": "application/json", "length": length})
    return header + "\n" + item + "\n" + event + "\n", length


# -- Browser errors from a minified bundle (source maps) -------------------------

BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
BUNDLE_DEBUG_ID = "5f0c1a7e-93b4-4c2d-8e61-7a2b9c3d4e5f"
BUNDLE_URL = "http://shop.example/static/app.min.js"


def _vlq(number):
    value = (-number << 1) | 1 if number < 0 else number << 1
    out = ""
    while True:
        digit, value = value & 31, value >> 5
        out += BASE64[digit | (32 if value else 0)]
        if not value:
            return out


def minified_bundle(files=20, lines=200, segments=40000):
    """(minified JavaScript, its source map as bytes, [(line, column) of 10
    frames]) for an app of `files` sources of `lines` lines, minified to one
    line with `segments` mappings: about the size of a small production app
    (a ~400 KB map), so parsing it costs what a real one does."""
    names = ["fn%d" % i for i in range(200)]
    sources = ["webpack://shop/./src/module%02d.js" % i for i in range(files)]
    contents = ["\n".join("export function fn%d_%d(a) { return a + %d; } // %s" % (f, n, n, "x" * 10)
                          for n in range(lines)) for f in range(files)]
    parts, prev = [], [0, 0, 0, 0]
    column = 0
    for i in range(segments):
        source, line, original = i % files, (i // files) % lines, (i * 7) % 40
        fields = [5, source - prev[0], line - prev[1], original - prev[2]]
        prev[:3] = [source, line, original]
        if i % 10 == 0:
            fields.append((i // 10) % len(names) - prev[3])
            prev[3] = (i // 10) % len(names)
        parts.append("".join(_vlq(f) for f in fields))
        column += 5
    mappings = "A" + "," + ",".join(parts) if parts else ""
    minified = "!function(){" + "e.x=1;" * (column // 6 + 2) + "}();\n//# debugId=" + BUNDLE_DEBUG_ID + "\n"
    smap = json.dumps({"version": 3, "sources": sources, "sourcesContent": contents, "names": names,
                       "mappings": mappings, "debug_id": BUNDLE_DEBUG_ID}).encode()
    frames = [(1, 5 * (3989 * k + 17) + 3) for k in range(10)]
    return minified, smap, frames


def artifact_bundle(minified, smap, debug_id=BUNDLE_DEBUG_ID):
    """The bundle `sentry-cli sourcemaps upload` sends: 'SYSB', version 2,
    then a zip with manifest.json and files/."""
    import io
    import struct
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("files/_/_/static/app.min.js", minified)
        archive.writestr("files/_/_/static/app.min.js.map", smap)
        archive.writestr("manifest.json", json.dumps({"files": {
            "files/_/_/static/app.min.js": {"type": "minified_source", "url": "~/static/app.min.js",
                                            "headers": {"debug-id": debug_id, "sourcemap": "app.min.js.map"}},
            "files/_/_/static/app.min.js.map": {"type": "source_map", "url": "~/static/app.min.js.map",
                                                "headers": {"debug-id": debug_id}}},
            "debug_id": debug_id, "org": "bench", "project": "bench"}))
    return b"SYSB" + struct.pack("<I", 2) + out.getvalue()


def browser_envelope(key, dsn, frames, debug_id=BUNDLE_DEBUG_ID):
    """(body, event_bytes): a @sentry/browser error envelope: an uncaught
    TypeError with 10 minified frames in one bundle and the debug id the
    SDK reads from the page (debug_meta.images)."""
    event = compact({
        "event_id": "%%EID%%", "timestamp": time.time(), "platform": "javascript", "level": "error",
        "release": "shop@1.4.2", "environment": "production",
        "sdk": {"name": "sentry.javascript.browser", "version": "10.5.0"},
        "request": {"url": "http://shop.example/checkout", "headers": {"User-Agent": "Mozilla/5.0 Chrome/140"}},
        "exception": {"values": [{"type": "TypeError", "value": "Cannot read properties of undefined (reading 'id')",
                                  "mechanism": {"type": "onerror", "handled": False},
                                  "stacktrace": {"frames": [
                                      {"filename": BUNDLE_URL, "function": "e%d" % i, "lineno": line,
                                       "colno": column, "in_app": True} for i, (line, column) in enumerate(frames)]}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": BUNDLE_URL, "debug_id": debug_id}]}})
    length = len(expand(event).encode("utf-8"))
    header = compact({"event_id": "%%EID%%", "sent_at": iso_now(), "dsn": dsn,
                      "sdk": {"name": "sentry.javascript.browser", "version": "10.5.0"}})
    item = compact({"type": "event", "length": length})
    return header + "\n" + item + "\n" + event + "\n", length


# -- Sentry, browser-shaped --------------------------------------------------------

def _browser_error(event_id, trace_id, replay_id, now):
    """A TypeError as @sentry/browser captures it: minified-looking frames of a
    bundle, the breadcrumbs a page collects (clicks, console, fetch, navigation)."""
    crumbs = [{"timestamp": now - 5 + i * 0.2, "category": category, "message": message}
              for i, (category, message) in enumerate([
                  ("navigation", None), ("ui.click", "body > div#app > nav > a.cart"),
                  ("console", "cart loaded"), ("ui.input", "body > form > input#email"),
                  ("ui.click", "body > form > button#pay")])]
    crumbs += [{"timestamp": now - 1, "category": "fetch", "type": "http",
                "data": {"method": "POST", "url": "/api/checkout", "status_code": 500}},
               {"timestamp": now - 0.5, "category": "console", "level": "error",
                "message": "checkout failed", "data": {"logger": "console", "arguments": ["checkout failed"]}}]
    bundle = "https://shop.example.com/assets/index-BkTq3xY2.js"
    frames = [{"filename": bundle, "function": name, "in_app": True, "lineno": 1, "colno": col}
              for name, col in (("HTMLButtonElement.<anonymous>", 48213), ("pay", 51022), ("chargeCard", 51877))]
    return {"event_id": event_id, "timestamp": now, "platform": "javascript", "level": "error",
            "environment": "production", "release": "shop-web@2.0.0", "transaction": "/checkout",
            "exception": {"values": [{"type": "TypeError",
                                      "value": "Cannot read properties of undefined (reading 'card')",
                                      "stacktrace": {"frames": frames},
                                      "mechanism": {"type": "auto.browser.global_handlers.onerror", "handled": False}}]},
            "breadcrumbs": crumbs, "tags": {"replayId": replay_id},
            "request": {"url": "https://shop.example.com/checkout",
                        "headers": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36"}},
            "contexts": {"trace": {"trace_id": trace_id, "span_id": "84f2531ecd162b2c"},
                         "culture": {"locale": "en-US", "timezone": "UTC"}},
            "sdk": {"name": "sentry.javascript.browser", "version": "11.12.0",
                    "integrations": ["BrowserTracing", "Replay", "Breadcrumbs", "GlobalHandlers", "Dedupe"]}}


def _attributes(values):
    typed = {}
    for key, value in values.items():
        kind = ("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int)
                else "double" if isinstance(value, float) else "string")
        typed[key] = {"value": value, "type": kind}
    return typed


def _browser_page_load(trace_id, span_ids, replay_id, now):
    """A page load as @sentry/browser 11 streams it: one span v2 container with
    the navigation-timing, resource and paint child spans and the segment span
    (web vitals TTFB/FCP as attributes), as captured from the real SDK."""
    start = now - 3
    segment = span_ids[0]
    common = {"sentry.origin": "auto.resource.browser.metrics", "sentry.segment.name": "Pageload",
              "sentry.segment.id": segment, "sentry.sdk.name": "sentry.javascript.browser",
              "sentry.sdk.version": "11.12.0", "sentry.release": "shop-web@2.0.0",
              "sentry.environment": "production", "sentry.trace_lifecycle": "stream", "sentry.replay_id": replay_id}
    children = [("browser.request", "Request", 0.01, 0.05), ("browser.response", "Response", 0.05, 0.06),
                ("browser.dom_content_loaded_event", "DOMContentLoaded event", 0.3, 0.31),
                ("resource.script", "/assets/index-BkTq3xY2.js", 0.07, 0.21),
                ("resource.css", "/assets/index-C1x9.css", 0.07, 0.12),
                ("resource.img", "/img/hero.webp", 0.15, 0.4), ("browser.paint", "first-contentful-paint", 0.5, 0.5),
                ("ui.long_animation_frame", "Main UI thread blocked", 0.6, 0.75),
                ("http.client", "GET /api/cart", 0.8, 0.95), ("browser.load_event", "Load event", 1.0, 1.04)]
    items = []
    for span_id, (op, name, begin, end) in zip(span_ids[1:], children):
        items.append({"name": name, "span_id": span_id, "trace_id": trace_id, "parent_span_id": segment,
                      "start_timestamp": start + begin, "end_timestamp": start + end, "is_segment": False,
                      "status": "ok", "attributes": _attributes(dict(common, **{"sentry.op": op}))})
    items.append({"name": "Pageload", "span_id": segment, "trace_id": trace_id, "start_timestamp": start,
                  "end_timestamp": start + 1.2, "is_segment": True, "status": "ok",
                  "attributes": _attributes(dict(common, **{
                      "sentry.op": "pageload", "sentry.origin": "auto.pageload.browser",
                      "sentry.segment.name.source": "url", "url.path": "/checkout",
                      "url.full": "https://shop.example.com/checkout", "sentry.sample_rate": 1,
                      "browser.web_vital.ttfb.value": 61.2, "browser.web_vital.fcp.value": 604,
                      "browser.web_vital.fp.value": 604,
                      "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36"}))})
    return {"version": 2, "ingest_settings": {"infer_ip": "auto", "infer_user_agent": "auto"}, "items": items}


def sentry_browser_pool(key, dsn, count=2048, compress=None):
    """(bodies, event_bytes, encoding): `count` distinct pairs of envelopes as a
    page with @sentry/browser sends them, an error (with breadcrumbs) then its
    page load's spans, each envelope compressed as the Python SDK would (br with
    the brotli package, else gzip). Compressed bodies cannot take wrk's id
    placeholders, so every pair gets its own ids here and wrk cycles the pool."""
    import gzip
    import random
    try:
        import brotli
    except ImportError:
        brotli = None
    encoding = compress or ("br" if brotli else "gzip")
    pack = (lambda data: brotli.compress(data, quality=4)) if encoding == "br" else \
        (lambda data: gzip.compress(data, compresslevel=6))
    rand = random.Random(15)
    hexid = lambda width: "%0*x" % (width, rand.getrandbits(width * 4))
    bodies, event_bytes = [], 0
    for _ in range(count):
        trace_id, replay_id, event_id, now = hexid(32), hexid(32), hexid(32), time.time()
        trace = {"trace_id": trace_id, "environment": "production", "release": "shop-web@2.0.0",
                 "public_key": key, "replay_id": replay_id, "sampled": "true", "sample_rate": "1"}
        sdk = {"name": "sentry.javascript.browser", "version": "11.12.0"}
        error = compact(_browser_error(event_id, trace_id, replay_id, now))
        event_bytes = len(error)
        bodies.append(pack(("%s\n%s\n%s\n" % (
            compact({"event_id": event_id, "sent_at": iso_now(), "sdk": sdk, "trace": trace}),
            compact({"type": "event"}), error)).encode()))
        spans = compact(_browser_page_load(trace_id, [hexid(16) for _ in range(11)], replay_id, now))
        bodies.append(pack(("%s\n%s\n%s\n" % (
            compact({"sent_at": iso_now(), "trace": trace, "sdk": sdk}),
            compact({"type": "span", "item_count": 11, "content_type": "application/vnd.sentry.items.span.v2+json"}),
            spans)).encode()))
    return bodies, event_bytes, encoding


def pool_file(bodies):
    """The body pool format bench/scenario.lua cycles through: a magic line, then
    per body its length in bytes on a line of its own and the bytes."""
    return b"WRKPOOL\n" + b"".join(b"%d\n%s" % (len(body), body) for body in bodies)
