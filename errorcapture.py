#!/usr/bin/env python3
"""ErrorCapture: a self-hosted error tracker in one file.

Run ``python errorcapture.py`` and point applications at it. It speaks four ingest
dialects (the ErrorCapture ``/api.php`` API, SeeStack, Open Sentry and the Sentry SDK
protocol), stores everything in one SQLite file, groups errors into issues and serves
a live viewer plus a JSON read API.

The module reads top to bottom, each section using only those above it:

    helpers used everywhere -> configuration -> event model and grouping
    -> cron schedules -> storage (one writer thread) -> HTTP plumbing
    -> one adapter per dialect -> read API -> background work -> app factory
    -> several server processes (--workers) -> command line

A request travels back up that list: its dialect's adapter parses and
validates it and answers in the dialect's format, the event model normalizes
and fingerprints, the store hands the change to the writer, which commits
before it wakes the request: acknowledged means committed.

Embedding: ``make_app(db_path, **options)`` returns the WSGI application;
``serve_in_background(app)`` serves it from a thread (handy for tests and host programs).
"""

__version__ = '0.1.0'

import argparse
import base64
import binascii
import bisect
import collections
import functools
import hashlib
import hmac
import io
import ipaddress
import itertools
import json
import logging
import math
import os
import posixpath
import re
import secrets
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import weakref
import zipfile
import zlib
try:
    import fcntl
except ImportError:  # not POSIX: no --workers there
    fcntl = None
from array import array
from datetime import datetime, timedelta, timezone

import bottle

log = logging.getLogger('errorcapture')


###############################################################################
# Helpers used everywhere #####################################################
###############################################################################
# Owns what every section below uses: the clock and ISO times, compact JSON,
# the input checks that raise Invalid (require, is_int, is_number), a
# constant-time comparison for secrets and thread names the OS can show.

def now():
    return time.time()


def iso(ts):
    """Epoch seconds -> ISO-8601 UTC with milliseconds, or None."""
    if ts is None:
        return None
    try:
        # What datetime's strftime gives (rounded to microseconds, then cut to
        # milliseconds) at half the cost: every breadcrumb pays for this.
        fraction, seconds = math.modf(ts)
        micros = round(fraction * 1000000)
        if micros >= 1000000:
            seconds, micros = seconds + 1, micros - 1000000
        elif micros < 0:
            seconds, micros = seconds - 1, micros + 1000000
        t = time.gmtime(seconds)
        if not 1 <= t[0] <= 9999:
            return None
        return '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ' % (t[0], t[1], t[2], t[3], t[4], t[5], micros // 1000)
    except (ValueError, OverflowError, OSError, TypeError):  # only rows written before range checks existed
        return None


# json.dumps(obj, separators=(',', ':'), ensure_ascii=False), without making
# an encoder for every call: every event, tag and answer is dumped here.
_compact_json = json.JSONEncoder(separators=(',', ':'), ensure_ascii=False).encode


def dumps(obj):
    return _compact_json(obj)


class Invalid(Exception):
    """A payload the model cannot accept; adapters turn it into their own 4xx."""

    def __init__(self, message, field=None):
        Exception.__init__(self, message)
        self.message, self.field = message, field


def require(condition, message, field=None):
    if not condition:
        raise Invalid(message, field)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 63)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def keys_equal(a, b):
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode('utf-8', 'surrogatepass'), b.encode('utf-8', 'surrogatepass'))


def name_os_thread(name):
    """Name the calling thread for the operating system, so that top -H, ps -L
    and /proc show which of ErrorCapture's threads is busy (Linux only; a
    no-op elsewhere). Python names its threads only for itself."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, name.encode('ascii')[:15], 0, 0, 0)  # 15: PR_SET_NAME
    except Exception:
        pass


###############################################################################
# Configuration ###############################################################
###############################################################################
# Owns every tunable: its name, type, default and help. The command line, the
# environment (ERRORCAPTURE_<NAME>) and make_app(**options) all read this table,
# so a setting is documented in exactly one place.

OPTIONS = [
    # (name, type, default, help)
    ('host', str, '127.0.0.1', 'address to listen on (0.0.0.0 for every interface)'),
    ('port', int, 8080, 'TCP port to listen on'),
    ('db', str, 'errorcapture.db', 'path of the SQLite database file'),
    ('threads', int, 8, 'waitress worker threads (per process)'),
    ('workers', int, 1, 'server processes sharing the port and the database file, each with its own threads and'
                        ' writer (commits take turns on the file); the parent replaces one that dies and runs'
                        ' retention, missed-cron checks and alerts once for all'),
    ('cpu_affinity', str, 'auto', "auto: each server process keeps its threads on one CPU (Linux), as they take"
                                  " turns on one interpreter lock and handing it between cores costs CPU; workers"
                                  " get a CPU each, a single process moves to the CPU others use least every"
                                  " 10 s; off: the operating system spreads the threads"),
    ('connections_per_client', int, 128, 'open connections one client address may hold (0: no cap); behind a proxy'
                                         ' on the same host every client shares its address'),
    ('public_url', str, '', 'base URL shown in DSNs and snippets (default: taken from each request)'),
    ('allowed_hosts', str, '', 'comma-separated host names the read API and viewer answer to besides localhost,'
                               ' 127.0.0.0/8, [::1] and the --public-url host (checked on a loopback --host, against'
                               ' DNS rebinding; checked everywhere once set)'),
    ('auto_create', bool, True, 'create a project when /api.php sees an unknown key (turn off when exposed)'),
    ('allow_get_clear', bool, True, 'allow the GET form of /api.php?action=clear (POST always works)'),
    ('admin_token', str, '', 'token that guards creating and listing projects (Authorization: Bearer ...)'),
    ('allow_private_webhooks', bool, False, 'let webhooks reach loopback, private, link-local and metadata addresses'
                                            ' (off: refused, so a key holder cannot make the server call inside)'),
    ('rate_limit', int, 0, 'accepted events per minute per project; 0 means unlimited'),
    ('spotlight', str, 'loopback',
     "who may send to Spotlight's POST /stream (project 'spotlight', no key): loopback, any or off"),
    ('max_queue', int, 20000, 'submissions waiting for the writer before ingest answers 503'),
    ('retention_events', int, 100000, 'error events kept per project (oldest pruned first); 0 keeps all'),
    ('retention_days', int, 90, 'days any stored item is kept; 0 keeps forever'),
    ('attachment_storage_mb', int, 1024,
     'MiB of Sentry attachments kept per project (past it new ones are counted, not stored); 0: no limit'),
    ('sweep_interval', float, 60.0, 'seconds between background passes (retention, missed cron runs); 0 turns them off'),
    ('synchronous', str, 'normal', 'SQLite synchronous mode: normal (survives a process crash) or full (also power loss)'),
    ('wal_autocheckpoint', int, 1000, 'WAL pages after which a commit checkpoints them into the database file'
                                      ' (PASSIVE, never waits); 0 leaves checkpoints to Litestream replicating'
                                      ' the database'),
    ('log_level', str, 'info', 'log level: debug, info, warning or error'),
]

OPTION_TYPES = {name: kind for name, kind, _, _ in OPTIONS}
DEFAULTS = {name: default for name, _, default, _ in OPTIONS}

# What a value may be: (lowest, highest) for numbers, the choices for text. A
# negative retention would delete everything, threads 0 would answer nobody.
OPTION_RULES = {
    'port': (0, 65535), 'threads': (1, 256), 'workers': (1, 256), 'connections_per_client': (0, None),
    'rate_limit': (0, None), 'max_queue': (1, None), 'retention_events': (0, None), 'retention_days': (0, None),
    'attachment_storage_mb': (0, None), 'sweep_interval': (0, None), 'synchronous': ('normal', 'full'),
    'wal_autocheckpoint': (0, None),
    'spotlight': ('loopback', 'any', 'off'), 'cpu_affinity': ('auto', 'off'), 'log_level': ('debug', 'info', 'warning', 'error'),
}

# Settings a project may set for itself (through the read API), each falling
# back to a server option: name -> (the option, lowest, highest).
PROJECT_SETTINGS = {'rateLimit': ('rate_limit', 0, 10 ** 9), 'retentionEvents': ('retention_events', 0, 10 ** 9),
                    'retentionDays': ('retention_days', 0, 36500)}


def project_setting(project, name, settings):
    """The value of one of PROJECT_SETTINGS for a project: its own, else the server's."""
    return project['settings'].get(name, settings[PROJECT_SETTINGS[name][0]])

# Size limits, per dialect (documented in the README). Bodies larger than these are
# refused with 413 before they are parsed.
LIMIT_API_PHP = 1 << 20            # ErrorCapture API body

LIMIT_SEESTACK = 1 << 20           # SeeStack bodies (a 100-item batch is well below this)
LIMIT_OPEN_SENTRY = 256 << 10      # Open Sentry, as its reference documents
LIMIT_SENTRY_EVENT = 1 << 20       # one Sentry event or transaction item
LIMIT_SENTRY_SPANS = 8 << 20       # one span item (up to 1,000 streamed spans; the JS SDK flushes a trace at 5 MB)
LIMIT_SENTRY_COMPRESSED = 20 << 20 # a Sentry body as sent
LIMIT_SENTRY_DECOMPRESSED = 100 << 20
LIMIT_READ_API = 64 << 10          # bodies of read-API calls (status changes, monitors)
MAX_ROWS_PER_SUBMISSION = 1000     # rows one request may store (a Sentry envelope's items and log entries)
LIMIT_ATTACHMENT = 1 << 20         # one Sentry attachment kept (a bigger one is counted, not stored)
LIMIT_EVENT_ATTACHMENTS = 20 << 20 # all the attachments of one event

# Source map uploads (sentry-cli): what a bundle and its chunks may be.
MAX_BUNDLE_BYTES = 32 << 20        # one assembled artifact bundle, as uploaded (zip)
MAX_BUNDLE_UNPACKED = 128 << 20    # all its files together, decompressed
MAX_BUNDLE_FILE = 32 << 20         # one file inside it, decompressed
MAX_BUNDLE_ENTRIES = 5000          # files in one bundle
MAX_MANIFEST_BYTES = 8 << 20       # its manifest.json
MAX_MAP_SEGMENTS = 4000000         # mappings in one source map (about 30 MiB of "mappings" text)
MAX_MAP_LINES = 1000000            # generated lines in one source map (';' in "mappings")

CHUNK_SIZE = 8 << 20               # one chunk (sentry-cli before 2.40 wants a power of two)
CHUNKS_PER_REQUEST = 64
MAX_CHUNK_REQUEST = 16 << 20       # the chunks of one upload request, before gzip
MAX_PENDING_CHUNKS = 256 << 20     # chunks waiting to be assembled, all uploads together
LIMIT_CHUNK_UPLOAD = MAX_CHUNK_REQUEST + (1 << 20)  # the request body as sent (multipart headers, gzip)
PENDING_CHUNK_SECONDS = 3600       # an upload that stopped half way: its chunks go after an hour
TYPE_NAMES = {int: 'an integer', float: 'a number', str: 'text', bool: 'on/off (1, 0, true, false, yes, no)'}


def parse_bool(text):
    value = str(text).strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('0', 'false', 'no', 'off', ''):
        return False
    raise ValueError('not a boolean: %r' % text)


def resolve_options(options=None, environ=None):
    """Settings from explicit options, then ERRORCAPTURE_* variables, then
    defaults. Raises ValueError naming the setting when a value cannot be used."""
    environ = os.environ if environ is None else environ
    settings, given = dict(DEFAULTS), {}
    for name, kind, _, _ in OPTIONS:
        raw = environ.get('ERRORCAPTURE_' + name.upper())
        if raw is not None and raw != '':
            where = 'ERRORCAPTURE_' + name.upper()
            try:
                settings[name] = parse_bool(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ValueError('%s: expected %s, got %r' % (where, TYPE_NAMES[kind], raw))
            given[name] = where
    for name, value in (options or {}).items():
        if name not in OPTION_TYPES:
            raise TypeError('unknown option %r' % name)
        if value is not None:
            settings[name], given[name] = value, '--' + name.replace('_', '-')
    for name, rule in OPTION_RULES.items():
        value, where = settings[name], given.get(name, name)
        if isinstance(rule[0], str):
            settings[name] = value = str(value).strip().lower()
            if value not in rule:
                raise ValueError('%s: must be one of %s, got %r' % (where, ', '.join(rule), value))
        elif not (isinstance(value, (int, float)) and (rule[0] is None or value >= rule[0])
                  and (rule[1] is None or value <= rule[1])):
            raise ValueError('%s: must be a number %s, got %r' % (where, 'from %s to %s' % rule if rule[1] is not None
                                                                  else 'of at least %s' % rule[0], value))
    return settings


###############################################################################
# Event model and grouping ####################################################
###############################################################################
# Owns the one internal shape every dialect maps onto: error events and their
# grouping keys, then every other kind (HTTP requests, logs, replays, which are
# masked here, transactions, AI generations); the bounds that keep a hostile
# event small, and the fingerprint that groups errors into issues.
# Pure functions: no SQL, no HTTP.

LEVELS = ('fatal', 'error', 'warning', 'info', 'debug')
MAX_STRING = 16 << 10       # one string field (message, value, context line...)
MAX_FRAMES = 250            # frames kept per exception (first 50 and last 200)
MAX_EXCEPTIONS = 100        # chained exceptions kept: the raised one (last) and its nearest causes
MAX_BREADCRUMBS = 100       # the newest are kept
MAX_ITEMS = 200             # keys or items in any free-form mapping or list
MAX_DEPTH = 8               # nesting kept in free-form data (user, contexts, extra, vars)
MAX_TRACE_TEXT = 8 << 10    # stack trace text kept as sent (and its parse remembered) up to this
# Client numbers that the read API sums or averages are bounded, so that no
# sum over a retention window can overflow SQLite's 64-bit integers or reach a
# float infinity (the sums use TOTAL as well, for rows stored before).
MAX_SUMMED_COUNT = 10 ** 12     # AI tokens per generation
MAX_SUMMED_COST = 1e9           # US dollars per generation
MAX_DURATION_MS = 1e12          # about 31 years
MAX_FUTURE_SECONDS = 60     # a timestamp further ahead of our clock is replaced by the time received, as Relay does
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')


def normalize_level(raw):
    """Map any level word to fatal|error|warning|info|debug. Unknown words (the
    ErrorCapture Python snippet sends exception class names) count as errors."""
    if raw.__class__ is str and raw in LEVELS:  # what nearly every client sends
        return raw
    text = str(raw or '').strip().lower()
    if text in LEVELS:
        return text
    if not text:
        return 'error'
    if any(word in text for word in ('fatal', 'critical', 'crit', 'emerg', 'alert', 'panic')):
        return 'fatal'
    if 'warn' in text or 'deprecat' in text:
        return 'warning'
    if text in ('notice', 'information', 'informational', 'log', 'strict', 'user notice'):
        return 'info'
    if text in ('trace', 'verbose', 'debug'):
        return 'debug'
    return 'error'


def clip(value, limit=MAX_STRING):
    """A string no longer than limit, with a visible marker where it was cut."""
    if value.__class__ is str:  # the common case first: every field passes here
        if len(value) <= limit and '\x00' not in value:
            return value
    elif value is None:
        return None
    elif not isinstance(value, str):
        value = str(value)
    if '\x00' in value:
        value = value.replace('\x00', '\ufffd')
    if len(value) > limit:
        return value[:limit] + '\u2026[truncated %d chars]' % (len(value) - limit)
    return value


def bound(value, depth=0):
    """Free-form client data, bounded in depth, width and string length."""
    if not isinstance(value, (dict, list, tuple)):
        if isinstance(value, str):
            return clip(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -(1 << 63) <= value < (1 << 63) else str(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        return '[\u2026]' if depth >= MAX_DEPTH else clip(str(value))
    if depth >= MAX_DEPTH:
        return '[\u2026]'
    is_map = isinstance(value, dict)
    out = {} if is_map else []
    for key, item in itertools.islice(value.items() if is_map else enumerate(value), MAX_ITEMS):
        # Leaves that need no change are copied here, without a call each:
        # contexts, request data and frame vars are mostly such leaves.
        kind = item.__class__
        if not ((kind is str and len(item) <= MAX_STRING and '\x00' not in item) or item is None
                or kind is bool or (kind is int and -(1 << 63) <= item < (1 << 63))
                or (kind is float and math.isfinite(item))):
            item = bound(item, depth + 1)
        if not is_map:
            out.append(item)
        else:
            out[key if key.__class__ is str and len(key) <= 256 and '\x00' not in key else clip(str(key), 256)] = item
    if len(value) > MAX_ITEMS:
        if is_map:
            out['\u2026'] = '[%d more keys truncated]' % (len(value) - MAX_ITEMS)
        else:
            out.append('[%d more items truncated]' % (len(value) - MAX_ITEMS))
    return out


def string_map(value, field='tags'):
    """Tags-like data as {str: str}; accepts a dict or a list of [key, value] pairs."""
    if value is None:
        return {}
    if isinstance(value, list):
        pairs = []
        for pair in value:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and isinstance(pair[0], (str, int, float, bool))):
                raise Invalid('must be an object or a list of [key, value] pairs', field)
            pairs.append(pair)
        value = dict(pairs)
    if not isinstance(value, dict):
        raise Invalid('must be an object', field)
    return {clip(str(k), 200): clip(v if isinstance(v, str) else dumps(v), 1000)
            for k, v in list(value.items())[:MAX_ITEMS]}


def parse_timestamp(value, field='timestamp'):
    """ISO-8601 text or epoch seconds (or milliseconds) -> epoch seconds."""
    if value is None or value == '':
        return None
    if isinstance(value, bool):
        raise Invalid('must be an ISO-8601 timestamp', field)
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise Invalid('must be a finite number', field)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000.0
        if not 0 <= seconds < 4102444800:  # before the year 2100
            raise Invalid('is out of range', field)
        return seconds
    if not isinstance(value, str):
        raise Invalid('must be an ISO-8601 timestamp', field)
    text = value.strip()
    try:  # fast path: what SDKs send, e.g. 2026-03-31T12:00:00.000Z
        parsed = datetime.fromisoformat(text[:-1] + '+00:00' if text[-1:] in 'zZ' and text else text)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        try:
            seconds = parsed.timestamp()
        except (OverflowError, ValueError, OSError):
            raise Invalid('is out of range', field)
        if not 0 <= seconds < 4102444800:
            raise Invalid('is out of range', field)
        return seconds
    if re.match(r'^\d+(\.\d+)?$', text):
        return parse_timestamp(float(text), field)
    text = re.sub(r'[zZ]$', '+00:00', text)
    # Python 3.10's fromisoformat wants 0, 3 or 6 fraction digits
    text = re.sub(r'\.(\d+)', lambda m: '.' + (m.group(1) + '000000')[:6], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid('must be an ISO-8601 timestamp', field)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        seconds = parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        raise Invalid('is out of range', field)
    if not 0 <= seconds < 4102444800:  # 1970 to 2100
        raise Invalid('is out of range', field)
    return seconds


# Variable parts of messages, replaced so that "user 17 not found" and "user 18
# not found" group together. Order matters: URLs before numbers, and so on.
MESSAGE_VARIABLES = [
    # Each pattern runs in time linear in the message (tests/test_regex_linear.py
    # checks their shapes): no repeat inside a repeat, no two unbounded repeats
    # that can share characters, and a length bound wherever a search could
    # restart inside a run of a repeat's own characters.
    (re.compile(r'\b[a-z][a-z0-9+.-]{0,31}://[^\s\'"<>]+', re.I), '<url>'),
    (re.compile(r'\b[\w.+-]{1,64}@[\w-]{1,63}(\.[\w-]{1,63}){1,8}\b'), '<email>'),
    (re.compile(r'\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b', re.I), '<uuid>'),
    (re.compile(r'\b\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?\b'), '<ip>'),
    # a whole word of hex digits; hex_word decides (it once was a cubic pattern)
    (re.compile(r'\b(0x[0-9a-f]+|[0-9a-f]+)\b', re.I), lambda m: hex_word(m.group(0))),
    (re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`"), '<str>'),
    (re.compile(r'-?\b\d+(\.\d+)?\b'), '<num>'),
]


def hex_word(word):
    """<hex> for 0x... and for words of 8 or more hex digits that mix digits
    and letters (ids, hashes); other words stay (deadbeef, 12345678, abc123)."""
    if word[:2].lower() == '0x':
        return '<hex>'
    if len(word) >= 8 and not word.isdigit() and any(ch.isdigit() for ch in word):
        return '<hex>'
    return word


def normalize_message(text):
    return _normalized((text or '')[:1024])


# Floods repeat the same few messages and stacks: remember the last few
# thousand answers rather than run seven regular expressions (or hash the same
# parts) again. Keys are at most 1 KiB, so the caches stay under a few MiB.
@functools.lru_cache(maxsize=2048)
def _normalized(text):
    for pattern, replacement in MESSAGE_VARIABLES:
        text = pattern.sub(replacement, text)
    return text.strip()


def frame(filename=None, function=None, lineno=None, colno=None, module=None, abs_path=None,
          in_app=None, context_line=None, pre_context=None, post_context=None, vars=None):
    """One stack frame in the model's shape; empty fields are left out."""
    out = {}
    # clip() only where it may change something: every frame of every event passes here
    if filename is not None and filename != '':
        out['filename'] = (filename if filename.__class__ is str and len(filename) <= 1024 and '\x00' not in filename
                           else clip(filename, 1024))
    if abs_path is not None and abs_path != '':
        out['absPath'] = (abs_path if abs_path.__class__ is str and len(abs_path) <= 1024 and '\x00' not in abs_path
                          else clip(abs_path, 1024))
    if function is not None and function != '':
        out['function'] = (function if function.__class__ is str and len(function) <= 1024 and '\x00' not in function
                           else clip(function, 1024))
    if module is not None and module != '':
        out['module'] = (module if module.__class__ is str and len(module) <= 1024 and '\x00' not in module
                         else clip(module, 1024))
    if lineno.__class__ is int and 0 <= lineno < (1 << 31):  # a bool's class is not int
        out['lineno'] = lineno
    if colno.__class__ is int and 0 <= colno < (1 << 31):
        out['colno'] = colno
    if in_app is not None:
        out['inApp'] = bool(in_app)
    if context_line is not None and context_line != '':
        out['contextLine'] = clip(context_line, 1024)
    if pre_context and isinstance(pre_context, list):
        out['preContext'] = [clip(line, 1024) for line in pre_context[-10:]]
    if post_context and isinstance(post_context, list):
        out['postContext'] = [clip(line, 1024) for line in post_context[-10:]]
    if vars and isinstance(vars, dict):
        out['vars'] = bound(vars, MAX_DEPTH - 3)
    return out


def cap_frames(frames):
    if len(frames) <= MAX_FRAMES:
        return frames
    omitted = len(frames) - MAX_FRAMES
    return frames[:50] + [{'function': '[%d frames truncated]' % omitted}] + frames[-(MAX_FRAMES - 50):]


# Stack trace lines as SeeStack SDKs send them, innermost first (JavaScript,
# Java) or as a Python traceback, outermost first.
# They match stripped lines (leading blanks would overlap [^@]* and friends).
JS_FRAME = re.compile(r'^at (?:(?P<function>.+?) \()?(?P<file>[^()]+?):(?P<line>\d+)(?::(?P<col>\d+))?\)?$')

JAVA_FRAME = re.compile(r'^at (?P<function>[\w$.<>\[\]/]+)\((?P<file>[^():]*)(?::(?P<line>\d+))?\)$')
PY_FRAME = re.compile(r'^File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$')

# Firefox and Safari: "fn@https://host/app.js:10:15", "@file.js:3:1", "global code@..."
GECKO_FRAME = re.compile(r'^(?P<function>[^@]*)@(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?$')

LIBRARY_PATH = re.compile(r'node_modules|site-packages|dist-packages|/usr/lib/|^internal/|^node:|'
                          r'^(java|javax|jdk|sun|kotlin|scala)\.|<frozen |^native$', re.I)


def trace_lines(lines):
    """Trace text as a list of lines: a list keeps its strings, a string is split."""
    if isinstance(lines, str):
        return lines.splitlines()
    return [line for line in lines if isinstance(line, str)]


def parse_stack_trace(lines):
    """Turn a list of trace lines (or one multi-line string) into model frames,
    oldest call first as Sentry orders them. Unparsed lines are skipped."""
    key = tuple(trace_lines(lines))
    if sum(len(line) for line in key) > MAX_TRACE_TEXT:
        return _parse_stack_trace(key)  # too big to remember
    return [dict(f) for f in _remembered_stack_trace(key)]  # copies: callers own their frames


@functools.lru_cache(maxsize=512)
def _remembered_stack_trace(lines):
    return _parse_stack_trace(lines)


def _parse_stack_trace(lines):
    frames, python_order = [], False
    for index, line in enumerate(lines):
        if not isinstance(line, str):
            continue
        line = line.strip()
        match = PY_FRAME.match(line)
        if match:
            python_order = True
            following = lines[index + 1] if index + 1 < len(lines) else None
            following = following.strip() if isinstance(following, str) else None
            context = following if following is not None and not PY_FRAME.match(following) else None
            path = match.group('file')
            frames.append(frame(filename=os.path.basename(path), abs_path=path if '/' in path or '\\' in path else None,
                                function=match.group('function'),
                                lineno=int(match.group('line')), context_line=context or None,
                                in_app=not LIBRARY_PATH.search(path)))
            continue
        match = JAVA_FRAME.match(line)
        if match and ('.' in match.group('function')) and not match.group('file').startswith(('/', 'http')):
            qualified = match.group('function')
            module, _, function = qualified.rpartition('.')
            frames.append(frame(filename=match.group('file') or None, module=module, function=function,
                                lineno=int(match.group('line')) if match.group('line') else None,
                                in_app=not LIBRARY_PATH.search(module)))
            continue
        match = JS_FRAME.match(line) or (None if python_order else GECKO_FRAME.match(line))
        if match:
            path = match.group('file').strip()
            name = os.path.basename(path.split('?')[0]) or path
            function = match.group('function') or ''
            while function.endswith('/<'):  # Firefox's "outer/<" (a loop: a regex here could backtrack)
                function = function[:-2]
            frames.append(frame(filename=name, abs_path=path if path != name else None,
                                function=function or None, lineno=int(match.group('line')),
                                colno=int(match.group('col')) if match.group('col') else None,
                                in_app=not LIBRARY_PATH.search(path)))
    if not python_order:
        frames.reverse()  # JavaScript and Java print the innermost call first
    return cap_frames(frames)


def frame_location(f, javascript=False):
    """The part of a frame that identifies code independent of line numbers
    and of the deploy: a bundle's content hash or version is left out."""
    module, name, function = f.get('module'), f.get('filename') or f.get('absPath') or '', f.get('function') or '?'
    if (module.__class__ is str or module is None) and name.__class__ is str and function.__class__ is str and \
            len(module or '') + len(name) + len(function) <= 1024:
        return _frame_location(module, name, function, bool(javascript))
    return _locate_frame(module, name, function, javascript)


# Error storms repeat the same stack: each frame's location is worked out once
# (keys are at most 1,024 characters, so the cache stays within a few MiB).
@functools.lru_cache(maxsize=2048)
def _frame_location(module, name, function, javascript):
    return _locate_frame(module, name, function, javascript)


def _locate_frame(module, name, function, javascript):
    if module:
        where = grouping_module(module) if javascript or is_javascript_name(name) else module
    else:
        where = grouping_file_name(name.rpartition('/')[2])
    return '%s:%s' % (where, function)


# Grouping must survive a deploy: bundlers put a content hash or a version in
# file names (main.3f2a1b9c.js, chunk-4f3a9b.js, index-BkTq3xY2.js, app.js?v=123,
# jquery-3.6.0.min.js). Sentry's JavaScript grouping drops these (its made-up
# module names lose version folders and a trailing commit-ish); so do we, for
# grouping only, with string scanning rather than patterns (file names are
# client text). The frames shown keep their real names.
JAVASCRIPT_EXTENSIONS = ('.js', '.mjs', '.cjs', '.jsx', '.ts', '.tsx', '.mts', '.cts', '.vue', '.svelte')
HEX_DIGITS = frozenset('0123456789abcdefABCDEF')
HASH_CHARACTERS = frozenset('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-')
NAME_SEPARATORS = '.-_~@'


def is_javascript_name(name):
    return name.partition('?')[0].partition('#')[0].lower().endswith(JAVASCRIPT_EXTENSIONS)


def grouping_file_name(name):
    """A file name as grouping sees it: no query or fragment, and for
    JavaScript bundles no content hash or version segment."""
    name = name.partition('?')[0].partition('#')[0]
    lower = name.lower()
    extension = next((e for e in JAVASCRIPT_EXTENSIONS if lower.endswith(e)), None)
    if extension is None:
        return name
    stem = name[:-len(extension)]
    minified = stem.lower().endswith('.min')
    if minified:
        stem = stem[:-4]
    return strip_build_marks(stem) + ('.min' if minified else '') + name[-len(extension):]


def grouping_module(module):
    """A JavaScript module name (@sentry/node makes them from paths:
    "dist:main.3f2a1b9c") without a content hash or version in its last part."""
    cut = max(module.rfind('/'), module.rfind(':'))
    return module[:cut + 1] + strip_build_marks(module[cut + 1:])


def strip_build_marks(stem):
    """Drop trailing segments a build adds: a content hash, a version. One
    backward pass: each character is looked at a bounded number of times."""
    end, in_version = len(stem), False
    while True:
        cut = previous_separator(stem, end)
        if cut <= 0:
            return stem[:end]  # the first segment is the file's own name
        tail = stem[cut + 1:end]
        if (in_version and tail.isdigit() and len(tail) <= 12) or is_version(tail, stem, cut):
            end, in_version = cut, True  # "3" of "3.6.0", once "6.0" is gone
            continue
        if is_hash_segment(tail):
            end, in_version = cut, False
            continue
        # Vite, Rollup, esbuild: name-<8 characters of base64url>, which may hold "-" or "_"
        if end > 9 and stem[end - 9] == '-' and is_bundler_hash(stem[end - 8:end]):
            end, in_version = end - 9, False
            continue
        return stem[:end]


def previous_separator(stem, end):
    """Index of the last separator before end, or -1."""
    index = end - 1
    while index >= 0 and stem[index] not in NAME_SEPARATORS:
        index -= 1
    return index


def is_version(tail, stem, cut):
    """A version part: v2, or a number that follows or precedes another
    (3.6.0 is three of them; step-1 is a name)."""
    if tail[:1] in 'vV' and tail[1:].isdigit():
        return True
    if not tail.isdigit() or len(tail) > 12:
        return False
    before = previous_separator(stem, cut)
    previous = stem[before + 1:cut]
    return before > 0 and stem[cut] == '.' and (previous.isdigit() or (previous[:1] in 'vV' and previous[1:].isdigit()))


def is_hash_segment(text):
    """Hex of one case, with a digit and a letter (4f3a9b) or long (deadbeef)."""
    if len(text) < 5 or len(text) > 64 or text.isdigit():
        return False
    if not all(c in HEX_DIGITS for c in text) or not (text.islower() or text.isupper()):
        return False
    return len(text) >= 7 or any(c.isdigit() for c in text)


def is_bundler_hash(text):
    """Eight base64url characters as Vite and Rollup (BkTq3xY2) or esbuild
    (LJ4GZ5FD) write them: digits and letters, or mixed case; not a word."""
    if not all(c in HASH_CHARACTERS for c in text):
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters or text[1:].islower():
        return False
    has_digit = any(c.isdigit() for c in text)
    return has_digit or (any(c.isupper() for c in letters) and any(c.islower() for c in letters))


def default_grouping(event):
    """Sentry-like: exception type plus in-app frames; without frames, type
    plus normalized message; ErrorCapture events by file, line and message."""
    exceptions = event.get('exception') or []
    if exceptions:
        raised = exceptions[-1]
        frames = raised.get('frames') or []
        chosen = [f for f in frames if f.get('inApp')] or frames
        chosen = [f for f in chosen if 'function' in f or 'filename' in f or 'module' in f]
        type_ = '' if is_synthetic(raised) else raised.get('type') or ''
        if chosen:
            javascript = event.get('platform') in ('javascript', 'node')
            return ['type', type_] + [frame_location(f, javascript) for f in chosen]
        return ['type', type_, normalize_message(event.get('messageTemplate') or raised.get('value')
                                                 or event.get('message'))]
    if event.get('file'):
        return ['location', event['file'], str(event.get('line') or ''), normalize_message(event.get('message'))]
    return ['message', normalize_message(event.get('messageTemplate') or event.get('message'))]


def is_synthetic(exception):
    """An exception an SDK made up to carry a stack (captureMessage in
    @sentry/node): its type means nothing, as in Sentry."""
    mechanism = exception.get('mechanism')
    return isinstance(mechanism, dict) and mechanism.get('synthetic') is True


def fingerprint_of(event):
    client = event.get('fingerprint')
    if client:
        parts = []
        for part in client:
            if part in ('{{ default }}', '{{default}}'):
                parts.extend(default_grouping(event))
            else:
                parts.append('custom:%s' % part)
    else:
        parts = default_grouping(event)
    return _digest(tuple(parts))


@functools.lru_cache(maxsize=4096)
def _digest(parts):
    return hashlib.md5(dumps(parts).encode('utf-8')).hexdigest()


def exception_entry(type_=None, value=None, frames=None, module=None, mechanism=None, trace=None):
    """One exception. trace: the text its frames were parsed from, kept when
    small (the store keeps it instead of the frames, parsed again on reading)."""
    out = {'type': clip(type_ or 'Error', 512), 'value': clip(value or '')}
    if module:
        out['module'] = clip(module, 512)
    if frames:
        out['frames'] = frames  # callers cap them, so the truncation marker counts right
    if trace is not None:
        lines = trace_lines(trace)
        if lines and sum(len(line) for line in lines) <= MAX_TRACE_TEXT and not any('\x00' in line for line in lines):
            out['stackTrace'] = lines
    if mechanism:
        out['mechanism'] = bound(mechanism, MAX_DEPTH - 2)
    return out


def breadcrumb_list(value):
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get('values') or []
    if not isinstance(value, list):
        raise Invalid('must be a list', 'breadcrumbs')
    out = []
    for crumb in value[-MAX_BREADCRUMBS:]:
        if not isinstance(crumb, dict):
            continue
        entry = {}
        stamp = crumb.get('timestamp')
        if stamp is not None:
            # SDKs send their whole breadcrumb buffer with every event, so
            # the same times come again and again: text and float times are
            # remembered (other types are not: True would be taken for 1).
            remember = stamp.__class__ is float or (stamp.__class__ is str and len(stamp) <= 64)
            stamp = _crumb_time(stamp) if remember else crumb_time(stamp)
            if stamp is not NO_TIME:
                entry['timestamp'] = stamp
        for key in ('type', 'category', 'level', 'message'):
            text = crumb.get(key)
            if text is not None:
                entry[key] = (text if text.__class__ is str and len(text) <= 4096 and '\x00' not in text
                              else clip(text if isinstance(text, str) else dumps(text), 4096))
        if crumb.get('data'):
            entry['data'] = bound(crumb['data'], MAX_DEPTH - 3)
        out.append(entry)
    return out


NO_TIME = object()  # a breadcrumb time that is no time: the breadcrumb keeps none


def crumb_time(value):
    """A breadcrumb's time as the model keeps it (ISO text), or NO_TIME."""
    try:
        seconds = parse_timestamp(value)
    except Invalid:
        return NO_TIME
    return NO_TIME if seconds is None else iso(seconds)


_crumb_time = functools.lru_cache(maxsize=1024)(crumb_time)


def make_error_event(dialect, level=None, message=None, exception=None, timestamp=None, event_id=None,
                     environment=None, release=None, user=None, tags=None, request=None, breadcrumbs=None,
                     contexts=None, extra=None, fingerprint=None, server_name=None, platform=None, sdk=None,
                     file=None, line=None, hostname=None, logger=None, received=None, transaction=None,
                     stacktrace=None, message_template=None, replay_id=None, trace_id=None, span_id=None):
    """The one internal error event. Adapters call this with what their dialect
    carries; the result holds the stored fields plus the grouping keys (_*).
    replay_id names the session replay that recorded it; trace_id and span_id
    the trace (and its span) it happened in, for dialects without Sentry's
    contexts.trace."""
    received = received if received is not None else now()
    if timestamp is not None and timestamp > received + MAX_FUTURE_SECONDS:
        timestamp = None  # a client clock ahead would pin the issue's last seen in the future
    event = {'kind': 'error', 'dialect': dialect, 'received': received,
             'timestamp': timestamp if timestamp is not None else received,
             'level': normalize_level(level),
             'levelRaw': (level if level.__class__ is str and len(level) <= 200 and '\x00' not in level
                          else clip(str(level), 200) if level is not None else None)}
    if event_id:
        event['eventId'] = event_id
    # Text fields and their limits; most are absent, so test before clipping.
    for key, value, limit in (('message', message, MAX_STRING), ('messageTemplate', message_template, 1024),
                              ('environment', environment, 200), ('release', release, 200),
                              ('serverName', server_name, 200), ('hostname', hostname, 200),
                              ('platform', platform, 64), ('logger', logger, 200),
                              ('transaction', transaction, 1024), ('file', file, 2048),
                              ('replayId', replay_id, 200), ('traceId', trace_id, 200), ('spanId', span_id, 200)):
        if value is not None:
            event[key] = clip(value, limit)
    if line.__class__ is int:  # not a bool
        event['line'] = line
    if exception:
        event['exception'] = exception[-MAX_EXCEPTIONS:]  # grouping and the title read the last one
    if stacktrace is not None:
        event['stacktrace'] = stacktrace
    if tags:
        event['tags'] = tags
    if breadcrumbs:
        event['breadcrumbs'] = breadcrumbs
    for key, value in (('user', user), ('request', request), ('contexts', contexts), ('extra', extra), ('sdk', sdk)):
        if value:
            event[key] = bound(value)
    if fingerprint:
        event['fingerprint'] = [clip(str(p), 512) for p in fingerprint[:20]]
    finish_grouping(event)
    return event


def make_attachment(event_id, name, content_type, attachment_type, data):
    """A file an SDK attached to an event (scope.add_attachment)."""
    return {'eventId': event_id, 'name': clip(name or 'attachment', 200),
            'contentType': clip(content_type, 200) if content_type else None,
            'attachmentType': clip(attachment_type or 'event.attachment', 100), 'data': bytes(data)}


def finish_grouping(event):
    """Fill the grouping keys: fingerprint, title, culprit, type and value."""
    exceptions = event.get('exception') or []
    raised = exceptions[-1] if exceptions else None
    if raised:
        title = '%s: %s' % (raised['type'], raised.get('value') or '') if raised.get('value') else raised['type']
        if is_synthetic(raised):
            title = raised.get('value') or event.get('message') or raised['type']
        frames = raised.get('frames') or []
        in_app = [f for f in frames if f.get('inApp')] or frames
        top = in_app[-1] if in_app else None
        culprit = ('%s (%s)' % (top.get('function') or '?', top.get('filename') or top.get('module') or '?')
                   if top else event.get('transaction') or '')
        type_, value = raised['type'], raised.get('value') or ''
    else:
        message = event.get('message') or '(no message)'
        title = message.strip().split('\n', 1)[0] or '(no message)'
        culprit = ('%s:%s' % (event['file'], event['line']) if event.get('line') is not None else event['file']
                   ) if event.get('file') else event.get('transaction') or event.get('logger') or ''
        type_, value = event.get('levelRaw') or '', message
    event['_fingerprint'] = fingerprint_of(event)
    event['_title'] = clip(title, 200)
    event['_culprit'] = clip(culprit, 300)
    event['_type'] = clip(type_, 200)
    event['_value'] = clip(value, 300)
    return event


# -- the other kinds: HTTP requests, logs, replays, transactions, AI ---------
# Each constructor takes what any dialect carries (its adapter has checked the
# types) and gives the model object the store maps to columns: fields named
# in camelCase, times in epoch seconds, text clipped, free-form data bounded.

def make_http_request(timestamp, direction, method, host, path, trace_id=None, status_code=None, duration_ms=None,
                      request_size=None, response_size=None, user_id=None):
    """One HTTP request an SDK timed (inbound: served; outbound: made)."""
    return {'timestamp': timestamp, 'traceId': clip(trace_id, 200), 'direction': direction,
            'method': method.upper(), 'host': clip(host, 500), 'path': clip(path, 2048),
            'statusCode': status_code, 'durationMs': duration_ms, 'requestSize': request_size,
            'responseSize': response_size, 'userId': clip(user_id, 200)}


def make_log(level, message, timestamp=None, service=None, trace_id=None, metadata=None):
    """One log entry; level is one of LOG_LEVELS."""
    return {'timestamp': timestamp or now(), 'level': level, 'message': clip(message),
            'service': clip(service, 200), 'traceId': clip(trace_id, 200),
            'metadata': bound(metadata) if metadata is not None else None}


# Replays carry what users typed: before storing, secrets in eventData are
# masked, by key name and by shape (card numbers).
# Key names that hold secrets: long words anywhere in the name ("userPassword",
# "csrftoken"), short ones only as a word of their own ("pin", not "spinner";
# "pass", not "passengers"; "ssn", not "className").
SECRET_KEY_PART = re.compile(r'password|passwd|passphrase|secret|token|authorization|api[-_ ]?key|'
                             r'card[-_ ]?(number|no)|iban', re.I)

SECRET_KEY_WORDS = frozenset(('pass', 'pwd', 'pin', 'ssn', 'cvv', 'cvc', 'cvv2', 'credit', 'passcode'))


def is_secret_key(name):
    if SECRET_KEY_PART.search(name):
        return True
    words = re.sub(r'([a-z])([A-Z])', r'\1 \2', name).lower()
    return any(word in SECRET_KEY_WORDS for word in re.findall(r'[a-z0-9]+', words))


# keys that name the element a value was typed into, as recorders write them
DESCRIBING_KEYS = ('field', 'name', 'id', 'key', 'target', 'selector', 'element', 'label', 'placeholder')

CARD_NUMBER = re.compile(r'\b(?:\d[ -]?){12,18}\d\b')

# Cards in use have 14-19 digits; 13 digits is a millisecond timestamp far more
# often than an old 13-digit Visa, and one in ten of those passes Luhn.
CARD_DIGITS = (14, 19)

MASK = '[MASKED]'


def luhn_ok(digits):
    total, parity = 0, len(digits) % 2
    for index, char in enumerate(digits):
        digit = int(char)
        if index % 2 == parity:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask_card_numbers(text):
    def replace(match):
        digits = re.sub(r'\D', '', match.group(0))
        return MASK if CARD_DIGITS[0] <= len(digits) <= CARD_DIGITS[1] and luhn_ok(digits) else match.group(0)
    return CARD_NUMBER.sub(replace, text)


def mask_secrets(value, depth=0):
    if isinstance(value, str):
        return mask_card_numbers(value)
    if is_int(value) and CARD_DIGITS[0] <= len(str(abs(value))) <= CARD_DIGITS[1] and luhn_ok(str(abs(value))):
        return MASK  # a card number sent as a JSON number
    if depth > 20:
        return MASK  # not looked into, so not kept: a secret may be in there
    if isinstance(value, list):
        return [mask_secrets(v, depth + 1) for v in value]
    if isinstance(value, dict):
        # a form field described as {"field": "card-number", "value": "..."}
        described = any(isinstance(value.get(k), str) and is_secret_key(value[k])
                        for k in DESCRIBING_KEYS) or value.get('type') == 'password'
        out = {}
        for key, item in value.items():
            if (is_secret_key(key) or (described and key in ('value', 'text'))) and item not in (None, ''):
                out[key] = MASK
            else:
                out[key] = mask_secrets(item, depth + 1)
        return out
    return value


def mask_event_data(text):
    """Mask a replay event's eventData (a JSON string, or plain text)."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        masked = re.sub(r'(?i)((?:password|passwd|secret|token|cvv|cvc|pin|ssn)\s*[=:]\s*)[^&\s,;]+',
                        r'\1' + MASK, text)
        return mask_card_numbers(masked)
    return dumps(mask_secrets(parsed))


def make_replay_event(event_type, event_data, timestamp_ms, url=None):
    """One recorded browser event; its data is masked before anything keeps it."""
    return {'eventType': clip(event_type, 100), 'eventData': clip(mask_event_data(event_data), 256 << 10),
            'url': clip(url, 2048), 'timestampMs': timestamp_ms}


def make_replay(session_id, fingerprint, events, source='seestack', segment=None, environment=None, release=None,
                trace_ids=None, urls=None, started_ms=None, ended_ms=None):
    """Recorded events of one browser session (events from make_replay_event).
    A Sentry replay comes in numbered segments, each with what its
    replay_event says: environment, release, the traces and pages it saw, and
    when the session started and this segment ended (epoch ms)."""
    return {'sessionId': clip(session_id, 200), 'fingerprint': clip(fingerprint, 200), 'events': events,
            'source': source, 'segment': segment, 'environment': clip(environment, 200),
            'release': clip(release, 200), 'traceIds': [clip(t, 64) for t in (trace_ids or [])[:100]],
            'urls': [clip(u, 2048) for u in (urls or [])[:200]], 'startedMs': started_ms, 'endedMs': ended_ms}


# Sentry's span status words, as transactions and spans carry them
SPAN_STATUSES = frozenset((
    'ok', 'cancelled', 'unknown', 'unknown_error', 'invalid_argument', 'deadline_exceeded', 'not_found',
    'already_exists', 'permission_denied', 'resource_exhausted', 'failed_precondition', 'aborted', 'out_of_range',
    'unimplemented', 'internal_error', 'unavailable', 'data_loss', 'unauthenticated'))
NOT_FAILED = ('ok', 'cancelled', 'unknown')  # what a failure rate does not count, as in Sentry
MAX_SPANS = 5000            # spans kept per transaction (and waiting for their transaction)
MAX_SPAN_ATTRIBUTES = 100   # attributes kept per span

# the web vitals a browser measures, with their units
WEB_VITALS = {'lcp': 'millisecond', 'fcp': 'millisecond', 'fp': 'millisecond', 'ttfb': 'millisecond',
              'inp': 'millisecond', 'cls': ''}


def make_transaction(name, duration_ms, status='ok', timestamp=None, trace_id=None, event_id=None, spans=None,
                     environment=None, release=None, op=None, tags=None, user=None, platform=None,
                     segment_id=None, source='transaction', attributes=None, web_vitals=None, replay_id=None):
    """The internal transaction (a timed operation with spans, from
    make_span). segment_id is its root span's id: spans that arrive on their
    own (streamed) find it by that and their trace id."""
    spans = [span_of_transaction(span, timestamp) for span in spans or ()]  # the client's start, not ours
    if timestamp is not None and timestamp > now() + MAX_FUTURE_SECONDS:
        timestamp = None  # as for errors: a clock ahead of ours
    return {'name': clip(name, 500), 'durationMs': round(float(duration_ms), 3), 'status': status,
            'timestamp': timestamp if timestamp is not None else now() - duration_ms / 1000.0,
            'traceId': clip(trace_id, 200), 'eventId': event_id, 'spans': spans,
            'environment': clip(environment, 200), 'release': clip(release, 200), 'op': clip(op, 200),
            'tags': string_map(tags) if tags else None, 'user': bound(user) if user else None,
            'platform': clip(platform, 64), 'segmentId': clip(segment_id, 64), 'source': source,
            'attributes': span_attributes(attributes), 'webVitals': web_vitals or None,
            'replayId': clip(replay_id, 64)}


def span_attributes(attributes):
    """A span's attributes (or a v1 span's data), bounded."""
    if not attributes:
        return None
    return bound(dict(itertools.islice(attributes.items(), MAX_SPAN_ATTRIBUTES)))


def make_span(trace_id, span_id, start, end, parent_span_id=None, segment_id=None, op=None, description=None,
              status=None, attributes=None, duration_ms=None):
    """One timed operation of a transaction, start and end in epoch seconds:
    a span that arrived on its own (streamed) or one its transaction's event
    carried. A client that sends only a span's duration (Open Sentry) gives
    start and end None and duration_ms. segment_id is its transaction's root
    span, when the client said which."""
    if start is not None:
        end = max(end, start)
        duration_ms = round((end - start) * 1000.0, 3)
    return {'traceId': clip(trace_id, 64), 'spanId': clip(span_id, 100), 'parentSpanId': clip(parent_span_id, 100),
            'segmentId': clip(segment_id, 64), 'op': clip(op or 'span', 200), 'description': clip(description, 2000),
            'status': clip(status, 50), 'start': start, 'end': end, 'durationMs': duration_ms,
            'attributes': span_attributes(attributes)}


def span_of_transaction(span, start):
    """A span model as its transaction keeps it: startMs from the transaction's
    start (epoch seconds; None when the span's own start is unknown)."""
    return {'spanId': span['spanId'], 'parentSpanId': span['parentSpanId'], 'op': span['op'],
            'description': span['description'], 'status': span['status'],
            'startMs': round((span['start'] - start) * 1000.0, 3) if span['start'] is not None else None,
            'durationMs': span['durationMs'], 'attributes': span['attributes']}


def make_feedback(message, kind='feedback', event_id=None, name=None, email=None, url=None, source=None,
                  associated_event_id=None, replay_id=None, trace_id=None, environment=None, release=None,
                  timestamp=None, tags=None):
    """What a user wrote, about the error event it names (when it names one)."""
    received = now()
    if timestamp is None or timestamp > received + MAX_FUTURE_SECONDS:
        timestamp = received
    return {'kind': kind, 'eventId': event_id or uuid.uuid4().hex, 'message': clip(message, 8192),
            'name': clip(name, 200), 'email': clip(email, 320), 'url': clip(url, 2048), 'source': clip(source, 50),
            'associatedEventId': associated_event_id, 'replayId': clip(replay_id, 64), 'traceId': clip(trace_id, 64),
            'environment': clip(environment, 200), 'release': clip(release, 200), 'timestamp': timestamp,
            'received': received, 'tags': tags or None}


def web_vitals(measurements):
    """{name: number or {"value": number}} -> {name: {"value", "unit"}}, the web vitals only."""
    out = {}
    for name, unit in WEB_VITALS.items():
        value = measurements.get(name) if isinstance(measurements, dict) else None
        if isinstance(value, dict):
            value = value.get('value')
        if is_number(value) and math.isfinite(value) and value >= 0:
            out[name] = {'value': round(float(value), 4), 'unit': unit}
    return out


def span_web_vitals(attributes):
    """The web vitals a span carries as browser.web_vital.<name>.value
    attributes (the page-load span: TTFB, FP, FCP; LCP, CLS and INP spans)."""
    attributes = attributes or {}
    return web_vitals({name: attributes.get('browser.web_vital.%s.value' % name) for name in WEB_VITALS})


def make_ai_generation(provider, model, input_tokens, output_tokens=None, total_cost_usd=None, input_cost_usd=None,
                       output_cost_usd=None, latency_ms=None, time_to_first_token_ms=None, status='ok',
                       timestamp=None, trace_id=None, span_id=None, environment=None, tags=None, user=None,
                       metadata=None):
    """One call to a language model: tokens, cost and latency. Without a total
    cost, the input and output costs add up to it."""
    if total_cost_usd is None and (input_cost_usd is not None or output_cost_usd is not None):
        total_cost_usd = (input_cost_usd or 0) + (output_cost_usd or 0)
    return {'timestamp': timestamp or now(), 'provider': clip(provider, 200), 'model': clip(model, 200),
            'inputTokens': input_tokens, 'outputTokens': output_tokens, 'totalCostUsd': total_cost_usd,
            'inputCostUsd': input_cost_usd, 'outputCostUsd': output_cost_usd, 'latencyMs': latency_ms,
            'timeToFirstTokenMs': time_to_first_token_ms, 'status': status, 'traceId': clip(trace_id, 200),
            'spanId': clip(span_id, 200), 'environment': clip(environment, 200),
            'tags': string_map(tags) if tags else None, 'user': bound(user) if user else None,
            'metadata': bound(metadata) if metadata else None}


# Issue search and tags: the grammar of the issue list's query= (a hand-written
# tokenizer, linear in its input, with bounded terms and values) and the tags
# an error event is counted under (its own and the built-ins). Pure functions:
# the store turns terms into SQL with parameters, never pasted text.

SEARCH_MAX_CHARS = 4000
SEARCH_MAX_TERMS = 50
SEARCH_MAX_VALUE = 200
SEARCH_MAX_LIST = 100
SEARCH_STATUSES = ('unresolved', 'resolved', 'ignored', 'regressed')
SEARCH_TIMES = {'firstseen': 'firstSeen', 'lastseen': 'lastSeen', 'age': 'firstSeen'}
SEARCH_TIME_UNITS = {'m': 60, 'h': 3600, 'd': 86400, 'w': 604800}
# Facets list these first, in this order; the hidden ones are searchable and
# readable by name but shown through user, browser and os.
BUILTIN_TAGS = ('release', 'environment', 'browser', 'os', 'device', 'server_name', 'url', 'user')
HIDDEN_TAGS = ('user.id', 'user.email', 'user.username', 'user.ip', 'browser.name', 'os.name')
SEARCH_KEYS = ('is', 'level', 'firstSeen', 'lastSeen', 'age', 'firstRelease', 'message', 'has') + BUILTIN_TAGS + HIDDEN_TAGS
TAG_VALUE_LIMIT = 200       # tag values are stored (and searched) clipped to this, as Sentry does
MAX_EVENT_TAGS = 50         # an event's own tags counted for facets and search, besides the built-ins


class BadQuery(Exception):
    """A search query that cannot be run: the read API answers 400 with it."""

    def __init__(self, message, key=None, position=None):
        Exception.__init__(self, message)
        self.message, self.key, self.position = message, key, position

    def details(self):
        return {k: v for k, v in (('key', self.key), ('position', self.position)) if v is not None}


# kind: is | level | time | firstRelease | tag | has | text. values: a tuple of
# strings (for time: (column, op, epoch seconds)); negated: the term starts with "!".
SearchTerm = collections.namedtuple('SearchTerm', 'kind key values negated position')


class SearchQuery(object):
    """The terms of one query, all of which must hold."""

    def __init__(self, terms=()):
        self.terms = list(terms)

    def of(self, *kinds):
        return [t for t in self.terms if t.kind in kinds]

    @property
    def event_terms(self):
        """Terms an event matches (tags): they scope the issue's counts."""
        return self.of('tag')

    @property
    def tag_keys(self):
        """Every tag key the query names (tag and has: terms), for the check that they exist."""
        return sorted({t.key for t in self.of('tag', 'has')})

    def __bool__(self):
        return bool(self.terms)

    def __repr__(self):
        return 'SearchQuery(%r)' % self.terms


def _quoted(text, start, key):
    """The string quoted at text[start] ('"'), with \\" and \\\\ unescaped, and
    the index after its closing quote."""
    out, i, n = [], start + 1, len(text)
    while i < n:
        c = text[i]
        if c == '\\' and i + 1 < n and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return ''.join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise BadQuery('unbalanced quote', key=key, position=start)


def _bare(text, start, stops):
    """A bare word from start up to whitespace (or a character in stops)."""
    i, n = start, len(text)
    while i < n and not text[i].isspace() and text[i] not in stops:
        i += 1
    return text[start:i], i


def _value_list(text, start, key):
    """[a, "b c", d] at text[start] -> (values, index after "]")."""
    values, i, n = [], start + 1, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise BadQuery('unbalanced "["', key=key, position=start)
        if text[i] == '"':
            value, i = _quoted(text, i, key)
        else:
            value, i = _bare(text, i, ',]"')
        if value == '':
            raise BadQuery('empty value in the list of "%s"' % key, key=key, position=i)
        values.append(value)
        if len(values) > SEARCH_MAX_LIST:
            raise BadQuery('too many values for "%s" (at most %d)' % (key, SEARCH_MAX_LIST), key=key, position=start)
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == ',':
            i += 1
        elif i < n and text[i] == ']':
            return values, i + 1
        else:
            raise BadQuery('unbalanced "["', key=key, position=start)


def _search_time(value, key, position, at):
    """-24h (within the last 24 hours), +24h (longer ago), or >=, >, <=, < an
    ISO-8601 time -> (op, epoch seconds)."""
    sign, amount, unit = value[:1], value[1:-1], value[-1:]
    if sign in ('-', '+') and amount.isdigit() and len(amount) <= 6 and unit in SEARCH_TIME_UNITS:
        cutoff = at - int(amount) * SEARCH_TIME_UNITS[unit]
        return ('>=' if sign == '-' else '<'), cutoff
    for op in ('>=', '<=', '>', '<'):
        if value.startswith(op):
            try:
                return op, parse_timestamp(value[len(op):])
            except Invalid:
                break
    raise BadQuery('%s takes -24h, +7d (units m, h, d, w) or >=, >, <=, < an ISO-8601 time, not "%s"'
                   % (key, value), key=key, position=position)


def _search_term(key, values, negated, position, at):
    """One key:value term, checked and with its key in canonical spelling."""
    folded = key.lower()
    if folded == 'is':
        values = [v.lower() for v in values]
        for value in values:
            if value not in SEARCH_STATUSES:
                raise BadQuery('is: takes %s, not "%s"' % (', '.join(SEARCH_STATUSES), value), key=key,
                               position=position)
        return SearchTerm('is', 'is', tuple(values), negated, position)
    if folded == 'level':
        values = [v.lower() for v in values]
        for value in values:
            if value not in LEVELS:
                raise BadQuery('level: takes %s, not "%s"' % (', '.join(LEVELS), value), key=key, position=position)
        return SearchTerm('level', 'level', tuple(values), negated, position)
    if folded in SEARCH_TIMES:
        if len(values) != 1:
            raise BadQuery('%s takes one time, not a list' % key, key=key, position=position)
        op, cutoff = _search_time(values[0], key, position, at)
        return SearchTerm('time', SEARCH_TIMES[folded], (op, cutoff), negated, position)
    if folded == 'message':  # Sentry's message: is free text over the same fields
        if len(values) != 1:
            raise BadQuery('message: takes one text, not a list', key=key, position=position)
        return SearchTerm('text', None, tuple(values), negated, position)
    if folded == 'firstrelease':
        return SearchTerm('firstRelease', 'firstRelease', tuple(values), negated, position)
    if folded == 'has':
        if len(values) != 1:
            raise BadQuery('has: takes one key, not a list', key=key, position=position)
        name = values[0].lower() if values[0].lower() in BUILTIN_TAGS + HIDDEN_TAGS else values[0]
        return SearchTerm('has', name, (), negated, position)
    if folded in BUILTIN_TAGS or folded in HIDDEN_TAGS:
        key = folded
    return SearchTerm('tag', key, tuple(values), negated, position)


def parse_search(text, at=None):
    """The issue list's query text -> SearchQuery, or BadQuery naming what is wrong.
    One pass over the text: every character is looked at a bounded number of times."""
    if not text:
        return SearchQuery()
    if len(text) > SEARCH_MAX_CHARS:
        raise BadQuery('query too long (at most %d characters)' % SEARCH_MAX_CHARS)
    at = now() if at is None else at
    terms, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if len(terms) >= SEARCH_MAX_TERMS:
            raise BadQuery('too many terms (at most %d)' % SEARCH_MAX_TERMS, position=i)
        start = i
        negated = text[i] == '!' and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':  # a quoted phrase of free text
            phrase, i = _quoted(text, i, None)
            if phrase.strip():
                terms.append(SearchTerm('text', None, (phrase.strip()[:SEARCH_MAX_VALUE],), negated, start))
            continue
        key, i = _bare(text, i, ':')
        if i >= n or text[i] != ':' or not key:  # a word of free text (it may hold ':' after the first char)
            word, i = _bare(text, start + 1 if negated else start, '')
            terms.append(SearchTerm('text', None, (word[:SEARCH_MAX_VALUE],), negated, start))
            continue
        i += 1  # the colon
        if i >= n or text[i].isspace():
            raise BadQuery('"%s:" needs a value' % key, key=key, position=start)
        if text[i] == '"':
            value, i = _quoted(text, i, key)
            values = [value]
        elif text[i] == '[':
            values, i = _value_list(text, i, key)
        else:
            value, i = _bare(text, i, '')
            values = [value]
        if i < n and not text[i].isspace():
            raise BadQuery('a space must follow the value of "%s"' % key, key=key, position=i)
        for value in values:
            if len(value) > SEARCH_MAX_VALUE:
                raise BadQuery('a value of "%s" is longer than %d characters' % (key, SEARCH_MAX_VALUE),
                               key=key, position=start)
        if values == ['']:
            raise BadQuery('"%s:" needs a value' % key, key=key, position=start)
        terms.append(_search_term(key, values, negated, start, at))
    return SearchQuery(terms)


def _user_agent_browser(agent):
    """(name, version) from a User-Agent header, by plain substring search (no
    regular expression ever sees client text here)."""
    for marker, name in (('Edg/', 'Edge'), ('OPR/', 'Opera'), ('Firefox/', 'Firefox'), ('Chrome/', 'Chrome'),
                         ('Version/', 'Safari')):
        at = agent.find(marker)
        if at >= 0 and (name != 'Safari' or 'Safari/' in agent):
            version, _ = _bare(agent, at + len(marker), ';)')
            return name, version
    return None, None


def _user_agent_os(agent):
    for marker, name in (('Windows', 'Windows'), ('iPhone OS', 'iOS'), ('iPad', 'iOS'), ('Android', 'Android'),
                         ('Mac OS X', 'macOS'), ('CrOS', 'Chrome OS'), ('Linux', 'Linux')):
        if marker in agent:
            return name
    return None


def _header_value(headers, name):
    if isinstance(headers, dict):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name and isinstance(value, str):
                return value
    elif isinstance(headers, list):
        for pair in headers:
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and \
                    pair[0].lower() == name and isinstance(pair[1], str):
                return pair[1]
    return None


def _context_text(contexts, name, *fields):
    """' '.join of the string (or number) fields of contexts[name] that are present."""
    context = contexts.get(name) if isinstance(contexts, dict) else None
    if not isinstance(context, dict):
        return None
    parts = [str(context[f]) for f in fields if isinstance(context.get(f), (str, int, float))
             and not isinstance(context.get(f), bool) and str(context[f]).strip()]
    return ' '.join(parts) or None


def event_links(event):
    """(trace id, replay id) of an error event: Sentry's contexts.trace.trace_id and
    contexts.replay.replay_id, or the model's own traceId / replayId."""
    contexts = event.get('contexts') if event.get('contexts').__class__ is dict else {}
    found = []
    for field, context, key in (('traceId', 'trace', 'trace_id'), ('replayId', 'replay', 'replay_id')):
        value = event.get(field)
        inner = contexts.get(context)
        if value is None and inner.__class__ is dict:
            value = inner.get(key)
        found.append(value[:200] if value.__class__ is str and value.strip() else None)
    return tuple(found)


def value_crc(value):
    """The checksum tag values are looked up by (with the value itself: two values may share one)."""
    return zlib.crc32(value.encode('utf-8'))


def event_messages(event):
    """The texts free-text search finds an event by: its message and the raised exception's value."""
    exceptions = event.get('exception') or ()
    value = exceptions[-1].get('value') if exceptions else None
    return [text for text in (event.get('message'), value) if isinstance(text, str) and text.strip()]


# The user tag is "id:42", else "email:a@b.c", else "username:ann", else "ip:10.0.0.1", as in
# Sentry. The fields it does not show are tags of their own (user.email of a
# user with an id); user.id never needs to be: user shows it whenever there is one.
USER_TAGS = (('id', 'user.id', 'id:'), ('email', 'user.email', 'email:'),
             ('username', 'user.username', 'username:'), ('ip_address', 'user.ip', 'ip:'), ('ip', 'user.ip', 'ip:'))
USER_TAG_PREFIXES = {key: prefix for _, key, prefix in USER_TAGS}


def user_tag_values(key, values):
    """The (key, value) pairs an event whose user field `key` (user.email...)
    has one of values carries: the user tag when that field is the one it
    shows, else the field's own tag."""
    return [('user', USER_TAG_PREFIXES[key] + value) for value in values] + (
        [(key, value) for value in values] if key != 'user.id' else [])


def event_tags(event):
    """The tags an error event is counted under: the built-ins, derived from its
    fields, then its own tags (an own tag of a built-in's name wins), as
    [(key, value)], values clipped to TAG_VALUE_LIMIT, none empty."""
    found = {}
    user = event.get('user')
    if user.__class__ is dict:
        for field, key, prefix in USER_TAGS:
            value = user.get(field)
            if value is not None and value.__class__ in (str, int) and key not in found:
                value = str(value)
                if value.strip() and value != '{{auto}}':
                    if 'user' in found:
                        found[key] = value
                    else:
                        found['user'] = prefix + value
                        found[key] = None  # shown by user; only marks the field as seen
    contexts = event.get('contexts')
    request = event.get('request')
    agent = _header_value(request.get('headers'), 'user-agent') if request.__class__ is dict else None
    if contexts or agent:
        browser_name = _context_text(contexts, 'browser', 'name')
        if browser_name:
            found['browser.name'] = browser_name
            found['browser'] = _context_text(contexts, 'browser', 'name', 'version')
        elif agent:
            name, version = _user_agent_browser(agent)
            if name:
                found['browser.name'], found['browser'] = name, ('%s %s' % (name, version)).strip()
        os_name = _context_text(contexts, 'os', 'name')
        if os_name:
            found['os.name'], found['os'] = os_name, _context_text(contexts, 'os', 'name', 'version')
        elif agent and _user_agent_os(agent):
            found['os.name'] = found['os'] = _user_agent_os(agent)
        device = _context_text(contexts, 'device', 'model') or _context_text(contexts, 'device', 'family')
        if device:
            found['device'] = device
    if request.__class__ is dict:
        url = request.get('url')
        if url.__class__ is str and url.strip():
            found['url'] = url.split('?', 1)[0].split('#', 1)[0]
    for key, value in (('server_name', event.get('serverName') or event.get('hostname')),
                       ('environment', event.get('environment')), ('release', event.get('release'))):
        if value.__class__ is str and value.strip():
            found[key] = value
    own = event.get('tags')
    if own:
        for key, value in itertools.islice(own.items(), MAX_EVENT_TAGS):
            if key and value.__class__ is str and value.strip():
                found[key] = value
    return [(key[:TAG_VALUE_LIMIT], value[:TAG_VALUE_LIMIT]) for key, value in found.items() if value is not None]


###############################################################################
# Cron monitors: schedules and state ##########################################
###############################################################################
# Owns what a monitor's schedule means: an interval ("5m", "1h", "1d") or a
# 5-field cron expression (minute hour day-of-month month day-of-week, in the
# monitor's time zone, UTC by default), the next expected run, the status the
# clock gives a monitor, and the fields a monitor may have. No SQL, no HTTP.

INTERVAL = re.compile(r'^\s*(\d{1,12})\s*(m|min|minutes?|h|hours?|d|days?|w|weeks?)\s*$', re.I)
MAX_SCHEDULE = 200                  # characters: a crontab is short, and every read parses it
MAX_MONITORS = 1000                 # per project: a check-in for an unknown slug makes one, and lists show them all
INTERVAL_RANGE = (60, 3650 * 86400)  # seconds: from one minute to ten years

CRON_MACROS = {'@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
               '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *'}

CRON_NAMES = {'jan': 1, 'feb': 2, 'mar': 3, 'apr': 4, 'may': 5, 'jun': 6, 'jul': 7, 'aug': 8, 'sep': 9,
              'oct': 10, 'nov': 11, 'dec': 12, 'sun': 0, 'mon': 1, 'tue': 2, 'wed': 3, 'thu': 4, 'fri': 5, 'sat': 6}

CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def interval_seconds(schedule):
    match = INTERVAL.match(schedule)
    if not match:
        return None
    unit = match.group(2)[0].lower()
    return int(match.group(1)) * {'m': 60, 'h': 3600, 'd': 86400, 'w': 604800}[unit]


def parse_cron(expression):
    """A cron expression -> five sets of allowed values (plus whether day of
    month and day of week were both restricted). Raises Invalid."""
    expression = CRON_MACROS.get(expression.strip().lower(), expression)
    fields = expression.split()
    if len(fields) != 5:
        raise Invalid('must be an interval such as 5m, 1h, 1d or a 5-field cron expression', 'schedule')
    sets = []
    for text, (low, high) in zip(fields, CRON_RANGES):
        allowed = set()
        for part in text.lower().split(','):
            step = 1
            if '/' in part:
                part, step_text = part.split('/', 1)
                if not step_text.isdigit() or int(step_text) == 0:
                    raise Invalid('has a bad step: %s' % text, 'schedule')
                step = int(step_text)
            if part in ('*', ''):
                start, end = low, high
            elif '-' in part:
                start, end = (CRON_NAMES.get(p, p) for p in part.split('-', 1))
            else:
                start = end = CRON_NAMES.get(part, part)
                if step != 1:
                    end = high
            try:
                start, end = int(start), int(end)
            except ValueError:
                raise Invalid('has a bad field: %s' % text, 'schedule')
            if not (low <= start <= high and low <= end <= high and start <= end):
                raise Invalid('has a field out of range: %s' % text, 'schedule')
            allowed.update(range(start, end + 1, step))
        sets.append(allowed)
    if 7 in sets[4]:
        sets[4].add(0)
    return sets, fields[2] != '*' and fields[4] != '*'


DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 happens


def cron_possible(sets, both):
    """Whether a parsed cron expression ever fires: "0 0 31 2 *" never does."""
    _, _, days, months, _ = sets
    return both or any(day <= DAYS_IN_MONTH[month] for month in months for day in days)


@functools.lru_cache(maxsize=1024)
def cron_plan(expression):
    """parse_cron, remembered (every monitor listing asks for each schedule),
    plus whether the expression can fire at all."""
    sets, both = parse_cron(expression)
    return sets, both, cron_possible(sets, both)


def validate_schedule(schedule):
    require(isinstance(schedule, str) and schedule.strip(), 'is required', 'schedule')
    require(len(schedule) <= MAX_SCHEDULE, 'must be at most %d characters' % MAX_SCHEDULE, 'schedule')
    seconds = interval_seconds(schedule)
    if seconds is None:
        require(cron_plan(schedule.strip())[2], 'never fires: no month has that day', 'schedule')
    else:
        require(INTERVAL_RANGE[0] <= seconds <= INTERVAL_RANGE[1], 'must be an interval from 1 minute to 10 years',
                'schedule')
    return schedule.strip()


def zone(name):
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name or 'UTC')
    except Exception:
        return timezone.utc


def valid_timezone(name):
    """An IANA time zone name (UTC included), as a monitor may carry."""
    return isinstance(name, str) and 0 < len(name) <= 64 and (
        name in ('UTC', 'Etc/UTC') or zone(name) is not timezone.utc)


def next_run(schedule, after, tz_name='UTC'):
    """The first scheduled time strictly after `after` (epoch seconds); None
    for a monitor without a schedule or one that never fires (stored before
    such schedules were refused). The search skips months the schedule does
    not name, so it looks at no more than about 5 years of the days it names."""
    if not schedule:
        return None
    seconds = interval_seconds(schedule)
    if seconds is not None:
        return after + seconds
    try:
        (minutes, hours, days, months, weekdays), both, possible = cron_plan(schedule)
    except Invalid:
        return None
    if not possible:
        return None
    tz = zone(tz_name)
    start = datetime.fromtimestamp(after, tz).replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(366 * 5):
        if day.month not in months:  # on to the first of the next month
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0)
            continue
        day_ok = (
            (day.day in days or (day.weekday() + 1) % 7 in weekdays) if both
            else (day.day in days and (day.weekday() + 1) % 7 in weekdays))
        if day_ok:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate >= start:
                        return candidate.timestamp()
        day = (day + timedelta(days=1)).replace(hour=0, minute=0)
    return None


DEFAULT_MAX_RUNTIME = 30  # minutes an in-progress run may take without its own max_runtime, as in Sentry


def monitor_state(monitor, at=None):
    """Status and next expected time of a monitor, from its last ping and the
    clock: pending, healthy, late (within grace), missed, failed, running or
    timeout (an in-progress run past its max runtime)."""
    at = now() if at is None else at
    grace = (monitor.get('grace') or 0) * 60
    last = monitor.get('lastPing')
    expected = next_run(monitor['schedule'], last if last is not None else monitor['created'],
                        monitor.get('timezone') or 'UTC')
    if monitor.get('runningSince') is not None:
        limit = monitor.get('maxRuntime') or DEFAULT_MAX_RUNTIME
        if at > monitor['runningSince'] + limit * 60:
            return 'timeout', expected
        return 'running', expected
    if last is None:
        return 'pending', expected
    if monitor.get('lastStatus') == 'failed':
        return 'failed', expected
    if expected is None or at <= expected:
        return 'healthy', expected
    if at <= expected + grace:
        return 'late', expected
    return 'missed', expected


def make_checkin(status, timestamp=None, duration_ms=None, message=None, checkin_id=None):
    """One ping of a cron monitor; status is success, failed or in_progress.
    checkin_id ties the end of a run to its start."""
    return {'status': status, 'timestamp': timestamp if timestamp is not None else now(),
            'durationMs': duration_ms, 'message': clip(message, 4096), 'checkinId': clip(checkin_id, 100)}


SLUG = re.compile(r'^[a-z0-9_-]{1,64}$')


def slugify(text):
    """A monitor slug from what an SDK calls it, as Sentry makes one:
    "Nightly DB backup" -> "nightly-db-backup"."""
    return re.sub(r'[^a-z0-9_]+', '-', text.strip().lower()).strip('-')[:64].strip('-')


def validate_monitor(data, partial=False):
    """Monitor fields from user input (read API, command line) -> clean dict."""
    out = {}
    if not partial or 'slug' in data:
        slug = data.get('slug')
        require(isinstance(slug, str) and SLUG.match(slug), 'must match [a-z0-9_-]+', 'slug')
        out['slug'] = slug
    if 'name' in data or not partial:
        name = data.get('name') or data.get('slug')
        require(isinstance(name, str) and name.strip(), 'must be a non-empty string', 'name')
        out['name'] = clip(name.strip(), 200)
    if 'schedule' in data or not partial:
        out['schedule'] = validate_schedule(data.get('schedule'))
    if 'grace' in data or not partial:
        grace = data.get('grace', 5)
        require(is_int(grace) and 1 <= grace <= 1440, 'must be an integer from 1 to 1440 (minutes)', 'grace')
        out['grace'] = grace
    if data.get('maxRuntime') is not None:
        require(is_int(data['maxRuntime']) and 1 <= data['maxRuntime'] <= 10080, 'must be minutes, 1 to 10080',
                'maxRuntime')
        out['maxRuntime'] = data['maxRuntime']
    if data.get('timezone') is not None:
        require(valid_timezone(data['timezone']), 'must be an IANA time zone', 'timezone')
        out['timezone'] = data['timezone']
    return out


###############################################################################
# Storage #####################################################################
###############################################################################
# Owns SQLite: the schema and its migrations, the single writer thread that
# group-commits every change, and the queries. Store holds the connections, the
# id floors and the projects; each kind of data has a small class below it
# (Issues, Events, Telemetry, Monitors, Quotas, Retention, SourceMaps), and
# Store.adders names what add_batch stores: a new kind of data is a class here
# and a line there. It maps model objects to columns and back; it knows no
# dialect and no answer format.
# Reads use per-thread connections (WAL) and never wait on the writer.

def marks(values):
    """'?, ?, ?': one SQL parameter mark per value."""
    return ','.join('?' * len(values))


def named(columns, row):
    """A row as {column name: value}: what the store hands over is named as
    its columns are, never as an answer names it."""
    return dict(zip(columns, row))


# Statements over many rows take them as one VALUES list (executemany steps a
# statement once per row, and cannot RETURN). Lists come in power-of-two
# sizes up to VALUES_CHUNK, so a few texts are compiled and cached.
VALUES_CHUNK = 64
_values_sql = {}


def values_rows(conn, sql, width, rows):
    """Run sql, whose %s is where a VALUES list goes, over rows (tuples of
    width values), VALUES_CHUNK rows at most a statement; returns the rows
    the statements return, as one list."""
    out, at, size = [], 0, VALUES_CHUNK
    while at < len(rows):
        while size > len(rows) - at:
            size //= 2
        text = _values_sql.get((sql, size))
        if text is None:
            text = _values_sql[sql, size] = sql % ','.join(['(%s)' % ','.join('?' * width)] * size)
        out += conn.execute(text, list(itertools.chain.from_iterable(rows[at:at + size]))).fetchall()
        at += size
    return out


def like_pattern(text):
    """A LIKE pattern matching text anywhere, with its wildcards escaped (ESCAPE '\\')."""
    return '%' + re.sub(r'([%_\\])', r'\\\1', text) + '%'


MIGRATIONS = [
    # 1: projects, errors grouped into issues, hourly issue counts for sparklines.
    '''
    CREATE TABLE projects(
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}');
    CREATE TABLE issues(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        title TEXT NOT NULL,
        culprit TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL DEFAULT '',
        value TEXT NOT NULL DEFAULT '',
        level TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'unresolved',
        regression INTEGER NOT NULL DEFAULT 0,
        count INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        last_release TEXT,
        releases TEXT NOT NULL DEFAULT '[]',
        environments TEXT NOT NULL DEFAULT '[]',
        seq INTEGER NOT NULL DEFAULT 0,
        UNIQUE(project_id, fingerprint));
    CREATE INDEX issues_last_seen ON issues(project_id, last_seen);
    CREATE INDEX issues_first_seen ON issues(project_id, first_seen);
    CREATE INDEX issues_count ON issues(project_id, count);
    CREATE INDEX issues_seq ON issues(project_id, seq);
    CREATE TABLE issue_hours(
        issue_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY(issue_id, hour)) WITHOUT ROWID;
    CREATE TABLE events(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        issue_id INTEGER,
        event_id TEXT,
        received REAL NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX events_project ON events(project_id, id);
    CREATE INDEX events_issue ON events(issue_id, id);
    CREATE UNIQUE INDEX events_event_id ON events(project_id, event_id) WHERE event_id IS NOT NULL;
    ''',
    # 2: telemetry beyond errors.
    '''
    CREATE TABLE http_requests(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        trace_id TEXT,
        direction TEXT NOT NULL,
        method TEXT NOT NULL,
        host TEXT NOT NULL,
        path TEXT NOT NULL,
        status_code INTEGER,
        duration_ms REAL,
        request_size INTEGER,
        response_size INTEGER,
        user_id TEXT);
    CREATE INDEX http_requests_project ON http_requests(project_id, id);
    CREATE INDEX http_requests_time ON http_requests(project_id, timestamp);
    CREATE TABLE replay_sessions(
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        fingerprint TEXT,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        events INTEGER NOT NULL,
        urls TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY(project_id, session_id));
    CREATE INDEX replay_sessions_last ON replay_sessions(project_id, last_ms);
    CREATE TABLE replay_events(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        event_data TEXT,
        url TEXT,
        timestamp_ms INTEGER NOT NULL);
    CREATE INDEX replay_events_session ON replay_events(project_id, session_id, timestamp_ms);
    CREATE TABLE logs(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        service TEXT,
        trace_id TEXT,
        metadata TEXT);
    CREATE INDEX logs_project ON logs(project_id, id);
    CREATE TABLE transactions(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        event_id TEXT,
        name TEXT NOT NULL,
        trace_id TEXT,
        duration_ms REAL NOT NULL,
        status TEXT NOT NULL,
        timestamp REAL NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX transactions_time ON transactions(project_id, timestamp);
    CREATE INDEX transactions_name ON transactions(project_id, name, id);
    CREATE UNIQUE INDEX transactions_event_id ON transactions(project_id, event_id) WHERE event_id IS NOT NULL;
    CREATE TABLE ai_generations(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER,
        cost_usd REAL,
        latency_ms REAL,
        status TEXT NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX ai_generations_time ON ai_generations(project_id, timestamp);
    ''',
    # 3: cron monitors and their check-ins.
    '''
    CREATE TABLE monitors(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        schedule TEXT NOT NULL,
        grace INTEGER NOT NULL DEFAULT 5,
        max_runtime INTEGER,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        created REAL NOT NULL,
        last_ping REAL,
        last_status TEXT,
        running_since REAL,
        running_id TEXT,
        alerted TEXT,
        UNIQUE(project_id, slug));
    CREATE TABLE checkins(
        id INTEGER PRIMARY KEY,
        monitor_id INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        status TEXT NOT NULL,
        duration_ms REAL,
        message TEXT,
        checkin_id TEXT);
    CREATE INDEX checkins_monitor ON checkins(monitor_id, id);
    ''',
    # 4: the highest ids and issue seq ever given, kept when deletes take the newest rows.
    '''
    CREATE TABLE counters(
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL) WITHOUT ROWID;
    ''',
    # 5: tags for facets and search (the Tags store), distinct messages for free-text search.
    '''
    CREATE TABLE tag_keys(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        events INTEGER NOT NULL DEFAULT 0,
        distinct_values INTEGER NOT NULL DEFAULT 0,
        UNIQUE(project_id, key));
    CREATE TABLE tag_values(
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL,
        value TEXT NOT NULL,
        crc INTEGER NOT NULL,
        events INTEGER NOT NULL DEFAULT 0,
        last_seen REAL NOT NULL);
    CREATE INDEX tag_values_crc ON tag_values(key_id, crc);
    CREATE INDEX tag_values_top ON tag_values(key_id, events);
    CREATE TABLE issue_tags(
        issue_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        value_id INTEGER NOT NULL,
        events INTEGER NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY(issue_id, key_id, value_id)) WITHOUT ROWID;
    CREATE INDEX issue_tags_top ON issue_tags(issue_id, key_id, events);
    CREATE TABLE issue_keys(
        issue_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        events INTEGER NOT NULL,
        distinct_values INTEGER NOT NULL,
        PRIMARY KEY(issue_id, key_id)) WITHOUT ROWID;
    CREATE TABLE event_tags(
        issue_id INTEGER NOT NULL,
        value_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        event_id INTEGER NOT NULL,
        PRIMARY KEY(issue_id, value_id, hour, event_id)) WITHOUT ROWID;
    CREATE TABLE issue_messages(
        issue_id INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY(issue_id, message)) WITHOUT ROWID;
    ALTER TABLE events ADD COLUMN tag_ids TEXT;
    ''',
    # 6: newest first by each item's own time (id breaks ties), for events, logs, transactions by name, check-ins.
    '''
    ALTER TABLE events ADD COLUMN timestamp REAL;
    UPDATE events SET timestamp=COALESCE(CASE WHEN typeof(data)='text' AND json_valid(data)
                                         THEN json_extract(data, '$.timestamp') END, received);
    DROP INDEX events_issue;
    CREATE INDEX events_issue_time ON events(issue_id, timestamp, id);
    CREATE INDEX events_time ON events(project_id, timestamp, id);
    CREATE INDEX logs_time ON logs(project_id, timestamp);
    DROP INDEX transactions_name;
    CREATE INDEX transactions_name_time ON transactions(project_id, name, timestamp);
    CREATE INDEX checkins_time ON checkins(monitor_id, timestamp);
    ''',
    # 7: source maps: upload tokens (by digest), chunks waiting to be assembled,
    # releases sentry-cli created, artifact bundles and the files of their manifests.
    '''
    CREATE TABLE upload_tokens(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        digest TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        last_used REAL);
    CREATE INDEX upload_tokens_project ON upload_tokens(project_id);
    CREATE TABLE upload_chunks(
        id INTEGER PRIMARY KEY,
        checksum TEXT NOT NULL UNIQUE,
        data BLOB NOT NULL,
        received REAL NOT NULL);
    CREATE INDEX upload_chunks_received ON upload_chunks(received);
    CREATE TABLE upload_releases(
        project_id INTEGER NOT NULL,
        version TEXT NOT NULL,
        created REAL NOT NULL,
        url TEXT,
        date_released REAL,
        PRIMARY KEY(project_id, version));
    CREATE INDEX upload_releases_version ON upload_releases(version);
    CREATE TABLE sourcemap_bundles(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        bundle_id TEXT NOT NULL,
        checksum TEXT NOT NULL,
        release TEXT NOT NULL DEFAULT '',
        dist TEXT NOT NULL DEFAULT '',
        uploaded REAL NOT NULL,
        last_used REAL NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER NOT NULL,
        data BLOB NOT NULL);
    CREATE INDEX sourcemap_bundles_project ON sourcemap_bundles(project_id, bundle_id);
    CREATE INDEX sourcemap_bundles_checksum ON sourcemap_bundles(checksum);
    CREATE INDEX sourcemap_bundles_used ON sourcemap_bundles(project_id, last_used);
    CREATE TABLE sourcemap_files(
        bundle INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        path TEXT NOT NULL,
        url TEXT NOT NULL,
        type TEXT NOT NULL,
        debug_id TEXT,
        sourcemap TEXT,
        release TEXT NOT NULL DEFAULT '',
        dist TEXT NOT NULL DEFAULT '');
    CREATE INDEX sourcemap_files_bundle ON sourcemap_files(bundle);
    CREATE INDEX sourcemap_files_debug_id ON sourcemap_files(project_id, debug_id, type, bundle);
    CREATE INDEX sourcemap_files_url ON sourcemap_files(project_id, release, dist, url, bundle);
    ''',
    # 8: one trace across every kind: errors carry their trace and replay ids, and every kind is found by trace.
    '''
    ALTER TABLE events ADD COLUMN trace_id TEXT;
    ALTER TABLE events ADD COLUMN replay_id TEXT;
    UPDATE events SET trace_id=json_extract(data, '$.contexts.trace.trace_id'),
                      replay_id=json_extract(data, '$.contexts.replay.replay_id')
        WHERE typeof(data)='text' AND json_valid(data);
    UPDATE events SET trace_id=NULL WHERE typeof(trace_id)!='text';
    UPDATE events SET replay_id=NULL WHERE typeof(replay_id)!='text';
    CREATE INDEX events_trace ON events(project_id, trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX events_replay ON events(project_id, replay_id) WHERE replay_id IS NOT NULL;
    CREATE INDEX http_requests_trace ON http_requests(project_id, trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX logs_trace ON logs(project_id, trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX transactions_trace ON transactions(project_id, trace_id) WHERE trace_id IS NOT NULL;
    ALTER TABLE ai_generations ADD COLUMN trace_id TEXT;
    UPDATE ai_generations SET trace_id=json_extract(data, '$.traceId') WHERE json_valid(data);
    UPDATE ai_generations SET trace_id=NULL WHERE typeof(trace_id)!='text';
    CREATE INDEX ai_generations_trace ON ai_generations(project_id, trace_id) WHERE trace_id IS NOT NULL;
    ''',
    # 9: releases (first seen, environments; events and last seen are the release tag's counts), the
    # release an issue first came in and regressed in, and "resolved in the next release".
    '''
    CREATE TABLE releases(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        version TEXT NOT NULL,
        first_seen REAL NOT NULL,
        environments TEXT NOT NULL DEFAULT '[]',
        UNIQUE(project_id, version));
    CREATE INDEX releases_first_seen ON releases(project_id, first_seen);
    ALTER TABLE issues ADD COLUMN first_release TEXT;
    ALTER TABLE issues ADD COLUMN regressed_in TEXT;
    ALTER TABLE issues ADD COLUMN in_next_release INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE issues ADD COLUMN resolved_after TEXT;
    CREATE INDEX issues_first_release ON issues(project_id, first_release) WHERE first_release IS NOT NULL;
    CREATE INDEX issues_regressed_in ON issues(project_id, regressed_in) WHERE regressed_in IS NOT NULL;
    INSERT OR IGNORE INTO releases(project_id, version, first_seen)
        SELECT k.project_id, v.value, MIN(t.first_seen) FROM issue_tags t JOIN tag_keys k ON k.id=t.key_id
        JOIN tag_values v ON v.id=t.value_id WHERE k.key='release' GROUP BY k.project_id, v.value;
    INSERT OR IGNORE INTO releases(project_id, version, first_seen)
        SELECT i.project_id, r.value, MIN(i.first_seen) FROM issues i, json_each(i.releases) r
        WHERE json_valid(i.releases) AND typeof(r.value)='text' GROUP BY i.project_id, r.value;
    ''',
    # 10: merged issues: the fingerprints of issues merged into another, which later events of them land on.
    '''
    CREATE TABLE issue_aliases(
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        issue_id INTEGER NOT NULL,
        PRIMARY KEY(project_id, fingerprint)) WITHOUT ROWID;
    CREATE INDEX issue_aliases_issue ON issue_aliases(issue_id);
    ''',
    # 11: streamed spans (Sentry span items), each with its transaction once that
    # transaction's root span (segment) is known; transactions found by segment.
    '''
    ALTER TABLE transactions ADD COLUMN segment_id TEXT;
    CREATE UNIQUE INDEX transactions_segment ON transactions(project_id, trace_id, segment_id)
        WHERE segment_id IS NOT NULL;
    CREATE TABLE spans(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        segment_id TEXT,
        transaction_id INTEGER,
        received REAL NOT NULL,
        data TEXT NOT NULL);
    CREATE UNIQUE INDEX spans_span ON spans(project_id, trace_id, span_id);
    CREATE INDEX spans_waiting ON spans(project_id, trace_id, segment_id) WHERE transaction_id IS NULL;
    CREATE INDEX spans_transaction ON spans(transaction_id) WHERE transaction_id IS NOT NULL;
    CREATE INDEX spans_received ON spans(project_id, received);
    ''',
    # 12: user feedback (Sentry feedback and user_report items), naming the event it is about.
    '''
    CREATE TABLE feedback(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        associated_event_id TEXT,
        timestamp REAL NOT NULL,
        received REAL NOT NULL,
        data TEXT NOT NULL,
        UNIQUE(project_id, event_id));
    CREATE INDEX feedback_time ON feedback(project_id, timestamp, id);
    CREATE INDEX feedback_event ON feedback(project_id, associated_event_id) WHERE associated_event_id IS NOT NULL;
    CREATE INDEX feedback_received ON feedback(project_id, received);
    ''',
    # 13: replays from the Sentry SDK beside SeeStack's (source, and what each segment's replay_event says).
    '''
    ALTER TABLE replay_sessions ADD COLUMN source TEXT NOT NULL DEFAULT 'seestack';
    ALTER TABLE replay_sessions ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
    ''',
    # 14: telemetry is aged by arrival, as errors are: when each row came (rows
    # from before have none, and their own time stands in).
    '''
    ALTER TABLE http_requests ADD COLUMN received REAL;
    ALTER TABLE logs ADD COLUMN received REAL;
    ALTER TABLE transactions ADD COLUMN received REAL;
    ALTER TABLE ai_generations ADD COLUMN received REAL;
    ALTER TABLE replay_sessions ADD COLUMN received REAL;
    CREATE INDEX transactions_received ON transactions(project_id, received);
    CREATE INDEX ai_generations_received ON ai_generations(project_id, received);
    ''',
    # 15: Sentry check-ins matched to their run by check_in_id, whatever the arrival order.
    '''
    CREATE INDEX checkins_run ON checkins(monitor_id, checkin_id) WHERE checkin_id IS NOT NULL;
    ''',
    # 16: Sentry envelope items accepted but not stored, counted by type.
    '''
    CREATE TABLE item_counts(
        project_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY(project_id, type)) WITHOUT ROWID;
    ''',
    # 16: attachments (Sentry `attachment` items), kept with the event they name.
    '''
    CREATE TABLE attachments(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT,
        attachment_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        data BLOB NOT NULL);
    CREATE INDEX attachments_event ON attachments(project_id, event_id);
    CREATE INDEX attachments_created ON attachments(project_id, created, size);
    ''',
    # 18: events stored before tags (migration 5) have none: the sweeper's Tags.backfill counts
    # them, a short transaction at a time, from here (at) up to the highest event id now (end).
    '''
    INSERT OR REPLACE INTO counters(name, value) SELECT 'tag_backfill_end', MAX(id) FROM events HAVING COUNT(*);
    INSERT OR REPLACE INTO counters(name, value) SELECT 'tag_backfill_at', 0 FROM counters
        WHERE name='tag_backfill_end';
    ''',
    # 19: what several server processes on one file must agree on: each project's accepted items in the
    # current minute (its rate limit), and alerts waiting for the one alerter (written with their change,
    # with the webhook URL the project had then).
    '''
    CREATE TABLE quota_windows(
        project_id INTEGER PRIMARY KEY,
        minute INTEGER NOT NULL,
        count INTEGER NOT NULL);
    CREATE TABLE alert_outbox(
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        url TEXT NOT NULL);
    ''',
    # 20: an issue's events per tag key are its issue_tags summed, not a count of their own written for every
    # event: issue_keys keeps the distinct values, which change only when an issue gains or loses one.
    '''
    ALTER TABLE issue_keys DROP COLUMN events;
    ''',
    # 21: a new event's tags go first to recent_event_tags, one row per event (its value ids, as
    # events.tag_ids), at the end of its issue's hour, and move to event_tags (a row per tag, ordered by
    # value) many events at a time: a commit writes about one page per issue for them, not one per tag.
    # Queries read both, as event_tag_rows.
    '''
    CREATE TABLE recent_event_tags(
        issue_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        event_id INTEGER NOT NULL,
        value_ids TEXT NOT NULL,
        PRIMARY KEY(issue_id, hour, event_id)) WITHOUT ROWID;
    CREATE VIEW event_tag_rows AS SELECT issue_id, value_id, hour, event_id FROM event_tags
        UNION ALL SELECT r.issue_id, j.value, r.hour, r.event_id FROM recent_event_tags r,
                         json_each('[' || r.value_ids || ']') j;
    ''',
]


def stored_form(event):
    """An event as its data column holds it: no grouping keys (_*), nothing
    that has a column of its own, nothing loaded_form can derive."""
    out = {k: v for k, v in event.items() if k[0] != '_' and k not in NOT_STORED}
    exceptions = out.get('exception')
    if exceptions:
        for e in exceptions:
            if 'stackTrace' in e:
                # Frames parsed from trace text are derived data: the text is about a
                # third of their JSON, and small events are mostly stack.
                out['exception'] = [{k: v for k, v in e.items() if k != 'frames'} if 'stackTrace' in e else e
                                    for e in exceptions]
                break
    if out.get('timestamp') == event['received']:
        del out['timestamp']
    if out.get('levelRaw') == out.get('level'):
        del out['levelRaw']
    return out


NOT_STORED = frozenset(('received', 'eventId', 'kind'))  # columns of their own, or always 'error'


# An event's data column is its stored form deflated against a dictionary of
# what events share (field names, common values), so a ~3 KB Sentry event takes
# ~950 bytes and a ~400-byte SeeStack one ~240. The first byte names the
# dictionary, so a better one can come later without rewriting rows. A row
# written before events were deflated holds JSON text and is read as it is.
EVENT_DICTIONARIES = {1: ''.join((
    '"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/',
    '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15","Accept-Language":"en-US,en;q=0.9",',
    '"Accept":"text/html,application/json","Host":"localhost","Content-Type":"application/json",',
    '"runtime":{"name":"CPython","version":"3.11","os":{"name":"Linux","device":{"model":"browser":{"name":',
    '"trace":{"trace_id":"span_id":"parent_span_id":"op":"http.server","status":"ok","type":"trace"},',
    '"sdk":{"name":"sentry.python","version":"2.","packages":[{"name":"pypi:sentry-sdk","integrations":[',
    '"sentry.javascript.node","sentry.javascript.browser","npm:@sentry/"}]},"platform":"python",',
    '"platform":"javascript","platform":"node","serverName":"hostname":"logger":"transaction":"/',
    '"breadcrumbs":[{"timestamp":"category":"http","category":"console","category":"navigation","message":',
    '"level":"info","type":"default","type":"http","data":{"url":"method":"GET","status_code":200,',
    '"request":{"method":"POST","url":"http://","https://","query":"data":"headers":{"User-Agent":"',
    '"cookies":"env":{"REMOTE_ADDR":"127.0.0.1","SERVER_NAME":"SERVER_PORT":"80"},"extra":{"sys.argv":[',
    '"user":{"id":"email":"ip_address":"username":"tags":{"fingerprint":["{{ default }}"],"file":"line":',
    '"mechanism":{"type":"generic","handled":false},"mechanism":{"type":"onunhandledrejection","handled":true},',
    '"frames":[{"filename":"absPath":"function":"<module>","module":"lineno":"colno":"inApp":false,"inApp":true,',
    '"contextLine":"preContext":["postContext":["vars":{"self":"request":"<object at 0x7f',
    '"exception":[{"type":"TypeError","value":"Cannot read properties of undefined (reading \'',
    '"stackTrace":["at Object.<anonymous> (","at processTicksAndRejections (node:internal/process/task_queues',
    '"environment":"production","environment":"staging","release":"1.0.0","level":"warning","levelRaw":"',
    '"dialect":"open-sentry","dialect":"errorcapture","dialect":"seestack","dialect":"sentry","level":"error",',
)).encode('utf-8')}
EVENT_FORMAT = 1  # the dictionary new rows are deflated against


# dumps() without its check for cycles: a model event is a tree the model
# built (the text is the same; only a cycle, which no event has, would fail
# differently). The C encoder json.JSONEncoder.encode makes for every call is
# made once (where the C accelerator is there): the same text, a few us less.
_stored_json = json.JSONEncoder(separators=(',', ':'), ensure_ascii=False, check_circular=False).encode
if getattr(json.encoder, 'c_make_encoder', None) is not None:
    _stored_chunks = json.encoder.c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring,
                                                 None, ':', ',', False, False, True)

    def _stored_json(obj, _chunks=_stored_chunks):  # noqa: F811
        return ''.join(_chunks(obj, 0))


# Each event's compressor is a copy of one already primed with the dictionary:
# copying is cheaper than making one and loading the dictionary into it. Its
# window of 8 KiB holds the dictionary and the text of an event up to
# PRIMED_TEXT bytes, so the bytes are the ones a fresh 32 KiB compressor
# writes; longer texts get one of those. Memory level 5, not 9: each
# compressor zeroes a hash table of 2**(level+7) entries, 128 KiB at 9 and
# 4 KiB at 5, for events at most ~1% larger. Any of these reads back the same.
_PRIMED_PACKER = zlib.compressobj(1, zlib.DEFLATED, -13, 5, zlib.Z_DEFAULT_STRATEGY, EVENT_DICTIONARIES[EVENT_FORMAT])
PRIMED_TEXT = 4096


def pack_event(event):
    """The data column of an event from the model: its stored form, deflated."""
    text = _stored_json(stored_form(event)).encode('utf-8')
    if len(text) <= PRIMED_TEXT:
        packer = _PRIMED_PACKER.copy()
    else:
        packer = zlib.compressobj(1, zlib.DEFLATED, -15, 5, zlib.Z_DEFAULT_STRATEGY, EVENT_DICTIONARIES[EVENT_FORMAT])
    return bytes((EVENT_FORMAT,)) + packer.compress(text) + packer.flush()


def unpack_event(data):
    """The stored form's JSON text from a data column (either format)."""
    if isinstance(data, str):
        return data
    unpacker = zlib.decompressobj(-15, EVENT_DICTIONARIES[data[0]])
    return (unpacker.decompress(data[1:]) + unpacker.flush()).decode('utf-8')


def loaded_form(row_id, issue_id, event_id, received, data):
    """The inverse of stored_form (and pack_event), for a row read back."""
    event = json.loads(unpack_event(data))
    for exception in event.get('exception') or ():
        if 'stackTrace' in exception and 'frames' not in exception:
            frames = parse_stack_trace(exception['stackTrace'])
            if frames:
                exception['frames'] = frames
    event.setdefault('timestamp', received)
    event.setdefault('levelRaw', event.get('level'))
    event.update(id=row_id, issueId=issue_id, eventId=event_id, received=received, kind='error')
    return event


class LoadedEvents(object):
    """Event rows read back as model events as the caller takes each one: a
    page of 500 events of 1 MiB each (a few KiB each when stored, deflated)
    never holds more than one of them decompressed and parsed at a time."""

    def __init__(self, rows, more=False):
        self.rows, self.more = rows, more  # more: matching events were left out (past a limit or byte budget)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return (loaded_form(*row[:5]) for row in self.rows)


class Where(object):
    """A WHERE clause for one project, built from optional filters: a filter
    whose value is None or empty adds nothing."""

    def __init__(self, project_id):
        self.parts, self.params = ['project_id=?'], [project_id]

    def add(self, condition, *values):
        self.parts.append(condition)
        self.params.extend(values)
        return self

    def equal(self, column, value):
        return self.add('%s=?' % column, value) if value not in (None, '') else self

    def contains(self, text, *columns):
        """text appears in any of the columns (LIKE, wildcards escaped)."""
        if not text:
            return self
        pattern = like_pattern(text)
        return self.add('(%s)' % ' OR '.join("%s LIKE ? ESCAPE '\\'" % c for c in columns),
                        *([pattern] * len(columns)))

    def newest_first(self, column, cursor=None, since=None):
        """The ORDER BY of a list newest first by its own time column, id as
        the tie-breaker, after cursor (the (time, id) of the last row of the
        page before); with since, the rows stored after that id, in arrival
        order (a poller's next since is the last id it got)."""
        if since is not None:
            self.add('id>?', since)
            return 'id'
        if cursor is not None:
            self.add('(%s, id) < (?, ?)' % column, *cursor)
        return '%s DESC, id DESC' % column

    def __str__(self):
        return ' AND '.join(self.parts)


class StorageUnavailable(Exception):
    """The database cannot take writes right now (disk full, read-only, locked)."""


# Primary SQLite result codes that are the storage's fault, not a statement's,
# with the words their messages carry (for Pythons before 3.11, whose
# exceptions have no sqlite_errorcode).
STORAGE_FAULTS = {5: ('busy', 'database is locked'), 6: ('locked', 'table is locked'),
                  8: ('readonly', 'readonly database'), 10: ('ioerr', 'disk i/o error'),
                  13: ('full', 'disk is full')}


def storage_fault(exc):
    """'busy', 'locked', 'readonly', 'ioerr' or 'full' when exc says the
    storage failed (disk full, I/O error, read-only, locked or busy); None for
    any other error, a bad statement included."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    code = getattr(exc, 'sqlite_errorcode', None)
    if code is not None:
        return STORAGE_FAULTS.get(code & 0xff, (None,))[0]
    text = str(exc).lower()
    return next((name for name, words in STORAGE_FAULTS.values() if words in text), None)


class Overloaded(Exception):
    """The writer queue is full: the caller should answer 503 with Retry-After."""


class _Job(object):
    __slots__ = ('fn', 'args', 'done', 'result', 'error', 'abandoned')

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.done = threading.Lock()  # held until the writer answers: lighter than an Event
        self.done.acquire()
        self.result = self.error = None
        self.abandoned = False  # its request gave up waiting (and told the client so)


def restore_sidecar_modes(path):
    """SQLite makes the -wal and -shm files with the database file's mode.
    Made while the database was read-only, they stay read-only once it is
    writable again, and every connection then maps the -shm read-only: writes
    would fail for good. Once the database is writable, they get its mode back."""
    try:
        if not os.access(path, os.W_OK):
            return
        mode = os.stat(path).st_mode & 0o777
        for sidecar in (path + '-wal', path + '-shm'):
            if os.path.exists(sidecar) and not os.access(sidecar, os.W_OK):
                os.chmod(sidecar, mode)
    except OSError as exc:  # not ours to change: the write fails and says so, as before
        log.warning('cannot restore the mode of %s-wal/-shm: %s', path, exc)


class ReadConnection(object):
    """One thread's read connection. Its lock is held for each query, so that
    another thread (the writer recovering from a storage fault) can close it
    between queries; the owner then opens a new one."""
    __slots__ = ('conn', 'lock', '__weakref__')

    def __init__(self):
        self.conn, self.lock = None, threading.Lock()


# How long a writer waits for SQLite's write lock: other server processes
# (--workers) hold it one group commit at a time, a few milliseconds each, and
# Litestream briefly around its own checkpoints.
BUSY_TIMEOUT = 20.0

# UPDATE ... RETURNING (the tag counts) and ALTER TABLE ... DROP COLUMN
# (migration 20) came in SQLite 3.35.0 (March 2021).
SQLITE_NEEDED = (3, 35, 0)


def require_sqlite(version=None):
    """Refuse, clearly, an SQLite library too old for the schema and the writer."""
    version = version or sqlite3.sqlite_version_info
    if tuple(version) < SQLITE_NEEDED:
        raise sqlite3.NotSupportedError('ErrorCapture needs SQLite %s or newer; this Python has SQLite %s'
                                        % ('.'.join(map(str, SQLITE_NEEDED)), '.'.join(map(str, version))))


def connect(path, synchronous='normal', autocheckpoint=1000):
    """A connection that writes. The busy timeout rides out the other writers
    of the file (see BUSY_TIMEOUT); with autocheckpoint 0 the commits never
    checkpoint, so a replicating Litestream sees every WAL page before it
    reaches the database file."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('PRAGMA synchronous=%s' % ('FULL' if synchronous == 'full' else 'NORMAL'))
    conn.execute('PRAGMA busy_timeout=%d' % (BUSY_TIMEOUT * 1000))
    conn.execute('PRAGMA wal_autocheckpoint=%d' % int(autocheckpoint))
    return conn


class Writer(threading.Thread):
    """The one thread that writes. Requests enqueue a job and wait; the writer
    drains the queue, runs every queued job inside one transaction, commits once,
    and only then wakes the waiting requests: acknowledged means committed. If
    a job raises, the batch is rolled back and rerun job by job, so one bad job
    cannot undo the others; only a storage fault (disk full, I/O error,
    read-only, locked) fails the whole batch."""

    BATCH_MAX = 1000

    def __init__(self, path, synchronous='normal', max_queue=20000, autocheckpoint=1000):
        threading.Thread.__init__(self, name='errorcapture-writer', daemon=True)
        self.path, self.synchronous, self.max_queue = path, synchronous, max_queue
        self.autocheckpoint = autocheckpoint
        # A deque and a bare lock as the doorbell: queue.Queue's conditions cost
        # more per submission than the SQL of a small event.
        self.jobs = collections.deque()
        self.bell = threading.Lock()
        self.bell.acquire()
        self.asleep = False
        self.conn = None
        self.started_ok = threading.Event()
        self.stopped = False
        # Notices (new issue, regression...) raised inside jobs; delivered to
        # on_commit only once their transaction committed, dropped otherwise.
        self.outbox = []
        self.on_commit = None
        self.after_begin = None     # called with the connection just after BEGIN (under the write lock)
        self.after_commit = None    # called after every COMMIT, before any request is woken
        self.before_commit = None   # called with the connection just before COMMIT
        self.after_rollback = None  # called after a batch was rolled back
        self.before_reopen = None   # called before the connection is opened again after a storage fault
        self.turns = None           # under --workers: a descriptor the writers of every process flock() in turn
        self.committed = None       # in a turn: the jobs committed, to wake when it ends

    def submit(self, fn, *args, timeout=30.0):
        if self.stopped:
            raise StorageUnavailable('the server is shutting down')
        if len(self.jobs) >= self.max_queue:
            raise Overloaded('the writer is behind')
        job = _Job(fn, args)
        self.jobs.append(job)
        self._ring()
        if not job.done.acquire(timeout=timeout):
            # The client hears 503 and will retry: the writer must not store
            # this one later as well (unless it has already begun it).
            job.abandoned = True
            raise StorageUnavailable('the database did not answer in time')
        if job.error is not None:
            raise job.error
        return job.result

    def queued(self):
        """Submissions waiting for the writer (a snapshot)."""
        return len(self.jobs)

    def _ring(self):
        """Wake the writer if it sleeps. Two submitters may both ring; the
        second release fails harmlessly, and a spare ring only makes the
        writer look at the queue once more."""
        if self.asleep:
            self.asleep = False
            try:
                self.bell.release()
            except RuntimeError:
                pass

    def stop(self):
        """Finish every queued job, then close the connection."""
        if not self.stopped:
            self.stopped = True
            self.jobs.append(None)
            self._ring()
            self.join(timeout=60)

    def _next_batch(self):
        """Sleep until there is work, then take up to BATCH_MAX jobs. A None in
        the batch is the stop marker."""
        jobs = self.jobs
        while not jobs:
            self.asleep = True
            if jobs:  # a job came in before the writer said it sleeps
                self.asleep = False
                break
            self.bell.acquire()
        batch = []
        while jobs and len(batch) < self.BATCH_MAX:
            batch.append(jobs.popleft())
        return batch

    def run(self):
        name_os_thread('ec-writer')
        self.conn = connect(self.path, self.synchronous, self.autocheckpoint)
        self.started_ok.set()
        stopping = False
        while not stopping:
            batch = self._next_batch()
            if None in batch:
                stopping = True
                batch = [job for job in batch if job is not None]
            if batch:
                self._commit(batch)
        # Anything that raced in after the stop marker still gets an answer.
        while self.jobs:
            job = self.jobs.popleft()
            if job is not None:
                self._commit([job])
        if self.conn is not None:
            self.conn.close()

    def _commit(self, batch):
        """Run a batch in one transaction. If one job raises, the batch is
        rolled back and each job is rerun in a transaction of its own, so a bad
        job fails alone; the common path pays no per-job savepoints."""
        if self.turns is not None:
            # the writers of other processes wait here and are woken as soon as
            # this batch is done, instead of sleeping in SQLite's busy handler
            fcntl.flock(self.turns, fcntl.LOCK_EX)
            self.committed = []
            # what queued while another process had its turn joins this one:
            # the group commit holds the lock once for all of it
            jobs = self.jobs
            while jobs and jobs[0] is not None and len(batch) < self.BATCH_MAX:
                batch.append(jobs.popleft())
        try:
            if self.conn is None:  # reopen after a storage fault: it may have cleared
                if self.before_reopen is not None:
                    self.before_reopen()
                try:
                    self.conn = connect(self.path, self.synchronous, self.autocheckpoint)
                except sqlite3.Error as exc:
                    self._fail(batch, exc)
                    return
            if not self._run(batch) and len(batch) > 1:
                for job in batch:
                    if self.conn is not None:
                        self._run([job])
                    else:
                        self._fail([job], job.error or StorageUnavailable('storage fault'))
        finally:
            if self.turns is not None:
                fcntl.flock(self.turns, fcntl.LOCK_UN)
                # the requests are woken only now: woken inside the turn they
                # would take the CPU from the writer while it still holds the lock
                committed, self.committed = self.committed, None
                for job in committed:
                    job.done.release()

    def _run(self, batch):
        """One transaction. True when every job of the batch has its answer:
        committed; failed whole by _fail (a storage fault, BEGIN or COMMIT
        failing); or, alone in its batch, failed by its own error. False when a
        job of a larger batch raised: the batch was rolled back and its jobs,
        not answered yet, are to be retried one by one."""
        conn = self.conn
        try:
            conn.execute('BEGIN IMMEDIATE')
            if self.after_begin is not None:
                self.after_begin(conn)
        except Exception as exc:
            self._fail(batch, exc)
            return True
        for job in batch:
            job.error = None
            if job.abandoned:
                continue
            try:
                job.result = job.fn(conn, *job.args)
            except Exception as exc:
                if storage_fault(exc):  # disk full, I/O error, read-only, locked: the batch is lost
                    self._fail(batch, exc)
                    return True
                job.error = exc  # anything else is this job's own failure
                self.outbox = []
                try:
                    conn.execute('ROLLBACK')
                except sqlite3.Error:
                    pass
                if self.after_rollback is not None:
                    self.after_rollback()
                if len(batch) == 1:
                    job.done.release()
                    return True
                return False
        try:
            if self.before_commit is not None:
                self.before_commit(conn)
            conn.execute('COMMIT')
        except Exception as exc:  # the writer must survive anything: fail the batch, keep serving
            self._fail(batch, exc)
            return True
        if self.after_commit is not None:
            self.after_commit()
        if self.committed is not None:
            self.committed.extend(batch)  # woken once the turn is over (_commit)
        else:
            for job in batch:
                job.done.release()
        if self.outbox:
            notices, self.outbox = self.outbox, []
            if self.on_commit is not None:
                self.on_commit(notices)
        return True

    def _fail(self, batch, exc):
        log.error('write failed, %d submissions refused: %s', len(batch), exc)
        self.outbox = []
        if self.after_rollback is not None:
            self.after_rollback()
        try:
            if self.conn is not None and self.conn.in_transaction:
                self.conn.execute('ROLLBACK')
        except sqlite3.Error:
            pass
        if storage_fault(exc) in ('full', 'readonly', 'ioerr') and self.conn is not None:
            # not a lock that clears by itself: start over with a fresh connection next time
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self.conn = None
        for job in batch:
            job.result = None
            job.error = StorageUnavailable(str(exc))
            job.done.release()


class Store(object):
    """Everything persistent. The store owns the connections (the writer's and
    one read connection per thread), the migrations, the id floors and the
    projects; each kind of data has a class of its own below, reached as
    store.issues, store.events, store.telemetry, store.monitors,
    store.retention and store.sourcemaps. On the writer thread run the tx_ and
    _tx_ methods (they take the writer's connection first), the writer's hooks
    (tx_flush before COMMIT, forget after a rollback) and what only those call
    (new_id, deleting, next_seq, notify, pending_ids). Every other method runs
    on the caller's thread: a change hands a tx_ method to the writer and waits
    for its COMMIT; a read uses that thread's own read connection.
    shared: other server processes write the same file (--workers): each
    transaction then takes its turn with theirs and first reads what they
    committed (see KEPT_IDS); alone, the store trusts its memory."""

    def __init__(self, path, synchronous='normal', max_queue=20000, autocheckpoint=1000, shared=False):
        self.path, self.shared = path, shared
        self._local = threading.local()
        self._readers = weakref.WeakSet()  # every thread's ReadConnection (close_readers)
        self._readers_lock = threading.Lock()
        self._projects_by_key = {}
        self._projects_version = 0
        self._versions = {}  # counter name -> (when read, value): see version()
        self._bumps = set()  # counters the open transaction bumps at COMMIT
        require_sqlite()
        try:
            conn = connect(path, synchronous, autocheckpoint)
        except sqlite3.Error as exc:
            raise sqlite3.OperationalError('cannot open the database %s: %s' % (path, exc)) from exc
        try:
            self._migrate(conn)
            self._load_counters(conn)
            self._committed_seq = self._seq
        finally:
            conn.close()
        self.listeners = []  # callables(kind, payload) told of new issues, regressions, cron failures
        self.issues = Issues(self)
        self.events = Events(self)
        self.telemetry = Telemetry(self)
        self.spans = Spans(self)
        self.feedback = Feedback(self)
        self.monitors = Monitors(self)
        self.retention = Retention(self)
        self.sourcemaps = SourceMaps(self)
        self.tags = Tags(self)
        self.releases = Releases(self)
        self.item_counts = ItemCounts(self)
        self.attachments = Attachments(self)
        self.quotas = Quotas(self)
        # What add_batch stores, by the model's kind: a new kind of data is a
        # class below and a line here.
        self.adders = {
            'error': self.events.tx_add_one,
            'http_requests': self.telemetry.tx_add_http_requests,
            'replay': self.telemetry.tx_add_replay,
            'logs': self.telemetry.tx_add_logs,
            'transaction': self.telemetry.tx_add_transaction,
            'spans': self.spans.tx_add,
            'feedback': self.feedback.tx_add,
            'ai_generation': self.telemetry.tx_add_ai_generation,
            'not_stored': self.item_counts.tx_add,
            'attachment': self.attachments.tx_add,
        }
        self.writer = Writer(path, synchronous, max_queue, autocheckpoint)
        self.writer.on_commit = self._deliver
        self.writer.before_commit = self._before_commit
        self.writer.after_commit = self._publish_seq
        self.writer.after_rollback = self._forget
        self.writer.before_reopen = self._release_storage
        if shared:
            self.writer.after_begin = self._after_begin
            self.writer.turns = os.open(path + '-writer.lock', os.O_RDWR | os.O_CREAT, 0o600)
        self.writer.start()
        self.writer.started_ok.wait(10)

    # -- plumbing ------------------------------------------------------------

    @staticmethod
    def _migrate(conn):
        """Apply the migrations the file lacks, each in its own transaction.
        The version is read under the write lock: several processes opening
        one file at once (--workers) apply each migration once."""
        while conn.execute('PRAGMA user_version').fetchone()[0] < len(MIGRATIONS):
            conn.execute('BEGIN IMMEDIATE')
            try:
                version = conn.execute('PRAGMA user_version').fetchone()[0]
                if version < len(MIGRATIONS):
                    for statement in MIGRATIONS[version].split(';'):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute('PRAGMA user_version=%d' % (version + 1))
                conn.execute('COMMIT')
            except Exception:
                conn.execute('ROLLBACK')
                raise

    def reader(self):
        """This thread's ReadConnection."""
        reader = getattr(self._local, 'reader', None)
        if reader is None:
            reader = self._local.reader = ReadConnection()
            with self._readers_lock:
                self._readers.add(reader)
        return reader

    def _read_connection(self, reader):
        """The reader's connection, opened on first use (with reader.lock held)."""
        if reader.conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            conn.execute('PRAGMA query_only=1')
            conn.execute('PRAGMA busy_timeout=5000')
            reader.conn = conn
        return reader.conn

    def query(self, sql, params=()):
        reader = self.reader()
        with reader.lock:
            return self._read_connection(reader).execute(sql, params).fetchall()

    def query_within(self, sql, params, limit, budget, size):
        """The rows of sql (ending in LIMIT ?, which is limit + 1 here), stepped
        one at a time: at most limit, and only while their size(row)s add up
        to budget (the first row comes whatever its size), so a page of huge
        rows never loads them all. Returns (rows, more): more when matching
        rows were left out."""
        reader = self.reader()
        with reader.lock:
            cursor = self._read_connection(reader).execute(sql, list(params) + [limit + 1])
            try:
                rows, total = [], 0
                for row in cursor:
                    total += size(row)
                    if len(rows) == limit or (total > budget and rows):
                        return rows, True
                    rows.append(row)
                return rows, False
            finally:
                cursor.close()  # ends the statement, and with it the read snapshot

    def close_readers(self):
        """Close every thread's read connection (each opens a new one on its next query)."""
        with self._readers_lock:
            readers = list(self._readers)
        for reader in readers:
            with reader.lock:
                if reader.conn is not None:
                    reader.conn.close()
                    reader.conn = None

    def _release_storage(self):
        """Before the writer reopens after a storage fault. SQLite shares one
        mapping of the -shm file among all connections of a process to that
        database, opened read-only if the first of them found it so (the
        database was read-only when the server started): the read connections
        keep it, and the writer's new connection would get it again. So they
        are closed, and the -wal and -shm files get the database's mode back."""
        restore_sidecar_modes(self.path)
        self.close_readers()

    def write(self, fn, *args):
        return self.writer.submit(fn, *args)

    def close(self):
        self.writer.stop()
        if self.writer.turns is not None:
            os.close(self.writer.turns)

    def next_seq(self):
        self._seq += 1  # only the writer thread calls this
        return self._seq

    # SQLite numbers a new row max(id) + 1, so a delete that takes the newest
    # rows (a clear, retention that empties a table) would hand their ids out
    # again, and a client polling "since id N" would miss what came next; a
    # restart would likewise number issue changes (seq) from the highest left.
    # So such deletes keep the highest id (and seq) in `counters`, and new rows
    # are numbered above it. A shared store (--workers) also keeps its highest
    # seq there after every transaction that numbers issue changes, and reads
    # `counters` first in each one, under the write lock, so the processes
    # writing the file number above each other. It also holds versions that
    # tell when what a process caches (the projects, source map bundles,
    # interned tags) changed elsewhere.
    KEPT_IDS = ('events', 'issues', 'logs')

    def _load_counters(self, conn):
        counters = dict(conn.execute('SELECT name, value FROM counters'))
        self._floors = {}  # table -> an id its new rows must be above
        for table in self.KEPT_IDS:
            top = conn.execute('SELECT COALESCE(MAX(id), 0) FROM %s' % table).fetchone()[0]
            if counters.get(table, 0) > top:
                self._floors[table] = counters[table]
        self._seq = max(conn.execute('SELECT COALESCE(MAX(seq), 0) FROM issues').fetchone()[0],
                        counters.get('seq', 0))
        self._counters = counters  # as stored: a shared store's first transaction keeps a higher seq

    def _after_begin(self, conn):
        """Writer hook of a shared store, under the write lock: take up what
        other processes committed since this one's last transaction (ids,
        seq, cache versions)."""
        counters = dict(conn.execute('SELECT name, value FROM counters'))
        seen = self._counters
        for table in self.KEPT_IDS:
            if counters.get(table, 0) > seen.get(table, 0):
                self._floors[table] = max(self._floors.get(table, 0), counters[table])
        self._seq = max(self._seq, counters.get('seq', 0))
        if counters.get('interned', 0) != seen.get('interned', 0):
            self.tags.forget_interned()
            self.releases.forget()
        self._counters = counters

    @staticmethod
    def _keep_counter(conn, name, value):
        conn.execute('INSERT INTO counters(name, value) VALUES (?, ?)'
                     ' ON CONFLICT(name) DO UPDATE SET value=MAX(value, excluded.value)', (name, value))

    def bump(self, name):
        """Note that this transaction changes what `name` versions (writer
        thread): its counter grows by one at COMMIT, for other processes' version()."""
        self._bumps.add(name)

    def version(self, name):
        """The version of what `name` counts (a change committed by any
        process bumps it), read at most once a second: a process that caches
        it drops its cache when this moves. 0 before any change."""
        at = time.monotonic()
        known = self._versions.get(name)
        if known is None or at - known[0] >= 1.0:
            rows = self.query('SELECT value FROM counters WHERE name=?', (name,))
            known = self._versions[name] = (at, rows[0][0] if rows else 0)
        return known[1]

    def deleting(self, conn, table, delete):
        """Run delete() (a DELETE on table); if it took the newest rows, keep
        the highest id. Returns what delete() returned."""
        top = conn.execute('SELECT COALESCE(MAX(id), 0) FROM %s' % table).fetchone()[0]
        result = delete()
        if conn.execute('SELECT COALESCE(MAX(id), 0) FROM %s' % table).fetchone()[0] < top:
            self._keep_counter(conn, table, top)
            self._floors[table] = max(self._floors.get(table, 0), top)
        if table == 'issues':
            self._keep_counter(conn, 'seq', self._seq)
        return result

    def new_id(self, conn, table):
        """The id for a new row of table: None (SQLite's next) unless deletes
        took the newest rows, then the one above the highest ever given."""
        floor = self._floors.get(table)
        if floor and conn.execute('SELECT COALESCE(MAX(id), 0) FROM %s' % table).fetchone()[0] < floor:
            return floor + 1
        return None

    def new_ids(self, conn, table):
        """The id of the first of several new rows of table that a statement
        inserts together, numbered up from it: above every id given (see new_id)."""
        top = conn.execute('SELECT COALESCE(MAX(id), 0) FROM %s' % table).fetchone()[0]
        return max(top, self._floors.get(table) or 0) + 1

    def _before_commit(self, conn):
        """Writer hook: what a transaction gathered (issue changes, tag counts,
        alerts, the highest seq, versions bumped) is written just before COMMIT."""
        self.issues.tx_flush(conn)
        self.tags.tx_flush(conn)
        if self.writer.outbox:  # kept only for projects with a webhook: no one else would take them
            conn.executemany("INSERT INTO alert_outbox(project_id, kind, payload, url) SELECT id, ?, ?, url FROM"
                             " (SELECT id, json_extract(settings, '$.webhookUrl') AS url FROM projects WHERE id=?)"
                             ' WHERE url IS NOT NULL', [(kind, dumps(notice), notice['project_id'])
                                                        for kind, notice in self.writer.outbox])
        if self.shared and self._seq > self._counters.get('seq', 0):
            self._keep_counter(conn, 'seq', self._seq)
        if self._bumps:
            conn.executemany('INSERT INTO counters(name, value) VALUES (?, 1)'
                             ' ON CONFLICT(name) DO UPDATE SET value=value+1', [(name,) for name in self._bumps])
            self._bumps = set()

    def _forget(self):
        """Writer hook after a rollback: nothing gathered survives it."""
        self._bumps = set()
        self.issues.forget()
        self.tags.forget()
        self.releases.forget()

    def notify(self, kind, payload):
        """A notice (new issue, regression, failed check-in) for alerting:
        written to alert_outbox with the transaction, and told to this
        process's listeners once it committed (writer thread only)."""
        self.writer.outbox.append((kind, payload))

    def pending_alerts(self, skip=(), limit=100):
        """The oldest alerts waiting in alert_outbox, but those whose ids are
        in skip (taken already, not delivered yet): [(id, project id, kind,
        payload, webhook URL)]. They stay there until done_alert: an alerter
        that dies before delivering them leaves them to the next one."""
        rows, after = [], 0
        while len(rows) < limit:
            page = self.query('SELECT id, project_id, kind, payload, url FROM alert_outbox WHERE id > ?'
                              ' ORDER BY id LIMIT ?', (after, limit))
            rows.extend(row for row in page if row[0] not in skip)
            if len(page) < limit:
                break
            after = page[-1][0]
        return [(row[0], row[1], row[2], json.loads(row[3]), row[4]) for row in rows[:limit]]

    def done_alert(self, outbox_id):
        """An alert of alert_outbox was delivered or finally failed: off it."""
        self.write(self._tx_done_alert, outbox_id)

    @staticmethod
    def _tx_done_alert(conn, outbox_id):
        conn.execute('DELETE FROM alert_outbox WHERE id=?', (outbox_id,))

    def _deliver(self, notices):
        for kind, payload in notices:
            for listener in self.listeners:
                try:
                    listener(kind, payload)
                except Exception:
                    log.exception('listener failed')

    # -- projects ------------------------------------------------------------

    @staticmethod
    def _project_row(row):
        return {'id': row[0], 'key': row[1], 'name': row[2], 'created': row[3],
                'settings': json.loads(row[4] or '{}')}

    def project_by_key(self, key):
        """The project a key belongs to, or None. The cache is indexed by a
        digest of the key and the final comparison is constant-time, so
        response timing tells nothing about how much of a guess was right."""
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        digest = hashlib.sha256(key.encode('utf-8', 'surrogatepass')).digest()
        version = self.version('projects')  # a change through another process (--workers)
        if version != self._projects_version:
            self._projects_by_key.clear()
            self._projects_version = version
        project = self._projects_by_key.get(digest)
        if project is None:
            rows = self.query('SELECT id, key, name, created, settings FROM projects WHERE key=?', (key,))
            if not rows:
                return None
            project = self._projects_by_key[digest] = self._project_row(rows[0])
        return project if keys_equal(project['key'], key) else None

    def project_by_id(self, project_id):
        rows = self.query('SELECT id, key, name, created, settings FROM projects WHERE id=?', (project_id,))
        return self._project_row(rows[0]) if rows else None

    def projects(self):
        rows = self.query('SELECT id, key, name, created, settings FROM projects ORDER BY id')
        return [self._project_row(r) for r in rows]

    def project_counts(self, project_id):
        """(issues, stored error events, newest lastSeen) of a project: issue
        counts always equal their stored events, so no event is counted here."""
        issues, events = self.query('SELECT COUNT(*), COALESCE(SUM(count), 0) FROM issues WHERE project_id=?',
                                    (project_id,))[0]
        last = self.query('SELECT MAX(last_seen) FROM issues WHERE project_id=?', (project_id,))[0][0]
        return issues, events, last

    def create_project(self, name='', key=None):
        key = key or secrets.token_hex(16)
        self.write(self._tx_create_project, key, name)
        return self.project_by_key(key)

    @staticmethod
    def _tx_create_project(conn, key, name):
        conn.execute('INSERT OR IGNORE INTO projects(key, name, created) VALUES (?, ?, ?)', (key, name, now()))

    def update_project(self, project_id, name=None, settings=None):
        self.write(self._tx_update_project, project_id, name, dumps(settings) if settings is not None else None)
        self._projects_by_key.clear()

    def _tx_update_project(self, conn, project_id, name, settings):
        self.bump('projects')
        if name is not None:
            conn.execute('UPDATE projects SET name=? WHERE id=?', (name, project_id))
        if settings is not None:
            conn.execute('UPDATE projects SET settings=? WHERE id=?', (settings, project_id))

    # -- batches of any kind --------------------------------------------------

    def add_batch(self, project_id, items):
        """Store a mixed batch of (kind, model item) pairs in one transaction;
        the kinds are those of `adders`."""
        for kind, item in items:
            if kind == 'error':
                self.events.pack(item)
        return self.write(self._tx_add_batch, project_id, items)

    def _tx_add_batch(self, conn, project_id, items):
        adders, results, errors = self.adders, [], []
        for kind, item in items:
            if kind == 'error':  # errors in a row are stored together (Events.tx_add)
                errors.append(item)
                continue
            if errors:
                results += self.events.tx_add(conn, project_id, errors)
                errors = []
            results.append(adders[kind](conn, project_id, item))
        if errors:
            results += self.events.tx_add(conn, project_id, errors)
        return results

    # -- issue seq -------------------------------------------------------------

    def current_seq(self):
        """The highest issue seq committed (by any process, when shared):
        readers take it before they query, so whatever they miss has a higher
        seq and the next changedSince poll brings it (seq values are handed
        out before COMMIT, so the writer's own counter can be ahead of what a
        reader sees)."""
        if not self.shared:
            return self._committed_seq
        rows = self.query("SELECT value FROM counters WHERE name='seq'")
        return rows[0][0] if rows else 0

    def _publish_seq(self):
        self._committed_seq = self._seq  # writer thread, after COMMIT


class Kind(object):
    """One kind of stored data: its writes (run by the writer, with its
    connection) and its reads (on the caller's own read connection)."""

    def __init__(self, store):
        self.store = store
        self.query, self.query_within, self.write = store.query, store.query_within, store.write


class Issues(Kind):
    """Issues: grouping events into them (the changes a transaction gathers are
    written once, just before COMMIT), listing them and changing their status."""

    def __init__(self, store):
        Kind.__init__(self, store)
        self._touched = {}  # (project id, fingerprint) -> issue changes of the open transaction

    def pending_ids(self):
        """Issues whose gathered changes are not written yet (writer thread)."""
        return {state['id'] for state in self._touched.values()}

    def tx_group(self, conn, project_id, event):
        """Find or create the event's issue. The issue row itself is updated
        once per transaction (tx_flush), not once per event: a batch of
        events hitting one issue costs one UPDATE."""
        key = (project_id, event['_fingerprint'])
        seen = event['timestamp']
        state = self._touched.get(key)
        if state is None:
            row = conn.execute('SELECT id, status, releases, environments, in_next_release, resolved_after,'
                               ' first_seen FROM issues WHERE project_id=? AND fingerprint=?', key).fetchone()
            if row is None:  # a fingerprint of an issue merged into another lands on that one
                row = conn.execute('SELECT id, status, releases, environments, in_next_release, resolved_after,'
                                   ' first_seen FROM issues WHERE id=(SELECT issue_id FROM issue_aliases WHERE'
                                   ' project_id=? AND fingerprint=?)', key).fetchone()
            if row is None:
                cursor = conn.execute(
                    'INSERT INTO issues(id, project_id, fingerprint, title, culprit, type, value, level, count,'
                    ' first_seen, last_seen, seq, first_release) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0, ?)',
                    (self.store.new_id(conn, 'issues'),) + key + (
                        event['_title'], event['_culprit'], event['_type'], event['_value'], event['level'], seen,
                        seen, event.get('release')))
                row = (cursor.lastrowid, 'unresolved', '[]', '[]', 0, None, seen)
                self.store.notify('new_issue', {'project_id': project_id, 'issue_id': row[0], 'title': event['_title']})
            state = self._touched[key] = {
                'id': row[0], 'count': 0, 'first': seen, 'last': seen, 'release': None,
                'releases': json.loads(row[2]), 'environments': json.loads(row[3]), 'hours': {},
                'status': row[1], 'inNextRelease': row[4], 'resolvedAfter': row[5], 'reopen': False,
                'stored_first': row[6], 'lists': False}
        if state['status'] == 'resolved' and not state['reopen'] and self._reopens(conn, project_id, state, event):
            state['reopen'], state['regressedIn'] = True, event.get('release')
            self.store.notify('regression', {'project_id': project_id, 'issue_id': state['id'],
                                             'title': event['_title']})
        state['count'] += 1
        state['first'], state['last'] = min(state['first'], seen), max(state['last'], seen)
        state['level'] = event['level']
        release, environment = event.get('release'), event.get('environment')
        if release:
            state['release'] = release
            if release not in state['releases']:
                state['releases'] = (state['releases'] + [release])[-50:]
                state['lists'] = True
        if environment and environment not in state['environments']:
            state['environments'] = (state['environments'] + [environment])[-50:]
            state['lists'] = True
        hour = int(event['received'] // 3600)
        state['hours'][hour] = state['hours'].get(hour, 0) + 1
        return state['id']

    def _reopens(self, conn, project_id, state, event):
        """Whether an event reopens its resolved issue: any event does, unless
        it was resolved in the next release; then only one from a release
        first seen after the one that was newest when it was resolved."""
        if not state['inNextRelease']:
            return True
        release, after = event.get('release'), state['resolvedAfter']
        if not release or release == after:
            return False
        if after is None:
            return True
        seen = dict(conn.execute('SELECT version, first_seen FROM releases WHERE project_id=? AND version IN (?, ?)',
                                 (project_id, release, after)).fetchall())
        return release not in seen or after not in seen or seen[release] > seen[after]

    def tx_flush(self, conn):
        """Writer hook, just before COMMIT: apply the issue changes gathered
        during this transaction, one UPDATE per touched issue. A resolved issue
        that got an event that reopens it (see _reopens) is a regression."""
        touched, self._touched = self._touched, {}
        for state in touched.values():
            self._tx_flush_one(conn, state)

    # What an event changes in its issue's row, most of the time: columns
    # left out of SET keep their indexes untouched (SQLite rewrites the
    # index entries of every column SET, changed or not).
    # releases and environments are NULL when no event added one (kept as they are).
    FLUSH_COMMON = ('UPDATE issues SET count=count+?, last_seen=MAX(last_seen, ?), level=?,'
                    ' last_release=COALESCE(?, last_release), releases=COALESCE(?, releases),'
                    ' environments=COALESCE(?, environments), seq=? WHERE id=?')

    def _tx_flush_one(self, conn, state):
        if not state['reopen'] and state['first'] >= state['stored_first']:  # nor first seen moves back
            lists = state['lists']
            conn.execute(self.FLUSH_COMMON, (state['count'], state['last'], state['level'], state['release'],
                                             dumps(state['releases']) if lists else None,
                                             dumps(state['environments']) if lists else None,
                                             self.store.next_seq(), state['id']))
        else:
            self._tx_flush_row(conn, state)
        conn.executemany(
            'INSERT INTO issue_hours(issue_id, hour, count) VALUES (?, ?, ?)'
            ' ON CONFLICT(issue_id, hour) DO UPDATE SET count=count+excluded.count',
            [(state['id'], hour, count) for hour, count in state['hours'].items()])

    def _tx_flush_row(self, conn, state):
        reopen = 1 if state['reopen'] else 0
        conn.execute(
            'UPDATE issues SET count=count+?, last_seen=MAX(last_seen, ?), first_seen=MIN(first_seen, ?),'
            ' level=?, last_release=COALESCE(?, last_release), releases=?, environments=?, seq=?,'
            ' status=CASE WHEN ? THEN \'unresolved\' ELSE status END,'
            ' regression=CASE WHEN ? THEN 1 ELSE regression END, regressed_in=CASE WHEN ? THEN ? ELSE regressed_in END,'
            ' in_next_release=CASE WHEN ? THEN 0 ELSE in_next_release END,'
            ' resolved_after=CASE WHEN ? THEN NULL ELSE resolved_after END WHERE id=?',
            (state['count'], state['last'], state['first'], state['level'], state['release'],
             dumps(state['releases']), dumps(state['environments']), self.store.next_seq(), reopen, reopen, reopen,
             state.get('regressedIn'), reopen, reopen, state['id']))

    def _tx_flush_pending(self, conn, issue_id):
        """Apply the events this transaction already gave issue_id before its
        status changes, so a resolve that comes after them in the same batch
        is not undone at COMMIT as if they were a regression."""
        for key, state in list(self._touched.items()):
            if state['id'] == issue_id:
                del self._touched[key]
                self._tx_flush_one(conn, state)

    def forget(self):
        """Writer hook after a rollback: nothing gathered survives it."""
        self._touched = {}

    def tx_delete_project(self, conn, project_id):
        """Every issue of a project goes, with what this transaction gathered for them."""
        self._touched = {key: state for key, state in self._touched.items() if key[0] != project_id}
        self.store.tags.tx_project_gone(conn, project_id)
        self.store.releases.tx_project_gone(conn, project_id)
        conn.execute('DELETE FROM issue_aliases WHERE project_id=?', (project_id,))
        conn.execute('DELETE FROM issue_hours WHERE issue_id IN (SELECT id FROM issues WHERE project_id=?)',
                     (project_id,))
        self.store.deleting(conn, 'issues', lambda: conn.execute('DELETE FROM issues WHERE project_id=?',
                                                                 (project_id,)))

    COLUMNS = ('id', 'title', 'culprit', 'type', 'value', 'level', 'status', 'regression', 'count', 'first_seen',
               'last_seen', 'last_release', 'releases', 'environments', 'seq', 'first_release', 'regressed_in',
               'in_next_release', 'resolved_after')
    SELECT = ', '.join(COLUMNS)

    SORTS = ('last_seen', 'first_seen', 'count')

    def list(self, project_id, query=None, sort='last_seen', cursor=None, limit=50, changed_since=None):
        """Issues matching a SearchQuery (rows as _row), newest first by the
        sort column, id as the tie-breaker. When the query has event terms,
        each issue also has matching_count and matching_hours: the events that
        match."""
        if sort not in self.SORTS:  # it goes into the SQL
            raise ValueError('unknown sort %r' % sort)
        column = sort
        where = Where(project_id)
        sets = self._search(where, project_id, query or SearchQuery())
        if sets is None:  # a term no stored value can satisfy
            return [], None
        if changed_since is not None:
            where.add('seq>?', changed_since)
            column = 'seq'
        if cursor is not None:
            where.add('(%s, id) < (?, ?)' % column, *cursor)
        rows = self.query('SELECT %s FROM issues WHERE %s ORDER BY %s DESC, id DESC LIMIT ?' % (
            self.SELECT, where, column), where.params + [limit + 1])
        issues = [self._row(r) for r in rows[:limit]]
        self._attach_histograms(issues)
        self._attach_users(project_id, issues)
        if sets:
            self._scope_counts(issues, sets)
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            sort_value = {'last_seen': last[10], 'first_seen': last[9], 'count': last[8], 'seq': last[14]}[column]
            next_cursor = (sort_value, last[0])
        return issues, next_cursor

    ISSUE_TIMES = {'firstSeen': 'first_seen', 'lastSeen': 'last_seen'}
    COMPARISONS = {'>=': '>=', '>': '>', '<=': '<=', '<': '<'}  # SQL for the parser's operators

    def _search(self, where, project_id, query):
        """Add the query's terms to where; returns the event sets that scope
        counts ([] when none), or None when nothing can match."""
        for term in query.terms:
            negate = 'NOT ' if term.negated else ''
            if term.kind == 'is':
                statuses = [v for v in term.values if v != 'regressed']
                parts = ['status IN (%s)' % marks(statuses)] if statuses else []
                if 'regressed' in term.values:
                    parts.append("(status='unresolved' AND regression=1)")
                where.add('%s(%s)' % (negate, ' OR '.join(parts)), *statuses)
            elif term.kind == 'level':
                where.add('%slevel IN (%s)' % (negate, marks(term.values)), *term.values)
            elif term.kind in ('firstRelease', 'regressedIn'):  # the latter: only the release page asks
                column = 'first_release' if term.kind == 'firstRelease' else 'regressed_in'
                where.add('%sCOALESCE(%s IN (%s), 0)' % (negate, column, marks(term.values)), *term.values)
            elif term.kind == 'time':
                op, cutoff = term.values
                where.add('%s(%s %s ?)' % (negate, self.ISSUE_TIMES[term.key], self.COMPARISONS[op]), cutoff)
            elif term.kind == 'text':
                pattern = like_pattern(term.values[0])
                where.add("%s(title LIKE ? ESCAPE '\\' OR culprit LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM"
                          " issue_messages m WHERE m.issue_id=issues.id AND m.message LIKE ? ESCAPE '\\'))" % negate,
                          pattern, pattern, pattern)
            elif term.kind == 'has':
                key_id = self.store.tags.key_ids(project_id, [term.key]).get(term.key)
                if key_id is None and not term.negated:
                    return None
                if key_id is not None:
                    where.add('%sEXISTS (SELECT 1 FROM issue_keys k WHERE k.issue_id=issues.id AND k.key_id=?)'
                              % negate, key_id)
        sets = self.store.tags.event_sets(project_id, query.event_terms)
        if sets:
            sql, params = Tags.matching_events(sets, 'issues.id')
            where.add('EXISTS (%s)' % sql, *params)
        return sets

    def _scope_counts(self, issues, sets):
        hour_now = int(now() // 3600)
        for issue in issues:
            hours = self.store.tags.scoped_hours(issue['id'], sets)
            issue['matching_count'] = sum(hours.values())
            issue['matching_hours'] = [hours.get(hour, 0) for hour in range(hour_now - 23, hour_now + 1)]

    def _attach_users(self, project_id, issues):
        users = self.store.tags.user_counts(project_id, [issue['id'] for issue in issues])
        for issue in issues:
            issue['users'] = users.get(issue['id'], 0)

    @classmethod
    def _row(cls, row):
        """An issue row by its columns (releases and environments decoded),
        to which list and get add hours (its events in each of the last 24
        hours, oldest first) and users (distinct users)."""
        issue = named(cls.COLUMNS, row)
        issue.update(regression=bool(issue['regression']), in_next_release=bool(issue['in_next_release']),
                     releases=json.loads(issue['releases']), environments=json.loads(issue['environments']))
        return issue

    def _attach_histograms(self, issues):
        if not issues:
            return
        hour_now = int(now() // 3600)
        by_id = {issue['id']: issue for issue in issues}
        for issue in issues:
            issue['hours'] = [0] * 24
        marks = ','.join('?' * len(by_id))
        rows = self.query('SELECT issue_id, hour, count FROM issue_hours WHERE issue_id IN (%s) AND hour>?' % marks,
                          list(by_id) + [hour_now - 24])
        for issue_id, hour, count in rows:
            if hour <= hour_now:
                by_id[issue_id]['hours'][23 - (hour_now - hour)] = count

    def get(self, project_id, issue_id):
        rows = self.query('SELECT %s FROM issues WHERE project_id=? AND id=?' % self.SELECT,
                          (project_id, issue_id))
        if not rows:
            return None
        issue = self._row(rows[0])
        self._attach_histograms([issue])
        self._attach_users(project_id, [issue])
        return issue

    def set_status(self, project_id, issue_id, status, in_next_release=False):
        """Resolve, ignore or reopen; resolved in_next_release stays resolved
        until an event from a release newer than today's newest (see _reopens)."""
        return self.write(self._tx_set_status, project_id, issue_id, status, in_next_release)

    def merge(self, project_id, issue_ids):
        """Make the issues one: the one first seen earliest (lowest id on a tie)
        takes the others' events, counts, histogram, tags and messages, and
        their fingerprints, so later events of any of them land on it. One
        transaction. Returns (merged issue id, ids merged into it), or None
        if an id is not an issue of the project."""
        return self.write(self._tx_merge, project_id, issue_ids)

    def _tx_merge(self, conn, project_id, issue_ids):
        rows = conn.execute('SELECT id, first_seen FROM issues WHERE project_id=? AND id IN (%s)' % marks(issue_ids),
                            [project_id] + list(issue_ids)).fetchall()
        if len(rows) != len(issue_ids):
            return None
        for issue_id in issue_ids:
            self._tx_flush_pending(conn, issue_id)
        self.store.tags.tx_flush(conn)  # counts gathered for the issues go where they belong first
        target = min(rows, key=lambda r: (r[1], r[0]))[0]
        others = [r[0] for r in rows if r[0] != target]
        columns = 'count, first_seen, last_seen, releases, environments, fingerprint'
        merged = conn.execute('SELECT %s FROM issues WHERE id=?' % columns, (target,)).fetchone()
        count, first, last, releases, environments = merged[0], merged[1], merged[2], json.loads(merged[3]), \
            json.loads(merged[4])
        for other in others:
            row = conn.execute('SELECT %s FROM issues WHERE id=?' % columns, (other,)).fetchone()
            count, first, last = count + row[0], min(first, row[1]), max(last, row[2])
            releases = (releases + [r for r in json.loads(row[3]) if r not in releases])[-50:]
            environments = (environments + [e for e in json.loads(row[4]) if e not in environments])[-50:]
            conn.execute('UPDATE events SET issue_id=? WHERE issue_id=?', (target, other))
            conn.execute('INSERT INTO issue_hours(issue_id, hour, count) SELECT ?, hour, count FROM issue_hours'
                         ' WHERE issue_id=? AND true ON CONFLICT(issue_id, hour) DO UPDATE SET'
                         ' count=count+excluded.count', (target, other))
            conn.execute('DELETE FROM issue_hours WHERE issue_id=?', (other,))
            self.store.tags.tx_merge_issue(conn, other, target)
            conn.execute('UPDATE issue_aliases SET issue_id=? WHERE issue_id=?', (target, other))
            conn.execute('INSERT OR REPLACE INTO issue_aliases(project_id, fingerprint, issue_id) VALUES (?, ?, ?)',
                         (project_id, row[5], target))
            self.store.deleting(conn, 'issues', lambda: conn.execute('DELETE FROM issues WHERE id=?', (other,)))
        conn.execute('UPDATE issues SET count=?, first_seen=?, last_seen=?, releases=?, environments=?, seq=?'
                     ' WHERE id=?', (count, first, last, dumps(releases), dumps(environments),
                                     self.store.next_seq(), target))
        return target, others

    def set_statuses(self, project_id, issue_ids, status, in_next_release=False):
        """One status for many issues in one transaction; returns the ids changed."""
        return self.write(self._tx_set_statuses, project_id, issue_ids, status, in_next_release)

    def _tx_set_statuses(self, conn, project_id, issue_ids, status, in_next_release):
        return [issue_id for issue_id in issue_ids
                if self._tx_set_status(conn, project_id, issue_id, status, in_next_release)]

    def _tx_set_status(self, conn, project_id, issue_id, status, in_next_release=False):
        self._tx_flush_pending(conn, issue_id)
        in_next_release = bool(in_next_release and status == 'resolved')
        after = None
        if in_next_release:
            row = conn.execute('SELECT version FROM releases WHERE project_id=? ORDER BY first_seen DESC, id DESC'
                               ' LIMIT 1', (project_id,)).fetchone()
            after = row[0] if row else None
        cursor = conn.execute(
            'UPDATE issues SET status=?, seq=?, regression=CASE WHEN ?=\'resolved\' THEN 0 ELSE regression END,'
            ' regressed_in=CASE WHEN ?=\'resolved\' THEN NULL ELSE regressed_in END, in_next_release=?,'
            ' resolved_after=? WHERE project_id=? AND id=?',
            (status, self.store.next_seq(), status, status, int(in_next_release), after, project_id, issue_id))
        return cursor.rowcount


class Events(Kind):
    """Error events: stored in their stored_form (above), each grouped into an
    issue; listed, shown and cleared."""

    def add(self, project_id, events):
        """Store error events (dicts from the event model), grouping each into an
        issue. Returns, per event, {'id', 'issueId', 'duplicate'} once committed."""
        for event in events:
            self.pack(event)
        return self.write(self.tx_add, project_id, events)

    @staticmethod
    def pack(event):
        """What the writer stores of an event that needs no database, worked
        out on the caller's thread, not the writer's (which is one thread for
        every request): the deflated data column, its tags, its trace and
        replay ids and the texts free-text search finds it by."""
        event['_packed'] = pack_event(event)
        event['_tags'] = event_tags(event)
        event['_links'] = event_links(event)
        event['_messages'] = event_messages(event)

    def tx_add(self, conn, project_id, events):
        """Store events (of one submission, or several in a row of one batch)
        in one go: the ones already held are found by one query, the tags
        of all interned together."""
        held = self._tx_held(conn, project_id, events)  # event id -> (row id, issue id), or None: first here
        fresh = []
        for event in events:
            event_id = event.get('eventId')
            if event_id is None:
                fresh.append(event)
            elif event_id not in held:
                held[event_id] = None
                fresh.append(event)
        store = self.store
        issues, tags, releases = store.issues, store.tags, store.releases
        interned = iter(tags.tx_intern_many(conn, project_id, fresh))
        # the fresh events go in as one VALUES list, their ids given here (one
        # INSERT statement for an Open Sentry batch of 20, not 20)
        next_id = store.new_ids(conn, 'events') if len(fresh) > 1 else None
        results, rows = [], []
        for event in events:
            event_id = event.get('eventId')
            if event_id is not None:
                known = held[event_id]
                if known is not None:  # a client retry of an event we already hold, or its twin in this batch
                    results.append({'id': known[0], 'issueId': known[1], 'duplicate': True})
                    continue
            issue_id = issues.tx_group(conn, project_id, event)
            pairs = next(interned)
            tag_ids = Tags.id_list(pairs)
            row = ((project_id, issue_id, event_id, event['received'], event['timestamp'],
                    event.get('_packed') or pack_event(event), tag_ids) + (event.get('_links') or event_links(event)))
            if next_id is None:
                row_id = conn.execute(self.INSERT_ONE, (store.new_id(conn, 'events'),) + row).lastrowid
            else:
                row_id, next_id = next_id, next_id + 1
                rows.append((row_id,) + row)
            messages = event.get('_messages')
            tags.tx_count(conn, issue_id, row_id, event['received'], event['timestamp'], pairs,
                          event_messages(event) if messages is None else messages, tag_ids)
            releases.tx_count(conn, project_id, event)
            if event_id is not None:
                held[event_id] = (row_id, issue_id)
            results.append({'id': row_id, 'issueId': issue_id, 'duplicate': False})
        if rows:
            values_rows(conn, self.INSERT, 10, rows)
        return results

    INSERT = ('INSERT INTO events(id, project_id, issue_id, event_id, received, timestamp, data, tag_ids, trace_id,'
              ' replay_id) VALUES %s')
    INSERT_ONE = INSERT % ('(%s)' % marks(range(10)))

    @staticmethod
    def _tx_held(conn, project_id, events):
        """{event id: (row id, issue id)} of those of events' ids already stored."""
        wanted = sorted({event.get('eventId') for event in events} - {None})
        held = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            held.update((row[0], (row[1], row[2])) for row in conn.execute(
                'SELECT event_id, id, issue_id FROM events WHERE project_id=? AND event_id IN (%s)' % marks(chunk),
                [project_id] + chunk))
        return held

    def tx_add_one(self, conn, project_id, event):
        return self.tx_add(conn, project_id, [event])[0]

    # Stored (deflated) event data one answer loads: events of a few KiB fit
    # by the thousand; hostile incompressible ones of ~1 MiB by the 32.
    PAGE_BYTES = 32 << 20
    LOADED = 'id, issue_id, event_id, received, data, timestamp'

    def _within(self, where, order, limit):
        sql = 'SELECT %s FROM events WHERE %s ORDER BY %s LIMIT ?' % (self.LOADED, where, order)
        rows, more = self.query_within(sql, where.params, limit, self.PAGE_BYTES, lambda row: len(row[4] or b''))
        return LoadedEvents(rows, more)

    def since(self, project_id, since, limit):
        """Events stored after the id since, in arrival order (LoadedEvents.more: not all of them)."""
        return self._within(Where(project_id).add('id>?', since), 'id', limit)

    def clear(self, project_id):
        """Delete a project's events and issues, in short transactions. Each
        one lowers the counts of the issues whose events it deletes, so the
        counts equal the stored events after every step: a crash midway
        leaves a project partly cleared, and a second clear finishes it."""
        deleted = 0
        while True:
            count = self.write(self._tx_delete_some, project_id, 5000)
            deleted += count
            if count < 5000:
                break
        self.write(self._tx_delete_rest, project_id)
        return deleted

    def _tx_delete_some(self, conn, project_id, batch):
        doomed = conn.execute('SELECT id, issue_id, received, tag_ids FROM events WHERE project_id=? ORDER BY id'
                              ' LIMIT ?', (project_id, batch)).fetchall()
        self.tx_forget(conn, project_id, doomed)
        return len(doomed)

    def tx_forget(self, conn, project_id, doomed):
        """Delete events [(row id, issue id, received, tag ids)] and take
        them off their issues' counts, sparklines and tag counts in the same
        transaction; issues left without events go. Counts equal stored
        events after it (clear and retention both delete this way)."""
        if not doomed:
            return
        self.store.deleting(conn, 'events', lambda: conn.executemany(
            'DELETE FROM events WHERE id=?', [(row[0],) for row in doomed]))
        self.store.tags.tx_uncount(conn, doomed)
        per_issue, per_hour = {}, {}
        for _, issue_id, received, _ in doomed:
            per_issue[issue_id] = per_issue.get(issue_id, 0) + 1
            hour = (issue_id, int(received // 3600))
            per_hour[hour] = per_hour.get(hour, 0) + 1
        # a new seq: live viewers (changedSince) see the lower count
        for issue_id, count in per_issue.items():
            conn.execute('UPDATE issues SET count=count-?, seq=? WHERE id=?', (count, self.store.next_seq(), issue_id))
        # the sparklines count what remains, like the issue
        conn.executemany('UPDATE issue_hours SET count=count-? WHERE issue_id=? AND hour=?',
                         [(count, issue_id, hour) for (issue_id, hour), count in per_hour.items()])
        conn.execute('DELETE FROM issue_hours WHERE count<=0 AND issue_id IN (%s)' % ','.join('?' * len(per_issue)),
                     list(per_issue))
        pending = self.store.issues.pending_ids()  # counts not flushed yet
        emptied = [r[0] for r in conn.execute(
            'SELECT id FROM issues WHERE project_id=? AND count<=0', (project_id,)).fetchall() if r[0] not in pending]
        for issue_id in emptied:
            conn.execute('DELETE FROM issue_hours WHERE issue_id=?', (issue_id,))
            self.store.tags.tx_issue_gone(conn, issue_id)
            self.store.deleting(conn, 'issues', lambda: conn.execute('DELETE FROM issues WHERE id=?', (issue_id,)))

    def _tx_delete_rest(self, conn, project_id):
        # events that arrived while clear ran in batches go too, with any
        # issue changes this transaction gathered for the project
        self.store.deleting(conn, 'events', lambda: conn.execute('DELETE FROM events WHERE project_id=?',
                                                                 (project_id,)))
        self.store.issues.tx_delete_project(conn, project_id)
        self.store.attachments.tx_delete_project(conn, project_id)

    def of_issue(self, project_id, issue_id, cursor=None, limit=50, since=None, sets=()):
        """Events of one issue, newest first by their own timestamp (see
        Where.newest_first); with sets (Tags.event_sets), only those matching
        (sets None: a term no stored value satisfies, so none)."""
        if sets is None:
            return [], None
        where = self._of_issue(project_id, issue_id, sets)
        return self._page(where, cursor, limit, since)

    @staticmethod
    def _of_issue(project_id, issue_id, sets):
        where = Where(project_id).add('issue_id=?', issue_id)
        if sets:
            sql, params = Tags.event_filter(sets)
            where.add(sql, *params)
        return where

    def pick(self, project_id, issue_id, which, sets=()):
        """An issue's event: 'latest', 'oldest' or a row id; None if the issue
        has no such (matching) event."""
        where = self._of_issue(project_id, issue_id, sets)
        if which not in ('latest', 'oldest'):
            where.add('id=?', which)
        rows = self.query('SELECT id, issue_id, event_id, received, data FROM events WHERE %s'
                          ' ORDER BY timestamp %s, id %s LIMIT 1' % ((where,) + (('ASC',) * 2 if which == 'oldest'
                                                                                  else ('DESC',) * 2)), where.params)
        return loaded_form(*rows[0]) if rows else None

    def navigation(self, project_id, issue_id, event, sets=()):
        """Row ids around event among its issue's (matching) events, by (timestamp, id):
        {'older', 'newer', 'oldest', 'latest'}, None at either end."""
        out = {}
        for name, condition, order in (('older', '(timestamp, id) < (?, ?)', 'DESC'),
                                       ('newer', '(timestamp, id) > (?, ?)', 'ASC'),
                                       ('oldest', None, 'ASC'), ('latest', None, 'DESC')):
            where = self._of_issue(project_id, issue_id, sets)
            if condition:
                where.add(condition, event['timestamp'], event['id'])
            rows = self.query('SELECT id FROM events WHERE %s ORDER BY timestamp %s, id %s LIMIT 1' % (
                where, order, order), where.params)
            out[name] = rows[0][0] if rows else None
        return out

    def latest(self, project_id, cursor=None, limit=50, since=None):
        """The project's events, newest first by their own timestamp (see Where.newest_first)."""
        return self._page(Where(project_id), cursor, limit, since)

    def _page(self, where, cursor, limit, since):
        order = where.newest_first('timestamp', cursor, since)
        events = self._within(where, order, limit)
        last = events.rows[-1] if events.rows and events.more else None
        return events, ((last[5], last[0]) if last else None)

    LINKED = 1000  # errors a trace or replay lists

    def linked(self, project_id, column, value, limit=LINKED):
        """Error events whose trace_id or replay_id is value, oldest first by their own time."""
        assert column in ('trace_id', 'replay_id')
        return self._within(Where(project_id).add('%s=?' % column, value), 'timestamp, id', limit)

    def newest_id(self, project_id, issue_id=None):
        """The highest event id stored (in the project, or the issue), for "N new" polling."""
        if issue_id is None:
            return self.query('SELECT MAX(id) FROM events WHERE project_id=?', (project_id,))[0][0]
        return self.query('SELECT MAX(id) FROM events WHERE issue_id=?', (issue_id,))[0][0]

    def get(self, project_id, event_row_id):
        rows = self.query('SELECT id, issue_id, event_id, received, data FROM events WHERE project_id=? AND id=?',
                          (project_id, event_row_id))
        return loaded_form(*rows[0]) if rows else None


class Tags(Kind):
    """Tags of error events, for facets and search. Keys and values are
    interned per project (tag_keys, tag_values); each stored event has one
    row per tag (the events a query scopes: event_tag_rows, which reads
    recent_event_tags, one row per new event, and event_tags, where they move)
    and lists its value ids in events.tag_ids (what retention and merging take
    back). Per-issue counts
    (issue_tags, issue_keys) and per-project counts are added up per
    transaction and written just before COMMIT, like the issues, so facets
    read counts and never scan events, and every count equals stored rows."""

    CACHE_LIMIT = 20000    # interned ids the writer remembers (200,000 took ~25 MB of RSS with a new user per event)
    SUGGESTED = 10000      # values a prefix is looked for among, most frequent first
    MESSAGES_PER_ISSUE = 100

    # Rows in recent_event_tags before they move to event_tags (see migration
    # 21): a move writes each (issue, value) run's page once for all its new
    # rows, so the more at a time the fewer pages, and the longer that commit.
    MOVE_ROWS = 20000

    def __init__(self, store):
        Kind.__init__(self, store)
        self._backfilled = False  # the backfill (below) found nothing left
        self._recent_rows = self.query(  # about: what this process adds is counted from here
            "SELECT COALESCE(SUM(length(value_ids) - length(replace(value_ids, ',', '')) + 1), 0)"
            ' FROM recent_event_tags')[0][0]
        self.forget()

    def forget(self):
        """Writer hook after a rollback: ids interned in it and counts gathered are gone."""
        self.forget_interned()
        self._deltas = {}       # (issue id, key id, value id) -> [events, first seen, last seen]
        self._rows = []         # recent_event_tags rows to insert at COMMIT
        self._gone = set()      # issues deleted in this transaction: only project counts still apply
        self._messages = {}     # issue id -> messages first seen in this transaction
        # values interned in this transaction, not in tag_values yet: value id ->
        # [key id, value, crc, first seen]; inserted at COMMIT with their counts
        self._new_values = {}
        self._last_value_id = None  # the highest tag_values id given out in this transaction

    def forget_interned(self):
        """Drop the ids and counts remembered from the database: after a
        rollback, or when another process deleted some (Store._after_begin)."""
        self._key_ids = {}      # (project id, key) -> key id
        self._value_ids = {}    # (key id, value) -> value id
        self._value_keys = {}   # value id -> key id
        self._message_counts = {}  # issue id -> messages stored

    # -- writes (writer thread) ------------------------------------------------

    def _tx_key_id(self, conn, project_id, key):
        key_id = self._key_ids.get((project_id, key))
        if key_id is None:
            row = conn.execute('SELECT id FROM tag_keys WHERE project_id=? AND key=?', (project_id, key)).fetchone()
            key_id = row[0] if row else conn.execute('INSERT INTO tag_keys(project_id, key) VALUES (?, ?)',
                                                     (project_id, key)).lastrowid
            self._key_ids[(project_id, key)] = key_id
        return key_id

    def tx_intern(self, conn, project_id, event):
        """[(key id, value id)] of the event's tags (event_tags in the model)."""
        return self.tx_intern_many(conn, project_id, [event])[0]

    def tx_intern_many(self, conn, project_id, events):
        """tx_intern of each event; the values not interned yet are looked up,
        and those never seen inserted, together."""
        if len(self._value_ids) > self.CACHE_LIMIT:
            self._tx_write_values(conn)  # the cache is what knows them until then
            self._key_ids, self._value_ids, self._value_keys = {}, {}, {}
        key_ids, value_ids, out, unknown, missing = self._key_ids, self._value_ids, [], [], {}
        for event in events:
            pairs = []
            tags = event.get('_tags')  # worked out by Events.pack, off the writer
            for key, value in event_tags(event) if tags is None else tags:
                key_id = key_ids.get((project_id, key)) or self._tx_key_id(conn, project_id, key)
                value_id = value_ids.get((key_id, value))
                if value_id is None:
                    unknown.append((pairs, len(pairs), key_id, value))
                    if (key_id, value) not in missing:
                        missing[key_id, value] = event['timestamp']
                pairs.append((key_id, value_id))
            out.append(pairs)
        if missing:
            self._tx_value_ids(conn, missing)
            for pairs, index, key_id, value in unknown:
                pairs[index] = (key_id, value_ids[key_id, value])
        return out

    def _tx_value_ids(self, conn, missing):
        """Intern values {(key id, value): first seen} not in the cache: those
        stored are found by one query per key, the others get the next ids
        and are inserted at COMMIT (_tx_write_values), counted already, in
        one statement: not a row inserted now and updated again then."""
        value_ids, value_keys, new = self._value_ids, self._value_keys, self._new_values
        by_key = {}
        for (key_id, value), seen in missing.items():
            by_key.setdefault(key_id, []).append((value, value_crc(value), seen))
        for key_id, wanted in by_key.items():
            found = {}
            for at in range(0, len(wanted), 256):
                chunk = wanted[at:at + 256]
                size = 1 << (len(chunk) - 1).bit_length()  # a few statement texts, so they stay cached
                crcs = [crc for _, crc, _ in chunk]
                texts = [text for text, _, _ in chunk]
                crcs += crcs[-1:] * (size - len(chunk))
                texts += texts[-1:] * (size - len(chunk))
                found.update(conn.execute('SELECT value, id FROM tag_values WHERE key_id=? AND crc IN (%s) AND value'
                                          ' IN (%s)' % (marks(crcs), marks(texts)), [key_id] + crcs + texts))
            for value, crc, seen in wanted:
                value_id = found.get(value)
                if value_id is None:
                    if self._last_value_id is None:
                        self._last_value_id = conn.execute('SELECT COALESCE(MAX(id), 0) FROM tag_values').fetchone()[0]
                    value_id = self._last_value_id = self._last_value_id + 1
                    new[value_id] = [key_id, value, crc, seen]
                value_ids[key_id, value] = value_id
                value_keys[value_id] = key_id

    def _tx_write_values(self, conn, counted=()):
        """Insert the values interned in this transaction; counted: [(value id,
        events, last seen)] of some of them, the others get none yet."""
        new, self._new_values, self._last_value_id = self._new_values, {}, None
        if not new:
            return
        rows = []
        for value_id, events, last in counted:
            key_id, value, crc, seen = new.pop(value_id)
            rows.append((value_id, key_id, value, crc, events, max(seen, last)))
        rows += [(value_id, key_id, value, crc, 0, seen) for value_id, (key_id, value, crc, seen) in new.items()]
        values_rows(conn, 'INSERT INTO tag_values(id, key_id, value, crc, events, last_seen) VALUES %s', 6, rows)

    @staticmethod
    def id_list(pairs):
        """The text events.tag_ids keeps: the value ids, comma-separated."""
        return ','.join([str(value_id) for _, value_id in pairs]) if pairs else None

    def tx_count(self, conn, issue_id, row_id, received, seen, pairs, messages=(), tag_ids=None):
        """Count a stored event under its tags (pairs from tx_intern; tag_ids: their id_list)."""
        if pairs:
            self._rows.append((issue_id, int(received // 3600), row_id, tag_ids or self.id_list(pairs)))
            self._recent_rows += len(pairs)
        deltas = self._deltas
        for key_id, value_id in pairs:
            key = (issue_id, key_id, value_id)
            delta = deltas.get(key)
            if delta is None:
                deltas[key] = [1, seen, seen]
            else:
                delta[0] += 1
                if delta[1] is None:  # only taken back so far
                    delta[1] = delta[2] = seen
                elif seen < delta[1]:
                    delta[1] = seen
                elif seen > delta[2]:
                    delta[2] = seen
        for message in messages:
            if message:
                self._messages.setdefault(issue_id, set()).add(message[:1000])

    def _tx_write_rows(self, conn):
        """Insert the event tag rows gathered so far (at COMMIT, or before a delete needs them there)."""
        rows, self._rows = self._rows, []
        if rows:
            values_rows(conn, 'INSERT INTO recent_event_tags(issue_id, hour, event_id, value_ids) VALUES %s', 4, rows)

    def _tx_move_rows(self, conn):
        """Move every event of recent_event_tags to event_tags, a row per tag, in its order."""
        conn.execute("INSERT OR IGNORE INTO event_tags(issue_id, value_id, hour, event_id) SELECT r.issue_id, j.value,"
                     " r.hour, r.event_id FROM recent_event_tags r, json_each('[' || r.value_ids || ']') j"
                     ' ORDER BY 1, 2, 3, 4')
        conn.execute('DELETE FROM recent_event_tags')
        self._recent_rows = 0

    def tx_uncount(self, conn, rows):
        """Take back stored events being deleted: rows of (event row id, issue
        id, received, tag_ids). Their event_tags rows go now; the counts
        drop at COMMIT."""
        self._tx_write_rows(conn)
        doomed, events = [], []
        for row_id, issue_id, received, tag_ids in rows:
            if not tag_ids:
                continue
            hour = int(received // 3600)
            events.append((issue_id, hour, row_id))
            for value_id in map(int, tag_ids.split(',')):
                doomed.append((issue_id, value_id, hour, row_id))
                key_id = self._value_keys.get(value_id)
                if key_id is None:
                    key_id = self._value_keys[value_id] = conn.execute(
                        'SELECT key_id FROM tag_values WHERE id=?', (value_id,)).fetchone()[0]
                key = (issue_id, key_id, value_id)
                delta = self._deltas.get(key)
                if delta is None:
                    self._deltas[key] = [-1, None, None]
                else:
                    delta[0] -= 1
        conn.executemany('DELETE FROM event_tags WHERE issue_id=? AND value_id=? AND hour=? AND event_id=?', doomed)
        conn.executemany('DELETE FROM recent_event_tags WHERE issue_id=? AND hour=? AND event_id=?', events)

    def tx_issue_gone(self, conn, issue_id):
        """An issue deleted (emptied by retention, merged away): its own rows go;
        what this transaction counted for it still moves the project's counts."""
        self._tx_write_rows(conn)
        self._gone.add(issue_id)
        for table in ('issue_tags', 'issue_keys', 'event_tags', 'recent_event_tags', 'issue_messages'):
            conn.execute('DELETE FROM %s WHERE issue_id=?' % table, (issue_id,))
        self._messages.pop(issue_id, None)
        self._message_counts.pop(issue_id, None)

    def tx_merge_issue(self, conn, source, target):
        """Move an issue's tag rows and counts onto another (merging issues):
        the project's counts do not change."""
        self._tx_write_rows(conn)
        for table in ('event_tags', 'recent_event_tags'):
            conn.execute('UPDATE %s SET issue_id=? WHERE issue_id=?' % table, (target, source))
        conn.execute('INSERT INTO issue_tags(issue_id, key_id, value_id, events, first_seen, last_seen)'
                     ' SELECT ?, key_id, value_id, events, first_seen, last_seen FROM issue_tags WHERE issue_id=?'
                     ' AND true ON CONFLICT(issue_id, key_id, value_id) DO UPDATE SET events=events+excluded.events,'
                     ' first_seen=MIN(first_seen, excluded.first_seen), last_seen=MAX(last_seen, excluded.last_seen)',
                     (target, source))
        conn.execute('DELETE FROM issue_tags WHERE issue_id=?', (source,))
        conn.execute('DELETE FROM issue_keys WHERE issue_id IN (?, ?)', (source, target))
        conn.execute('INSERT INTO issue_keys(issue_id, key_id, distinct_values) SELECT issue_id, key_id, COUNT(*)'
                     ' FROM issue_tags WHERE issue_id=? GROUP BY issue_id, key_id', (target,))
        conn.execute('INSERT OR IGNORE INTO issue_messages(issue_id, message) SELECT ?, message FROM issue_messages'
                     ' WHERE issue_id=?', (target, source))
        conn.execute('DELETE FROM issue_messages WHERE issue_id=?', (source,))
        self._message_counts.pop(target, None)
        self._message_counts.pop(source, None)
        self.store.bump('interned')

    def tx_project_gone(self, conn, project_id):
        """Every tag of a project goes (clear): its issues are deleted by the caller."""
        self._tx_write_rows(conn)
        self._tx_write_values(conn)
        issue_ids = {r[0] for r in conn.execute('SELECT id FROM issues WHERE project_id=?', (project_id,))}
        key_ids = {r[0] for r in conn.execute('SELECT id FROM tag_keys WHERE project_id=?', (project_id,))}
        for table in ('issue_tags', 'issue_keys', 'event_tags', 'recent_event_tags', 'issue_messages'):
            conn.execute('DELETE FROM %s WHERE issue_id IN (SELECT id FROM issues WHERE project_id=?)' % table,
                         (project_id,))
        conn.execute('DELETE FROM tag_values WHERE key_id IN (SELECT id FROM tag_keys WHERE project_id=?)',
                     (project_id,))
        conn.execute('DELETE FROM tag_keys WHERE project_id=?', (project_id,))
        for issue_id in issue_ids:
            self._messages.pop(issue_id, None)
            self._message_counts.pop(issue_id, None)
        self._deltas = {k: d for k, d in self._deltas.items() if k[0] not in issue_ids and k[1] not in key_ids}
        self._key_ids, self._value_ids, self._value_keys = {}, {}, {}
        self.store.bump('interned')

    # The counts a transaction gathered are added in Python and each touched
    # row is written once, a VALUES list of rows per statement (values_rows).
    # A count row exists while its count is above zero, so the upsert's
    # RETURNING tells which rows an issue or the project gained or lost, and
    # with them its distinct values: issue_keys holds only those (an issue's
    # events per key are its issue_tags summed), so it is written only when
    # an issue gains or loses a value, not for every event.
    ADD_ISSUE_TAGS = ('INSERT INTO issue_tags(issue_id, key_id, value_id, events, first_seen, last_seen) VALUES %s'
                      ' ON CONFLICT(issue_id, key_id, value_id) DO UPDATE SET events=events+excluded.events,'
                      ' first_seen=MIN(first_seen, excluded.first_seen), last_seen=MAX(last_seen, excluded.last_seen)'
                      ' RETURNING issue_id, key_id, value_id, events')
    TAKE_ISSUE_TAGS = ('UPDATE issue_tags SET events=events+v.column4,'
                       ' first_seen=CASE WHEN v.column5 > 0 THEN MIN(first_seen, v.column5) ELSE first_seen END,'
                       ' last_seen=MAX(last_seen, v.column6) FROM (VALUES %s) v WHERE issue_id=v.column1'
                       ' AND key_id=v.column2 AND value_id=v.column3 RETURNING issue_id, key_id, value_id, events')
    COUNT_VALUES = ('UPDATE tag_values SET events=events+v.column2, last_seen=MAX(last_seen, v.column3)'
                    ' FROM (VALUES %s) v WHERE id=v.column1 RETURNING id, key_id, events')

    def tx_flush(self, conn):
        """Writer hook, just before COMMIT: write the event rows and the counts
        gathered in this transaction."""
        deltas, gone, self._deltas, self._gone = self._deltas, self._gone, {}, set()
        self._tx_write_rows(conn)
        if deltas:
            self._tx_flush_counts(conn, deltas, gone)
        self._tx_write_values(conn)  # any not counted (nothing else may leave one)
        self._tx_flush_messages(conn)
        if self._recent_rows >= self.MOVE_ROWS:
            self._tx_move_rows(conn)

    def _tx_flush_counts(self, conn, deltas, gone):
        added, taken, per_value = [], [], {}
        for key, (count, first, last) in deltas.items():
            if not count:
                continue
            issue_id, key_id, value_id = key
            value = per_value.get(value_id)
            if value is None:
                per_value[value_id] = [count, last or 0]
            else:
                value[0] += count
                if last is not None and last > value[1]:
                    value[1] = last
            if issue_id in gone:  # only the project's counts still move
                continue
            if count > 0:
                added.append((issue_id, key_id, value_id, count, first, last))
            else:
                taken.append((issue_id, key_id, value_id, count, first or 0, last or 0))
        crossed, emptied = {}, []  # (issue id, key id) -> distinct values gained; issue_tags rows at zero
        for rows in (values_rows(conn, self.ADD_ISSUE_TAGS, 6, added),
                     values_rows(conn, self.TAKE_ISSUE_TAGS, 6, taken) if taken else ()):
            for issue_id, key_id, value_id, events in rows:
                before = events - deltas[issue_id, key_id, value_id][0]
                if (before <= 0) != (events <= 0):
                    crossed[issue_id, key_id] = crossed.get((issue_id, key_id), 0) + (1 if events > 0 else -1)
                if events <= 0:
                    emptied.append((issue_id, key_id, value_id))
        if emptied:
            conn.executemany('DELETE FROM issue_tags WHERE issue_id=? AND key_id=? AND value_id=?', emptied)
        if crossed:
            conn.executemany('INSERT INTO issue_keys(issue_id, key_id, distinct_values) VALUES (?, ?, ?)'
                             ' ON CONFLICT(issue_id, key_id) DO UPDATE SET'
                             ' distinct_values=distinct_values+excluded.distinct_values',
                             [key + (change,) for key, change in crossed.items() if change])
            conn.executemany('DELETE FROM issue_keys WHERE issue_id=? AND key_id=? AND distinct_values<=0',
                             [key for key, change in crossed.items() if change < 0])
        per_key = {}  # key id -> [events, distinct values gained]
        new, counted, stored = self._new_values, [], []
        for value_id, (count, last) in per_value.items():
            if value_id in new:  # a value first seen now: its row goes in with its count
                counted.append((value_id, count, last))
                key_id = new[value_id][0]
                entry = per_key.get(key_id)
                if entry is None:
                    entry = per_key[key_id] = [0, 0]
                entry[0] += count
                if count > 0:
                    entry[1] += 1
            else:
                stored.append((value_id, count, last))
        self._tx_write_values(conn, counted)
        for value_id, key_id, events in values_rows(conn, self.COUNT_VALUES, 3, stored):
            count = per_value[value_id][0]
            entry = per_key.get(key_id)
            if entry is None:
                entry = per_key[key_id] = [0, 0]
            entry[0] += count
            before = events - count
            if (before <= 0) != (events <= 0):
                entry[1] += 1 if events > 0 else -1
        conn.executemany('UPDATE tag_keys SET events=events+?, distinct_values=distinct_values+? WHERE id=?',
                         [(events, distinct, key_id) for key_id, (events, distinct) in per_key.items()
                          if events or distinct])

    def _tx_flush_messages(self, conn):
        messages, self._messages = self._messages, {}
        for issue_id, texts in messages.items():
            # a shared store counts afresh: other processes add messages too
            stored = None if self.store.shared else self._message_counts.get(issue_id)
            if stored is None:
                if len(self._message_counts) > 10000:
                    self._message_counts = {}
                stored = conn.execute('SELECT COUNT(*) FROM issue_messages WHERE issue_id=?',
                                      (issue_id,)).fetchone()[0]
            for text in sorted(texts)[:max(0, self.MESSAGES_PER_ISSUE - stored)]:
                stored += conn.execute('INSERT OR IGNORE INTO issue_messages(issue_id, message) VALUES (?, ?)',
                                       (issue_id, text)).rowcount
            self._message_counts[issue_id] = stored

    # -- the backfill: events stored before tags (migration 5) ------------------
    # Migration 18 notes the highest event id then (tag_backfill_end) and where
    # the backfill stands (tag_backfill_at, from 0 up). Each step counts, in one
    # short transaction, the untagged events among the next BACKFILL_SCAN ids
    # (at most BACKFILL_BATCH of them) exactly as the writer counts a new event,
    # and moves the position in that same transaction: a crash repeats nothing
    # and loses nothing. An event that already has tag_ids (stored since) is
    # skipped; one that has no tags at all counts nothing, however often seen.

    BACKFILL_BATCH = 100
    BACKFILL_SCAN = 1000

    def backfill(self):
        """One step of the backfill (on the caller's thread; the writer runs it).
        Returns how many events it counted, or None once nothing is left."""
        if self._backfilled:
            return None
        left = dict(self.query("SELECT name, value FROM counters WHERE name IN ('tag_backfill_at',"
                               " 'tag_backfill_end')"))
        if len(left) < 2 or left['tag_backfill_at'] >= left['tag_backfill_end']:
            self._backfilled = True
            return None
        return self.write(self._tx_backfill)

    def _tx_backfill(self, conn):
        left = dict(conn.execute("SELECT name, value FROM counters WHERE name IN ('tag_backfill_at',"
                                 " 'tag_backfill_end')"))
        if len(left) < 2:
            return None
        at, end = left['tag_backfill_at'], left['tag_backfill_end']
        upto = min(at + self.BACKFILL_SCAN, end)
        rows = conn.execute('SELECT id, project_id, issue_id, event_id, received, data FROM events'
                            ' WHERE id>? AND id<=? AND tag_ids IS NULL ORDER BY id LIMIT ?',
                            (at, upto, self.BACKFILL_BATCH)).fetchall()
        if len(rows) == self.BACKFILL_BATCH:
            upto = rows[-1][0]
        tagged = []
        for row_id, project_id, issue_id, event_id, received, data in rows:
            if issue_id is None:
                continue
            event = loaded_form(row_id, issue_id, event_id, received, data)
            pairs = self.tx_intern(conn, project_id, event)
            self.tx_count(conn, issue_id, row_id, received, event['timestamp'], pairs, event_messages(event))
            self.store.releases.tx_count(conn, project_id, event)
            if pairs:
                tagged.append((Tags.id_list(pairs), row_id))
        conn.executemany('UPDATE events SET tag_ids=? WHERE id=?', tagged)
        if upto >= end:
            conn.execute("DELETE FROM counters WHERE name IN ('tag_backfill_at', 'tag_backfill_end')")
        else:
            conn.execute("UPDATE counters SET value=? WHERE name='tag_backfill_at'", (upto,))
        return len(rows)

    # -- reads -------------------------------------------------------------------

    def key_ids(self, project_id, keys):
        """{key: key id} of those keys the project's events have carried."""
        keys = list(keys)
        if not keys:
            return {}
        return dict(self.query('SELECT key, id FROM tag_keys WHERE project_id=? AND key IN (%s)' % marks(keys),
                               [project_id] + keys))

    def value_ids(self, key_id, values):
        ids = []
        for value in values:
            ids += [r[0] for r in self.query('SELECT id FROM tag_values WHERE key_id=? AND crc=? AND value=?',
                                             (key_id, value_crc(value), value))]
        return ids

    def event_sets(self, project_id, terms):
        """Event terms as [(value ids, negated)], or None when a positive term
        names no value any event has (nothing can match)."""
        pairs = {t: user_tag_values(t.key, t.values) if t.key in USER_TAG_PREFIXES else
                 [(t.key, value) for value in t.values] for t in terms}
        keys = self.key_ids(project_id, sorted({key for named in pairs.values() for key, _ in named}))
        sets = []
        for term in terms:
            ids = []
            for key in sorted({key for key, _ in pairs[term]}):
                if key in keys:
                    ids += self.value_ids(keys[key], [value for k, value in pairs[term] if k == key])
            if not ids and not term.negated:
                return None
            if ids:
                sets.append((tuple(ids), term.negated))
        return sets

    # An event carries a value when event_tags has its row, or when its
    # recent_event_tags row lists it (the two tables event_tag_rows reads;
    # queries name both, so each is searched by its own key).
    CARRIES = ("(EXISTS (SELECT 1 FROM event_tags o WHERE o.issue_id=%(issue)s AND o.value_id IN (%(ids)s)"
               " AND o.hour=%(hour)s AND o.event_id=%(event)s) OR EXISTS (SELECT 1 FROM recent_event_tags o,"
               " json_each('[' || o.value_ids || ']') j WHERE o.issue_id=%(issue)s AND o.hour=%(hour)s"
               " AND o.event_id=%(event)s AND j.value IN (%(ids)s)))")

    @classmethod
    def _carries(cls, ids, negated, issue, hour, event):
        """SQL and params: the event (its issue, hour and row id as SQL) carries one of ids (or not)."""
        return ('NOT ' if negated else '') + cls.CARRIES % {'issue': issue, 'hour': hour, 'event': event,
                                                            'ids': marks(ids)}, list(ids) * 2

    @classmethod
    def matching_events(cls, sets, issue, issue_params=()):
        """SQL and params selecting the hour (as h) of each event of an issue
        that matches every set; issue is the SQL naming the issue id (a column
        of the outer query, or "?" with issue_params its value). The driver
        is a positive set's index range in each table; each other set is a
        primary-key probe of each."""
        positive = [i for i, (_, negated) in enumerate(sets) if not negated]
        if not positive:
            sql = 'SELECT CAST(d.received / 3600 AS INTEGER) AS h FROM events d WHERE d.issue_id=%s' % issue
            params = list(issue_params)
            for ids, negated in sets:
                carries, more = cls._carries(ids, negated, 'd.issue_id', 'CAST(d.received / 3600 AS INTEGER)', 'd.id')
                sql += ' AND ' + carries
                params += more
            return sql, params
        ids = sets[positive[0]][0]
        rest = sets[:positive[0]] + sets[positive[0] + 1:]
        arms = [('SELECT d.hour AS h FROM event_tags d WHERE d.issue_id=%s AND d.value_id IN (%s)' % (issue, marks(ids)),
                 'd'),
                ("SELECT d.hour AS h FROM recent_event_tags d, json_each('[' || d.value_ids || ']') v"
                 ' WHERE d.issue_id=%s AND v.value IN (%s)' % (issue, marks(ids)), 'd')]
        sql, params = [], []
        for arm, name in arms:
            params += list(issue_params) + list(ids)
            for other, negated in rest:
                carries, more = cls._carries(other, negated, name + '.issue_id', name + '.hour', name + '.event_id')
                arm += ' AND ' + carries
                params += more
            sql.append(arm)
        return ' UNION ALL '.join(sql), params

    @classmethod
    def event_filter(cls, sets, events='events'):
        """SQL and params: the row of the events table (named events) matches every set."""
        sql, params = [], []
        for ids, negated in sets:
            carries, more = cls._carries(ids, negated, events + '.issue_id',
                                         'CAST(%s.received / 3600 AS INTEGER)' % events, events + '.id')
            sql.append(carries)
            params += more
        return ' AND '.join(sql), params

    def scoped_hours(self, issue_id, sets):
        """{hour: events of the issue matching every set}."""
        sql, params = self.matching_events(sets, '?', [issue_id])
        return dict(self.query('SELECT h, COUNT(*) FROM (%s) GROUP BY h' % sql, params))

    def value_stats(self, key_id, value):
        """(stored events, last seen) of one value of a key."""
        rows = self.query('SELECT events, last_seen FROM tag_values WHERE key_id=? AND crc=? AND value=?',
                          (key_id, value_crc(value), value))
        return rows[0] if rows else (0, None)

    def user_counts(self, project_id, issue_ids):
        """{issue id: distinct users among its events}."""
        key_id = self.key_ids(project_id, ['user']).get('user')
        if key_id is None or not issue_ids:
            return {}
        return dict(self.query('SELECT issue_id, distinct_values FROM issue_keys WHERE key_id=? AND issue_id IN (%s)'
                               % marks(issue_ids), [key_id] + list(issue_ids)))

    def issue_keys(self, issue_id):
        """[(key, key id, events carrying it, distinct values)] of an issue."""
        return self.query('SELECT k.key, k.id, (SELECT SUM(t.events) FROM issue_tags t WHERE t.issue_id=i.issue_id'
                          ' AND t.key_id=i.key_id), i.distinct_values FROM issue_keys i'
                          ' JOIN tag_keys k ON k.id=i.key_id WHERE i.issue_id=?', (issue_id,))

    def issue_values(self, issue_id, key_id, limit, cursor=None):
        """[(value, events, first seen, last seen, value id)] of one key of an
        issue, most frequent first (ties: the value seen first most recently);
        cursor is (events, value id) of the last row of the page before."""
        where, params = 'i.issue_id=? AND i.key_id=?', [issue_id, key_id]
        if cursor is not None:
            where += ' AND (i.events, i.value_id) < (?, ?)'
            params += list(cursor)
        return self.query('SELECT v.value, i.events, i.first_seen, i.last_seen, i.value_id FROM issue_tags i'
                          ' JOIN tag_values v ON v.id=i.value_id WHERE %s ORDER BY i.events DESC, i.value_id DESC'
                          ' LIMIT ?' % where, params + [limit])

    def project_keys(self, project_id):
        """[(key, events, distinct values)] of the project's tag keys that some stored event carries."""
        return self.query('SELECT key, events, distinct_values FROM tag_keys WHERE project_id=? AND events>0',
                          (project_id,))

    def project_values(self, project_id, key, prefix=None, limit=20):
        """[(value, events, last seen)]: the most frequent, or those starting with prefix in value order."""
        key_id = self.key_ids(project_id, [key]).get(key)
        if key_id is None:
            return []
        if prefix:  # among the most frequent SUGGESTED values: a key of a million users stays quick
            return self.query('SELECT value, events, last_seen FROM (SELECT value, events, last_seen, id FROM tag_values'
                              ' WHERE key_id=? AND events>0 ORDER BY events DESC, id DESC LIMIT ?)'
                              ' WHERE substr(value, 1, ?)=? ORDER BY events DESC, id DESC LIMIT ?',
                              (key_id, self.SUGGESTED, len(prefix), prefix, limit))
        return self.query('SELECT value, events, last_seen FROM tag_values WHERE key_id=? AND events>0'
                          ' ORDER BY events DESC, id DESC LIMIT ?', (key_id, limit))


class Releases(Kind):
    """Releases: each version's first time and environments, written as events
    name it (a cache keeps that to one statement per new version or
    environment); its events and last seen are the release tag's counts, its
    new issues those whose first event named it, so retention moves them all."""

    def __init__(self, store):
        Kind.__init__(self, store)
        self.forget()

    def forget(self):
        """Writer hook after a rollback."""
        self._known = {}  # (project id, version) -> environments stored

    def tx_count(self, conn, project_id, event):
        version, environment = event.get('release'), event.get('environment')
        if not version:
            return
        key = (project_id, version)
        known = self._known.get(key)
        if known is not None and (not environment or environment in known):
            return
        if len(self._known) > 10000:
            self._known = {}
        row = conn.execute('SELECT environments FROM releases WHERE project_id=? AND version=?', key).fetchone()
        if row is None:
            known = {environment} if environment else set()
            conn.execute('INSERT INTO releases(project_id, version, first_seen, environments) VALUES (?, ?, ?, ?)',
                         key + (event['received'], dumps(sorted(known))))
        else:
            known = set(json.loads(row[0]))
            if environment and environment not in known and len(known) < 50:
                known.add(environment)
                conn.execute('UPDATE releases SET environments=? WHERE project_id=? AND version=?',
                             (dumps(sorted(known)), project_id, version))
            known.add(environment)  # past 50 environments: stop looking
        self._known[key] = known

    def tx_project_gone(self, conn, project_id):
        conn.execute('DELETE FROM releases WHERE project_id=?', (project_id,))
        self._known = {}
        self.store.bump('interned')

    COLUMNS = 'id, version, first_seen, environments'

    def _row(self, project_id, row):
        """A release: its row, with its events and last seen (the release
        tag's counts; last seen is first seen before any) and new_issues."""
        key_id = self.store.tags.key_ids(project_id, ['release']).get('release')
        events, last_seen = self.store.tags.value_stats(key_id, row[1]) if key_id else (0, None)
        new_issues = self.query('SELECT COUNT(*) FROM issues WHERE project_id=? AND first_release=?',
                                (project_id, row[1]))[0][0]
        return {'id': row[0], 'version': row[1], 'first_seen': row[2], 'last_seen': last_seen or row[2],
                'environments': json.loads(row[3]), 'events': events, 'new_issues': new_issues}

    def list(self, project_id, cursor=None, limit=50):
        """Newest first by first seen, id breaking ties."""
        where = Where(project_id)
        order = where.newest_first('first_seen', cursor)
        rows = self.query('SELECT %s FROM releases WHERE %s ORDER BY %s LIMIT ?' % (self.COLUMNS, where, order),
                          where.params + [limit + 1])
        last = rows[limit - 1] if len(rows) > limit else None
        return [self._row(project_id, r) for r in rows[:limit]], ((last[2], last[0]) if last else None)

    def get(self, project_id, version):
        """A release as _row, with issues: those that have an event of it."""
        rows = self.query('SELECT %s FROM releases WHERE project_id=? AND version=?' % self.COLUMNS,
                          (project_id, version))
        if not rows:
            return None
        release = self._row(project_id, rows[0])
        key_id = self.store.tags.key_ids(project_id, ['release']).get('release')
        value_ids = self.store.tags.value_ids(key_id, [version]) if key_id else []
        release['issues'] = self.query(
            'SELECT COUNT(*) FROM issues i WHERE project_id=? AND EXISTS (SELECT 1 FROM issue_tags t'
            ' WHERE t.issue_id=i.id AND t.key_id=? AND t.value_id=?)', (project_id, key_id, value_ids[0])
        )[0][0] if value_ids else 0
        return release


class Telemetry(Kind):
    """What is not an error: HTTP requests, replays, logs, transactions and AI
    generations, with the summaries the viewer shows of them."""

    # -- HTTP requests -------------------------------------------------------

    # model field -> column
    HTTP_FIELDS = (('timestamp', 'timestamp'), ('traceId', 'trace_id'), ('direction', 'direction'),
                   ('method', 'method'), ('host', 'host'), ('path', 'path'), ('statusCode', 'status_code'),
                   ('durationMs', 'duration_ms'), ('requestSize', 'request_size'), ('responseSize', 'response_size'),
                   ('userId', 'user_id'))
    HTTP_COLUMNS = tuple(column for _, column in HTTP_FIELDS)

    def tx_add_http_requests(self, conn, project_id, requests):
        fields = [field for field, _ in self.HTTP_FIELDS]
        received = now()
        conn.executemany(
            'INSERT INTO http_requests(project_id, received, %s) VALUES (?, ?, %s)' % (
                ', '.join(self.HTTP_COLUMNS), ', '.join('?' * len(self.HTTP_COLUMNS))),
            [(project_id, received) + tuple(request[f] for f in fields) for request in requests])
        return len(requests)

    @staticmethod
    def _http_filters(project_id, filters):
        where = Where(project_id)
        for column in ('direction', 'method', 'host'):
            where.equal(column, filters.get(column))
        where.contains(filters.get('path'), 'path')
        status = filters.get('status')
        if status and status.endswith('xx'):
            where.add('status_code>=? AND status_code<?', int(status[0]) * 100, int(status[0]) * 100 + 100)
        elif status:
            where.add('status_code=?', int(status))
        return where

    def list_http_requests(self, project_id, filters, cursor=None, limit=50, since=None):
        """Newest first by their own timestamp (see Where.newest_first)."""
        where = self._http_filters(project_id, filters)
        order = where.newest_first('timestamp', cursor, since)
        rows = self.query('SELECT id, %s FROM http_requests WHERE %s ORDER BY %s LIMIT ?' % (
            ', '.join(self.HTTP_COLUMNS), where, order), where.params + [limit + 1])
        fields = ('id',) + tuple(field for field, _ in self.HTTP_FIELDS)
        last = rows[limit - 1] if len(rows) > limit else None
        return [dict(zip(fields, row)) for row in rows[:limit]], ((last[1], last[0]) if last else None)

    def newest_id(self, table, project_id):
        """The highest id of a telemetry table's rows in the project, for "N new" polling."""
        assert table in ('http_requests', 'transactions', 'logs')
        return self.query('SELECT MAX(id) FROM %s WHERE project_id=?' % table, (project_id,))[0][0]

    def percentiles(self, table, column, clause, params, pcts, group=None):
        """Nearest-rank percentiles of column over the rows matching clause, per
        value of group (or overall, under the key None): {group: {pct: value}}.
        SQLite ranks the rows in one sort and hands back only the chosen ones,
        so a day of telemetry (millions of rows) never enters Python."""
        partition = 'PARTITION BY %s' % group if group else ''
        chosen = ' OR '.join('place = (counted * %d + 99) / 100' % pct for pct in pcts)
        rows = self.query(
            'SELECT grouped, place, counted, value FROM (SELECT %s AS grouped, %s AS value,'
            ' ROW_NUMBER() OVER (%s ORDER BY %s) AS place, COUNT(*) OVER (%s) AS counted FROM %s'
            ' WHERE %s AND %s IS NOT NULL) WHERE %s' % (group or 'NULL', column, partition, column, partition,
                                                        table, clause, column, chosen), params)
        out = {}
        for grouped, place, counted, value in rows:
            for pct in pcts:
                if place == (counted * pct + 99) // 100:
                    out.setdefault(grouped, {})[pct] = value
        return out

    HTTP_HISTOGRAM_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

    def http_request_stats(self, project_id, filters, since):
        """count; status_codes [(code or None, count)]; histogram [(at most
        ms or None, count)]; percentiles {pct: ms} overall; hosts [(host,
        count, {pct: ms})], the busiest."""
        where = self._http_filters(project_id, filters).add('timestamp>=?', since)
        clause, params = str(where), where.params
        codes = self.query('SELECT status_code, COUNT(*) FROM http_requests WHERE %s GROUP BY status_code' % clause,
                           params)
        hosts = self.query('SELECT host, COUNT(*) FROM http_requests WHERE %s GROUP BY host ORDER BY 2 DESC LIMIT 20'
                           % clause, params)
        # One counting pass: how many took at most each bound (cumulative).
        at_most = self.query('SELECT COUNT(duration_ms), %s FROM http_requests WHERE %s' % (
            ', '.join('COALESCE(SUM(duration_ms <= %d), 0)' % bound for bound in self.HTTP_HISTOGRAM_MS), clause),
            params)[0]
        timed, previous, histogram = at_most[0], 0, []
        for bound_ms, cumulative in zip(self.HTTP_HISTOGRAM_MS, at_most[1:]):
            histogram.append((bound_ms, cumulative - previous))
            previous = cumulative
        histogram.append((None, timed - previous))
        overall = self.percentiles('http_requests', 'duration_ms', clause, params, (50, 95, 99)).get(None, {})
        top = [host for host, _ in hosts]
        per_host = self.percentiles('http_requests', 'duration_ms', '%s AND host IN (%s)' % (
            clause, ','.join('?' * len(top))), params + top, (50, 95), group='host') if top else {}
        return {'count': sum(count for _, count in codes), 'percentiles': overall, 'status_codes': codes,
                'histogram': histogram, 'hosts': [(h, c, per_host.get(h, {})) for h, c in hosts]}

    # -- replays -------------------------------------------------------------

    MAX_REPLAY_SEGMENTS = 2000  # segment numbers remembered per session (a retried segment is stored once)

    def tx_add_replay(self, conn, project_id, replay):
        events = replay['events']
        row = conn.execute('SELECT first_ms, last_ms, events, urls, meta FROM replay_sessions'
                           ' WHERE project_id=? AND session_id=?', (project_id, replay['sessionId'])).fetchone()
        meta = json.loads(row[4]) if row else {}
        segment = replay.get('segment')
        if segment is not None:
            segments = meta.setdefault('segments', [])
            if segment in segments:
                return 0  # a client retry of a segment we hold
            if len(segments) < self.MAX_REPLAY_SEGMENTS:
                segments.append(segment)
        for field in ('environment', 'release'):
            if replay.get(field):
                meta[field] = replay[field]
        if replay.get('traceIds'):
            known = meta.setdefault('traceIds', [])
            known.extend(t for t in replay['traceIds'] if t not in known and len(known) < 100)
        conn.executemany(
            'INSERT INTO replay_events(project_id, session_id, event_type, event_data, url, timestamp_ms)'
            ' VALUES (?, ?, ?, ?, ?, ?)',
            [(project_id, replay['sessionId'], e['eventType'], e['eventData'], e['url'], e['timestampMs'])
             for e in events])
        stamps = [e['timestampMs'] for e in events] + [t for t in (replay.get('startedMs'), replay.get('endedMs'))
                                                       if t is not None]
        if not stamps:
            stamps = [int(now() * 1000)]
        urls = json.loads(row[3]) if row else []
        pages = [e['url'] for e in sorted(events, key=lambda e: e['timestampMs'])] + (replay.get('urls') or [])
        for url in pages:
            if url and url not in urls[-1:] and len(urls) < 200:
                urls.append(url)
        if row is None:
            conn.execute('INSERT INTO replay_sessions(project_id, session_id, fingerprint, first_ms, last_ms, events,'
                         ' urls, source, meta, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                         (project_id, replay['sessionId'], replay['fingerprint'], min(stamps), max(stamps),
                          len(events), dumps(urls), replay.get('source') or 'seestack', dumps(meta), now()))
        else:
            conn.execute('UPDATE replay_sessions SET first_ms=?, last_ms=?, events=events+?, urls=?, meta=?,'
                         ' received=? WHERE project_id=? AND session_id=?',
                         (min(row[0], min(stamps)), max(row[1], max(stamps)), len(events), dumps(urls), dumps(meta),
                          now(),
                          project_id, replay['sessionId']))
        return len(events)

    REPLAY_COLUMNS = ('session_id', 'fingerprint', 'first_ms', 'last_ms', 'events', 'urls', 'source', 'meta',
                      'errors')
    REPLAY_SELECT = ('session_id, fingerprint, first_ms, last_ms, events, urls, source, meta,'
                     ' (SELECT COUNT(*) FROM events e WHERE e.project_id=s.project_id AND e.replay_id=s.session_id)')

    @classmethod
    def _replay_row(cls, row):
        """A replay session's row (urls and meta decoded), with errors: the
        error events that name it."""
        session = named(cls.REPLAY_COLUMNS, row)
        session.update(urls=json.loads(session['urls']), meta=json.loads(session['meta']))
        return session

    def list_replays(self, project_id, cursor=None, limit=50):
        where, params = 's.project_id=?', [project_id]
        if cursor:
            where += ' AND (s.last_ms, s.session_id) < (?, ?)'
            params += [cursor[0], cursor[1]]
        rows = self.query('SELECT %s FROM replay_sessions s WHERE %s ORDER BY s.last_ms DESC, s.session_id DESC'
                          ' LIMIT ?' % (self.REPLAY_SELECT, where), params + [limit + 1])
        sessions = [self._replay_row(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return sessions, ((last[3], last[0]) if last else None)

    def replay_session(self, project_id, session_id):
        rows = self.query('SELECT %s FROM replay_sessions s WHERE s.project_id=? AND s.session_id=?'
                          % self.REPLAY_SELECT, (project_id, session_id))
        return self._replay_row(rows[0]) if rows else None

    REPLAY_BYTES = 64 << 20  # event data one session's answer carries (each event holds up to 256 KiB)

    def replay_events(self, project_id, session_id, limit=5000):
        """A session's first events, oldest first: at most limit, and only as
        many as fit in REPLAY_BYTES of event data (the events past it are
        never loaded). Returns (events, truncated)."""
        rows, more = self.query_within(
            'SELECT id, event_type, event_data, url, timestamp_ms FROM replay_events WHERE project_id=? AND session_id=?'
            ' ORDER BY timestamp_ms, id LIMIT ?', (project_id, session_id), limit, self.REPLAY_BYTES,
            lambda row: len(row[2] or ''))
        events = [{'id': r[0], 'eventType': r[1], 'eventData': r[2], 'url': r[3], 'timestampMs': r[4]} for r in rows]
        return events, more

    # -- logs ----------------------------------------------------------------

    def tx_add_logs(self, conn, project_id, entries):
        first = self.store.new_id(conn, 'logs')  # the rest follow it
        received = now()
        conn.executemany(
            'INSERT INTO logs(id, project_id, received, timestamp, level, message, service, trace_id, metadata)'
            ' VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [(first if index == 0 else None, project_id, received, e['timestamp'], e['level'], e['message'],
              e.get('service'), e.get('traceId'), dumps(e['metadata']) if e.get('metadata') is not None else None)
             for index, e in enumerate(entries)])
        return len(entries)

    LOG_PAGE_BYTES = 16 << 20  # message and metadata one page of logs carries (an entry holds up to ~1 MiB)

    def list_logs(self, project_id, level=None, service=None, search=None, since=None, limit=100, before=None,
                  trace_id=None):
        """Newest first by their own timestamp, or the tail after since (see
        Where.newest_first): at most limit, and only as many as fit in
        LOG_PAGE_BYTES (the entries past it are never loaded). Returns
        (entries, the (time, id) cursor of the next page)."""
        where = Where(project_id).equal('level', level).equal('service', service).equal('trace_id', trace_id)
        where.contains(search, 'message')
        order = where.newest_first('timestamp', before, since)
        rows, more = self.query_within(
            'SELECT id, timestamp, level, message, service, trace_id, metadata FROM logs WHERE %s ORDER BY %s LIMIT ?'
            % (where, order), where.params, limit, self.LOG_PAGE_BYTES, lambda row: len(row[3]) + len(row[6] or ''))
        last = rows[-1] if rows and more and since is None else None
        return [{'id': r[0], 'timestamp': r[1], 'level': r[2], 'message': r[3], 'service': r[4],
                 'traceId': r[5], 'metadata': json.loads(r[6]) if r[6] else None} for r in rows], (
            (last[1], last[0]) if last else None)

    # -- transactions --------------------------------------------------------

    def tx_add_transaction(self, conn, project_id, tx):
        if tx.get('eventId') and conn.execute('SELECT 1 FROM transactions WHERE project_id=? AND event_id=?',
                                              (project_id, tx['eventId'])).fetchone():
            return {'duplicate': True}
        segment = tx.get('segmentId') if tx.get('traceId') else None
        if segment and conn.execute('SELECT 1 FROM transactions WHERE project_id=? AND trace_id=? AND segment_id=?',
                                    (project_id, tx['traceId'], segment)).fetchone():
            return {'duplicate': True}  # the same root span again (a client retry)
        data = {k: v for k, v in tx.items() if k not in ('eventId', 'name', 'traceId', 'durationMs', 'status',
                                                         'timestamp', 'segmentId') and v not in (None, [], {})}
        cursor = conn.execute(
            'INSERT INTO transactions(project_id, event_id, name, trace_id, duration_ms, status, timestamp, data,'
            ' segment_id, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (project_id, tx.get('eventId'), tx['name'], tx.get('traceId'), tx['durationMs'], tx['status'],
             tx['timestamp'], dumps(data), segment, now()))
        if segment:
            self.store.spans.tx_adopt(conn, project_id, cursor.lastrowid, tx['traceId'], segment)
        return {'id': cursor.lastrowid, 'duplicate': False}

    TRANSACTION_NAMES = 1000  # the busiest names a summary lists

    def transaction_summary(self, project_id, since):
        """Per name, the busiest first: count, errors (failed), average and
        percentiles of duration_ms, and the newest timestamp."""
        rows = self.query('SELECT name, COUNT(*), SUM(status NOT IN (%s)), AVG(duration_ms), MAX(timestamp)'
                          ' FROM transactions WHERE project_id=? AND timestamp>=? GROUP BY name'
                          ' ORDER BY 2 DESC, name LIMIT ?' % ','.join('?' * len(NOT_FAILED)),
                          NOT_FAILED + (project_id, since, self.TRANSACTION_NAMES))
        ranked = self.percentiles('transactions', 'duration_ms', 'project_id=? AND timestamp>=?', [project_id, since],
                                  (50, 95), group='name')
        return [{'name': name, 'count': count, 'errors': errors, 'p50_duration_ms': ranked.get(name, {}).get(50),
                 'p95_duration_ms': ranked.get(name, {}).get(95), 'avg_duration_ms': average, 'last_timestamp': last}
                for name, count, errors, average, last in rows]

    def list_transactions(self, project_id, name=None, cursor=None, limit=50, since=None):
        """Newest first by their own timestamp (see Where.newest_first)."""
        where = Where(project_id).equal('name', name)
        order = where.newest_first('timestamp', cursor, since)
        rows = self.query('SELECT id, name, trace_id, duration_ms, status, timestamp, json_extract(data, \'$.op\'),'
                          ' json_extract(data, \'$.source\') FROM transactions WHERE %s'
                          ' ORDER BY %s LIMIT ?' % (where, order), where.params + [limit + 1])
        out = [{'id': r[0], 'name': r[1], 'traceId': r[2], 'durationMs': r[3], 'status': r[4],
                'timestamp': r[5], 'op': r[6], 'source': r[7] or 'transaction'} for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return out, ((last[5], last[0]) if last else None)

    def get_transaction(self, project_id, tx_id):
        """A transaction with all its spans: those its event carried and those
        that arrived on their own (streamed), each with startMs from the
        transaction's start (the transaction model, with its id)."""
        rows = self.query('SELECT id, event_id, name, trace_id, duration_ms, status, timestamp, data, segment_id'
                          ' FROM transactions WHERE project_id=? AND id=?', (project_id, tx_id))
        if not rows:
            return None
        r = rows[0]
        tx = json.loads(r[7])
        tx.update(id=r[0], eventId=r[1], name=r[2], traceId=r[3], durationMs=r[4], status=r[5], timestamp=r[6],
                  segmentId=r[8])
        tx['spans'] = tx.get('spans', []) + self.store.spans.of_transaction(r[0], r[6])
        return tx

    def transaction_spans(self, tx_id, start, limit):
        """A transaction's first spans (its own, then those streamed to it), at most limit."""
        (inline,), = self.query("SELECT json_extract(data, '$.spans') FROM transactions WHERE id=?", (tx_id,))
        spans = json.loads(inline)[:limit] if inline else []
        if len(spans) < limit:
            spans += self.store.spans.of_transaction(tx_id, start, limit - len(spans))
        return spans

    def in_trace(self, project_id, trace_id, limit):
        """Every transaction, log, HTTP request and AI generation of a trace, as
        model objects with their 'kind', up to limit + 1 of each, and up to
        limit + 1 spans in all (the earliest transactions' first): a trace of
        thousands of transactions of thousands of spans each is never loaded
        whole to answer one page of it."""
        found, span_budget = [], limit + 1
        for kind, sql in (
                ('transaction', "SELECT id, timestamp, name, duration_ms, status, json_extract(data, '$.op')"
                                ' FROM transactions'),
                ('log', 'SELECT id, timestamp, level, message, service FROM logs'),
                ('http_request', 'SELECT id, timestamp, direction, method, host, path, status_code, duration_ms'
                                 ' FROM http_requests'),
                ('ai_generation', 'SELECT id, timestamp, provider, model, status, latency_ms, input_tokens,'
                                  ' output_tokens FROM ai_generations')):
            rows = self.query(sql + ' WHERE project_id=? AND trace_id=? ORDER BY timestamp, id LIMIT ?',
                              (project_id, trace_id, limit + 1))
            for row in rows:
                if kind == 'transaction':
                    spans = self.transaction_spans(row[0], row[1], span_budget) if span_budget > 0 else []
                    span_budget -= len(spans)
                    found.append({'kind': kind, 'id': row[0], 'timestamp': row[1], 'name': row[2],
                                  'durationMs': row[3], 'status': row[4], 'op': row[5], 'spans': spans})
                elif kind == 'log':
                    found.append({'kind': kind, 'id': row[0], 'timestamp': row[1], 'level': row[2],
                                  'message': row[3], 'service': row[4]})
                elif kind == 'http_request':
                    found.append({'kind': kind, 'id': row[0], 'timestamp': row[1], 'direction': row[2],
                                  'method': row[3], 'host': row[4], 'path': row[5], 'statusCode': row[6],
                                  'durationMs': row[7]})
                else:
                    found.append({'kind': kind, 'id': row[0], 'timestamp': row[1], 'provider': row[2],
                                  'model': row[3], 'status': row[4], 'latencyMs': row[5], 'inputTokens': row[6],
                                  'outputTokens': row[7]})
        return found

    # -- AI generations ------------------------------------------------------

    AI_COLUMNS = ('timestamp', 'provider', 'model', 'input_tokens', 'output_tokens', 'cost_usd', 'latency_ms',
                  'status')

    def tx_add_ai_generation(self, conn, project_id, gen):
        data = {k: v for k, v in gen.items() if k not in ('timestamp', 'provider', 'model', 'inputTokens',
                                                          'outputTokens', 'totalCostUsd', 'latencyMs', 'status')
                and v is not None}
        cursor = conn.execute(
            'INSERT INTO ai_generations(project_id, received, %s, data, trace_id) VALUES (?, ?, %s, ?, ?)' % (
                ', '.join(self.AI_COLUMNS), ', '.join('?' * len(self.AI_COLUMNS))),
            (project_id, now(), gen['timestamp'], gen['provider'], gen['model'], gen['inputTokens'],
             gen.get('outputTokens'), gen.get('totalCostUsd'), gen.get('latencyMs'), gen['status'], dumps(data),
             gen.get('traceId')))
        return {'id': cursor.lastrowid}

    AI_SUMS = ('count', 'input_tokens', 'output_tokens', 'cost_usd')

    def ai_usage(self, project_id, since, bucket_seconds):
        """Since then: totals (AI_SUMS and errors), the same by_model (with
        p50_latency_ms), over_time per bucket (bucket: its start, epoch
        seconds), and the 50 most recent generations."""
        totals = self.query(
            # TOTAL, not SUM: a float that cannot overflow (SUM raises "integer
            # overflow" past 2**63), cast back to an integer that saturates.
            'SELECT COUNT(*), CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER),'
            ' TOTAL(cost_usd), COALESCE(SUM(status!=\'ok\'), 0)'
            ' FROM ai_generations WHERE project_id=? AND timestamp>=?', (project_id, since))[0]
        by_model = self.query(
            'SELECT provider, model, COUNT(*), CAST(TOTAL(input_tokens) AS INTEGER),'
            ' CAST(TOTAL(output_tokens) AS INTEGER), TOTAL(cost_usd), COALESCE(SUM(status!=\'ok\'), 0)'
            ' FROM ai_generations'
            ' WHERE project_id=? AND timestamp>=? GROUP BY provider, model ORDER BY 6 DESC, 3 DESC',
            (project_id, since))
        latencies = self.percentiles('ai_generations', 'latency_ms', 'project_id=? AND timestamp>=?',
                                     [project_id, since], (50,), group="provider || char(0) || model")
        over_time = self.query(
            'SELECT CAST(timestamp / ? AS INTEGER), COUNT(*), CAST(TOTAL(input_tokens) AS INTEGER),'
            ' CAST(TOTAL(output_tokens) AS INTEGER), TOTAL(cost_usd) FROM ai_generations'
            ' WHERE project_id=? AND timestamp>=?'
            ' GROUP BY 1 ORDER BY 1', (bucket_seconds, project_id, since))
        recent = self.query('SELECT id, provider, model, input_tokens, output_tokens, cost_usd, latency_ms, status,'
                            ' timestamp FROM ai_generations WHERE project_id=? ORDER BY timestamp DESC, id DESC'
                            ' LIMIT 50',
                            (project_id,))
        sums = self.AI_SUMS + ('errors',)
        return {
            'totals': named(sums, totals),
            'by_model': [dict(named(('provider', 'model') + sums, r),
                              p50_latency_ms=latencies.get(r[0] + '\x00' + r[1], {}).get(50)) for r in by_model],
            'over_time': [dict(named(('bucket',) + self.AI_SUMS, r), bucket=r[0] * bucket_seconds) for r in over_time],
            'recent': [named(('id', 'provider', 'model', 'input_tokens', 'output_tokens', 'cost_usd', 'latency_ms',
                              'status', 'timestamp'), r) for r in recent]}


class Spans(Kind):
    """Spans that arrive on their own (Sentry's streamed spans), in any order:
    each belongs to the transaction whose root span (segment) it names; until
    that transaction is stored it waits, and the transaction adopts it."""

    NOT_IN_DATA = ('traceId', 'spanId', 'segmentId', 'durationMs')  # columns, or end - start

    def tx_add(self, conn, project_id, spans):
        batch = {span['spanId']: span for span in spans}
        groups = {}  # (trace id, segment) -> its spans in this batch
        for span in spans:
            groups.setdefault((span['traceId'], self._segment_of(conn, project_id, span, batch)), []).append(span)
        stored, received = 0, now()
        for (trace_id, segment), members in groups.items():
            row = conn.execute('SELECT id FROM transactions WHERE project_id=? AND trace_id=? AND segment_id=?',
                               (project_id, trace_id, segment)).fetchone() if segment else None
            transaction_id = row[0] if row else None
            held = (conn.execute('SELECT COUNT(*) FROM spans WHERE transaction_id=?', (transaction_id,))
                    if row else conn.execute('SELECT COUNT(*) FROM spans WHERE project_id=? AND trace_id=?'
                                             ' AND segment_id IS ? AND transaction_id IS NULL',
                                             (project_id, trace_id, segment))).fetchone()[0]
            members = members[:max(0, MAX_SPANS - held)]  # a transaction keeps its first MAX_SPANS spans
            if not members:
                continue
            before = conn.total_changes
            conn.executemany(
                'INSERT OR IGNORE INTO spans(project_id, trace_id, span_id, segment_id, transaction_id, received, data)'
                ' VALUES (?, ?, ?, ?, ?, ?, ?)',
                [(project_id, trace_id, span['spanId'], segment, transaction_id, received, dumps(
                    {k: v for k, v in span.items() if k not in self.NOT_IN_DATA and v is not None}))
                 for span in members])
            stored += conn.total_changes - before
            # spans that arrived before one of these, and took it for their root, now know better
            ids = [span['spanId'] for span in members if span['spanId'] != segment]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute('UPDATE spans SET segment_id=?, transaction_id=? WHERE project_id=? AND trace_id=?'
                             ' AND transaction_id IS NULL AND segment_id IN (%s)' % ','.join('?' * len(chunk)),
                             [segment, transaction_id, project_id, trace_id] + chunk)
        return stored

    @staticmethod
    def _segment_of(conn, project_id, span, batch):
        """The root span a span belongs to: as the client said, else its
        parent's (in this batch or stored), else the parent itself (a child of
        the root, whose transaction may not have arrived yet)."""
        segment, parent, seen = span.get('segmentId'), span.get('parentSpanId'), 0
        while segment is None and parent is not None and seen < 50:
            seen += 1
            known = batch.get(parent)
            if known is None:
                row = conn.execute('SELECT segment_id FROM spans WHERE project_id=? AND trace_id=? AND span_id=?',
                                   (project_id, span['traceId'], parent)).fetchone()
                return row[0] if row and row[0] else parent
            segment, parent = known.get('segmentId'), known.get('parentSpanId')
            if segment is None and parent is None:
                return known['spanId']
        return segment

    def tx_adopt(self, conn, project_id, transaction_id, trace_id, segment_id):
        """A transaction that just arrived takes the spans that waited for it."""
        conn.execute('UPDATE spans SET transaction_id=? WHERE project_id=? AND trace_id=? AND segment_id=?'
                     ' AND transaction_id IS NULL', (transaction_id, project_id, trace_id, segment_id))

    def of_transaction(self, transaction_id, start, limit=-1):
        """The spans of a transaction (the first limit of them), as span dicts
        with startMs and durationMs (start: the transaction's start, epoch seconds)."""
        out = []
        for span_id, data in self.query('SELECT span_id, data FROM spans WHERE transaction_id=? ORDER BY id LIMIT ?',
                                         (transaction_id, limit)):
            span = json.loads(data)
            begin, end = span.pop('start'), span.pop('end')
            span.update(spanId=span_id, startMs=round((begin - start) * 1000.0, 3),
                        durationMs=round((end - begin) * 1000.0, 3))
            out.append(span)
        return out


class Feedback(Kind):
    """User feedback, each naming (or not) the error event it is about. The
    link is made when read: feedback may come before the error it names."""

    COLUMNS = ('eventId', 'kind', 'associatedEventId', 'timestamp', 'received')

    def tx_add(self, conn, project_id, feedback):
        data = {k: v for k, v in feedback.items() if k not in self.COLUMNS and v is not None}
        cursor = conn.execute(
            'INSERT OR IGNORE INTO feedback(project_id, event_id, kind, associated_event_id, timestamp, received, data)'
            ' VALUES (?, ?, ?, ?, ?, ?, ?)', (project_id, feedback['eventId'], feedback['kind'],
                                              feedback['associatedEventId'], feedback['timestamp'],
                                              feedback['received'], dumps(data)))
        return {'id': cursor.lastrowid if cursor.rowcount else None, 'duplicate': not cursor.rowcount}

    def list(self, project_id, issue_id=None, event_id=None, cursor=None, limit=50):
        """Newest first (by the feedback's time, then id): feedback models with
        their id, and event_row and issue_id: the stored error event it names
        (both None when none is stored)."""
        where, params = ['f.project_id=?'], [project_id]
        for condition, values in (('e.issue_id=?', (issue_id,)), ('f.associated_event_id=?', (event_id,)),
                                  ('(f.timestamp, f.id) < (?, ?)', cursor)):
            if values and values[0] is not None:
                where.append(condition)
                params.extend(values)
        rows = self.query(
            'SELECT f.id, f.event_id, f.kind, f.associated_event_id, f.timestamp, f.data, e.id, e.issue_id'
            ' FROM feedback f LEFT JOIN events e ON e.project_id=f.project_id AND e.event_id=f.associated_event_id'
            ' WHERE %s ORDER BY f.timestamp DESC, f.id DESC LIMIT ?' % ' AND '.join(where), params + [limit + 1])
        out = []
        for row_id, own_id, kind, about, timestamp, data, event_row, issue in rows[:limit]:
            item = json.loads(data)
            item.update(id=row_id, eventId=own_id, kind=kind, associatedEventId=about, timestamp=timestamp,
                        event_row=event_row, issue_id=issue)
            out.append(item)
        last = rows[limit - 1] if len(rows) > limit else None
        return out, ((last[4], last[0]) if last else None)


class Monitors(Kind):
    """Cron monitors and their check-ins."""

    COLUMNS = ('id, slug, name, schedule, grace, max_runtime, timezone, created, last_ping, last_status,'
               ' running_since, running_id')

    @staticmethod
    def _row(row):
        keys = ('id', 'slug', 'name', 'schedule', 'grace', 'maxRuntime', 'timezone', 'created', 'lastPing',
                'lastStatus', 'runningSince', 'runningId')
        return dict(zip(keys, row))

    def list(self, project_id):
        return [self._row(r) for r in self.query(
            'SELECT %s FROM monitors WHERE project_id=? ORDER BY slug' % self.COLUMNS, (project_id,))]

    def all(self):
        rows = self.query('SELECT project_id, alerted, %s FROM monitors' % self.COLUMNS)
        return [dict(self._row(r[2:]), projectId=r[0], alerted=r[1]) for r in rows]

    def get(self, project_id, slug):
        rows = self.query('SELECT %s FROM monitors WHERE project_id=? AND slug=?' % self.COLUMNS,
                          (project_id, slug))
        return self._row(rows[0]) if rows else None

    def history(self, monitor_id, limit=100):
        rows = self.query('SELECT timestamp, status, duration_ms, message FROM checkins WHERE monitor_id=?'
                          ' ORDER BY timestamp DESC, id DESC LIMIT ?', (monitor_id, limit))
        return [{'timestamp': r[0], 'status': r[1], 'durationMs': r[2], 'message': r[3]} for r in rows]

    def save(self, project_id, monitor, create):
        """Create (create=True) or update a monitor; fields as in validate_monitor."""
        return self.write(self._tx_save, project_id, monitor, create)

    def _tx_save(self, conn, project_id, monitor, create, keep_name=False):
        exists = conn.execute('SELECT id FROM monitors WHERE project_id=? AND slug=?',
                              (project_id, monitor['slug'])).fetchone()
        if create is True and exists:
            raise Invalid('a monitor with this slug already exists', 'slug')
        if create is False and not exists:
            raise Invalid('no such monitor', 'slug')
        if not exists and conn.execute('SELECT COUNT(*) FROM monitors WHERE project_id=?',
                                       (project_id,)).fetchone()[0] >= MAX_MONITORS:
            raise Invalid('the project has %d monitors, the most it may have: delete one first' % MAX_MONITORS, 'slug')
        if not exists:
            conn.execute('INSERT INTO monitors(project_id, slug, name, schedule, grace, max_runtime, timezone,'
                         ' created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                         (project_id, monitor['slug'], monitor.get('name') or monitor['slug'],
                          monitor.get('schedule', ''),  # '': a monitor without a schedule
                          monitor.get('grace', 5), monitor.get('maxRuntime'), monitor.get('timezone') or 'UTC', now()))
        else:
            for key, column in (('name', 'name'), ('schedule', 'schedule'), ('grace', 'grace'),
                                ('maxRuntime', 'max_runtime'), ('timezone', 'timezone')):
                if key in monitor and not (keep_name and key == 'name'):
                    conn.execute('UPDATE monitors SET %s=? WHERE id=?' % column, (monitor[key], exists[0]))
        return True

    def delete(self, project_id, slug):
        return self.write(self._tx_delete, project_id, slug)

    @staticmethod
    def _tx_delete(conn, project_id, slug):
        row = conn.execute('SELECT id FROM monitors WHERE project_id=? AND slug=?', (project_id, slug)).fetchone()
        if row is None:
            return False
        conn.execute('DELETE FROM checkins WHERE monitor_id=?', (row[0],))
        conn.execute('DELETE FROM monitors WHERE id=?', (row[0],))
        return True

    def add_checkin(self, project_id, slug, checkin, upsert=None):
        """Record a ping (checkin from make_checkin). upsert (monitor fields)
        creates or updates the monitor first; a monitor that exists keeps its
        name (a client that names a monitor as it pings names only a new one).
        Returns the monitor id, or None when the slug is unknown."""
        return self.write(self._tx_add_checkin, project_id, slug, checkin, upsert)

    def _tx_add_checkin(self, conn, project_id, slug, checkin, upsert):
        """A check-in settles its run (check_in_id) as Sentry does, whatever
        the order: a closing check-in that comes before its in_progress one
        closes the run, and the late in_progress does not reopen it."""
        if upsert:
            self._tx_save(conn, project_id, dict(upsert, slug=slug), None, keep_name=True)
        row = conn.execute('SELECT id, running_since, running_id, name, max_runtime FROM monitors'
                           ' WHERE project_id=? AND slug=?', (project_id, slug)).fetchone()
        run, status = checkin.get('checkinId'), checkin['status']
        if row is None:
            # a Sentry check-in always names its monitor (an unknown slug without
            # monitor_config makes one without a schedule); others ping known slugs
            return None
        monitor_id = row[0]
        if status == 'in_progress':
            if not (run and conn.execute(
                    "SELECT 1 FROM checkins WHERE monitor_id=? AND checkin_id=? AND status!='in_progress' LIMIT 1",
                    (monitor_id, run)).fetchone()):  # its run has not closed already
                conn.execute('UPDATE monitors SET running_since=?, running_id=? WHERE id=?',
                             (checkin['timestamp'], run, monitor_id))
                self._tx_record_checkin(conn, monitor_id, checkin)
            return monitor_id
        self._tx_close_run(conn, project_id, slug, row, checkin)
        return monitor_id

    def _tx_close_run(self, conn, project_id, slug, row, checkin):
        monitor_id, running_since, running_id, name, max_runtime = row
        at, status, run = checkin['timestamp'], checkin['status'], checkin.get('checkinId')
        checkin = dict(checkin)
        if checkin.get('durationMs') is None:
            started = running_since if (not run or run == running_id) else conn.execute(
                "SELECT MIN(timestamp) FROM checkins WHERE monitor_id=? AND checkin_id=? AND status='in_progress'",
                (monitor_id, run)).fetchone()[0]
            if started is not None:
                checkin['durationMs'] = round(max(0.0, at - started) * 1000.0, 3)
        # The run in progress ends with its own closing check-in (or one that
        # names no run); another run's closing leaves it running, unless it
        # has timed out already (its own closing was lost).
        timed_out = running_since is not None and at > running_since + (max_runtime or DEFAULT_MAX_RUNTIME) * 60
        ends_run = 1 if (not run or not running_id or run == running_id or timed_out) else 0
        conn.execute('UPDATE monitors SET last_ping=MAX(COALESCE(last_ping, 0), ?), last_status=?,'
                     ' running_since=CASE WHEN ? THEN NULL ELSE running_since END,'
                     ' running_id=CASE WHEN ? THEN NULL ELSE running_id END, alerted=NULL WHERE id=?',
                     (at, status, ends_run, ends_run, monitor_id))
        if status == 'failed':
            self.store.notify('cron_failed', {'project_id': project_id, 'slug': slug, 'name': name,
                                              'message': checkin.get('message')})
        self._tx_record_checkin(conn, monitor_id, checkin)

    @staticmethod
    def _tx_record_checkin(conn, monitor_id, checkin):
        conn.execute('INSERT INTO checkins(monitor_id, timestamp, status, duration_ms, message, checkin_id)'
                     ' VALUES (?, ?, ?, ?, ?, ?)', (monitor_id, checkin['timestamp'], checkin['status'],
                                                    checkin.get('durationMs'), checkin.get('message'),
                                                    checkin.get('checkinId')))

    def mark_alerted(self, monitor_id, what, kind, notice):
        """Note that the monitor's state `what` was announced, and raise its
        alert (kind, notice) in the same transaction: the outbox keeps it
        until it is delivered."""
        self.write(self._tx_mark_alerted, monitor_id, what, kind, notice)

    def _tx_mark_alerted(self, conn, monitor_id, what, kind, notice):
        conn.execute('UPDATE monitors SET alerted=? WHERE id=?', (what, monitor_id))
        self.store.notify(kind, notice)


class Attachments(Kind):
    """Files SDKs attach to events, kept with the event they name (by its
    event id) within their caps; one past a cap is counted as not stored."""

    COLUMNS = 'id, event_id, name, content_type, attachment_type, size, created'
    FIELDS = ('id', 'eventId', 'name', 'contentType', 'attachmentType', 'size', 'created')

    def tx_add(self, conn, project_id, item):
        """item: (attachment from make_attachment, the project's cap in bytes or 0)."""
        attachment, project_cap = item
        size = len(attachment['data'])
        event_total = conn.execute('SELECT COALESCE(SUM(size), 0) FROM attachments WHERE project_id=? AND event_id=?',
                                   (project_id, attachment['eventId'])).fetchone()[0]
        over = size > LIMIT_ATTACHMENT or event_total + size > LIMIT_EVENT_ATTACHMENTS
        if not over and project_cap:
            over = conn.execute('SELECT COALESCE(SUM(size), 0) FROM attachments WHERE project_id=?',
                                (project_id,)).fetchone()[0] + size > project_cap
        if over:
            self.store.item_counts.tx_add(conn, project_id, {'attachment': 1})
            return {'stored': False}
        cursor = conn.execute(
            'INSERT INTO attachments(project_id, event_id, name, content_type, attachment_type, size, created, data)'
            ' VALUES (?, ?, ?, ?, ?, ?, ?, ?)', (project_id, attachment['eventId'], attachment['name'],
                                                 attachment['contentType'], attachment['attachmentType'], size, now(),
                                                 sqlite3.Binary(attachment['data'])))
        return {'stored': True, 'id': cursor.lastrowid}

    def of_event(self, project_id, event_id):
        """The attachments of one event (by its event id), oldest first, without their bytes."""
        if not event_id:
            return []
        return [dict(zip(self.FIELDS, row)) for row in self.query(
            'SELECT %s FROM attachments WHERE project_id=? AND event_id=? ORDER BY id' % self.COLUMNS,
            (project_id, event_id))]

    def get(self, project_id, attachment_id):
        """One attachment as of_event lists it, with its bytes ('data'), or None."""
        rows = self.query('SELECT %s, data FROM attachments WHERE project_id=? AND id=?' % self.COLUMNS,
                          (project_id, attachment_id))
        return dict(zip(self.FIELDS + ('data',), rows[0])) if rows else None

    def totals(self, project_id):
        """(count, bytes) of a project's attachments."""
        return self.query('SELECT COUNT(*), COALESCE(SUM(size), 0) FROM attachments WHERE project_id=?',
                          (project_id,))[0]

    @staticmethod
    def tx_delete_project(conn, project_id):
        conn.execute('DELETE FROM attachments WHERE project_id=?', (project_id,))


class ItemCounts(Kind):
    """Sentry envelope items accepted but not stored, counted by type, so
    nothing is dropped without a trace (sessions, client reports, profiles,
    metrics, types from newer SDKs, attachments past their caps)."""

    TYPES = 100  # distinct type names counted per project; the rest count as "other"

    def tx_add(self, conn, project_id, counts):
        """counts: {item type: how many} of one submission."""
        known = {row[0] for row in conn.execute('SELECT type FROM item_counts WHERE project_id=?', (project_id,))}
        for kind, count in sorted(counts.items()):
            if kind not in known and len(known) >= self.TYPES:
                kind = 'other'
            known.add(kind)
            conn.execute('INSERT INTO item_counts(project_id, type, count, last_seen) VALUES (?, ?, ?, ?)'
                         ' ON CONFLICT(project_id, type) DO UPDATE SET count=count+excluded.count,'
                         ' last_seen=excluded.last_seen', (project_id, kind, count, now()))
        return sum(counts.values())

    def list(self, project_id):
        """[(type, count, last seen)], most first."""
        return self.query('SELECT type, count, last_seen FROM item_counts WHERE project_id=?'
                          ' ORDER BY count DESC, type', (project_id,))


class Quotas(Kind):
    """Per-project rate limits, counted in the database (quota_windows): every
    server process on the file (--workers) counts against the one limit."""

    def take(self, project_id, limit, count, minute):
        """Count `count` accepted items against the project's limit for this
        minute; False (nothing counted) when they do not fit. A batch bigger
        than the whole limit could never fit: it is taken when it opens a
        minute (and fills it) rather than refused forever."""
        rows = self.query('SELECT minute, count FROM quota_windows WHERE project_id=?', (project_id,))
        if rows and rows[0][0] == minute and self.over(rows[0][1], count, limit):
            return False  # full already (a flood): refused without waiting for the writer
        return self.write(self._tx_take, project_id, limit, count, minute)

    @staticmethod
    def over(used, count, limit):
        return used > 0 and used + count > limit

    def _tx_take(self, conn, project_id, limit, count, minute):
        row = conn.execute('SELECT minute, count FROM quota_windows WHERE project_id=?', (project_id,)).fetchone()
        used = row[1] if row and row[0] == minute else 0
        if self.over(used, count, limit):
            return False
        conn.execute('INSERT INTO quota_windows(project_id, minute, count) VALUES (?, ?, ?) ON CONFLICT(project_id)'
                     ' DO UPDATE SET minute=excluded.minute, count=excluded.count', (project_id, minute, used + count))
        return True


class Retention(Kind):
    """Pruning in short transactions: error events past a project's cap or age
    (issue counts and sparklines follow), telemetry past its age."""

    PRUNE_BATCH = 1000

    def prune_events(self, project_id, max_events, cutoff):
        """Delete up to PRUNE_BATCH of a project's oldest error events that
        are past the cap or older than cutoff, keeping issue counts equal to
        the events that remain. Returns how many were deleted."""
        threshold = 0
        if max_events:
            rows = self.query('SELECT id FROM events WHERE project_id=? ORDER BY id DESC LIMIT 1 OFFSET ?',
                              (project_id, max_events))
            threshold = rows[0][0] if rows else 0
        return self.write(self._tx_prune_events, project_id, threshold, cutoff or 0)

    def _tx_prune_events(self, conn, project_id, threshold, cutoff):
        rows = conn.execute('SELECT id, issue_id, received, tag_ids, event_id FROM events WHERE project_id=?'
                            ' ORDER BY id LIMIT ?', (project_id, self.PRUNE_BATCH)).fetchall()
        # The oldest rows by id: past the cap, or received before the cutoff
        # (received grows with id, but a clock step can reorder a few).
        chosen = [row for row in rows if row[0] <= threshold or row[2] < cutoff]
        # attachments go with their event
        conn.executemany('DELETE FROM attachments WHERE project_id=? AND event_id=?',
                         [(project_id, row[4]) for row in chosen if row[4]])
        doomed = [row[:4] for row in chosen]
        self.store.events.tx_forget(conn, project_id, doomed)
        return len(doomed)

    # Telemetry is aged by arrival, as errors are: an item whose own time is
    # old (a client clock, a replayed backlog) stays as long as one sent today.
    TELEMETRY_TABLES = ('http_requests', 'logs', 'transactions', 'ai_generations')

    def prune_telemetry(self, project_id, cutoff):
        return self.write(self._tx_prune_telemetry, project_id, cutoff)

    def _tx_prune_telemetry(self, conn, project_id, cutoff):
        deleted = 0
        for table in self.TELEMETRY_TABLES:
            # rows stored before arrival times were kept (migration 14) go by their own time;
            # HTTP requests and logs have no index by arrival (their ingest is the busiest):
            # ids grow with arrival, so their (project_id, id) index finds the oldest first
            for condition in ('received<?', 'received IS NULL AND timestamp<?'):
                deleted += self.store.deleting(conn, table, lambda: conn.execute(
                    'DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE project_id=? AND %s LIMIT ?)' % (
                        table, table, condition), (project_id, cutoff, self.PRUNE_BATCH)).rowcount)
        for (session_id,) in conn.execute(
                'SELECT session_id FROM replay_sessions WHERE project_id=? AND (received<? OR (received IS NULL'
                ' AND last_ms<?)) LIMIT 100', (project_id, cutoff, cutoff * 1000)).fetchall():
            deleted += conn.execute('DELETE FROM replay_events WHERE project_id=? AND session_id=?',
                                    (project_id, session_id)).rowcount
            conn.execute('DELETE FROM replay_sessions WHERE project_id=? AND session_id=?', (project_id, session_id))
        deleted += conn.execute('DELETE FROM feedback WHERE id IN (SELECT id FROM feedback WHERE project_id=?'
                                ' AND received<? LIMIT ?)', (project_id, cutoff, self.PRUNE_BATCH)).rowcount
        # spans go by arrival, with their transactions (or after waiting for one that never came)
        deleted += conn.execute('DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE project_id=? AND received<?'
                                ' LIMIT ?)', (project_id, cutoff, self.PRUNE_BATCH)).rowcount
        conn.execute('DELETE FROM issue_hours WHERE hour<?', (int(now() // 3600) - 48,))
        conn.execute('DELETE FROM checkins WHERE id IN (SELECT c.id FROM checkins c JOIN monitors m'
                     ' ON m.id=c.monitor_id WHERE m.project_id=? AND c.timestamp<? LIMIT ?)',
                     (project_id, cutoff, self.PRUNE_BATCH))
        deleted += conn.execute(
            'DELETE FROM attachments WHERE id IN (SELECT id FROM attachments WHERE project_id=? AND created<?'
            ' LIMIT ?)', (project_id, cutoff, self.PRUNE_BATCH)).rowcount
        # an attachment whose event never came (or was not stored) goes after a day
        deleted += conn.execute(
            'DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a WHERE a.project_id=? AND a.created<?'
            ' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.project_id=a.project_id AND e.event_id=a.event_id)'
            ' AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.project_id=a.project_id AND t.event_id=a.event_id)'
            ' LIMIT ?)', (project_id, now() - 86400, self.PRUNE_BATCH)).rowcount
        return deleted


class SourceMaps(Kind):
    """Upload tokens, chunks waiting to be assembled, releases sentry-cli
    created, and artifact bundles: the bundle itself (the zip as uploaded) and
    one row per file of its manifest, indexed by debug id and by (release,
    dist, url). A newer bundle replaces the files it shares with older ones
    (same debug id, or same release, dist and url); a bundle left without
    files is deleted."""

    def __init__(self, store):
        Kind.__init__(self, store)
        self._generation = 0
        self._shared_version = 0  # store.version('sourcemaps') when last looked at
        self._projects_with_bundles = None

    @property
    def generation(self):
        """Bumped on every change to bundles, made here or (seen within a
        second) by another process, so lookup caches never serve stale answers."""
        self._look_elsewhere()
        return self._generation

    def _look_elsewhere(self):
        version = self.store.version('sourcemaps')
        if version != self._shared_version:
            self._shared_version = version
            self._changed()

    # -- tokens --

    @staticmethod
    def token_digest(secret):
        return hashlib.sha256(secret.encode('utf-8', 'surrogatepass')).hexdigest()

    def create_token(self, project_id, name):
        secret = secrets.token_hex(32)  # 64 hex digits: sentry-cli recognises the format
        row_id = self.write(self._tx_create_token, project_id, clip(name or '', 200), self.token_digest(secret))
        return dict(self.token(project_id, row_id), value=secret)

    @staticmethod
    def _tx_create_token(conn, project_id, name, digest):
        return conn.execute('INSERT INTO upload_tokens(project_id, name, digest, created) VALUES (?,?,?,?)',
                            (project_id, name, digest, now())).lastrowid

    TOKEN_COLUMNS = ('id', 'project_id', 'name', 'created', 'last_used')  # never the digest

    def tokens(self, project_id):
        return [named(self.TOKEN_COLUMNS, r) for r in self.query(
            'SELECT %s FROM upload_tokens WHERE project_id=? ORDER BY id' % ', '.join(self.TOKEN_COLUMNS),
            (project_id,))]

    def token(self, project_id, token_id):
        rows = self.query('SELECT %s FROM upload_tokens WHERE project_id=? AND id=?' % ', '.join(self.TOKEN_COLUMNS),
                          (project_id, token_id))
        return named(self.TOKEN_COLUMNS, rows[0]) if rows else None

    def project_of_token(self, secret):
        """The project id an upload token belongs to, or None. Looked up by
        digest: the database never holds a usable token."""
        digest = self.token_digest(secret)
        rows = self.query('SELECT project_id, last_used FROM upload_tokens WHERE digest=?', (digest,))
        if not rows:
            return None
        at = now()
        if rows[0][1] is None or at - rows[0][1] >= self.TOKEN_USE_RESOLUTION:   # one upload's requests: one write
            self.write(lambda conn: conn.execute('UPDATE upload_tokens SET last_used=? WHERE digest=?', (at, digest)))
        return rows[0][0]

    TOKEN_USE_RESOLUTION = 60   # seconds: last_used is written at most once a minute per token

    def delete_token(self, project_id, token_id):
        return self.write(lambda conn: conn.execute('DELETE FROM upload_tokens WHERE project_id=? AND id=?',
                                                    (project_id, token_id)).rowcount)

    # -- chunks --

    def add_chunks(self, chunks):
        """Store uploaded chunks [(sha1 hex, bytes)], already checked."""
        return self.write(self._tx_add_chunks, chunks)

    @staticmethod
    def _tx_add_chunks(conn, chunks):
        at = now()
        conn.executemany('INSERT OR IGNORE INTO upload_chunks(checksum, data, received) VALUES (?,?,?)',
                         [(checksum, data, at) for checksum, data in chunks])

    def missing_chunks(self, checksums):
        wanted = sorted(set(checksums))
        have = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            have.update(r[0] for r in self.query('SELECT checksum FROM upload_chunks WHERE checksum IN (%s)' % (
                ','.join('?' * len(part))), part))
        return [c for c in checksums if c not in have]

    def pending_chunk_bytes(self):
        return self.query('SELECT COALESCE(SUM(LENGTH(data)), 0) FROM upload_chunks')[0][0]

    def chunk_data(self, checksums, limit):
        """The chunks' bytes joined in order (a chunk may repeat); None when one is missing."""
        sizes = {}
        for checksum in set(checksums):   # the sizes first: nothing is loaded for a bundle over the limit
            rows = self.query('SELECT LENGTH(data) FROM upload_chunks WHERE checksum=?', (checksum,))
            if not rows:
                return None
            sizes[checksum] = rows[0][0]
        if sum(sizes[checksum] for checksum in checksums) > limit:
            raise BundleError('the bundle is larger than %d bytes' % limit)
        found = {}
        for checksum in sizes:
            rows = self.query('SELECT data FROM upload_chunks WHERE checksum=?', (checksum,))
            if not rows:
                return None
            found[checksum] = rows[0][0]
        return b''.join(found[checksum] for checksum in checksums)

    # -- releases (what `sentry-cli releases new` creates) --

    def save_release(self, project_ids, version, url=None, date_released=None):
        return self.write(self._tx_save_release, project_ids, version, url, date_released)

    def _tx_save_release(self, conn, project_ids, version, url, date_released):
        at = now()
        for project_id in project_ids:
            conn.execute('INSERT INTO upload_releases(project_id, version, created, url, date_released)'
                         ' VALUES (?,?,?,?,?) ON CONFLICT(project_id, version) DO UPDATE SET'
                         ' url=COALESCE(excluded.url, url), date_released=COALESCE(excluded.date_released,'
                         ' date_released)', (project_id, version, at, url, date_released))

    def release(self, project_ids, version):
        """A release sentry-cli made: version, created, url, date_released and
        project_ids (the ones of project_ids that have it)."""
        if not project_ids:
            return None
        rows = self.query('SELECT project_id, created, url, date_released FROM upload_releases'
                          ' WHERE version=? AND project_id IN (%s)' % ','.join('?' * len(project_ids)),
                          [version] + list(project_ids))
        if not rows:
            return None
        return {'version': version, 'created': min(r[1] for r in rows), 'url': rows[0][2],
                'date_released': max((r[3] for r in rows if r[3]), default=None),
                'project_ids': sorted(r[0] for r in rows)}

    def release_versions(self, project_id):
        return [r[0] for r in self.query('SELECT version FROM upload_releases WHERE project_id=? ORDER BY created',
                                         (project_id,))]

    # -- bundles --

    def projects_with_bundles(self):
        """Project ids with any bundle: events of other projects skip
        resolution without a query (kept in memory, rebuilt on change)."""
        self._look_elsewhere()
        cached = self._projects_with_bundles
        if cached is None:
            cached = self._projects_with_bundles = frozenset(
                r[0] for r in self.query('SELECT DISTINCT project_id FROM sourcemap_bundles'))
        return cached

    def _changed(self):
        self._generation += 1
        self._projects_with_bundles = None

    def bundle_with_checksum(self, project_ids, checksum):
        rows = self.query('SELECT DISTINCT project_id FROM sourcemap_bundles WHERE checksum=?', (checksum,))
        return set(project_ids) <= {r[0] for r in rows}

    def store_bundle(self, project_ids, checksum, chunks, data, attributes, files, release, dist):
        """Keep an assembled, validated bundle for each project, replacing the
        files it shares with older bundles; the chunks it was made of go."""
        try:
            return self.write(self._tx_store_bundle, project_ids, checksum, chunks, data, attributes, files,
                              release or '', dist or '')
        finally:
            self._changed()

    def _tx_store_bundle(self, conn, project_ids, checksum, chunks, data, attributes, files, release, dist):
        self.store.bump('sourcemaps')
        at = now()
        bundle_id = normalize_debug_id(attributes.get('debug_id')) or checksum
        stored = []
        for project_id in project_ids:
            old = conn.execute('SELECT id FROM sourcemap_bundles WHERE project_id=? AND bundle_id=?',
                               (project_id, bundle_id)).fetchall()
            for (old_id,) in old:  # the same bundle again: the new upload replaces it
                conn.execute('DELETE FROM sourcemap_files WHERE bundle=?', (old_id,))
                conn.execute('DELETE FROM sourcemap_bundles WHERE id=?', (old_id,))
            row_id = conn.execute(
                'INSERT INTO sourcemap_bundles(project_id, bundle_id, checksum, release, dist, uploaded, last_used,'
                ' size, files, data) VALUES (?,?,?,?,?,?,?,?,?,?)',
                (project_id, bundle_id, checksum, release, dist, at, at, len(data), len(files), data)).lastrowid
            for f in files:
                # what a newer bundle provides, older ones no longer answer for
                if f['debug_id']:
                    conn.execute('DELETE FROM sourcemap_files WHERE project_id=? AND debug_id=? AND type=?',
                                 (project_id, f['debug_id'], f['type']))
                if release:
                    conn.execute('DELETE FROM sourcemap_files WHERE project_id=? AND release=? AND dist=? AND url=?',
                                 (project_id, release, dist, f['url']))
            conn.executemany(
                'INSERT INTO sourcemap_files(bundle, project_id, path, url, type, debug_id, sourcemap, release, dist)'
                ' VALUES (?,?,?,?,?,?,?,?,?)',
                [(row_id, project_id, f['path'], f['url'], f['type'], f['debug_id'], f['sourcemap'], release, dist)
                 for f in files])
            conn.execute('DELETE FROM sourcemap_bundles WHERE project_id=? AND id NOT IN'
                         ' (SELECT DISTINCT bundle FROM sourcemap_files WHERE project_id=?)', (project_id, project_id))
            stored.append(row_id)
        conn.executemany('DELETE FROM upload_chunks WHERE checksum=?', [(c,) for c in set(chunks)])
        return stored

    def file_by_debug_id(self, project_id, debug_id, type_):
        rows = self.query('SELECT bundle, path, url, sourcemap FROM sourcemap_files'
                          ' WHERE project_id=? AND debug_id=? AND type=? ORDER BY bundle DESC LIMIT 1',
                          (project_id, debug_id, type_))
        return rows[0] if rows else None

    def file_by_url(self, project_id, release, dist, urls, types):
        """The newest file of the release (and dist) stored under the first of
        urls that has one."""
        for url in urls:
            rows = self.query('SELECT bundle, path, url, sourcemap, type FROM sourcemap_files'
                              ' WHERE project_id=? AND release=? AND dist=? AND url=? ORDER BY bundle DESC LIMIT 1',
                              (project_id, release, dist or '', url))
            if rows and rows[0][4] in types:
                return rows[0]
        return None

    def bundle_data(self, bundle_row_id):
        rows = self.query('SELECT data FROM sourcemap_bundles WHERE id=?', (bundle_row_id,))
        return rows[0][0] if rows else None

    def bundles(self, project_id):
        return [{'id': r[0], 'bundle_id': r[1], 'release': r[2] or None, 'dist': r[3] or None, 'uploaded': r[4],
                 'last_used': r[5], 'size': r[6], 'files': r[7]} for r in self.query(
            'SELECT id, bundle_id, release, dist, uploaded, last_used, size, files FROM sourcemap_bundles'
            ' WHERE project_id=? ORDER BY id DESC', (project_id,))]

    def touch(self, bundle_row_ids):
        """Note that events used these bundles (retention keeps what is used)."""
        return self.write(lambda conn: conn.executemany('UPDATE sourcemap_bundles SET last_used=? WHERE id=?',
                                                        [(now(), i) for i in bundle_row_ids]))

    def prune(self, project_id, cutoff):
        """Delete the project's bundles neither uploaded nor used since cutoff."""
        deleted = self.write(self._tx_prune, project_id, cutoff)
        if deleted:
            self._changed()
        return deleted

    def _tx_prune(self, conn, project_id, cutoff):
        doomed = [r[0] for r in conn.execute('SELECT id FROM sourcemap_bundles WHERE project_id=? AND last_used<?'
                                             ' LIMIT 100', (project_id, cutoff)).fetchall()]
        if doomed:
            self.store.bump('sourcemaps')
        for row_id in doomed:
            conn.execute('DELETE FROM sourcemap_files WHERE bundle=?', (row_id,))
            conn.execute('DELETE FROM sourcemap_bundles WHERE id=?', (row_id,))
        return len(doomed)

    def prune_chunks(self, cutoff):
        """Chunks never assembled (an upload that stopped half way) go after a while."""
        return self.write(lambda conn: conn.execute('DELETE FROM upload_chunks WHERE received<?',
                                                    (cutoff,)).rowcount)


###############################################################################
# HTTP plumbing shared by the adapters ########################################
###############################################################################
# Owns what every dialect needs from HTTP: bounded body reading, strict JSON,
# per-field validation, query parameters, JSON replies with CORS, and the guard
# that turns every failure into the dialect's own error format (a 4xx for bad
# input, 503 for storage faults, and a 500 only for a genuine bug).


class ApiError(Exception):
    def __init__(self, status, message, code=None, details=None, headers=None):
        Exception.__init__(self, message)
        self.status, self.message, self.code = status, message, code
        self.details, self.headers = details, headers or {}


class RateLimited(ApiError):
    def __init__(self, retry_after, scope='project'):
        ApiError.__init__(self, 429, 'Rate limit exceeded, retry in %d seconds' % retry_after, 'RATE_LIMITED',
                          headers={'Retry-After': str(retry_after)})
        self.retry_after, self.scope = retry_after, scope


EXPOSED_HEADERS = 'Retry-After, X-Sentry-Rate-Limits, X-Sentry-Error'  # answer headers a browser SDK may read


def header_text(text, limit=200):
    """Text safe for an HTTP header value: printable ASCII, one line, short."""
    text = ''.join(c if ' ' <= c <= '~' else '?' for c in str(text)[:limit])
    return text.strip() or '?'


def reply(obj, status=200, headers=None):
    """A JSON answer for bottle to send; with CORS only on ingest requests
    (browser SDKs need it there; nothing else is readable from another origin)."""
    response = bottle.response
    response.status = status
    response.content_type = 'application/json'
    if bottle.request.environ.get('errorcapture.ingest'):
        response.set_header('Access-Control-Allow-Origin', '*')
        response.set_header('Access-Control-Expose-Headers', EXPOSED_HEADERS)
    for name, value in (headers or {}).items():
        response.set_header(name, value)
    return dumps(obj).encode('utf-8')


# brotli is a run-time dependency (sentry-sdk sends br whenever the client has
# it), but the module still runs from a lone copy without it: br is then
# refused with 415 and make_app logs one warning.
try:
    import brotli as _brotli
except ImportError:
    try:
        import brotlicffi as _brotli
    except ImportError:
        _brotli = None
BROTLI_MISSING = ("the 'brotli' package is not installed: Sentry SDKs that send br bodies "
                  "(sentry-sdk does whenever brotli is installed beside it) get 415 and lose their data; "
                  "pip install brotli")


# Only one request at a time may hold a decompressed body past this size, so
# concurrent compression bombs cannot multiply memory by the thread count.
BIG_BODY = 8 << 20

BIG_BODY_GATE = threading.Lock()


def grow(out, chunk, limit):
    """Append a decompressed chunk, enforcing limit and the big-body gate."""
    out += chunk
    if len(out) > limit:
        raise ApiError(413, 'decompressed body exceeds %d bytes' % limit, 'PAYLOAD_TOO_LARGE')
    environ = bottle.request.environ
    if len(out) > BIG_BODY and not environ.get('errorcapture.big_body'):
        if not BIG_BODY_GATE.acquire(timeout=30):
            raise Overloaded('another large body is being decompressed')
        environ['errorcapture.big_body'] = True  # released by guarded() when the request ends


def decompress(body, encoding, limit):
    """Decode a Content-Encoding, refusing (413) once the output passes limit,
    so a compression bomb never sits in memory."""
    encoding = (encoding or '').strip().lower()
    if encoding in ('', 'identity'):
        return body
    if encoding in ('gzip', 'x-gzip', 'deflate'):
        if encoding == 'deflate':
            # zlib-wrapped per the RFC, but some clients send raw deflate
            zlib_header = len(body) >= 2 and body[0] & 0x0f == 8 and ((body[0] << 8) | body[1]) % 31 == 0
            wbits = 15 if zlib_header else -15
        else:
            wbits = 31
        decoder = zlib.decompressobj(wbits)
        out = bytearray()
        data = body
        try:
            while data:
                grow(out, decoder.decompress(data, 1 << 20), limit)
                if decoder.eof:
                    break
                data = decoder.unconsumed_tail
            out += decoder.flush()
        except zlib.error as exc:
            raise ApiError(400, 'body is not valid %s: %s' % (encoding, exc))
        if not decoder.eof:
            raise ApiError(400, 'body is not valid %s: truncated' % encoding)
        if len(out) > limit:
            raise ApiError(413, 'decompressed body exceeds %d bytes' % limit)
        return bytes(out)
    if encoding == 'br':
        if _brotli is None:
            raise ApiError(415, "Content-Encoding br needs the 'brotli' package on the server "
                                "(pip install brotli); send gzip or deflate instead", 'UNSUPPORTED_MEDIA_TYPE')
        return brotli_decompress(body, limit)
    raise ApiError(415, 'unsupported Content-Encoding: %s' % encoding[:50], 'UNSUPPORTED_MEDIA_TYPE')


def brotli_decompress(body, limit):
    """br in bounded steps, like gzip above: brotli >= 1.2 caps each step's
    output (output_buffer_limit); older bindings get the body a few bytes at a
    time (one br byte can stand for megabytes), so no step makes more than a
    few MiB before the limit is checked."""
    decoder = _brotli.Decompressor()
    out = bytearray()
    try:
        if BROTLI_BOUNDED:
            chunk = decoder.process(body, output_buffer_limit=1 << 20)
            while chunk:  # an empty step: done, or the body ended early
                grow(out, chunk, limit)
                if decoder.is_finished():
                    break
                chunk = decoder.process(b'', output_buffer_limit=1 << 20)
        else:
            for start in range(0, len(body), 16):
                grow(out, decoder.process(body[start:start + 16]), limit)
                if decoder.is_finished():
                    break
    except _brotli.error as exc:
        raise ApiError(400, 'body is not valid br: %s' % exc)
    if not decoder.is_finished():
        raise ApiError(400, 'body is not valid br: truncated')
    return bytes(out)


def _brotli_bounded():
    try:
        _brotli.Decompressor().process(b'', output_buffer_limit=1)
        return True
    except Exception:  # TypeError: a binding without output limits
        return False


BROTLI_BOUNDED = _brotli is not None and _brotli_bounded()


def header(name):
    """A request header as WSGI gives it (latin-1 text: never a decoding error)."""
    return bottle.request.environ.get('HTTP_' + name.upper().replace('-', '_'))


def read_body(limit, decoded_limit=None):
    """The request body, decoded from its Content-Encoding: 413 when the body
    as sent passes limit, or decoded passes decoded_limit (default: limit)."""
    environ = bottle.request.environ
    try:
        length = int(environ.get('CONTENT_LENGTH') or 0)
    except ValueError:
        raise ApiError(400, 'Invalid Content-Length header')
    if length < 0:
        raise ApiError(400, 'Invalid Content-Length header')
    if length > limit:
        raise ApiError(413, 'Payload too large (limit %d bytes)' % limit, 'PAYLOAD_TOO_LARGE')
    body = environ['wsgi.input'].read(length) if length else b''
    if len(body) < length:
        raise ApiError(400, 'Body is shorter than its Content-Length')
    return decompress(body, header('Content-Encoding'), decoded_limit or limit)


def _bounded_int(text):
    # Integers past 64 bits become floats (past about 1e308, infinity), which
    # every numeric check then refuses: no OverflowError deep in the store.
    return int(text) if len(text) < 19 else float(text)


def _refuse_constant(name):
    raise ValueError('%s is not valid JSON' % name)


LONE_SURROGATE_ESCAPE = re.compile(r'\\u[dD][89a-fA-F]')

# One decoder for every request, as json.loads keeps one for its defaults:
# json.loads with options builds a decoder and its scanner at every call.
JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_bounded_int)


def parse_json(body, what='Invalid JSON'):
    """Strict JSON: UTF-8 only, no NaN/Infinity, bounded nesting."""
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError:
        raise ApiError(400, what + ': body is not valid UTF-8', 'INVALID_JSON')
    if text.startswith('\ufeff'):
        text = text[1:]
    try:
        if text.startswith('\ufeff'):  # a second one: what json.loads says of it
            raise json.JSONDecodeError('Unexpected UTF-8 BOM (decode using utf-8-sig)', text, 0)
        data = JSON_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, '%s: %s' % (what, str(exc)[:200]), 'INVALID_JSON')
    if LONE_SURROGATE_ESCAPE.search(text):
        data = replace_lone_surrogates(data)  # SQLite stores UTF-8, which cannot hold them
    return data


def replace_lone_surrogates(value):
    """value (fresh from json.loads) with every lone surrogate, in keys too,
    made U+FFFD, at any depth: a loop, not recursion, since json.loads nests as
    deep as its own recursion limit (a string 150 levels down once reached
    SQLite's UTF-8 and answered 500)."""
    def fix(text):
        return text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')
    if isinstance(value, str):
        return fix(value)
    pending = [value] if isinstance(value, (list, dict)) else []
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            entries = enumerate(container)
        else:
            entries = list(container.items())
            container.clear()
        for key, item in entries:
            if isinstance(item, str):
                item = fix(item)
            elif isinstance(item, (list, dict)):
                pending.append(item)
            if isinstance(container, list):
                container[key] = item
            else:
                container[fix(key)] = item
    return value


# Who may call what. Ingest is for anyone holding a key, browsers on any
# origin included (CORS). Everything else hands out keys, data or settings:
# it answers only requests from its own origin (and scripts, which send no
# Origin), and on loopback only to host names that are really loopback, so a
# DNS-rebinding page cannot pose as one.
SENTRY_ROUTE = re.compile(r'^/api/[1-9][0-9]{0,17}/')  # not /api/0/: sentry-cli's upload API, by token
PROXY_HEADERS = ('HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_HOST', 'HTTP_X_FORWARDED_PROTO', 'HTTP_X_FORWARDED_PORT',
                 'HTTP_X_FORWARDED_BY', 'HTTP_FORWARDED')
LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')


def is_ingest(environ):
    """Whether a request is ingest (or the health check): the routes browser SDKs call."""
    path = environ.get('PATH_INFO') or '/'
    if path == '/api.php':
        if environ.get('REQUEST_METHOD') not in ('POST', 'OPTIONS'):
            return False  # generate, errors and clear
        import urllib.parse
        action = urllib.parse.parse_qs(environ.get('QUERY_STRING') or '').get('action', [None])[-1]
        return action in (None, '', 'submit')
    # every dialect's paths but the read API's, and anything a Sentry SDK may post under /api/<id>/
    return (path.rstrip('/') in ('/health', '/stream') or bool(SENTRY_ROUTE.match(path))
            or path.startswith('/api/embed/')  # Sentry.showReportDialog's script and form, from the app's page
            or any(dialect.paths.match(path) for dialect in DIALECTS if dialect.name not in ('api_php', 'read_api')))


def host_name(netloc):
    """The host part of a Host header or an origin's netloc, lower case."""
    netloc = netloc.strip().lower()
    if netloc.startswith('['):
        return netloc[:netloc.find(']') + 1] if ']' in netloc else netloc
    return netloc.rsplit(':', 1)[0] if netloc.count(':') == 1 else netloc


def without_default_port(netloc, scheme):
    netloc = netloc.strip().lower()
    default = {'http': ':80', 'https': ':443'}.get(scheme, '')
    return netloc[:-len(default)] if default and netloc.endswith(default) else netloc


def cross_origin_problem(environ, settings):
    """Why a request that is not ingest is refused, or None: it comes from
    another origin, or names a host this server does not answer to."""
    import urllib.parse
    public = urllib.parse.urlsplit(settings['public_url']) if settings['public_url'] else None
    host = environ.get('HTTP_HOST') or ''
    allowed = [name.strip().lower() for name in settings['allowed_hosts'].split(',') if name.strip()]
    if host and (settings['host'] in LOOPBACK_HOSTS or allowed):
        name = host_name(host)
        if not (name == 'localhost' or name.endswith('.localhost') or name == '[::1]' or name in allowed
                or (public is not None and name == (public.hostname or '').lower())
                or re.match(r'^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$', name)):
            return ('this server does not answer to the host name %s (a DNS-rebinding page?); list it in'
                    ' --allowed-hosts' % name[:100])
    site = environ.get('HTTP_SEC_FETCH_SITE')
    if site in ('cross-site', 'same-site'):
        return 'requests from other sites are refused here (Sec-Fetch-Site: %s)' % site
    origin = environ.get('HTTP_ORIGIN')
    if origin is not None:
        parts = urllib.parse.urlsplit(origin)
        mine = {without_default_port(host, environ.get('wsgi.url_scheme', 'http'))}
        if public is not None:
            mine.add(without_default_port(public.netloc, public.scheme))
        if origin == 'null' or without_default_port(parts.netloc, parts.scheme) not in mine:
            return 'requests from another origin (%s) are refused here' % origin[:100]
    return None


def guarded(render):
    """Decorate a handler so every failure is answered by render(status,
    message, code, details, headers) in the dialect's own shape. A request
    that is not ingest must come from this server's own origin."""
    def decorator(handler):
        def wrapper(*args, **kwargs):
            try:
                environ = bottle.request.environ
                if not environ.get('errorcapture.ingest'):
                    problem = cross_origin_problem(environ, environ['errorcapture.settings'])
                    if problem:
                        raise ApiError(403, problem, 'FORBIDDEN')
                return handler(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except ApiError as exc:
                return render(exc.status, exc.message, exc.code, exc.details, exc.headers)
            except Invalid as exc:
                details = {exc.field: exc.message} if exc.field else None
                text = '%s %s' % (exc.field, exc.message) if exc.field else exc.message
                return render(400, text, 'INVALID_PAYLOAD', details, {})
            except Overloaded:
                return render(503, 'Server busy, retry later', 'SERVICE_UNAVAILABLE', None, {'Retry-After': '1'})
            except StorageUnavailable as exc:
                return render(503, 'Storage unavailable: %s' % exc, 'SERVICE_UNAVAILABLE', None,
                              {'Retry-After': '5'})
            except Exception:
                log.exception('unexpected error in %s', bottle.request.path)
                return render(500, 'An unexpected error occurred', 'INTERNAL_ERROR', None, {})
            finally:
                if bottle.request.environ.pop('errorcapture.big_body', False):
                    BIG_BODY_GATE.release()
        wrapper.__name__ = handler.__name__
        return wrapper
    return decorator


def optional_string(data, field, limit=MAX_STRING):
    value = data.get(field)
    if value is None:
        return None
    require(isinstance(value, str), 'must be a string', field)
    return clip(value, limit)


def required_string(data, field, limit=MAX_STRING, blank_ok=False):
    value = data.get(field)
    require(value is not None, 'is required', field)
    require(isinstance(value, str), 'must be a string', field)
    require(blank_ok or value.strip() != '', 'must not be blank', field)
    return clip(value, limit)


def int_param(name, default, minimum=0, maximum=None, source=None):
    raw = (source if source is not None else bottle.request.query).get(name)
    if raw is None or raw == '':
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, '%s must be an integer' % name)
    if value < minimum:
        raise ApiError(400, '%s must be at least %d' % (name, minimum))
    if value >= 1 << 63:
        raise ApiError(400, '%s is too large' % name)
    return min(value, maximum) if maximum is not None else value


class Validation(object):
    """Collects per-field problems so one answer can name them all."""

    def __init__(self):
        self.details = {}

    def add(self, field, message):
        self.details.setdefault(field, message)

    def check(self, condition, field, message):
        if not condition:
            self.add(field, message)
        return condition

    def timestamp(self, value, field, required=False):
        """value as epoch seconds (None when absent), or None with the
        problem noted: not a timestamp, or absent when required."""
        try:
            seconds = parse_timestamp(value, field)
        except Invalid:
            seconds = None
            self.add(field, 'must be an ISO-8601 timestamp')
        self.check(seconds is not None or not required, field, 'must be an ISO-8601 timestamp')
        return seconds

    def raise_if_any(self, status=422):
        if self.details:
            raise ApiError(status, 'Validation failed', 'VALIDATION_ERROR', self.details)


# Outbound webhooks. A key holder chooses the URL, so every target is checked
# where it will really be reached: at configuration, again at delivery after
# DNS (the connection goes to the address that was checked, so a rebinding
# name cannot swap it), and on every redirect, which is followed by hand.

class WebhookRefused(Exception):
    """A webhook target that may not be called."""


def internal_address(text):
    """Whether an IP address is one a webhook may not reach unless the
    operator allows it: loopback, private, link-local (cloud metadata at
    169.254.169.254), shared, multicast, reserved or unspecified."""
    address = ipaddress.ip_address(text.split('%', 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified


def webhook_target(url, allow_private=False):
    """(scheme, host, port, path, address to connect to) for a webhook URL,
    or WebhookRefused saying why not. Resolves the host name."""
    if not isinstance(url, str) or not url or len(url) >= 2000 or any(
            ch.isspace() or ch < ' ' or ch in '\\\x7f' for ch in url):
        raise WebhookRefused('webhookUrl must be an http(s) URL')
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise WebhookRefused('webhookUrl must be an http(s) URL')
    if '@' in parts.netloc:
        raise WebhookRefused('webhookUrl must not hold a user name or password (user@host)')
    try:
        port = parts.port or (443 if parts.scheme == 'https' else 80)
    except ValueError:
        raise WebhookRefused('webhookUrl has a bad port')
    host = parts.hostname
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused('webhookUrl host %s does not resolve: %s' % (host[:100], exc))
    addresses = [info[4][0] for info in found]
    if not allow_private:
        for address in addresses:
            if internal_address(address):
                raise WebhookRefused(
                    'webhookUrl host %s is %s, an internal address (start the server with --allow-private-webhooks'
                    ' to allow it)' % (host[:100], address))
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    return parts.scheme, host, port, path, addresses[0]


def post_webhook(url, body, allow_private=False, timeout=10.0, redirects=3):
    """POST body (JSON bytes) to url; the final HTTP status. Redirects are
    followed by hand, each target checked as the first was; 301-303 go on as
    GET, as browsers do, 307 and 308 repost."""
    import http.client
    import ssl
    import urllib.parse
    method = 'POST'
    for _ in range(redirects + 1):
        scheme, host, port, path, address = webhook_target(url, allow_private)

        def connect(connection, address=address):
            connection.sock = socket.create_connection((address, connection.port), connection.timeout)
            if scheme == 'https':  # certificate and SNI for the name, connection to the checked address
                connection.sock = connection._context.wrap_socket(connection.sock, server_hostname=host)
        if scheme == 'https':
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.connect = functools.partial(connect, connection)
        try:
            connection.request(method, path, body if method == 'POST' else None,
                               {'Content-Type': 'application/json', 'User-Agent': 'errorcapture/' + __version__})
            answer = connection.getresponse()
            answer.read(64 << 10)
            status, location = answer.status, answer.getheader('Location')
        finally:
            connection.close()
        if status in (301, 302, 303, 307, 308) and location:
            url = urllib.parse.urljoin(url, location)
            if status in (301, 302, 303):
                method = 'GET'
            continue
        return status
    raise WebhookRefused('more than %d redirects' % redirects)


class Context(object):
    """What adapters share: the store, the settings, quotas and URLs.
    endpoints are the setup page's (label, url(base URL, DSN)) pairs, one per
    dialect that has one (the app factory passes them from DIALECTS)."""

    def __init__(self, store, settings, endpoints=()):
        self.store, self.settings, self.endpoints = store, settings, tuple(endpoints)

    def base_url(self):
        if self.settings['public_url']:
            return self.settings['public_url'].rstrip('/')
        parts = bottle.request.urlparts
        return '%s://%s' % (parts.scheme, parts.netloc)

    def dsn(self, project):
        scheme, _, rest = self.base_url().partition('://')
        return '%s://%s@%s/%d' % (scheme, project['key'], rest, project['id'])

    def project_json(self, project, with_settings=False):
        base, dsn = self.base_url(), self.dsn(project)
        out = {'id': project['id'], 'key': project['key'], 'name': project['name'], 'created': iso(project['created']),
               'dsn': dsn, 'endpoints': {label: url(base, dsn) for label, url in self.endpoints}}
        if with_settings:
            out['settings'] = {name: project_setting(project, name, self.settings) for name in PROJECT_SETTINGS}
            out['settings']['webhookUrl'] = project['settings'].get('webhookUrl')
            counts = {kind: count for kind, count, _ in self.store.item_counts.list(project['id'])}
            out['notStored'] = counts
            out['otherSentryItems'] = sum(counts.values())
        return out

    def require_admin(self):
        """When an admin token is configured, the request must carry it
        (Authorization: Bearer T, or ?admin_token=T)."""
        token = self.settings['admin_token']
        if not token:
            return
        given = header('Authorization') or ''
        given = given[7:] if given.startswith('Bearer ') else bottle.request.query.getunicode('admin_token') or ''
        if not keys_equal(given, token):
            raise ApiError(401, 'admin token required (Authorization: Bearer ...)')

    def admit(self, project, count=1):
        """Count accepted items against the project's per-minute quota (in the
        store, so it holds across server processes); RateLimited when full."""
        limit = project_setting(project, 'rateLimit', self.settings)
        if limit and not self.store.quotas.take(project['id'], limit, count, int(now() // 60)):
            raise RateLimited(max(1, 60 - int(now() % 60)))


###############################################################################
# Dialect: ErrorCapture API (/api.php) ########################################
###############################################################################
# Owns the seed's original API: submit, generate, errors and clear. Its errors
# answer {"ok": false, "error": "..."}.


def api_php_error(status, message, code=None, details=None, headers=None):
    return reply({'ok': False, 'error': message}, status, headers)


def api_php_event(data):
    """An /api.php submission -> the event model."""
    require(isinstance(data, dict), 'body must be a JSON object')
    level = required_string(data, 'level', 200)
    # required, but it may be empty: the seed's own snippets send str(exc) and
    # err.message, which are "" for a bare assert or a new Error()
    message = required_string(data, 'message', blank_ok=True)
    file_ = optional_string(data, 'file', 2048)
    line = data.get('line')
    if isinstance(line, str) and re.match(r'^-?\d{1,10}$', line.strip()):
        line = int(line)  # shell scripts quote everything
    if isinstance(line, float) and line.is_integer():
        line = int(line)
    require(line is None or (isinstance(line, int) and not isinstance(line, bool) and abs(line) < (1 << 31)),
            'must be an integer', 'line')
    hostname = optional_string(data, 'hostname', 200)
    request = data.get('request')
    require(request is None or isinstance(request, dict), 'must be an object', 'request')
    model_request = None
    if request:
        method = request.get('method')
        url = request.get('url')
        require(method is None or isinstance(method, str), 'must be a string', 'request.method')
        require(url is None or isinstance(url, str), 'must be a string', 'request.url')
        require(request.get('get') is None or isinstance(request.get('get'), (dict, list)),
                'must be an object', 'request.get')
        model_request = {'method': method, 'url': url, 'query': request.get('get'), 'data': request.get('post')}
    # 'errorcapture' is the dialect tag events of /api.php have always been stored with: kept for existing data
    return make_error_event('errorcapture', level=level, message=message, file=file_, line=line,
                            hostname=hostname, request=model_request)


def api_php_row(event):
    """An event of any dialect, as the seed's errors action lists it."""
    request = event.get('request') or {}
    file_, line = event.get('file'), event.get('line')
    message = event.get('message')
    exceptions = event.get('exception') or []
    if exceptions:
        raised = exceptions[-1]
        message = message or ('%s: %s' % (raised['type'], raised.get('value')) if raised.get('value')
                              else raised['type'])
        frames = raised.get('frames') or []
        if frames and file_ is None:
            file_ = frames[-1].get('absPath') or frames[-1].get('filename')
            line = frames[-1].get('lineno')
    return {'id': event['id'], 'level': event.get('levelRaw') or event.get('level'), 'message': message,
            'file': file_, 'line': line, 'url': request.get('url'), 'method': request.get('method'),
            'get_params': request.get('query'), 'post_params': request.get('data'),
            'hostname': event.get('hostname') or event.get('serverName'),
            'received_at': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(event['received']))}


def mount_api_php(app, ctx):
    store = ctx.store

    def project_for(key, create=False):
        if not isinstance(key, str) or not key.strip():
            raise ApiError(400, 'hash is required')
        key = key.strip()
        if len(key) > 200:
            raise ApiError(400, 'hash is too long')
        project = store.project_by_key(key)
        if project is None:
            if not (create and ctx.settings['auto_create']):
                raise ApiError(403 if create else 404, 'Unknown project key' + (
                    ' (auto-creation is disabled)' if create else ''))
            project = store.create_project(name=key[:64], key=key)
        return project

    def submit():
        data = parse_json(read_body(LIMIT_API_PHP))
        if not isinstance(data, dict):
            raise ApiError(400, 'body must be a JSON object')
        if data.get('action') == 'clear':
            problem = cross_origin_problem(bottle.request.environ, ctx.settings)
            if problem:  # a clear is not ingest, however it is sent
                raise ApiError(403, problem)
            return clear(data.get('hash'))
        if 'hash' not in data or data['hash'] is None:
            raise ApiError(400, 'hash is required')
        if not isinstance(data['hash'], str):
            raise ApiError(400, 'hash must be a string')
        event = api_php_event(data)
        project = project_for(data['hash'], create=True)
        ctx.admit(project)
        result = store.events.add(project['id'], [event])[0]
        return reply({'ok': True, 'id': result['id']})

    def generate():
        ctx.require_admin()
        name = bottle.request.query.getunicode('name', '') or ''
        project = store.create_project(name=clip(name, 200))
        body = {'hash': project['key']}  # the seed's one field first; the rest is extra
        body.update(ctx.project_json(project))
        return reply(body)

    def errors():
        project = project_for(bottle.request.query.getunicode('hash'))
        since = int_param('since', 0)
        limit = int_param('limit', 100, minimum=1, maximum=1000)
        events = store.events.since(project['id'], since, limit)
        return reply({'errors': [api_php_row(e) for e in events]})

    def clear(key):
        project = project_for(key)
        return reply({'ok': True, 'deleted': store.events.clear(project['id'])})

    @app.route('/api.php', method=['GET', 'POST'])
    @guarded(api_php_error)
    def api_php():
        action = bottle.request.query.getunicode('action')
        if bottle.request.method == 'POST':
            if action == 'clear':
                return clear(bottle.request.query.getunicode('hash'))
            if action not in (None, '', 'submit'):
                raise ApiError(400, 'Unknown action for POST: %s' % action)
            return submit()
        if action == 'generate':
            return generate()
        if action == 'errors':
            return errors()
        if action == 'clear':
            if not ctx.settings['allow_get_clear']:
                raise ApiError(405, 'GET clear is disabled on this server; use POST')
            return clear(bottle.request.query.getunicode('hash'))
        if not action:
            raise ApiError(400, 'action is required (generate, errors or clear), or POST an error')
        raise ApiError(400, 'Unknown action: %s' % action)


###############################################################################
# Dialect: SeeStack SDK ingest (/ingest/v1/...) ###############################
###############################################################################
# Owns the SeeStack endpoints. Key in X-SeeStack-Key (an opaque string: any
# project key). Answers in the {success, data, meta} envelope; failures are
# {success: false, error: {code, message, details}, meta}.

SEESTACK_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal', 'warning')

SEESTACK_CODES = {400: 'MALFORMED_JSON', 401: 'INVALID_API_KEY', 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED',
                  413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 422: 'VALIDATION_ERROR',
                  429: 'RATE_LIMITED', 500: 'INTERNAL_ERROR', 503: 'SERVICE_UNAVAILABLE'}


def seestack_meta():
    return {'requestId': str(uuid.uuid4()), 'timestamp': iso(now())}


def seestack_error(status, message, code=None, details=None, headers=None):
    if status == 422 or code == 'INVALID_PAYLOAD':
        status, code, message = 422, 'VALIDATION_ERROR', 'Validation failed'
    elif status == 400:
        code = 'MALFORMED_JSON' if code in (None, 'INVALID_JSON') else code
    elif status == 500:
        message = 'An unexpected error occurred'
    error = {'code': code if code and code != 'INVALID_JSON' else SEESTACK_CODES.get(status, 'ERROR'),
             'message': message}
    if details:
        error['details'] = details
    return reply({'success': False, 'error': error, 'meta': seestack_meta()}, status, headers)


def link_id(value):
    """A trace or span id a client sent: a non-blank string, else None."""
    return value if value.__class__ is str and value.strip() else None


def seestack_error_event(data, check):
    """A SeeStack error payload -> the event model (problems go to check).
    The trace it happened in is traceId (and spanId), the names SeeStack's HTTP
    requests and logs use, and the session replay it belongs to is sessionId,
    as its replays name one; SeeStack's own server keeps only the documented
    fields and metadata, so a client written for it sends them in metadata."""
    for field in ('exceptionClass', 'message'):
        value = data.get(field)
        if value is None:
            check.add(field, 'must not be blank')
        elif not isinstance(value, str):
            check.add(field, 'must be a string')
        elif value.strip() == '':
            check.add(field, 'must not be blank')
    level = data.get('level')
    if level is None:
        level = 'error'
    elif not (isinstance(level, str) and level.lower() in SEESTACK_LEVELS):
        check.add('level', 'must match "debug|info|warn|error|fatal|warning"')
    stack = data.get('stackTrace')
    if stack is not None and not isinstance(stack, str) and not (
            isinstance(stack, list) and all(isinstance(line, str) for line in stack)):
        check.add('stackTrace', 'must be an array of strings')
    for field in ('environment', 'release', 'timestamp', 'fingerprint', 'traceId', 'spanId', 'sessionId'):
        value = data.get(field)
        if not (value is None or isinstance(value, str) or (field == 'fingerprint' and isinstance(value, list))):
            check.add(field, 'must be a string')
    for field in ('user', 'metadata', 'tags', 'request'):
        value = data.get(field)
        if value is not None and not isinstance(value, dict):
            check.add(field, 'must be an object')
    timestamp = check.timestamp(data['timestamp'], 'timestamp') if isinstance(data.get('timestamp'), str) else None
    if check.details:
        return None
    frames = parse_stack_trace(stack) if isinstance(stack, (list, str)) else []
    metadata = data.get('metadata') or {}
    fingerprint = data.get('fingerprint')
    if isinstance(fingerprint, str):
        fingerprint = [fingerprint]
    trace_id, span_id, session_id = (link_id(data.get(field)) or link_id(metadata.get(field))
                                     for field in ('traceId', 'spanId', 'sessionId'))
    return make_error_event(
        'seestack', level=level, timestamp=timestamp, event_id=str(uuid.uuid4()), trace_id=trace_id, span_id=span_id,
        replay_id=session_id,
        exception=[exception_entry(data['exceptionClass'], data['message'], frames,
                                   trace=stack if isinstance(stack, (list, str)) else None)],
        environment=data.get('environment'), release=data.get('release'), user=data.get('user'),
        tags=string_map(data.get('tags')) if data.get('tags') else None, request=data.get('request'),
        extra=metadata or None, fingerprint=fingerprint,
        breadcrumbs=breadcrumb_list(data.get('breadcrumbs')) if isinstance(data.get('breadcrumbs'), list) else None)


HTTP_METHODS = ('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS')


def seestack_http_requests(data, check):
    items = data.get('requests')
    if not check.check(isinstance(items, list) and 1 <= len(items) <= 100, 'requests',
                       'must be an array of 1 to 100 items'):
        return []
    project_id = data.get('projectId')
    check.check(project_id is None or isinstance(project_id, str), 'projectId', 'must be a string')
    rows = []
    for index, item in enumerate(items):
        where = 'requests[%d].' % index
        if not check.check(isinstance(item, dict), where[:-1], 'must be an object'):
            continue
        for field in ('traceId', 'host', 'path'):
            value = item.get(field)
            check.check(isinstance(value, str) and value.strip() != '', where + field, 'must not be blank')
        check.check(item.get('direction') in ('inbound', 'outbound'), where + 'direction',
                    'must match "inbound|outbound"')
        method = item.get('method')
        check.check(isinstance(method, str) and method.upper() in HTTP_METHODS, where + 'method',
                    'must be one of %s' % ', '.join(HTTP_METHODS))
        status = item.get('statusCode')
        check.check(status is None or (is_int(status) and (status == 0 or 100 <= status <= 599)),
                    where + 'statusCode', 'must be 0 or 100-599')
        for field in ('durationMs', 'requestSize', 'responseSize'):
            value = item.get(field)
            check.check(value is None or (is_number(value) and 0 <= value < 1e15), where + field, 'must be >= 0')
        check.check(item.get('userId') is None or isinstance(item['userId'], str), where + 'userId',
                    'must be a string')
        timestamp = check.timestamp(item.get('timestamp'), where + 'timestamp', required=True)
        if check.details:
            continue
        rows.append(make_http_request(
            timestamp, item['direction'], method, item['host'], item['path'], trace_id=item['traceId'],
            status_code=status, duration_ms=item.get('durationMs'), request_size=item.get('requestSize'),
            response_size=item.get('responseSize'), user_id=item.get('userId')))
    return rows


def seestack_replay(data, check):
    for field in ('fingerprint', 'sessionId'):
        value = data.get(field)
        check.check(isinstance(value, str) and value.strip() != '', field, 'must not be blank')
    events = data.get('events')
    if not check.check(isinstance(events, list) and 1 <= len(events) <= 1000, 'events',
                       'must be an array of 1 to 1000 events'):
        return None
    clean = []
    for index, event in enumerate(events):
        where = 'events[%d].' % index
        if not check.check(isinstance(event, dict), where[:-1], 'must be an object'):
            continue
        check.check(isinstance(event.get('eventType'), str) and event['eventType'].strip() != '',
                    where + 'eventType', 'must not be blank')
        check.check(isinstance(event.get('eventData'), str), where + 'eventData', 'must be a JSON string')
        check.check(event.get('url') is None or isinstance(event['url'], str), where + 'url', 'must be a string')
        stamp = event.get('timestampMillis')
        check.check(is_int(stamp) and 0 <= stamp < 4102444800000, where + 'timestampMillis',
                    'must be epoch milliseconds')
        if check.details:
            continue
        clean.append(make_replay_event(event['eventType'], event['eventData'], stamp, event.get('url')))
    if check.details:
        return None
    return make_replay(data['sessionId'], data['fingerprint'], clean)


def seestack_log(item, where, check):
    if not check.check(isinstance(item, dict), where[:-1] or 'body', 'must be an object'):
        return None
    level = item.get('level')
    check.check(isinstance(level, str) and level.lower() in LOG_LEVELS, where + 'level',
                'must match "debug|info|warn|error|fatal"')
    message = item.get('message')
    check.check(isinstance(message, str) and message.strip() != '', where + 'message', 'must not be blank')
    for field in ('service', 'traceId'):
        check.check(item.get(field) is None or isinstance(item[field], str), where + field, 'must be a string')
    check.check(item.get('metadata') is None or isinstance(item['metadata'], dict), where + 'metadata',
                'must be an object')
    timestamp = check.timestamp(item.get('timestamp'), where + 'timestamp')
    if check.details:
        return None
    return make_log(level.lower(), message, timestamp, service=item.get('service'), trace_id=item.get('traceId'),
                    metadata=item.get('metadata'))


def seestack_logs(data, check):
    """One entry, or {"logs": [1 to 1000 entries]}."""
    batch = data.get('logs') if isinstance(data.get('logs'), list) else None
    items = batch if batch is not None else [data]
    if not 1 <= len(items) <= 1000:
        check.add('logs', 'must have 1 to 1000 entries')
    return [seestack_log(item, 'logs[%d].' % i if batch is not None else '', check)
            for i, item in enumerate(items[:1000])]


def mount_seestack(app, ctx):
    store = ctx.store

    def route(path):
        return lambda fn: app.route(path, method='POST')(guarded(seestack_error)(fn))

    def project_and_body():
        key = header('X-SeeStack-Key')
        project = store.project_by_key(key.strip()) if key and key.strip() else None
        if project is None:
            raise ApiError(401, 'Invalid or missing API key', 'INVALID_API_KEY')
        data = parse_json(read_body(LIMIT_SEESTACK), 'Malformed JSON')
        if not isinstance(data, dict):
            raise ApiError(422, 'Validation failed', 'VALIDATION_ERROR', {'body': 'must be a JSON object'})
        return project, data

    def accepted(data):
        return reply({'success': True, 'data': data, 'meta': seestack_meta()}, 202)

    def ingest(parse, kind, count):
        """The request's body through parse (every problem named in one 422),
        counted against the quota, stored as kind. Returns the model."""
        project, data = project_and_body()
        check = Validation()
        model = parse(data, check)
        check.raise_if_any()
        ctx.admit(project, count(model))
        store.add_batch(project['id'], [(kind, model)])
        return model

    @route('/ingest/v1/errors')
    def ingest_error():
        event = ingest(seestack_error_event, 'error', lambda event: 1)
        return accepted({'id': event['eventId']})

    @route('/ingest/v1/http-requests')
    def ingest_http_requests():
        rows = ingest(seestack_http_requests, 'http_requests', len)
        return reply({'ok': True, 'accepted': len(rows)}, 202)

    @route('/ingest/v1/replay')
    def ingest_replay():
        replay = ingest(seestack_replay, 'replay', lambda replay: len(replay['events']))
        return accepted({'eventsReceived': len(replay['events'])})

    @route('/ingest/v1/logs')
    def ingest_logs():
        return accepted({'accepted': len(ingest(seestack_logs, 'logs', len))})

    @route('/ingest/v1/heartbeat')
    def ingest_heartbeat():
        project, data = project_and_body()
        check = Validation()
        slug = data.get('slug')
        check.check(isinstance(slug, str) and slug.strip() != '', 'slug', 'must not be blank')
        status = data.get('status')
        check.check(status in ('success', 'failed'), 'status', 'must match "success|failed"')
        duration = data.get('durationMs')
        check.check(duration is None or (is_number(duration) and duration >= 0), 'durationMs',
                    'must be a number >= 0')
        message = data.get('message')
        check.check(message is None or isinstance(message, str), 'message', 'must be a string')
        check.raise_if_any()
        ctx.admit(project)  # a check-in is a stored row like any other
        monitor_id = store.monitors.add_checkin(project['id'], slug.strip(),
                                                make_checkin(status, duration_ms=duration, message=message))
        if monitor_id is None:  # refused like every other SeeStack error; only the success is {"ok": true}
            raise ApiError(404, 'No cron monitor with slug %r in this project' % slug[:100], 'NOT_FOUND')
        return reply({'ok': True, 'monitorId': str(monitor_id)}, 202)


###############################################################################
# Dialect: Open Sentry ingest (/v1/ingest) ####################################
###############################################################################
# Owns Open Sentry's batch endpoint: one item or an array of 1 to 20, validated
# whole before anything is stored. Errors are {"error": "..."}.


def open_sentry_error(status, message, code=None, details=None, headers=None):
    if status == 400 and code != 'INVALID_JSON':
        message = 'Invalid payload'
    elif status == 400:
        message = 'Invalid JSON'
    elif status == 413:
        message = 'Payload too large'
    body = {'error': message}
    if details:
        body['details'] = details
    return reply(body, status, headers)


# The checks below name a field only when it is wrong: a valid item (nearly
# every one) builds no field paths.

def open_sentry_frames(stacktrace, where, check):
    """where: the item's path; the frames are at where + exception.stacktrace."""
    if stacktrace is None:
        return []
    if not isinstance(stacktrace, dict):
        check.add(where + 'exception.stacktrace', 'must be an object')
        return []
    frames = stacktrace.get('frames')
    if frames is None:
        return []
    if not isinstance(frames, list):
        check.add(where + 'exception.stacktrace.frames', 'must be an array')
        return []
    where += 'exception.stacktrace'
    out = []
    for index, f in enumerate(frames):  # the 256 KiB body limit bounds this
        if not isinstance(f, dict):
            check.add('%s.frames[%d]' % (where, index), 'must be an object')
            continue
        filename, function = f.get('filename'), f.get('function')
        lineno, colno, in_app = f.get('lineno'), f.get('colno'), f.get('inApp')
        # (JSON makes no int subclass but bool: the class test is is_int here)
        if not ((filename is None or isinstance(filename, str)) and (function is None or isinstance(function, str))
                and (lineno is None or (lineno.__class__ is int and -(1 << 63) <= lineno < (1 << 63)))
                and (colno is None or (colno.__class__ is int and -(1 << 63) <= colno < (1 << 63)))
                and (in_app is None or in_app is True or in_app is False)):
            path = '%s.frames[%d].' % (where, index)
            for field, ok in (('filename', filename is None or isinstance(filename, str)),
                              ('function', function is None or isinstance(function, str))):
                check.check(ok, path + field, 'must be a string')
            for field, value in (('lineno', lineno), ('colno', colno)):
                check.check(value is None or is_int(value), path + field, 'must be an integer')
            check.check(in_app is None or isinstance(in_app, bool), path + 'inApp', 'must be a boolean')
            continue
        out.append(frame(filename, function, lineno, colno, None, None, in_app))
    return cap_frames(out)


def is_scalar_map(value):
    """An object whose values are all strings, numbers, booleans or null."""
    if not isinstance(value, dict):
        return False
    for item in value.values():
        if not (item is None or isinstance(item, (str, int, float, bool))):
            return False
    return True


def open_sentry_common(item, where, check):
    for field in ('environment', 'release', 'timestamp', 'message'):
        value = item.get(field)
        if value is not None and not isinstance(value, str):
            check.add(where + field, 'must be a string')
    for field in ('tags', 'user'):
        value = item.get(field)
        if value is not None and not is_scalar_map(value):
            check.add(where + field, 'must be a map of strings')
    timestamp = item.get('timestamp')
    if isinstance(timestamp, str):
        return check.timestamp(timestamp, where + 'timestamp')
    return None


def open_sentry_error_event(item, where, check):
    timestamp = open_sentry_common(item, where, check)
    exception = item.get('exception')
    frames = []
    if isinstance(exception, dict):
        type_, value = exception.get('type'), exception.get('value')
        if not (isinstance(type_, str) and type_.strip() != ''):
            check.add(where + 'exception.type', 'must be a non-empty string')
        if not isinstance(value, str):
            check.add(where + 'exception.value', 'must be a string')
        frames = open_sentry_frames(exception.get('stacktrace'), where, check)
    else:
        check.add(where + 'exception', 'is required')
    breadcrumbs = item.get('breadcrumbs')
    if breadcrumbs is not None and not (isinstance(breadcrumbs, list)
                                        and all(isinstance(b, dict) for b in breadcrumbs)):
        check.add(where + 'breadcrumbs', 'must be an array of objects')
    for field in ('traceId', 'spanId'):  # as an ai_generation item links to its trace
        value = item.get(field)
        if value is not None and not isinstance(value, str):
            check.add(where + field, 'must be a string')
    if check.details:
        return None
    return make_error_event(
        'open-sentry', level=item.get('level') if isinstance(item.get('level'), str) else 'error',
        message=item.get('message'), timestamp=timestamp, trace_id=link_id(item.get('traceId')),
        span_id=link_id(item.get('spanId')),
        exception=[exception_entry(exception['type'], exception['value'], frames)],
        environment=item.get('environment'), release=item.get('release'), user=item.get('user'),
        tags=string_map(item.get('tags')) if item.get('tags') else None,
        breadcrumbs=breadcrumb_list(breadcrumbs))


def open_sentry_transaction(item, where, check):
    timestamp = open_sentry_common(item, where, check)
    check.check(isinstance(item.get('name'), str) and item['name'].strip() != '', where + 'name', 'is required')
    check.check(isinstance(item.get('traceId'), str) and item['traceId'].strip() != '', where + 'traceId',
                'is required')
    check.check(is_number(item.get('durationMs')) and 0 <= item['durationMs'] <= MAX_DURATION_MS,
                where + 'durationMs', 'must be a number from 0 to %g' % MAX_DURATION_MS)
    status = item.get('status', 'ok')
    check.check(status in ('ok', 'error', 'cancelled'), where + 'status', 'must be ok, error or cancelled')
    spans = item.get('spans') or []
    clean = []
    if check.check(isinstance(spans, list), where + 'spans', 'must be an array'):
        for index, span in enumerate(spans[:1000]):
            path = '%sspans[%d].' % (where, index)
            if not check.check(isinstance(span, dict), path[:-1], 'must be an object'):
                continue
            check.check(isinstance(span.get('spanId'), str) and span['spanId'] != '', path + 'spanId', 'is required')
            check.check(isinstance(span.get('op'), str) and span['op'] != '', path + 'op', 'is required')
            check.check(is_number(span.get('durationMs')) and 0 <= span['durationMs'] <= MAX_DURATION_MS,
                        path + 'durationMs', 'must be a number from 0 to %g' % MAX_DURATION_MS)
            for field in ('description', 'parentSpanId'):
                check.check(span.get(field) is None or isinstance(span[field], str), path + field, 'must be a string')
            if not check.details:
                clean.append(make_span(item['traceId'], span['spanId'], None, None,
                                       parent_span_id=span.get('parentSpanId'), op=span['op'],
                                       description=span.get('description'), duration_ms=span['durationMs']))
    if check.details:
        return None
    return make_transaction(name=item['name'], trace_id=item['traceId'], duration_ms=item['durationMs'],
                            status=status, timestamp=timestamp, environment=item.get('environment'),
                            release=item.get('release'), spans=clean, tags=item.get('tags'), user=item.get('user'))


def open_sentry_ai_generation(item, where, check):
    timestamp = open_sentry_common(item, where, check)
    for field in ('provider', 'model'):
        check.check(isinstance(item.get(field), str) and item[field].strip() != '', where + field, 'is required')
    check.check(is_int(item.get('inputTokens')) and 0 <= item['inputTokens'] <= MAX_SUMMED_COUNT,
                where + 'inputTokens', 'must be an integer from 0 to %d' % MAX_SUMMED_COUNT)
    check.check(item.get('outputTokens') is None or (is_int(item['outputTokens'])
                                                    and 0 <= item['outputTokens'] <= MAX_SUMMED_COUNT),
                where + 'outputTokens', 'must be an integer from 0 to %d' % MAX_SUMMED_COUNT)
    for field, highest in (('totalCostUsd', MAX_SUMMED_COST), ('inputCostUsd', MAX_SUMMED_COST),
                           ('outputCostUsd', MAX_SUMMED_COST), ('latencyMs', MAX_DURATION_MS),
                           ('timeToFirstTokenMs', MAX_DURATION_MS)):
        check.check(item.get(field) is None or (is_number(item[field]) and 0 <= item[field] <= highest),
                    where + field, 'must be a number from 0 to %g' % highest)
    status = item.get('status', 'ok')
    check.check(status in ('ok', 'error'), where + 'status', 'must be ok or error')
    for field in ('traceId', 'spanId'):
        check.check(item.get(field) is None or isinstance(item[field], str), where + field, 'must be a string')
    check.check(item.get('metadata') is None or isinstance(item['metadata'], dict), where + 'metadata',
                'must be an object')
    if check.details:
        return None
    return make_ai_generation(
        item['provider'], item['model'], item['inputTokens'], output_tokens=item.get('outputTokens'),
        total_cost_usd=item.get('totalCostUsd'), input_cost_usd=item.get('inputCostUsd'),
        output_cost_usd=item.get('outputCostUsd'), latency_ms=item.get('latencyMs'),
        time_to_first_token_ms=item.get('timeToFirstTokenMs'), status=status, timestamp=timestamp,
        trace_id=item.get('traceId'), span_id=item.get('spanId'), environment=item.get('environment'),
        tags=item.get('tags'), user=item.get('user'), metadata=item.get('metadata'))


# Open Sentry's item type -> (the model's kind, the parser that makes it)
OPEN_SENTRY_KINDS = {'error': ('error', open_sentry_error_event),
                     'transaction': ('transaction', open_sentry_transaction),
                     'ai_generation': ('ai_generation', open_sentry_ai_generation)}


def mount_open_sentry(app, ctx):
    store = ctx.store

    @app.route('/v1/ingest', method='POST')
    @guarded(open_sentry_error)
    def ingest():
        request = bottle.request
        key = (header('X-Open-Sentry-Key') or header('X-Sentry-Clone-Key')
               or request.query.getunicode('key'))
        if not key or not key.strip():
            raise ApiError(401, 'Missing auth key')
        project = store.project_by_key(key.strip())
        if project is None:
            raise ApiError(403, 'Invalid DSN key')
        payload = parse_json(read_body(LIMIT_OPEN_SENTRY))
        items = payload if isinstance(payload, list) else [payload]
        check = Validation()
        if not 1 <= len(items) <= 20:
            check.add('body', 'must be one item or an array of 1 to 20 items')
        parsed = []
        for index, item in enumerate(items[:20]):
            where = '[%d].' % index if isinstance(payload, list) else ''
            if not check.check(isinstance(item, dict), where or 'body', 'must be an object'):
                continue
            kind = item.get('type')
            if not (isinstance(kind, str) and kind in OPEN_SENTRY_KINDS):
                check.add(where + 'type', 'must be one of ' + ', '.join(OPEN_SENTRY_KINDS))
                continue
            model_kind, parse = OPEN_SENTRY_KINDS[kind]
            parsed.append((model_kind, parse(item, where, check)))
        check.raise_if_any(400)
        ctx.admit(project, len(parsed))
        store.add_batch(project['id'], parsed)
        return reply({'id': str(uuid.uuid4())}, 202)


###############################################################################
# Dialect: Sentry SDK protocol (/api/<project id>/envelope/ and /store/) ######
###############################################################################
# Owns what official Sentry SDKs send: authentication from X-Sentry-Auth, the
# sentry_key parameter or the envelope's dsn; compressed bodies; envelopes and
# their items (event, transaction, check_in, log; session, client_report and
# attachment are counted). Errors answer {"detail": "..."}, as Relay does.


def sentry_error(status, message, code=None, details=None, headers=None):
    headers = dict(headers or {})
    if 400 <= status < 500:
        # Sentry clients log this header, not the body (raven: "HTTP Error (400): <reason>")
        headers['X-Sentry-Error'] = header_text(message)
    if status == 429 and 'Retry-After' in headers:
        # only the kinds the quota counts: an empty list would stop sessions and reports too
        headers['X-Sentry-Rate-Limits'] = ('%s:default;error;transaction;log_item;monitor:project:quota_exceeded'
                                           % headers['Retry-After'])
    return reply({'detail': message}, status, headers)


def parse_envelope(body):
    """Split an envelope into (header, [(item header, payload bytes)]).
    Items may carry a length or run to the next newline; the final newline
    is optional."""
    end = body.find(b'\n')
    header = parse_json(body if end < 0 else body[:end], 'invalid envelope header')
    if not isinstance(header, dict):
        raise ApiError(400, 'invalid envelope header: not an object')
    position, items = (len(body) if end < 0 else end + 1), []
    while position < len(body):
        if body[position:position + 1] in (b'\n', b'\r'):
            position += 1  # blank line between items
            continue
        end = body.find(b'\n', position)
        line = body[position:] if end < 0 else body[position:end]
        item_header = parse_json(line, 'invalid item header')
        if not isinstance(item_header, dict) or not isinstance(item_header.get('type'), str):
            raise ApiError(400, 'invalid item header: needs a string type')
        start = len(body) if end < 0 else end + 1
        length = item_header.get('length')
        if length is not None:
            if not is_int(length) or length < 0:
                raise ApiError(400, 'invalid item header: bad length')
            payload = body[start:start + length]
            if len(payload) < length:
                raise ApiError(400, 'item is shorter than its length')
            position = start + length
            if body[position:position + 1] == b'\n':
                position += 1
        else:
            stop = body.find(b'\n', start)
            payload = body[start:] if stop < 0 else body[start:stop]
            position = len(body) if stop < 0 else stop + 1
        items.append((item_header, payload))
        if len(items) > 1000:
            raise ApiError(400, 'too many items in one envelope')
    return header, items


EVENT_ID = re.compile(r'^[0-9a-f]{32}$')
TRACE_ID = re.compile(r'^[0-9a-f]{32}$')
SPAN_ID = re.compile(r'^[0-9a-f]{16}$')


def sentry_event_id(value):
    if value is None:
        return uuid.uuid4().hex
    plain = value.replace('-', '').lower() if isinstance(value, str) else None
    if plain is None or not EVENT_ID.match(plain):
        raise Invalid('must be 32 hexadecimal characters', 'event_id')
    return plain


def sentry_values(value, field):
    """Sentry's {"values": [...]} or a bare list -> list."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get('values')
        if value is None:
            return []
    require(isinstance(value, list), 'must be a list or {"values": [...]}', field)
    return value


def sentry_frames(stacktrace):
    if not isinstance(stacktrace, dict):
        return []
    frames = stacktrace.get('frames')
    if not isinstance(frames, list):
        return []
    out = []
    for f in frames:
        if not isinstance(f, dict):
            continue
        get = f.get  # each field read once: a flood of Python events is mostly frames
        filename, abs_path, function, module = get('filename'), get('abs_path'), get('function'), get('module')
        context_line, in_app = get('context_line'), get('in_app')
        out.append(frame(filename=filename if isinstance(filename, str) else None,
                         function=function if isinstance(function, str) else None,
                         lineno=get('lineno'), colno=get('colno'),
                         module=module if isinstance(module, str) else None,
                         abs_path=abs_path if isinstance(abs_path, str) else None,
                         in_app=in_app if isinstance(in_app, bool) else None,
                         context_line=context_line if isinstance(context_line, str) else None,
                         pre_context=get('pre_context'), post_context=get('post_context'), vars=get('vars')))
    return cap_frames(out)


def sentry_message(event):
    """(formatted message, template) from `logentry` or `message`. The
    template ("User %s not found") is what groups, as in Sentry."""
    for field in ('logentry', 'message'):
        value = event.get(field)
        if value is None:
            continue
        if isinstance(value, str):
            return value, None
        require(isinstance(value, dict), 'must be a string or an object', field)
        template = value.get('message') if isinstance(value.get('message'), str) else None
        text = value.get('formatted') if isinstance(value.get('formatted'), str) else template
        params = value.get('params')
        if text is not None and not value.get('formatted') and params:
            text = format_params(text, params)
        if text is not None:
            return text, template if template != text else None
    return None, None


# A printf conversion: %s, %d, %(name)s, with flags, width and precision (all
# bounded here, and ignored below: a client's "%1000000000s" must not make us
# allocate a gigabyte).
PRINTF_CONVERSION = re.compile(r'%(?:\(([^()]{0,64})\))?[-#0 +]{0,5}(\*|\d+)?(?:\.(\*|\d+))?'
                               r'[hlL]?([diouxXeEfFgGcrsa%])')


def format_params(template, params):
    """A Sentry logentry's message with its params filled in, as the SDK's
    logger would have printed it, but bounded: widths and precisions are
    ignored, each value is its plain text (clipped), and the template is never
    given to %-formatting. A template that does not fit its params stays as
    it is."""
    positional = list(params) if isinstance(params, list) else None
    named = params if isinstance(params, dict) else None
    if positional is None and named is None:
        positional = [params]
    taken = [0]

    def next_value():
        if positional is None or taken[0] >= len(positional):
            raise LookupError
        taken[0] += 1
        return positional[taken[0] - 1]

    def convert(match):
        name, width, precision, kind = match.groups()
        if kind == '%':
            return '%'
        if name is not None:
            if named is None or name not in named:
                raise LookupError
            value = named[name]
        else:
            for star in (width, precision):
                if star == '*':
                    next_value()  # a width taken from the params: skipped, like every width
            value = next_value()
        if kind in 'diouxX' and isinstance(value, float) and value.is_integer():
            value = int(value)
        if kind == 'r':
            return clip(repr(value), 1024)
        return clip(value if isinstance(value, str) else dumps(value), 1024)
    try:
        return clip(PRINTF_CONVERSION.sub(convert, template))
    except LookupError:
        return template


SENTRY_STRING_FIELDS = ('logger', 'platform', 'release', 'dist', 'environment', 'server_name', 'transaction',
                        'culprit')  # and level, a word or a logging number (sentry_level)


def sentry_replay_id(event):
    """The session replay an error belongs to: contexts.replay.replay_id, or
    the tags.replayId that @sentry/browser's replay integration sets."""
    contexts = event.get('contexts') if isinstance(event.get('contexts'), dict) else {}
    replay = contexts.get('replay') if isinstance(contexts.get('replay'), dict) else {}
    tags = event.get('tags') if isinstance(event.get('tags'), dict) else {}
    for value in (replay.get('replay_id'), tags.get('replayId')):
        if isinstance(value, str) and TRACE_ID.match(value.replace('-', '').lower()):
            return value.replace('-', '').lower()
    return None


# raven-python sends the logging module's numbers ("level": 40), as Relay still reads them
PYTHON_LEVELS = ((10, 'debug'), (20, 'info'), (30, 'warning'), (40, 'error'))


# The interface names raven clients still send, under today's keys (as Relay maps them).
LEGACY_INTERFACES = tuple(('sentry.interfaces.' + old, new) for old, new in (
    ('Message', 'logentry'), ('Exception', 'exception'), ('Stacktrace', 'stacktrace'), ('Http', 'request'),
    ('User', 'user'), ('Breadcrumbs', 'breadcrumbs'), ('Contexts', 'contexts'), ('Threads', 'threads')))
LEGACY_NAMES = frozenset(old for old, _ in LEGACY_INTERFACES)


def inferred_user(event, client_ip):
    """The event's user with the client address where the SDK asked for it,
    or None when nothing changes."""
    user = event.get('user')
    if not client_ip or (user is not None and not isinstance(user, dict)):
        return None
    asked = user.get('ip_address') if user else None
    sdk = event.get('sdk') if isinstance(event.get('sdk'), dict) else {}
    settings = sdk.get('settings') if isinstance(sdk.get('settings'), dict) else {}
    if asked == '{{auto}}' or (asked is None and settings.get('infer_ip') == 'auto'):
        return dict(user or {}, ip_address=client_ip)
    return None


def sentry_level(value):
    """A Sentry level: a word, or a Python logging number from 10 to 50 (a
    custom level between them counts as the standard one above it)."""
    if is_int(value) and 10 <= value <= 50:
        return next((word for top, word in PYTHON_LEVELS if value <= top), 'fatal')
    require(value is None or isinstance(value, str), 'must be a string or a logging level number (10-50)', 'level')
    return value


def sentry_error_event(event, event_id=None, client_ip=None):
    """A Sentry error event (dict) -> the event model. client_ip fills a user
    IP the SDK asked us to infer ({{auto}}, or sdk.settings.infer_ip "auto").
    Each field is read once, into a local, and the event is copied only for
    a legacy (raven) client's interface names."""
    require(isinstance(event, dict), 'event must be a JSON object')
    if not LEGACY_NAMES.isdisjoint(event):
        legacy = [(old, new) for old, new in LEGACY_INTERFACES if old in event and event.get(new) is None]
        event = dict(event)
        for old, new in legacy:
            event[new] = event.pop(old)
    get = event.get
    level = get('level')
    if level is not None:
        level = sentry_level(level)
    user = inferred_user(event, client_ip) or get('user')
    for field in SENTRY_STRING_FIELDS:
        value = get(field)
        if value is not None and not isinstance(value, str):
            raise Invalid('must be a string', field)
    contexts, extra, request, sdk = get('contexts'), get('extra'), get('request'), get('sdk')
    for field, value in (('user', user), ('contexts', contexts), ('extra', extra), ('request', request),
                         ('sdk', sdk)):
        if value is not None and not isinstance(value, dict):
            raise Invalid('must be an object', field)
    fingerprint = get('fingerprint')
    require(fingerprint is None or (isinstance(fingerprint, list) and all(
        isinstance(p, (str, int, float)) for p in fingerprint)), 'must be a list of strings', 'fingerprint')
    exceptions = []
    for value in sentry_values(get('exception'), 'exception')[-MAX_EXCEPTIONS:]:
        if not isinstance(value, dict):
            continue
        type_, text = value.get('type'), value.get('value')
        module, mechanism = value.get('module'), value.get('mechanism')
        type_ = type_ if isinstance(type_, str) else None
        text = text if isinstance(text, str) else None
        if type_ is None and text is None:
            continue
        exceptions.append(exception_entry(type_ or 'Error', text, sentry_frames(value.get('stacktrace')),
                                          module=module if isinstance(module, str) else None,
                                          mechanism=mechanism if isinstance(mechanism, dict) else None))
    stacktrace = None
    if not exceptions:  # a message sent with attach_stacktrace keeps its frames for the viewer
        threads = [t for t in sentry_values(get('threads'), 'threads') if isinstance(t, dict)]
        source = get('stacktrace') or next((t.get('stacktrace') for t in threads if t.get('stacktrace')), None)
        frames = sentry_frames(source)
        stacktrace = {'frames': frames} if frames else None
    if request:
        request = {'method': request.get('method'), 'url': request.get('url'),
                   'query': request.get('query_string'), 'data': request.get('data'),
                   'headers': request.get('headers'), 'cookies': request.get('cookies'), 'env': request.get('env')}
        request = {k: v for k, v in request.items() if v not in (None, '', {}, [])}
    message, template = sentry_message(event)
    return make_error_event(
        'sentry', level=level or 'error', message=message, message_template=template,
        exception=exceptions or None, timestamp=parse_timestamp(get('timestamp')),
        event_id=sentry_event_id(event_id or get('event_id')), environment=get('environment'),
        release=get('release'), user=user, tags=string_map(get('tags'), 'tags'),
        request=request, breadcrumbs=breadcrumb_list(sentry_values(get('breadcrumbs'), 'breadcrumbs')),
        contexts=contexts, extra=extra,
        fingerprint=[str(p) for p in fingerprint] if fingerprint else None, server_name=get('server_name'),
        platform=get('platform'), sdk=sdk, logger=get('logger'),
        transaction=get('transaction'), stacktrace=stacktrace, replay_id=sentry_replay_id(event))


def http_status_word(code):
    """An HTTP status -> Sentry's span status word, as the SDKs map it."""
    if not is_int(code) or code < 100:
        return None
    if code < 400:
        return 'ok'
    words = {401: 'unauthenticated', 403: 'permission_denied', 404: 'not_found', 409: 'already_exists',
             413: 'failed_precondition', 429: 'resource_exhausted', 499: 'cancelled', 501: 'unimplemented',
             503: 'unavailable', 504: 'deadline_exceeded'}
    return words.get(code, 'invalid_argument' if code < 500 else 'internal_error')


def sentry_status_word(status, attributes=None):
    """A status as Sentry's word. Transactions and older spans send the word;
    streamed spans only ok or error, with the word in sentry.status.message or
    implied by the HTTP status. What Sentry has no word for is internal_error,
    as the SDKs normalize it."""
    if status in (None, '', 'ok'):
        return 'ok'
    if status in SPAN_STATUSES:
        return status
    attributes = attributes or {}
    message = attributes.get('sentry.status.message')
    if message in SPAN_STATUSES and message != 'ok':
        return message
    from_code = http_status_word(attributes.get('http.response.status_code'))
    return from_code if from_code not in (None, 'ok') else 'internal_error'


def sentry_transaction(event, event_id=None):
    require(isinstance(event, dict), 'transaction must be a JSON object')
    name = event.get('transaction')
    require(isinstance(name, str) and name != '', 'is required', 'transaction')
    start = parse_timestamp(event.get('start_timestamp'), 'start_timestamp')
    end = parse_timestamp(event.get('timestamp'), 'timestamp')
    require(start is not None and end is not None, 'start_timestamp and timestamp are required', 'timestamp')
    contexts = event.get('contexts') if isinstance(event.get('contexts'), dict) else {}
    trace = contexts.get('trace') if isinstance(contexts.get('trace'), dict) else {}
    trace_id = trace.get('trace_id') if isinstance(trace.get('trace_id'), str) else None
    spans = []
    for span in (event.get('spans') or [])[:1000] if isinstance(event.get('spans'), list) else []:
        if not isinstance(span, dict):
            continue
        try:
            span_start = parse_timestamp(span.get('start_timestamp'))
            span_end = parse_timestamp(span.get('timestamp'))
        except Invalid:
            continue
        text = lambda key: span[key] if isinstance(span.get(key), str) else None
        # without its own start, a span is timed from the transaction's start
        spans.append(make_span(
            trace_id, text('span_id'), span_start, span_end or span_start,
            parent_span_id=text('parent_span_id'), op=text('op'), description=text('description'),
            status=sentry_status_word(text('status')) if text('status') else None,
            attributes=span.get('data') if isinstance(span.get('data'), dict) else None,
            duration_ms=None if span_start is not None else round(((span_end or start) - start) * 1000.0, 3)))
    text = lambda source, key: source.get(key) if isinstance(source.get(key), str) else None
    span_id = text(trace, 'span_id')
    return make_transaction(
        name=name, duration_ms=max(0.0, (end - start) * 1000.0),
        status=sentry_status_word(text(trace, 'status') or None, trace.get('data')
                                  if isinstance(trace.get('data'), dict) else None),
        timestamp=start, trace_id=text(trace, 'trace_id'),
        event_id=sentry_event_id(event_id or event.get('event_id')), spans=spans,
        environment=text(event, 'environment'), release=text(event, 'release'), op=text(trace, 'op'),
        tags=string_map(event.get('tags'), 'tags') if event.get('tags') else None,
        user=event.get('user') if isinstance(event.get('user'), dict) else None, platform=text(event, 'platform'),
        segment_id=span_id.lower() if span_id and SPAN_ID.match(span_id.lower()) else None,
        web_vitals=web_vitals(event.get('measurements')) or None)


# Session replays ------------------------------------------------------------
# replayIntegration sends, per segment, a replay_event (what the session saw)
# and a replay_recording: a JSON header line, then the rrweb events as JSON,
# zlib-compressed by default (the SDK's worker). research: sdk-formats-js.md.

LIMIT_SENTRY_RECORDING = 10 << 20               # one replay_recording item as sent
LIMIT_SENTRY_RECORDING_DECOMPRESSED = 20 << 20  # and its rrweb JSON
MAX_REPLAY_TIMELINE = 2000                      # timeline entries kept per recording segment


def sentry_replay_recording(payload):
    """A replay_recording item -> (segment id or None, rrweb events)."""
    end = payload.find(b'\n')
    require(end > 0, 'needs a header line ({"segment_id": n})', 'replay_recording')
    header = parse_json(payload[:end], 'invalid replay_recording header')
    require(isinstance(header, dict), 'header must be a JSON object', 'replay_recording')
    body = payload[end + 1:]
    if body.lstrip()[:1] != b'[':
        body = decompress(body, 'deflate', LIMIT_SENTRY_RECORDING_DECOMPRESSED)
    events = parse_json(body, 'invalid replay_recording payload')
    require(isinstance(events, list), 'must be a JSON array of rrweb events', 'replay_recording')
    segment = header.get('segment_id')
    return (segment if is_int(segment) else None), events


def epoch_ms(value):
    """rrweb and Sentry's replay events mix seconds and milliseconds; the SDK
    itself (timestampToMs) takes values past 9999999999 as milliseconds."""
    if not is_number(value) or value <= 0:
        return None
    return int(value if value > 9999999999 else value * 1000)


RRWEB_META, RRWEB_CUSTOM, RRWEB_INCREMENTAL = 4, 5, 3
RRWEB_INPUT = 5


def rrweb_timeline(events):
    """rrweb events -> [(eventType, data, url, epoch ms)]: what a reader
    follows (navigations, clicks, inputs, console, network, web vitals), not
    the DOM snapshots and mouse moves a pixel player would need."""
    out, url, last_input = [], None, {}
    for event in events:
        if len(out) >= MAX_REPLAY_TIMELINE:
            break
        if not isinstance(event, dict) or not isinstance(event.get('data'), dict):
            continue
        kind, data, at = event.get('type'), event['data'], epoch_ms(event.get('timestamp'))
        if at is None:
            continue
        if kind == RRWEB_META and isinstance(data.get('href'), str):
            url = data['href']
            out.append(['page', {'to': url}, url, at])
        elif kind == RRWEB_INCREMENTAL and data.get('source') == RRWEB_INPUT and isinstance(data.get('text'), str):
            # the recorder sends the field's whole value at each keystroke: one entry per burst of typing
            entry = last_input.get(data.get('id'))
            if entry is None or entry is not out[-1]:
                entry = ['input', {}, url, at]
                out.append(entry)
                last_input[data.get('id')] = entry
            entry[1]['value'] = data['text']
        elif kind == RRWEB_CUSTOM and isinstance(data.get('payload'), dict):
            found = replay_custom_event(data.get('tag'), data['payload'])
            if found:
                event_type, fields, stamp, node = found
                entry = [event_type, fields, url, epoch_ms(stamp) or at]
                out.append(entry)
                if event_type == 'input' and node is not None:
                    last_input[node] = entry  # the typing that follows names this field
                if event_type == 'navigation' and fields.get('method') and fields.get('to'):
                    url = fields['to']  # a span's full URL (the breadcrumb's is a path)
    # the SDK reports a navigation as a span (with the full URL) and as a
    # breadcrumb; the page's first meta event says the same again
    spans = any(e[0] == 'navigation' and e[1].get('method') for e in out)
    kept = [e for e in out if not (spans and (e[0] == 'page' or (e[0] == 'navigation' and not e[1].get('method'))))]
    return [('navigation', dict(e[1], method='navigate'), e[2], e[3]) if e[0] == 'page' else tuple(e) for e in kept]


def replay_custom_event(tag, payload):
    """A Sentry replay custom event (breadcrumb or performanceSpan) ->
    (eventType, data, timestamp, rrweb node id) or None."""
    text = lambda value: value if isinstance(value, str) else None
    if tag == 'breadcrumb':
        category = text(payload.get('category')) or ''
        data = payload.get('data') if isinstance(payload.get('data'), dict) else {}
        message = text(payload.get('message'))
        if category == 'ui.click':
            node = data.get('node') if isinstance(data.get('node'), dict) else {}
            return 'click', {'target': message, 'text': text(node.get('textContent')) or None}, payload.get('timestamp'), None
        if category == 'ui.input':
            return 'input', {'target': message}, payload.get('timestamp'), data.get('nodeId')
        if category == 'console':
            return 'console', {'level': text(payload.get('level')) or 'log', 'message': message}, payload.get('timestamp'), None
        if category == 'navigation':
            return 'navigation', {'from': text(data.get('from')), 'to': text(data.get('to'))}, payload.get('timestamp'), None
        if category == 'sentry.feedback':
            return 'feedback', {'feedbackId': text(data.get('feedbackId'))}, payload.get('timestamp'), None
        if category.startswith('replay.'):
            return None  # the recorder's own bookkeeping
        return 'breadcrumb', {'category': category, 'message': message}, payload.get('timestamp'), None
    if tag == 'performanceSpan':
        op = text(payload.get('op')) or ''
        data = payload.get('data') if isinstance(payload.get('data'), dict) else {}
        start, end = epoch_ms(payload.get('startTimestamp')), epoch_ms(payload.get('endTimestamp'))
        duration = (end - start) if start is not None and end is not None and end >= start else None
        if op in ('resource.fetch', 'resource.xhr'):
            request = data.get('request') if isinstance(data.get('request'), dict) else {}
            response = data.get('response') if isinstance(data.get('response'), dict) else {}
            return 'network', {'method': text(data.get('method')), 'url': text(payload.get('description')),
                               'statusCode': data.get('statusCode') if is_int(data.get('statusCode')) else None,
                               'durationMs': duration, 'requestSize': request.get('size'),
                               'responseSize': response.get('size')}, payload.get('startTimestamp'), None
        if op.startswith('navigation.'):
            return 'navigation', {'to': text(payload.get('description')), 'method': op.split('.', 1)[1]}, \
                payload.get('startTimestamp'), None
        if op == 'web-vital':
            return 'web_vital', {'name': text(payload.get('description')), 'value': data.get('value'),
                                 'rating': text(data.get('rating'))}, payload.get('startTimestamp'), None
    return None


def sentry_replay(replay_event, recording, replay_id=None):
    """A segment's replay_event and replay_recording (either may be missing;
    replay_id: the envelope's event_id) -> the replay model."""
    meta = replay_event if replay_event is not None else {}
    require(isinstance(meta, dict), 'replay_event must be a JSON object', 'replay_event')
    replay_id = meta.get('replay_id') or meta.get('event_id') or replay_id
    require(isinstance(replay_id, str) and TRACE_ID.match(replay_id.replace('-', '').lower()) is not None,
            'must be 32 hexadecimal characters', 'replay_id')
    segment, rrweb = recording if recording is not None else (None, [])
    events = [make_replay_event(event_type, dumps({k: v for k, v in data.items() if v is not None}), at, url=url)
              for event_type, data, url, at in rrweb_timeline(rrweb)]
    text_list = lambda key: [v for v in meta[key] if isinstance(v, str)] if isinstance(meta.get(key), list) else []
    user = meta.get('user') if isinstance(meta.get('user'), dict) else {}
    who = user.get('id') or user.get('email') or user.get('ip_address')
    return make_replay(
        replay_id.replace('-', '').lower(), who if isinstance(who, (str, int)) and not isinstance(who, bool) else None,
        events, source='sentry', segment=meta['segment_id'] if is_int(meta.get('segment_id')) else segment,
        environment=meta.get('environment') if isinstance(meta.get('environment'), str) else None,
        release=meta.get('release') if isinstance(meta.get('release'), str) else None,
        trace_ids=text_list('trace_ids'), urls=text_list('urls'),
        started_ms=epoch_ms(meta.get('replay_start_timestamp')), ended_ms=epoch_ms(meta.get('timestamp')))


# Feedback --------------------------------------------------------------------

def sentry_feedback(event, event_id=None):
    """A feedback item (Sentry.captureFeedback, the feedback widget): an event
    whose contexts.feedback holds what the user wrote."""
    require(isinstance(event, dict), 'feedback must be a JSON object')
    contexts = event.get('contexts') if isinstance(event.get('contexts'), dict) else {}
    feedback = contexts.get('feedback')
    require(isinstance(feedback, dict), 'is required', 'contexts.feedback')
    message = feedback.get('message')
    require(isinstance(message, str) and message.strip() != '', 'must not be blank', 'contexts.feedback.message')
    trace = contexts.get('trace') if isinstance(contexts.get('trace'), dict) else {}
    request = event.get('request') if isinstance(event.get('request'), dict) else {}
    text = lambda source, key: source.get(key) if isinstance(source.get(key), str) else None
    about = feedback.get('associated_event_id')
    return make_feedback(
        message, event_id=sentry_event_id(event_id or event.get('event_id')), name=text(feedback, 'name'),
        email=text(feedback, 'contact_email'), url=text(feedback, 'url') or text(request, 'url'),
        source=text(feedback, 'source'), associated_event_id=sentry_event_id(about) if about is not None else None,
        replay_id=text(feedback, 'replay_id'), trace_id=text(trace, 'trace_id'),
        environment=text(event, 'environment'), release=text(event, 'release'),
        timestamp=parse_timestamp(event.get('timestamp')), tags=string_map(event.get('tags'), 'tags') or None)


def sentry_user_report(report):
    """The legacy user_report item, {"event_id", "name", "email", "comments"}
    (@sentry/browser still exports it as createUserFeedbackEnvelope)."""
    require(isinstance(report, dict), 'user_report must be a JSON object')
    comments = report.get('comments')
    require(isinstance(comments, str) and comments.strip() != '', 'must not be blank', 'comments')
    require(report.get('event_id') is not None, 'is required', 'event_id')
    text = lambda key: report.get(key) if isinstance(report.get(key), str) else None
    return make_feedback(comments, kind='user_report', name=text('name'), email=text('email'),
                         associated_event_id=sentry_event_id(report['event_id']))


# Streamed spans (span items) ------------------------------------------------
# @sentry/node and @sentry/browser 11 stream spans by default: a span item is a
# span v2 container {"version": 2, "items": [span, ...]}; older SDKs sent one
# span object per item. research notes: sdk-formats-js.md.

def sentry_attributes(value):
    """Typed attributes {"key": {"type", "value"}} (or plain values) -> {key: value}."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, item in itertools.islice(value.items(), MAX_SPAN_ATTRIBUTES * 2):
        if isinstance(item, dict):
            item = item.get('value')
        if item is not None:
            out[key] = item
    return out


def sentry_hex_id(span, field, pattern, required=False):
    value = span.get(field)
    if value is None and not required:
        return None
    value = value.lower() if isinstance(value, str) else None
    require(value is not None and pattern.match(value) is not None,
            'must be %d hexadecimal characters' % (32 if pattern is TRACE_ID else 16), 'span.' + field)
    return value


def sentry_span(span, version=2):
    """One span -> the span model (isSegment says whether it is a
    transaction's root). version 2: a streamed span; 1: a span object."""
    require(isinstance(span, dict), 'must be an object', 'span')
    trace_id = sentry_hex_id(span, 'trace_id', TRACE_ID, required=True)
    span_id = sentry_hex_id(span, 'span_id', SPAN_ID, required=True)
    parent = sentry_hex_id(span, 'parent_span_id', SPAN_ID)
    get = span.get  # each field read once: a page load streams a dozen spans at a time
    start = parse_timestamp(get('start_timestamp'), 'span.start_timestamp')
    require(start is not None, 'is required', 'span.start_timestamp')
    end = parse_timestamp(get('end_timestamp' if version == 2 else 'timestamp'), 'span.end_timestamp')
    if version == 2:
        attributes = sentry_attributes(get('attributes'))
        description, op, segment = get('name'), attributes.get('sentry.op'), attributes.get('sentry.segment.id')
    else:
        attributes = dict(span['data']) if isinstance(get('data'), dict) else {}
        for name, value in get('measurements').items() if isinstance(get('measurements'), dict) else ():
            if name in WEB_VITALS and isinstance(value, dict):
                attributes['browser.web_vital.%s.value' % name] = value.get('value')
        description, op, segment = get('description'), get('op'), get('segment_id')
    status = get('status')
    is_segment = get('is_segment') is True
    if is_segment:
        segment = span_id
    elif isinstance(segment, str):
        segment = segment.lower() if SPAN_ID.match(segment.lower()) else None  # else found through the parent
    else:
        segment = None
    model = make_span(trace_id, span_id, start, end if end is not None else start, parent_span_id=parent,
                      segment_id=segment, op=op if isinstance(op, str) else None,
                      description=description if isinstance(description, str) else None,
                      status=sentry_status_word(status if isinstance(status, str) else None, attributes),
                      attributes=attributes)
    model['isSegment'] = is_segment
    return model


def sentry_spans(header, payload):
    """A span item: a span v2 container, or one span object."""
    require(isinstance(payload, dict), 'span item must be a JSON object', 'span')
    if 'items' in payload or 'span.v2' in str(header.get('content_type') or ''):
        items = payload.get('items')
        require(isinstance(items, list), 'must be a list', 'items')
        require(len(items) <= 1000, 'at most 1000 spans in one item', 'items')
        return [sentry_span(item) for item in items]
    return [sentry_span(payload, version=1)]


# Browser SDKs name a page load or navigation generically when they stream
# ("Pageload", with sentry.segment.name.source "url"): the page is url.path,
# which is what their error events call the transaction and Sentry shows.
GENERIC_SEGMENT_NAMES = ('Pageload', 'Navigation')


def sentry_segment_transaction(span):
    """A segment span (a transaction's root) -> the transaction model."""
    attributes = span['attributes'] or {}
    text = lambda key: attributes.get(key) if isinstance(attributes.get(key), str) else None
    name = span['description'] or ''
    if text('url.path') and (name in GENERIC_SEGMENT_NAMES or not name) and \
            text('sentry.segment.name.source') in ('url', None):
        name = text('url.path')
    user = {key: attributes.get('user.' + field) for key, field in (
        ('id', 'id'), ('email', 'email'), ('ip_address', 'ip_address'), ('username', 'name'))}
    user = {key: value for key, value in user.items() if isinstance(value, (str, int))}
    return make_transaction(
        name=name or span['op'], duration_ms=max(0.0, (span['end'] - span['start']) * 1000.0),
        status=span['status'] or 'ok', timestamp=span['start'], trace_id=span['traceId'],
        environment=text('sentry.environment'), release=text('sentry.release'), op=span['op'], user=user or None,
        platform=text('sentry.platform'), segment_id=span['spanId'], source='spans', attributes=attributes,
        web_vitals=span_web_vitals(attributes) or None, replay_id=text('sentry.replay_id'))


def sentry_span_batch(header, payload):
    """A span item -> batch entries: a transaction per segment span, and the
    other spans (which find their transaction in the store, whenever it comes)."""
    spans = sentry_spans(header, payload)
    entries = [('transaction', sentry_segment_transaction(span)) for span in spans if span['isSegment']]
    children = [span for span in spans if not span['isSegment']]
    return entries + ([('spans', children)] if children else [])


CHECKIN_STATUS = {'ok': 'success', 'error': 'failed', 'in_progress': 'in_progress'}
MAX_CHECKIN_SECONDS = 10 ** 8  # a run's duration (about three years): anything longer is a broken clock
INTERVAL_UNITS = {'minute': 'm', 'hour': 'h', 'day': 'd', 'week': 'w'}


def sentry_checkin(payload):
    """A check_in item -> (slug, check-in, monitor fields to upsert or None)."""
    require(isinstance(payload, dict), 'check_in must be a JSON object')
    given = payload.get('monitor_slug')
    require(isinstance(given, str) and given.strip(), 'is required', 'monitor_slug')
    slug = slugify(given)
    require(slug != '', 'must hold a letter or digit', 'monitor_slug')
    status = payload.get('status')
    require(isinstance(status, str) and status in CHECKIN_STATUS, 'must be in_progress, ok or error', 'status')
    duration = payload.get('duration')
    require(duration is None or (is_number(duration) and 0 <= duration <= MAX_CHECKIN_SECONDS),
            'must be a number of seconds from 0 to %d' % MAX_CHECKIN_SECONDS, 'duration')
    checkin = make_checkin(CHECKIN_STATUS[status], checkin_id=payload.get('check_in_id'),
                           duration_ms=round(duration * 1000.0, 3) if duration is not None else None)
    config = payload.get('monitor_config')
    # Without monitor_config, a check-in for a slug this project does not have
    # makes a monitor without a schedule (never late, never missed), so its
    # runs are seen; dropping them silently would hide a job that reports.
    upsert = {'name': clip(given.strip(), 200)}
    if isinstance(config, dict):
        schedule = config.get('schedule') or {}
        require(isinstance(schedule, dict), 'must be an object', 'monitor_config.schedule')
        if schedule.get('type') == 'interval':
            value, unit = schedule.get('value'), schedule.get('unit')
            require(is_int(value) and value > 0, 'must be a positive integer', 'monitor_config.schedule.value')
            if unit in ('month', 'year'):
                value, unit = value * (30 if unit == 'month' else 365), 'day'
            require(isinstance(unit, str) and unit in INTERVAL_UNITS, 'must be minute, hour, day, week, month or year',
                    'monitor_config.schedule.unit')
            text = '%d%s' % (value, INTERVAL_UNITS[unit])
        else:
            text = schedule.get('value')
            require(isinstance(text, str), 'must be a crontab string', 'monitor_config.schedule.value')
        # a monitor made here is named as the SDK calls it (add_checkin: one
        # that exists keeps the name it was given)
        upsert = {'schedule': validate_schedule(text), 'name': clip(given.strip(), 200)}
        margin = config.get('checkin_margin')
        if is_int(margin):
            upsert['grace'] = min(max(margin, 1), 1440)
        if is_int(config.get('max_runtime')) and config['max_runtime'] > 0:
            upsert['maxRuntime'] = min(config['max_runtime'], 10080)
        if config.get('timezone') not in (None, ''):
            require(valid_timezone(config['timezone']), 'must be an IANA time zone', 'monitor_config.timezone')
            upsert['timezone'] = config['timezone']
    return slug, checkin, upsert


SENTRY_LOG_LEVELS = {'trace': 'debug', 'debug': 'debug', 'info': 'info', 'warn': 'warn', 'warning': 'warn',
                     'error': 'error', 'fatal': 'fatal'}


def sentry_logs(payload):
    require(isinstance(payload, dict) and isinstance(payload.get('items'), list), 'log item needs items', 'items')
    if len(payload['items']) > MAX_ROWS_PER_SUBMISSION:  # refused whole: never taken and then cut
        raise ApiError(413, 'a log item may carry at most %d entries' % MAX_ROWS_PER_SUBMISSION, 'PAYLOAD_TOO_LARGE')
    entries = []
    for item in payload['items']:
        if not isinstance(item, dict) or not isinstance(item.get('body'), str):
            continue
        attributes = item.get('attributes') if isinstance(item.get('attributes'), dict) else {}
        service = attributes.get('service.name') or attributes.get('logger.name')
        if isinstance(service, dict):
            service = service.get('value')
        try:
            timestamp = parse_timestamp(item.get('timestamp'))
        except Invalid:
            timestamp = None
        entries.append(make_log(
            SENTRY_LOG_LEVELS.get(str(item.get('level')).lower(), 'info'), item['body'], timestamp,
            service=service if isinstance(service, str) else None,
            trace_id=item.get('trace_id') if isinstance(item.get('trace_id'), str) else None,
            metadata=attributes or None))
    return entries


SENTRY_AUTH_KEY = re.compile(r'sentry_key\s*=\s*([^,\s]+)')


def plain_query_value(query_string, name):
    """What bottle's request.query.get(name) gives (the last value, '' when
    bare) for a query with nothing escaped in it, read without parsing the
    whole query (the JavaScript SDKs authenticate in the URL of every
    envelope); NotImplemented for any other query."""
    if not query_string.isascii() or '%' in query_string or '+' in query_string:
        return NotImplemented
    value = None
    for pair in query_string.split('&'):
        key, _, text = pair.partition('=')
        if key == name:
            value = text
    return value


def sentry_key_from_request(envelope_header=None):
    request = bottle.request
    for name in ('X-Sentry-Auth', 'Authorization'):
        match = SENTRY_AUTH_KEY.search(header(name) or '')
        if match:
            return match.group(1)
    key = plain_query_value(request.environ.get('QUERY_STRING') or '', 'sentry_key')
    if key is NotImplemented:
        if request.query.get('sentry_key'):
            return request.query.getunicode('sentry_key')
    elif key:
        return key
    dsn = (envelope_header or {}).get('dsn')
    if isinstance(dsn, str):
        match = re.match(r'^[a-z]+://([^:@/]+)(:[^@/]*)?@', dsn)
        if match:
            return match.group(1)
    return None


# The crash-report dialog --------------------------------------------------------
# Sentry.showReportDialog() (@sentry/browser) adds a <script> from
# <dsn host>/api/embed/error-page/?dsn=...&eventId=... to the page: Sentry
# answers with a script that shows a form and posts what the user wrote back
# to the same address. Ours builds the form with DOM calls (never HTML from
# text), sends it as a simple cross-origin POST and tells the SDK when it
# closes ("__sentry_reportdialog_closed__", as Sentry's does).

REPORT_DIALOG_JS = r"""(function (options) {
  "use strict";
  var doc = document, endpoint = options.endpoint;
  function el(tag, attrs, children) {
    var node = doc.createElement(tag);
    for (var name in attrs) { if (attrs.hasOwnProperty(name)) { node.setAttribute(name, attrs[name]); } }
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? doc.createTextNode(child) : child);
    });
    return node;
  }
  function field(label, input) { return el("label", {style: "display:block;margin:8px 0"}, [label, el("br"), input]); }
  var box = "width:100%;box-sizing:border-box;padding:6px;font:inherit";
  var name = el("input", {id: "sentry-report-name", type: "text", style: box});
  var email = el("input", {id: "sentry-report-email", type: "email", style: box});
  var comments = el("textarea", {id: "sentry-report-comments", rows: "4", style: box});
  name.value = options.name || ""; email.value = options.email || "";
  var status = el("p", {id: "sentry-report-status", role: "status"});
  var send = el("button", {id: "sentry-report-submit", type: "submit"}, [options.labelSubmit]);
  var cancel = el("button", {id: "sentry-report-close", type: "button"}, [options.labelClose]);
  var form = el("form", {}, [el("h2", {style: "margin-top:0"}, [options.title]), el("p", {}, [options.subtitle]),
    field(options.labelName, name), field(options.labelEmail, email), field(options.labelComments, comments),
    status, send, doc.createTextNode(" "), cancel]);
  var dialog = el("div", {id: "sentry-report-dialog", role: "dialog", "aria-modal": "true", style:
    "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.4);display:flex;align-items:center;" +
    "justify-content:center;font:14px/1.4 system-ui,sans-serif"},
    [el("div", {style: "background:#fff;color:#222;padding:20px;border-radius:8px;width:420px;max-width:90vw"},
        [form])]);
  function close() {
    if (dialog.parentNode) { dialog.parentNode.removeChild(dialog); }
    window.postMessage("__sentry_reportdialog_closed__", "*");
  }
  cancel.addEventListener("click", close);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!comments.value.trim()) { status.textContent = options.errorGeneric; return; }
    send.disabled = true;
    fetch(endpoint, {method: "POST", mode: "cors", body: JSON.stringify(
        {name: name.value, email: email.value, comments: comments.value})})
      .then(function (answer) {
        if (!answer.ok) { throw new Error(String(answer.status)); }
        form.textContent = ""; form.appendChild(el("p", {id: "sentry-report-thanks"}, [options.successMessage]));
        setTimeout(close, 1500);
      }, function () { throw new Error("network"); })
      .catch(function () { send.disabled = false; status.textContent = options.errorGeneric; });
  });
  doc.body.appendChild(dialog);
  comments.focus();
})(OPTIONS_JSON);
"""

REPORT_DIALOG_TEXT = {  # showReportDialog's options that name the dialog's words, and Sentry's defaults
    'title': 'It looks like we\u2019re having issues.', 'subtitle': 'Our team has been notified.',
    'labelName': 'Name', 'labelEmail': 'Email', 'labelComments': 'What happened?', 'labelClose': 'Close',
    'labelSubmit': 'Submit Crash Report', 'errorGeneric': 'An unknown error occurred while submitting your report.'
    ' Please try again.', 'successMessage': 'Your feedback has been sent. Thank you!'}


def report_dialog_options(query):
    """The dialog's words and the user's name and email from the script's query (as the SDK builds it)."""
    options = {key: clip(query.getunicode(key) or default, 500) for key, default in REPORT_DIALOG_TEXT.items()}
    for key in ('name', 'email'):
        options[key] = clip(query.getunicode(key) or '', 200)
    return options


def sentry_report_dialog(data, event_id):
    """What the dialog posts -> the feedback model (a user report on that event)."""
    require(isinstance(data, dict), 'must be a JSON object')
    comments = data.get('comments')
    require(isinstance(comments, str) and comments.strip() != '', 'must not be blank', 'comments')
    text = lambda key: data.get(key) if isinstance(data.get(key), str) and data.get(key).strip() else None
    return make_feedback(comments, kind='user_report', name=text('name'), email=text('email'),
                         source='report_dialog', associated_event_id=event_id)


def legacy_store_body(data):
    """A /store/ body as the legacy clients send it: JSON, or base64 of JSON
    (raven-js), or base64 of zlib-deflated JSON (raven-node), read as Relay
    reads them: anything that does not open with "{" is base64."""
    start = data.lstrip(b' \t\r\n')
    if not start or start[:1] in (b'{', b'[') or start.startswith(b'\xef\xbb\xbf'):
        return data
    try:
        decoded = base64.b64decode(start, validate=False) if BASE64_BODY.match(start) else None
    except (ValueError, binascii.Error):
        decoded = None
    if not decoded:
        raise ApiError(400, 'event body is neither JSON nor base64', 'INVALID_JSON')
    if decoded.lstrip()[:1] == b'{':
        return decoded
    return decompress(decoded, 'deflate', LIMIT_SENTRY_EVENT)


BASE64_BODY = re.compile(rb'^[A-Za-z0-9+/=\s]+$')  # one class, no nesting: linear


SPOTLIGHT_PROJECT = 'spotlight'


def is_loopback(address):
    address = (address or '').lower()
    if address.startswith('::ffff:'):
        address = address[7:]
    return address == '::1' or address.startswith('127.')


def mount_sentry(app, ctx):
    store = ctx.store

    def authenticate(project_id, envelope_header=None):
        key = sentry_key_from_request(envelope_header)
        if not key:
            raise ApiError(401, 'missing authorization information (X-Sentry-Auth, sentry_key or envelope dsn)')
        project = store.project_by_key(key)
        if project is None or project['id'] != project_id:
            raise ApiError(403, 'invalid DSN: the key does not belong to project %d' % project_id)
        return project

    def body():
        return read_body(LIMIT_SENTRY_COMPRESSED, LIMIT_SENTRY_DECOMPRESSED)

    def parse_item_json(payload, what, limit=LIMIT_SENTRY_EVENT):
        if not isinstance(payload, bytes):
            return payload  # /store/'s event, parsed (and its size checked) once already
        if len(payload) > limit:
            raise ApiError(413, '%s exceeds %d bytes' % (what, limit))
        return parse_json(payload, 'invalid %s payload' % what)

    def ingest_items(project, items, event_id=None, quota=True):
        """Validate every item, then store them: events, transactions and logs
        in one submission, then each check-in. Every row it would store counts
        against the quota, and an envelope may not store more than
        MAX_ROWS_PER_SUBMISSION (a small gzip envelope once made a million
        rows in one write). quota: whether they count against the
        project's rate limit (Spotlight's do not). items: (item header,
        payload bytes), or /store/'s one event already parsed."""
        batch, checkins, answer_id, not_stored, rows = [], [], event_id, {}, 0
        to_resolve = []
        replay_event = recording = None
        client_ip = bottle.request.environ.get('REMOTE_ADDR')
        for header, payload in items:
            kind = header['type']
            if rows > MAX_ROWS_PER_SUBMISSION:
                break
            if kind == 'event':
                raw = parse_item_json(payload, 'event')
                model = sentry_error_event(raw, event_id, client_ip)
                batch.append(('error', model))
                to_resolve.append((model, raw.get('debug_meta'), raw.get('dist')))
                answer_id = answer_id or model['eventId']
            elif kind == 'transaction':
                model = sentry_transaction(parse_item_json(payload, 'transaction'), event_id)
                batch.append(('transaction', model))
                answer_id = answer_id or model['eventId']
            elif kind == 'check_in':
                checkins.append(sentry_checkin(parse_item_json(payload, 'check_in')))
            elif kind == 'log':
                entries = sentry_logs(parse_item_json(payload, 'log'))
                batch.append(('logs', entries))
                rows += len(entries) - 1
            elif kind == 'replay_event':
                replay_event = parse_item_json(payload, 'replay_event')
            elif kind == 'replay_recording':
                if len(payload) > LIMIT_SENTRY_RECORDING:
                    raise ApiError(413, 'replay_recording exceeds %d bytes' % LIMIT_SENTRY_RECORDING)
                recording = sentry_replay_recording(payload)
            elif kind == 'feedback':
                batch.append(('feedback', sentry_feedback(parse_item_json(payload, 'feedback'), event_id)))
            elif kind == 'user_report':
                batch.append(('feedback', sentry_user_report(parse_item_json(payload, 'user_report'))))
            elif kind == 'span':
                spans = sentry_span_batch(header, parse_item_json(payload, 'span', LIMIT_SENTRY_SPANS))
                batch.extend(spans)
                rows += len(spans) - 1
            elif kind == 'attachment' and event_id:
                text = lambda key: header[key] if isinstance(header.get(key), str) else None
                attachment = make_attachment(event_id, text('filename'), text('content_type'),
                                             text('attachment_type'), payload)
                batch.append(('attachment', (attachment, ctx.settings['attachment_storage_mb'] << 20)))
            else:
                # accepted and counted by type, not stored: sessions, client reports,
                # profiles, metrics, and types from newer SDKs (Relay skips those too)
                name = header_text(kind, 64)
                not_stored[name] = not_stored.get(name, 0) + 1
            if kind in ('event', 'transaction', 'check_in', 'log', 'feedback', 'user_report', 'span'):
                rows += 1
        if replay_event is not None or recording is not None:
            batch.append(('replay', sentry_replay(replay_event, recording, event_id)))
        if rows > MAX_ROWS_PER_SUBMISSION:
            raise ApiError(413, 'an envelope may store at most %d items (events, transactions, check-ins and'
                                ' log entries together)' % MAX_ROWS_PER_SUBMISSION, 'PAYLOAD_TOO_LARGE')
        if rows and quota:
            ctx.admit(project, rows)
        for model, debug_meta, dist in to_resolve:  # minified frames -> original ones (Source maps)
            ctx.resolver.resolve(project['id'], model, debug_meta, dist)
        if not_stored:
            batch.append(('not_stored', not_stored))
        if batch:
            store.add_batch(project['id'], batch)
        for slug, checkin, upsert in checkins:
            store.monitors.add_checkin(project['id'], slug, checkin, upsert)
        return answer_id

    def envelope_event_id(header):
        event_id = header.get('event_id')
        if event_id is None:
            return None
        try:
            return sentry_event_id(event_id)
        except Invalid:
            raise ApiError(400, 'invalid envelope header: bad event_id')

    def ingest_envelope(project_id, data):
        header, items = parse_envelope(data)
        project = authenticate(project_id, header)
        answer_id = ingest_items(project, items, envelope_event_id(header))
        return reply({'id': answer_id} if answer_id else {})

    @guarded(sentry_error)
    def envelope(project_id):
        return ingest_envelope(project_id, body())

    @guarded(sentry_error)
    def store_endpoint(project_id):
        if bottle.request.content_type.split(';')[0].strip().lower() == 'application/x-sentry-envelope':
            data = body()
            if b'\n' in data.strip():  # an envelope posted here, which Relay reads as one
                return ingest_envelope(project_id, data)
            project = authenticate(project_id)  # a lone event under the envelope type
        else:
            project = authenticate(project_id)
            data = body()
        data = legacy_store_body(data)
        if len(data) > LIMIT_SENTRY_EVENT:
            raise ApiError(413, 'event exceeds %d bytes' % LIMIT_SENTRY_EVENT)
        event = parse_json(data)
        if not isinstance(event, dict):
            raise ApiError(400, 'event must be a JSON object')
        kind = 'transaction' if event.get('type') == 'transaction' else 'event'
        answer_id = ingest_items(project, [({'type': kind}, event)])
        return reply({'id': answer_id})

    def report_dialog_project():
        """The project and event the dialog is for: ?dsn= (its key) and ?eventId=."""
        query = bottle.request.query
        match = re.match(r'^[a-z]+://([^:@/]+)(:[^@/]*)?@[^/]+/(\d+)/?$', query.getunicode('dsn') or '')
        if not match:
            raise ApiError(400, 'dsn is required (as showReportDialog sends it)')
        project = store.project_by_key(match.group(1))
        if project is None or str(project['id']) != match.group(3):
            raise ApiError(403, 'invalid DSN')
        try:
            return project, sentry_event_id(query.getunicode('eventId') or '')
        except Invalid:
            raise ApiError(400, 'eventId must be 32 hexadecimal characters')

    @guarded(sentry_error)
    def report_dialog_script():
        report_dialog_project()
        options = report_dialog_options(bottle.request.query)
        options['endpoint'] = bottle.request.url  # the dialog posts back to where it came from
        response = bottle.response
        response.content_type = 'application/javascript; charset=utf-8'
        response.set_header('Access-Control-Allow-Origin', '*')  # the SDK loads it with crossorigin="anonymous"
        response.set_header('Cache-Control', 'no-store')
        # ASCII JSON (no U+2028 surprises) in place of a placeholder: no %-formatting of what the client sent
        return REPORT_DIALOG_JS.replace('OPTIONS_JSON', json.dumps(options)).encode('utf-8')

    @guarded(sentry_error)
    def report_dialog_submit():
        project, event_id = report_dialog_project()
        data = parse_json(read_body(LIMIT_SENTRY_EVENT))
        store.add_batch(project['id'], [('feedback', sentry_report_dialog(data, event_id))])
        return reply({})

    for suffix in ('/', ''):
        app.route('/api/<project_id:id>/envelope' + suffix, method='POST', callback=envelope)
        app.route('/api/<project_id:id>/store' + suffix, method='POST', callback=store_endpoint)
        app.route('/api/embed/error-page' + suffix, method='GET', callback=report_dialog_script)
        app.route('/api/embed/error-page' + suffix, method='POST', callback=report_dialog_submit)

    spotlight_lock, spotlight_id = threading.Lock(), []

    def spotlight_project():
        """The local project Spotlight's envelopes go to, made on first use."""
        with spotlight_lock:
            if not spotlight_id:
                existing = next((p for p in store.projects() if p['name'] == SPOTLIGHT_PROJECT), None)
                spotlight_id.append((existing or store.create_project(name=SPOTLIGHT_PROJECT))['id'])
        return store.project_by_id(spotlight_id[0])

    @guarded(sentry_error)
    def spotlight_stream():
        """Spotlight's sidecar: SDKs in development post every envelope here
        (SENTRY_SPOTLIGHT=http://127.0.0.1:8080/stream), with no key."""
        allowed = ctx.settings['spotlight']
        if allowed == 'off':
            raise ApiError(404, 'Spotlight is turned off on this server (--spotlight)')
        if allowed == 'loopback' and not is_loopback(bottle.request.environ.get('REMOTE_ADDR')):
            raise ApiError(403, 'Spotlight takes envelopes from this machine only (--spotlight any to allow others)')
        header, items = parse_envelope(body())
        answer_id = ingest_items(spotlight_project(), items, envelope_event_id(header), quota=False)
        return reply({'id': answer_id} if answer_id else {})

    app.route('/stream', method='POST', callback=spotlight_stream)


###############################################################################
# Source maps (sentry-cli uploads; minified frames resolved) ###################
###############################################################################
# Owns JavaScript source maps: the artifact bundles `sentry-cli sourcemaps
# upload` (and 2.x `releases files ... upload-sourcemaps`) sends through
# Sentry's web API (/api/0/...: chunk upload, assembly, releases), read with
# every size counted while decompressing; a small source map parser; and the
# resolver that maps a Sentry event's minified frames on ingest, matched by
# debug id (debug_meta.images) or by release + URL, with parsed maps cached.
# Its web API errors answer {"detail": "..."}, as Sentry's do.

BUNDLE_MAGIC = b'SYSB'
BUNDLE_FILE_TYPES = ('source', 'minified_source', 'source_map', 'indexed_ram_bundle')
_READ_STEP = 64 << 10


class BundleError(ValueError):
    """An upload that cannot be stored: the message says why (a 400)."""


class SourceMapError(ValueError):
    """Why a frame could not be mapped, by symbolicator's names for it
    (missing_sourcemap, malformed_sourcemap, invalid_location, no_column...)."""

    def __init__(self, kind, message):
        ValueError.__init__(self, message)
        self.kind, self.message = kind, message


# -- debug ids --

_HEX = frozenset('0123456789abcdef')


def normalize_debug_id(value):
    """'2B57F07A432C56629998EC91F641A263' or '2b57f07a-432c-...-a263[-appendix]'
    -> '2b57f07a-432c-5662-9998-ec91f641a263'; anything else -> None."""
    if not isinstance(value, str) or len(value) > 80:
        return None
    text = value.strip().lower().replace('-', '')
    if len(text) < 32 or not _HEX.issuperset(text[:32]):
        return None
    return str(uuid.UUID(text[:32]))


# -- artifact bundles --

def _safe_entry_name(name):
    """A zip entry name we would ever write or look up: relative, no '..', no
    drive, no backslash, no NUL. Anything else is refused, not cleaned."""
    if not name or len(name) > 1024 or '\x00' in name or '\\' in name or name.startswith('/'):
        return False
    if len(name) > 1 and name[1] == ':':  # a Windows drive (C:...)
        return False
    parts = name.split('/')
    return all(part not in ('', '.', '..') for part in parts)


def _open_zip(data):
    if data[:4] == BUNDLE_MAGIC:
        if len(data) < 8 or struct.unpack('<I', data[4:8])[0] > 2:
            raise BundleError('unsupported bundle version')
        data = data[8:]
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error, OSError,
            NotImplementedError, IndexError):
        raise BundleError('the bundle is not a valid zip archive')


def _read_entry(archive, info, limit):
    """The entry's bytes, counted while they are decompressed: the sizes in the
    zip's headers are the sender's claims and are never trusted alone."""
    if info.flag_bits & 0x1:
        raise BundleError('encrypted entries are not supported: %s' % info.filename)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError('unsupported compression in %s' % info.filename)
    if info.file_size > limit:
        raise BundleError('%s is larger than %d bytes' % (info.filename, limit))
    out = bytearray()
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(_READ_STEP)
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise BundleError('%s is larger than %d bytes' % (info.filename, limit))
    except BundleError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error, OSError, NotImplementedError,
            RuntimeError):
        raise BundleError('the bundle is corrupt: %s cannot be read' % info.filename)
    return bytes(out)


def read_bundle(data):
    """Validate an artifact bundle (symbolic's source bundle: 'SYSB' + version,
    then a zip with manifest.json and files/...) and return
    (attributes, files): attributes the manifest's top-level strings (debug_id,
    release, dist, org, project), files a list of dicts with path, url, type,
    debug_id, sourcemap (the minified file's reference to its map) and size.
    Every entry is decompressed once, counted as it is read, so a zip bomb
    stops at the cap; raises BundleError with the reason."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError('the bundle is larger than %d bytes' % MAX_BUNDLE_BYTES)
    archive = _open_zip(data)
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_BUNDLE_ENTRIES + 1:
            raise BundleError('the bundle has more than %d files' % MAX_BUNDLE_ENTRIES)
        by_name = {}
        for info in infos:
            name = info.filename
            if info.is_dir():
                continue
            if not _safe_entry_name(name):
                raise BundleError('unsafe file name in the bundle: %r' % name[:200])
            if name in by_name:
                raise BundleError('duplicate file name in the bundle: %r' % name[:200])
            by_name[name] = info
        if 'manifest.json' not in by_name:
            raise BundleError('the bundle has no manifest.json')
        raw_manifest = _read_entry(archive, by_name['manifest.json'], MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(raw_manifest.decode('utf-8'))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BundleError('manifest.json is not valid JSON')
        if not isinstance(manifest, dict) or not isinstance(manifest.get('files', {}), dict):
            raise BundleError('manifest.json must be an object with a "files" object')
        attributes = {key: value for key, value in manifest.items()
                      if key != 'files' and isinstance(value, str) and len(value) <= 1024}
        files, total = [], 0
        for path, entry in manifest.get('files', {}).items():
            if not isinstance(entry, dict):
                raise BundleError('manifest.json: the entry for %r must be an object' % path[:200])
            if path not in by_name or not path.startswith('files/'):
                raise BundleError('manifest.json names a file the bundle does not have: %r' % path[:200])
            url, type_ = entry.get('url'), entry.get('type')
            headers = entry.get('headers') or {}
            if not isinstance(url, str) or not url or len(url) > 2048:
                raise BundleError('manifest.json: %r needs a url' % path[:200])
            if type_ is not None and type_ not in BUNDLE_FILE_TYPES:
                raise BundleError('manifest.json: %r has an unknown type' % path[:200])
            if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in headers.items()):
                raise BundleError('manifest.json: the headers of %r must be strings' % path[:200])
            headers = {k.lower(): v for k, v in headers.items()}
            content = _read_entry(archive, by_name[path], MAX_BUNDLE_FILE)
            total += len(content)
            if total > MAX_BUNDLE_UNPACKED:
                raise BundleError('the bundle unpacks to more than %d bytes' % MAX_BUNDLE_UNPACKED)
            debug_id = None
            if 'debug-id' in headers:
                debug_id = normalize_debug_id(headers['debug-id'])
                if debug_id is None:
                    raise BundleError('manifest.json: %r has a malformed debug-id' % path[:200])
            files.append({'path': path, 'url': url, 'type': type_ or 'source', 'debug_id': debug_id,
                          'sourcemap': (headers.get('sourcemap') or headers.get('x-sourcemap') or None),
                          'size': len(content)})
        if not files:
            raise BundleError('the bundle has no files')
    return attributes, files


def read_bundle_file(data, path, limit=MAX_BUNDLE_FILE):
    """One file of a stored bundle (already validated on upload; read with the
    same caps all the same)."""
    archive = _open_zip(data)
    with archive:
        try:
            info = archive.getinfo(path)
        except KeyError:
            raise BundleError('no such file in the bundle: %r' % path[:200])
        return _read_entry(archive, info, limit)


# -- source maps --

_BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
_B64_VALUE = {c: i for i, c in enumerate(_BASE64)}


def decode_vlq(segment):
    """A mappings segment ('AAgBC') -> its signed integers ([0, 0, 16, 1])."""
    values, shift, value = [], 0, 0
    for char in segment:
        digit = _B64_VALUE.get(char)
        if digit is None:
            raise SourceMapError('malformed_sourcemap', 'invalid character in mappings')
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            if shift > 60:
                raise SourceMapError('malformed_sourcemap', 'number too large in mappings')
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        shift = value = 0
    if shift:
        raise SourceMapError('malformed_sourcemap', 'mappings end inside a number')
    return values


def decode_mappings(mappings, source_count, name_count):
    """The mappings string -> one (columns, targets) pair per generated line:
    columns the sorted generated columns, targets four ints per column
    (source index, original line, original column, name index; -1 where a
    segment maps nothing or has no name). Fields are deltas across the whole
    string except the generated column, which restarts on each line.
    Segments repeat a lot ("AAAA", "CAAC"...): each distinct one is decoded
    once per map."""
    if mappings.count(';') >= MAX_MAP_LINES:
        raise SourceMapError('malformed_sourcemap', 'more than %d generated lines' % MAX_MAP_LINES)
    lines = []
    source = line = column = name = 0
    segments = 0
    decoded = {}
    empty = (array('i'), array('i'))   # one shared, never changed, for every line without mappings
    for text in mappings.split(';'):
        if not text.strip(','):
            lines.append(empty)
            continue
        columns, targets = array('i'), array('i')
        generated = 0
        unsorted = False
        if text:
            for segment in text.split(','):
                if not segment:
                    continue
                values = decoded.get(segment)
                if values is None:
                    values = decode_vlq(segment)
                    if len(decoded) < 65536:
                        decoded[segment] = values
                count = len(values)
                generated += values[0]
                if count == 1:
                    target = (-1, -1, -1, -1)
                elif count == 4 or count == 5:
                    source += values[1]
                    line += values[2]
                    column += values[3]
                    if count == 5:
                        name += values[4]
                        if not 0 <= name < name_count:
                            raise SourceMapError('malformed_sourcemap', 'mappings point outside the names')
                    if not 0 <= source < source_count or line < 0 or column < 0:
                        raise SourceMapError('malformed_sourcemap', 'mappings point outside the sources')
                    target = (source, line, column, name if count == 5 else -1)
                else:
                    raise SourceMapError('malformed_sourcemap', 'a mappings segment has %d fields' % count)
                if generated < 0 or generated >= (1 << 31):
                    raise SourceMapError('malformed_sourcemap', 'generated column out of range in mappings')
                if columns and generated < columns[-1]:
                    unsorted = True   # legal but rare: sorted once when the line ends
                columns.append(generated)
                targets.extend(target)
                segments += 1
                if segments > MAX_MAP_SEGMENTS:
                    raise SourceMapError('malformed_sourcemap', 'more than %d mappings' % MAX_MAP_SEGMENTS)
        if unsorted:   # a stable sort: equal columns keep their order, so the lookup stays a bisect
            order = sorted(range(len(columns)), key=columns.__getitem__)
            columns = array('i', [columns[i] for i in order])
            targets = array('i', [targets[i * 4 + k] for i in order for k in range(4)])
        lines.append((columns, targets) if columns else empty)
    return lines


class Token(object):
    __slots__ = ('source', 'line', 'column', 'name', 'source_index', 'owner')

    def __init__(self, source, line, column, name, source_index, owner):
        self.source, self.line, self.column, self.name = source, line, column, name
        self.source_index, self.owner = source_index, owner  # owner: the (section's) map it came from

    def __repr__(self):
        return 'Token(%r, %d, %d, %r)' % (self.source, self.line, self.column, self.name)


class SourceMap(object):
    """A parsed source map (version 3, or an index map with sections): looks up
    original positions by 0-based generated line and column."""

    def __init__(self, sources, contents, names, lines, sections=None):
        self.sources, self.contents, self.names, self.lines = sources, contents, names, lines
        self.sections = sections  # [((line, column), SourceMap)] for index maps
        self._source_lines = {}
        # the nearest line at or before each line that has mappings, so a lookup
        # past a line's first token falls back as the reference implementations do
        self._previous = array('i')
        last = -1
        for number, (columns, _) in enumerate(lines):
            if columns:
                last = number
            self._previous.append(last)
        # 20 bytes a mapping, ~250 a line with mappings (its tuple and two arrays),
        # 12 every line (its list slot and _previous); a source's text, and its lines once split for context
        self.weight = (sum(len(columns) * 20 + 250 for columns, _ in lines if columns) + 12 * len(lines)
                       + 3 * sum(len(c or '') for c in contents))
        if sections:
            self.weight = sum(section.weight for _, section in sections)

    def lookup(self, line, column, exact=False):
        """The token for a 0-based generated (line, column): the closest mapping
        at or before it; None when nothing there maps to a source. exact: only
        a mapping that starts at that very column."""
        if line < 0 or column < 0:
            return None
        if self.sections is not None:
            offsets = [offset for offset, _ in self.sections]
            index = bisect.bisect_right(offsets, (line, column)) - 1
            if index < 0:
                return None
            (start_line, start_column), section = self.sections[index]
            return section.lookup(line - start_line, column - start_column if line == start_line else column, exact)
        if exact:
            if line >= len(self.lines):
                return None
            columns, targets = self.lines[line]
            index = bisect.bisect_left(columns, column)
            if index >= len(columns) or columns[index] != column or targets[index * 4] < 0:
                return None
            name = targets[index * 4 + 3]
            return Token(self.sources[targets[index * 4]], targets[index * 4 + 1], targets[index * 4 + 2],
                         self.names[name] if name >= 0 else None, targets[index * 4], self)
        if line >= len(self.lines):
            line = len(self.lines) - 1
            column = 1 << 31
            if line < 0:
                return None
        columns, targets = self.lines[line]
        index = bisect.bisect_right(columns, column) - 1
        if index < 0:
            previous = self._previous[line - 1] if line > 0 else -1
            if previous < 0:
                return None
            columns, targets = self.lines[previous]
            index = len(columns) - 1
        source = targets[index * 4]
        if source < 0:
            return None
        name = targets[index * 4 + 3]
        return Token(self.sources[source], targets[index * 4 + 1], targets[index * 4 + 2],
                     self.names[name] if name >= 0 else None, source, self)

    def source_lines(self, token):
        """The original file's lines (from sourcesContent) for a token, or None."""
        owner, index = token.owner, token.source_index
        if index not in owner._source_lines:
            content = owner.contents[index] if index < len(owner.contents) else None
            owner._source_lines[index] = content.splitlines() if isinstance(content, str) else None
        return owner._source_lines[index]


def _string_list(value, field, allow_null=True):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) or (allow_null and v is None) for v in value):
        raise SourceMapError('malformed_sourcemap', '"%s" must be a list of strings' % field)
    return value


def _parse_map_object(data, allow_sections=True):
    if not isinstance(data, dict):
        raise SourceMapError('malformed_sourcemap', 'a source map must be a JSON object')
    if data.get('version', 3) != 3:
        raise SourceMapError('malformed_sourcemap', 'only version 3 source maps are supported')
    if 'sections' in data:
        if not allow_sections or not isinstance(data['sections'], list):
            raise SourceMapError('malformed_sourcemap', 'invalid "sections"')
        sections = []
        for section in data['sections']:
            offset = section.get('offset') if isinstance(section, dict) else None
            if not isinstance(offset, dict) or not isinstance(offset.get('line'), int) \
                    or not isinstance(offset.get('column'), int) or 'map' not in section:
                raise SourceMapError('malformed_sourcemap', 'a section needs an offset and a map')
            sections.append(((offset['line'], offset['column']), _parse_map_object(section['map'], False)))
        sections.sort(key=lambda item: item[0])
        return SourceMap([], [], [], [], sections=sections)
    root = data.get('sourceRoot') or ''
    if not isinstance(root, str):
        raise SourceMapError('malformed_sourcemap', '"sourceRoot" must be a string')
    sources = [(root.rstrip('/') + '/' + s if root and s and '://' not in s else s) if s is not None else ''
               for s in _string_list(data.get('sources'), 'sources')]
    contents = _string_list(data.get('sourcesContent'), 'sourcesContent')
    names = _string_list(data.get('names'), 'names', allow_null=False)
    mappings = data.get('mappings', '')
    if not isinstance(mappings, str):
        raise SourceMapError('malformed_sourcemap', '"mappings" must be a string')
    return SourceMap(sources, contents, names, decode_mappings(mappings, len(sources), len(names)))


def parse_source_map(raw):
    """Bytes of a source map file -> SourceMap; SourceMapError('malformed_sourcemap')
    when it is not one."""
    if raw.startswith(b')]}'):  # the XSSI guard some servers prepend
        raw = raw.partition(b'\n')[2]
    try:
        data = json.loads(raw.decode('utf-8-sig'))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SourceMapError('malformed_sourcemap', 'the source map is not valid JSON')
    return _parse_map_object(data)


# -- frames --

CONTEXT_LINES = 5
MAX_CONTEXT_LINE = 300


def _context_line(text, column=None):
    """A long (minified) line cut around the column, as Sentry does."""
    if len(text) <= MAX_CONTEXT_LINE:
        return text
    start = 0 if column is None else max(0, min(column - MAX_CONTEXT_LINE // 2, len(text) - MAX_CONTEXT_LINE))
    return ('...' if start else '') + text[start:start + MAX_CONTEXT_LINE] + (
        '...' if start + MAX_CONTEXT_LINE < len(text) else '')


def context_around(lines, lineno, column=None):
    """(pre_context, context_line, post_context) for a 1-based line number."""
    if not lines or not (1 <= lineno <= len(lines)):
        return None, None, None
    index = lineno - 1
    pre = [_context_line(line) for line in lines[max(0, index - CONTEXT_LINES):index]]
    post = [_context_line(line) for line in lines[index + 1:index + 1 + CONTEXT_LINES]]
    return pre, _context_line(lines[index], column), post


def join_url(base, reference):
    """A source or map reference resolved against the URL of the file naming it;
    '~/' URLs (sentry-cli's host-less prefix) resolve like paths on a host."""
    if not reference:
        return base
    if '://' in reference or reference.startswith('data:'):
        return reference
    if base.startswith('~/'):
        joined = urllib.parse.urljoin('http://~' + base[1:], reference)
        return '~' + joined[len('http://~'):]
    return urllib.parse.urljoin(base, reference)


def source_filename(abs_path):
    """What the frame shows as its file: the path of a web URL without the
    host, a bundler's virtual URL without its scheme (webpack://app/./src/x.js ->
    src/x.js style cleanup)."""
    if abs_path.startswith('~/'):
        path = abs_path[2:]
    else:
        parts = urllib.parse.urlsplit(abs_path)
        path = parts.path if parts.scheme in ('http', 'https', 'file', '') else abs_path.partition('://')[2]
        if parts.scheme not in ('http', 'https', 'file', '') and parts.netloc and path.startswith(parts.netloc):
            path = path[len(parts.netloc):] or path
    path = posixpath.normpath(path.lstrip('/')) if path.strip('/') else path
    while path.startswith('../'):
        path = path[3:]
    return path[2:] if path.startswith('./') else path


def release_file_candidates(abs_path):
    """The names a release file may have been uploaded under for a frame's
    URL: the URL itself, without its query and fragment, and as '~/path'
    (sentry-cli's --url-prefix '~/...'), each with and without the query."""
    out = []
    parts = urllib.parse.urlsplit(abs_path)
    plain = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))
    for candidate in (abs_path, plain):
        if candidate not in out:
            out.append(candidate)
    if parts.scheme and parts.netloc:
        for candidate in ('~' + parts.path + ('?' + parts.query if parts.query else ''), '~' + parts.path):
            if candidate not in out:
                out.append(candidate)
    return out


USELESS_FUNCTION_NAMES = frozenset(('function', '__webpack_require__', '__webpack_modules__', '<anonymous>',
                                    'eval', 'Function', 'Error', 'Object'))


def map_frame(frame, token, smap, map_url, caller_token=None, scope_name=None):
    """A minified frame (dict in the event model's shape) and its token ->
    the original frame: file, line, column, context from sourcesContent, and
    the function's original name: the name the map gives the enclosing
    function's declaration (scope_name), else the one at the caller's call
    site (the token there names the function called, which is this frame's
    function), else the minified name stays."""
    out = {key: value for key, value in frame.items()
           if key not in ('contextLine', 'preContext', 'postContext')}
    abs_path = join_url(map_url, token.source)
    out['absPath'] = abs_path
    out['filename'] = source_filename(abs_path) or abs_path
    out['lineno'] = token.line + 1
    out['colno'] = token.column + 1
    for name in (scope_name, caller_token.name if caller_token is not None else None):
        if name and name not in USELESS_FUNCTION_NAMES:
            out['function'] = name
            break
    lines = smap.source_lines(token)
    if lines is None:
        out['sourceMap'] = {'url': map_url, 'note': 'missing_source_content'}
    else:
        pre, line, post = context_around(lines, token.line + 1, token.column)
        if line is not None:
            out['contextLine'] = line
            if pre:
                out['preContext'] = pre
            if post:
                out['postContext'] = post
        out['sourceMap'] = {'url': map_url}
    return out


IDENTIFIER_START = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$')
IDENTIFIER_PART = IDENTIFIER_START | frozenset('0123456789')
DECLARATION_WINDOW = 64 << 10  # how far back from a frame its function's declaration is looked for (13 rfind each)


def minified_function_name(name):
    """The identifier a JavaScript engine names a frame's function by:
    "Object.e", "new e", "async e", "e [as onclick]" -> "e"; None when it is
    not a plain identifier (anonymous, <anonymous>, eval)."""
    if not name or name.__class__ is not str or len(name) > 200:
        return None
    name = name.split(' [as ', 1)[0]
    for prefix in ('new ', 'async '):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = name.rsplit('.', 1)[-1]
    if not name or name[0] not in IDENTIFIER_START or not IDENTIFIER_PART.issuperset(name):
        return None
    return name


def declaration_column(text, name, before):
    """Where the minified code declares the function `name` that encloses
    column `before`: the column of the identifier in the closest
    `function name(`, `name=function`, `name=(...)=>`, `name:function` or
    method `{name(` / `,name(` / `}name(` before it; None if there is none.
    Plain substring searches, so client text never meets a regular expression."""
    start = max(0, before - DECLARATION_WINDOW)
    best = None
    for pattern, offset, check_before in (
            ('function ' + name + '(', 9, False), ('function ' + name + ' (', 9, False),
            ('function*' + name + '(', 9, False), ('function* ' + name + '(', 10, False),
            (name + '=function', 0, True), (name + ' = function', 0, True), (name + '=(', 0, True),
            (name + '=async', 0, True), (name + ':function', 0, True),
            ('{' + name + '(', 1, False), (',' + name + '(', 1, False), ('}' + name + '(', 1, False),
            ('async ' + name + '(', 6, False)):
        at = text.rfind(pattern, start, before + len(pattern))
        while at >= 0 and check_before and at > 0 and (text[at - 1] in IDENTIFIER_PART or text[at - 1] == '.'):
            at = text.rfind(pattern, start, at + len(pattern) - 1)
        if at >= 0 and at + offset <= before and (best is None or at + offset > best):
            best = at + offset
    return best


# -- resolving frames, on ingest --

def looks_like_script(url):
    """Frames worth mapping: a script URL (http(s), app://, file, '~/') or a
    .js/.mjs/.cjs file."""
    if not url or url.__class__ is not str:
        return False
    head = url[:8].lower()
    if head.startswith(('http://', 'https://', 'app://', 'file://', '~/')):
        return True
    tail = url.rsplit('?', 1)[0].lower()
    return tail.endswith(('.js', '.mjs', '.cjs', '.jsx', '.ts', '.tsx'))


def source_mapping_url(text):
    """The last `//# sourceMappingURL=...` (or `//@`) of a script, found by
    plain string search from the end (no regular expression over client text)."""
    tail = text[-4096:]
    for marker in ('//# sourceMappingURL=', '//@ sourceMappingURL='):
        at = tail.rfind(marker)
        if at >= 0:
            value = tail[at + len(marker):].split('\n', 1)[0].strip()
            return value or None
    return None


def inline_map(url):
    """A data: URL's source map bytes (base64 or plain)."""
    head, _, payload = url.partition(',')
    try:
        if head.endswith(';base64'):
            return base64.b64decode(payload, validate=False)
        return urllib.parse.unquote_to_bytes(payload)
    except (ValueError, binascii.Error):
        raise SourceMapError('invalid_base64_sourcemap', 'the inline source map cannot be decoded')


class ScriptLines(object):
    """A minified file split into lines as JavaScript counts them."""

    def __init__(self, text):
        self.lines = [line[:-1] if line.endswith('\r') else line for line in text.split('\n')] if text else []
        self.weight = len(text) * 2 + 1000


class SourceMapResolver(object):
    """Maps minified JavaScript frames to their original source, on ingest.
    Parsed maps stay in an LRU bounded by their estimated size (a map is
    parsed once, not per event); where each frame's map lives is remembered
    too, so a warm event costs no query. Both caches are keyed by the store's
    bundle generation: an upload makes every earlier answer stale."""

    CACHE_BYTES = 32 << 20   # parsed maps and minified files, by estimated size
    LOOKUP_ENTRIES = 4096
    MAX_IMAGES = 200

    def __init__(self, store):
        self.bundles = store.sourcemaps
        self._maps = collections.OrderedDict()     # (bundle row, path) -> SourceMap or SourceMapError
        self._weight = 0
        self._lookups = collections.OrderedDict()  # (generation, project, key) -> (bundle, path, map url) or error
        self._lock = threading.Lock()
        self._parse_locks = {}
        self._scopes = collections.OrderedDict()   # (script, line, column, minified name) -> original name
        self._stacks = collections.OrderedDict()   # (generation, project, frames...) -> (mapped frames, bundles used)
        self.parsed = 0          # maps parsed since start (tests and the bench read it)
        self.used = set()        # bundle rows used since the last flush_used()

    def resolve(self, project_id, event, debug_meta=None, dist=None):
        """Map the frames of an event in the model's shape, in place. Mapped
        frames replace the minified ones in `frames`; the minified ones stay
        in `rawFrames` beside them; a frame that cannot be mapped keeps its
        place and carries `sourceMapError` ({type, message}). Returns whether
        anything changed (the caller's grouping is then refreshed)."""
        if project_id not in self.bundles.projects_with_bundles():
            return False
        images = {}
        listed = debug_meta.get('images') if isinstance(debug_meta, dict) else None
        for image in listed if isinstance(listed, list) else ():
            if len(images) >= self.MAX_IMAGES:
                break
            if isinstance(image, dict) and image.get('type') == 'sourcemap' and isinstance(image.get('code_file'), str):
                debug_id = normalize_debug_id(image.get('debug_id'))
                if debug_id:
                    images[image['code_file']] = debug_id
        release = event.get('release')
        dist = dist if isinstance(dist, str) else None
        changed = False
        holders = list(event.get('exception') or [])
        if event.get('stacktrace'):
            holders.append(event['stacktrace'])
        for holder in holders:
            frames = holder.get('frames')
            if not frames:
                continue
            mapped = self._map_frames(project_id, frames, images, release, dist)
            if mapped is not None:
                holder['rawFrames'], holder['frames'] = frames, mapped
                changed = True
        if changed:
            finish_grouping(event)
        return changed

    # What a browser frame carries; frames with more (vars...) are mapped afresh each time.
    PLAIN_FRAME_KEYS = frozenset(('filename', 'absPath', 'function', 'lineno', 'colno', 'inApp', 'module'))
    STACK_ENTRIES = 512

    def _map_frames(self, project_id, frames, images, release, dist):
        """The mapped frames, or None when no frame is a script. A stack seen
        before (a flood repeats the same few) is answered from memory."""
        key = None
        if all(self.PLAIN_FRAME_KEYS.issuperset(f) for f in frames):
            key = (self.bundles.generation, project_id, release, dist, tuple(
                (f.get('absPath') or f.get('filename'), f.get('lineno'), f.get('colno'), f.get('function'),
                 f.get('inApp'), f.get('module'), images.get(f.get('absPath') or f.get('filename'))) for f in frames))
            with self._lock:
                hit = self._stacks.get(key)
                if hit is not None:
                    self._stacks.move_to_end(key)
            if hit is not None:
                mapped, used = hit
                self.used.update(used)
                return None if mapped is None else [dict(f) for f in mapped]
        used = set()
        mapped = self._map_frames_afresh(project_id, frames, images, release, dist, used)
        self.used.update(used)
        if key is not None:
            with self._lock:
                self._stacks[key] = (mapped, frozenset(used))
                while len(self._stacks) > self.STACK_ENTRIES:
                    self._stacks.popitem(last=False)
            return None if mapped is None else [dict(f) for f in mapped]
        return mapped

    def _map_frames_afresh(self, project_id, frames, images, release, dist, used):
        out, caller, attempted = [], None, False
        for f in frames:  # outermost first: each frame's caller is the one before it
            url = f.get('absPath') or f.get('filename')
            if not looks_like_script(url):
                out.append(f)
                caller = None
                continue
            attempted = True
            try:
                smap, map_url, how, script = self._map_for(project_id, url, images, release, dist, used)
                lineno, colno = f.get('lineno'), f.get('colno')
                if colno is None:
                    raise SourceMapError('no_column', 'the frame has no column, which a minified file needs')
                if not lineno or lineno < 1 or colno < 1:
                    raise SourceMapError('invalid_location', 'line %s, column %s' % (lineno, colno))
                token = smap.lookup(lineno - 1, colno - 1)
                if token is None:
                    raise SourceMapError('invalid_location', 'nothing maps to line %d, column %d' % (lineno, colno))
                scope = self._scope_name(script, smap, lineno - 1, colno - 1, f.get('function'))
                new = map_frame(f, token, smap, map_url, caller, scope)
                new['sourceMap']['resolvedWith'] = how
                out.append(new)
                caller = token
            except SourceMapError as exc:
                out.append(dict(f, sourceMapError={'type': exc.kind, 'message': clip(exc.message, 300)}))
                caller = None
            except ValueError as exc:   # urlsplit refuses a URL such as 'http://[x/app.js' (frame or map source)
                out.append(dict(f, sourceMapError={'type': 'invalid_abs_path', 'message': clip(str(exc), 300)}))
                caller = None
        return out if attempted else None

    # -- where a frame's map is --

    def _map_for(self, project_id, url, images, release, dist, used):
        debug_id = images.get(url)
        if debug_id:
            key = (self.bundles.generation, project_id, 'debug-id', debug_id)
        elif release:
            key = (self.bundles.generation, project_id, 'release', release, dist or '', url)
        else:
            raise SourceMapError('missing_sourcemap', 'the event names no debug id for this file and no release')
        with self._lock:
            found = self._lookups.get(key)
            if found is not None:
                self._lookups.move_to_end(key)
        if found is None:
            try:
                found = self._find(project_id, url, debug_id, release, dist)
            except SourceMapError as exc:
                found = exc
            except ValueError as exc:   # a URL urlsplit refuses: remembered like any other failed lookup
                found = SourceMapError('invalid_abs_path', str(exc))
            with self._lock:
                self._lookups[key] = found
                while len(self._lookups) > self.LOOKUP_ENTRIES:
                    self._lookups.popitem(last=False)
        if isinstance(found, SourceMapError):
            raise found
        bundle, path, map_url, inline, script = found
        used.add(bundle)
        return self._parsed(bundle, path, inline), map_url, 'debug-id' if debug_id else 'release', script

    def _find(self, project_id, url, debug_id, release, dist):
        """(bundle row, map file path, map URL, inline data URL or None, and
        (bundle row, path) of the minified file when it was uploaded too)."""
        if debug_id:
            row = self.bundles.file_by_debug_id(project_id, debug_id, 'source_map')
            if row is None:
                raise SourceMapError('missing_sourcemap', 'no source map uploaded with debug id %s' % debug_id)
            script = self.bundles.file_by_debug_id(project_id, debug_id, 'minified_source')
            return row[0], row[1], row[2], None, (script[0], script[1]) if script else None
        script = self.bundles.file_by_url(project_id, release, dist, release_file_candidates(url),
                                          ('minified_source', 'source'))
        if script is None:
            raise SourceMapError('missing_source', 'release %s has no file for %s' % (release, url))
        bundle, path, script_url, reference = script[0], script[1], script[2], script[3]
        if not reference:
            data = self.bundles.bundle_data(bundle)
            try:
                text = read_bundle_file(data, path).decode('utf-8', 'replace') if data else ''
            except BundleError as exc:
                raise SourceMapError('missing_source', str(exc))
            reference = source_mapping_url(text)
        if not reference:
            raise SourceMapError('missing_sourcemap', '%s names no source map' % script_url)
        if reference.startswith('data:'):
            return bundle, path, script_url, reference, (bundle, path)
        map_url = join_url(script_url, reference)
        found = self.bundles.file_by_url(project_id, release, dist, release_file_candidates(map_url), ('source_map',))
        if found is None:
            raise SourceMapError('missing_sourcemap', 'release %s has no source map %s' % (release, map_url))
        return found[0], found[1], found[2], None, (bundle, path)

    # -- function names from the minified file --

    SCOPE_ENTRIES = 8192
    SCOPE_LINES_BACK = 200

    def _scope_name(self, script, smap, line, column, function):
        """The original name of the function a minified frame is in: find its
        declaration in the minified file (before the frame's position) and
        take the name the map gives that identifier. Remembered per position."""
        name = minified_function_name(function)
        if script is None or name is None:
            return None
        key = (script, line, column, name)
        with self._lock:
            if key in self._scopes:
                return self._scopes[key]
        lines = self._script_lines(*script)
        found, budget = None, DECLARATION_WINDOW
        for number in range(min(line, len(lines) - 1), max(-1, line - self.SCOPE_LINES_BACK), -1):
            text = lines[number]
            before = column if number == line else len(text)
            at = declaration_column(text, name, before)
            if at is not None:
                token = smap.lookup(number, at, exact=True)
                found = token.name if token is not None else None
                break
            budget -= before
            if budget <= 0:
                break
        with self._lock:
            self._scopes[key] = found
            while len(self._scopes) > self.SCOPE_ENTRIES:
                self._scopes.popitem(last=False)
        return found

    def _script_lines(self, bundle, path):
        """The minified file's lines (cached with the parsed maps); [] when unreadable."""
        key = (bundle, path, 'lines')
        with self._lock:
            hit = self._maps.get(key)
        if hit is None:
            data = self.bundles.bundle_data(bundle)
            try:
                text = read_bundle_file(data, path).decode('utf-8', 'replace') if data else ''
            except BundleError:
                text = ''
            hit = ScriptLines(text)
            self._remember(key, hit)
        return hit.lines

    def _remember(self, key, value):
        with self._lock:
            if key in self._maps:
                return
            self._maps[key] = value
            self._weight += getattr(value, 'weight', 1000)
            while self._weight > self.CACHE_BYTES and len(self._maps) > 1:
                _, dropped = self._maps.popitem(last=False)
                self._weight -= getattr(dropped, 'weight', 1000)

    # -- parsed maps, once each --

    def _parsed(self, bundle, path, inline=None):
        key = (bundle, path, inline is not None)
        with self._lock:
            hit = self._maps.get(key)
            if hit is not None:
                self._maps.move_to_end(key)
            else:
                gate = self._parse_locks.setdefault(key, threading.Lock())
        if hit is None:
            with gate:  # concurrent events needing the same map parse it once
                with self._lock:
                    hit = self._maps.get(key)
                if hit is None:
                    hit = self._parse(bundle, path, inline)
                    with self._lock:
                        self.parsed += 1
                        self._parse_locks.pop(key, None)
                    self._remember(key, hit)
        if isinstance(hit, SourceMapError):
            raise hit
        return hit

    def _parse(self, bundle, path, inline):
        try:
            if inline is not None:
                return parse_source_map(inline_map(inline))
            data = self.bundles.bundle_data(bundle)
            if data is None:
                return SourceMapError('missing_sourcemap', 'the bundle is gone')
            return parse_source_map(read_bundle_file(data, path))
        except SourceMapError as exc:
            return exc
        except BundleError as exc:
            return SourceMapError('malformed_sourcemap', str(exc))

    def flush_used(self):
        """Tell the store which bundles events used (for retention)."""
        used, self.used = self.used, set()
        if used:
            self.bundles.touch(sorted(used))


# -- the web API sentry-cli calls (/api/0/...) --

def parse_multipart(body, content_type, max_parts=100):
    """A multipart/form-data body -> [(field name, filename, bytes)]. Strict
    and small: the boundary from the header, parts split on it by plain byte
    search, each part's Content-Disposition read by splitting on ';' and '='."""
    kind, _, params = (content_type or '').partition(';')
    if kind.strip().lower() != 'multipart/form-data':
        raise ApiError(400, 'expected a multipart/form-data body')
    boundary = None
    for param in params.split(';'):
        name, _, value = param.strip().partition('=')
        if name.lower() == 'boundary':
            boundary = value.strip().strip('"')
    if not boundary or len(boundary) > 200:
        raise ApiError(400, 'the multipart body has no boundary')
    delimiter = b'--' + boundary.encode('latin-1')
    # found one part at a time up to the close: a body of delimiters alone never becomes millions of pieces
    pieces, at = [], body.find(delimiter)
    while True:
        if at < 0:
            raise ApiError(400, 'the multipart body is truncated')
        start = at + len(delimiter)
        if body.startswith(b'--', start):
            break
        if len(pieces) >= max_parts:
            raise ApiError(400, 'too many parts in the multipart body')
        at = body.find(delimiter, start)
        if at < 0:
            raise ApiError(400, 'the multipart body is truncated')
        pieces.append(body[start:at])
    parts = []
    for piece in pieces:
        if not piece.startswith(b'\r\n') or not piece.endswith(b'\r\n'):
            raise ApiError(400, 'malformed multipart part')
        head, separator, data = piece[2:-2].partition(b'\r\n\r\n')
        if not separator:
            raise ApiError(400, 'malformed multipart part')
        field = filename = None
        for line in head.decode('latin-1').split('\r\n'):
            name, _, value = line.partition(':')
            if name.strip().lower() != 'content-disposition':
                continue
            for param in value.split(';')[1:]:
                key, _, text = param.strip().partition('=')
                text = text.strip().strip('"')
                if key.lower() == 'name':
                    field = text
                elif key.lower() == 'filename':
                    filename = text
        parts.append((field, filename, data))
    return parts


SHA1_HEX = frozenset('0123456789abcdef')


def is_sha1(value):
    return value.__class__ is str and len(value) == 40 and SHA1_HEX.issuperset(value)


def sentry_api_error(status, message, code=None, details=None, headers=None):
    """Sentry's web API form, which sentry-cli prints: {"detail": "..."} alone
    (a second key would make the CLI print "request failure" instead)."""
    return no_cors(reply({'detail': message}, status, headers))


def no_cors(body):
    """The upload API and token management are for CLIs, never for pages:
    without Access-Control-Allow-Origin no other origin can read them."""
    bottle.response.headers.pop('Access-Control-Allow-Origin', None)
    bottle.response.headers.pop('Access-Control-Expose-Headers', None)
    return body


def release_info(release, projects):
    """A release as sentry-cli's ReleaseInfo reads it."""
    return {'version': release['version'], 'shortVersion': release['version'], 'url': release.get('url'),
            'dateCreated': iso(release['created']), 'dateReleased': iso(release['date_released']),
            'lastEvent': None, 'newGroups': 0, 'commitCount': 0, 'deployCount': 0, 'lastCommit': None,
            'lastDeploy': None, 'authors': [], 'ref': None,
            'projects': [{'id': str(p['id']), 'slug': slugify(p['name']) or str(p['id']), 'name': p['name']}
                         for p in projects]}


def mount_sourcemap_api(app, ctx):
    store = ctx.store
    bundles = store.sourcemaps
    route = lambda path, method='GET': lambda fn: app.route(path, method=method)(
        guarded(sentry_api_error)(lambda *a, **k: no_cors(fn(*a, **k))))

    def token_scope():
        """None for the admin token (every project), else the one project id
        an upload token belongs to; 401 otherwise."""
        given = header('Authorization') or ''
        if not given.startswith('Bearer '):
            raise ApiError(401, 'Authentication credentials were not provided.')
        token = given[7:].strip()
        admin = ctx.settings['admin_token']
        if admin and keys_equal(token, admin):
            return None
        project_id = bundles.project_of_token(token) if 0 < len(token) <= 200 else None
        if project_id is None:
            raise ApiError(401, 'Invalid token')
        return project_id

    def visible_projects(scope):
        return [p for p in store.projects() if scope is None or p['id'] == scope]

    def projects_for(slugs, scope, status=400):
        """Project slugs (our project names, as slugs or as written, or ids)
        -> projects; every one must exist and be the token's."""
        out = []
        for slug in slugs:
            if not isinstance(slug, str) or not slug or len(slug) > 200:
                raise ApiError(400, 'The projects field is required and must be provided as an array of strings.')
            named = [p for p in store.projects() if p['name'] == slug or slugify(p['name']) == slug
                     or (slug.isdecimal() and str(p['id']) == slug)]
            if not named:
                raise ApiError(status, 'project %s not found (projects are matched by name)' % slug)
            if len(named) > 1:
                raise ApiError(400, 'several projects are named %s: use the project id' % slug)
            if scope is not None and named[0]['id'] != scope:
                raise ApiError(403, 'this token may only upload to its own project')
            out.append(named[0])
        return out

    # -- what the CLI asks before uploading --

    @route('/api/0/')
    def auth_info():
        scope = token_scope()
        return reply({'version': '0', 'user': None,
                      'auth': {'scopes': ['org:read', 'project:read', 'project:releases', 'project:write'],
                               'project': scope}})

    @route('/api/0/organizations/<org>/')
    def organization(org):
        token_scope()
        return reply({'id': '1', 'slug': org, 'name': org})

    @route('/api/0/organizations/<org>/projects/')
    def organization_projects(org):
        scope = token_scope()
        return reply([{'id': str(p['id']), 'slug': slugify(p['name']) or str(p['id']), 'name': p['name']}
                      for p in visible_projects(scope)])

    # -- chunks --

    @route('/api/0/organizations/<org>/chunk-upload/')
    def chunk_options(org):
        token_scope()
        return reply({'url': '%s/api/0/organizations/%s/chunk-upload/' % (ctx.base_url(), urllib.parse.quote(org)),
                      'chunkSize': CHUNK_SIZE, 'chunksPerRequest': CHUNKS_PER_REQUEST,
                      'maxFileSize': MAX_BUNDLE_BYTES, 'maxRequestSize': MAX_CHUNK_REQUEST, 'concurrency': 4,
                      'hashAlgorithm': 'sha1', 'compression': ['gzip'], 'maxWait': 60,
                      'accept': ['release_files', 'artifact_bundles', 'artifact_bundles_v2']})

    @route('/api/0/organizations/<org>/chunk-upload/', 'POST')
    def chunk_upload(org):
        token_scope()
        parts = parse_multipart(read_body(LIMIT_CHUNK_UPLOAD), bottle.request.environ.get('CONTENT_TYPE'),
                                CHUNKS_PER_REQUEST + 1)
        chunks, total = [], 0
        for field, checksum, data in parts:
            if field not in ('file', 'file_gzip'):
                continue
            if len(chunks) >= CHUNKS_PER_REQUEST:
                raise ApiError(400, 'Too many chunks')
            if not is_sha1(checksum):
                raise ApiError(400, 'a chunk must be named by the sha1 of its content')
            if field == 'file_gzip':
                try:
                    data = decompress(data, 'gzip', CHUNK_SIZE)
                except ApiError as exc:
                    raise ApiError(400, 'Chunk size too large' if exc.status == 413 else exc.message)
            if len(data) > CHUNK_SIZE:
                raise ApiError(400, 'Chunk size too large')
            if hashlib.sha1(data).hexdigest() != checksum:
                raise ApiError(400, 'Checksum mismatch: chunk %s has sha1 %s' % (checksum, hashlib.sha1(data).hexdigest()))
            total += len(data)
            if total > MAX_CHUNK_REQUEST:
                raise ApiError(400, 'Request too large')
            chunks.append((checksum, data))
        if chunks:
            if bundles.pending_chunk_bytes() + total > MAX_PENDING_CHUNKS:
                raise ApiError(400, 'too many chunks are waiting to be assembled (%d bytes at most)'
                               % MAX_PENDING_CHUNKS)
            bundles.add_chunks(chunks)
        return reply({})

    # -- assembling --

    def assemble(project_ids, checksum, chunks, version, dist, legacy=False):
        if bundles.bundle_with_checksum(project_ids, checksum):
            return reply({'state': 'ok', 'missingChunks': [], 'detail': None})
        missing = bundles.missing_chunks(chunks)
        if missing or not chunks:
            return reply({'state': 'not_found', 'missingChunks': missing})
        try:
            data = bundles.chunk_data(chunks, MAX_BUNDLE_BYTES)
            if data is None:  # pruned between the two queries
                return reply({'state': 'not_found', 'missingChunks': bundles.missing_chunks(chunks)})
            if hashlib.sha1(data).hexdigest() != checksum:
                raise BundleError('Reported checksum mismatch: the chunks joined do not have the sha1 %s' % checksum)
            attributes, files = read_bundle(data)
            if legacy and attributes.get('release', version) != version:
                raise BundleError('release does not match uploaded bundle')
            release, dist = version or attributes.get('release'), dist or attributes.get('dist')
            if not release and not any(f['debug_id'] for f in files):
                raise BundleError('uploading a bundle without debug ids or release is prohibited')
        except BundleError as exc:
            raise ApiError(400, str(exc))
        bundles.store_bundle(project_ids, checksum, chunks, data, attributes, files, release, dist)
        return reply({'state': 'ok', 'missingChunks': [], 'detail': None})

    def assemble_request(legacy=False):
        data = parse_json(read_body(LIMIT_READ_API))
        if not isinstance(data, dict):
            raise ApiError(400, 'Invalid json body')
        checksum, chunks = data.get('checksum'), data.get('chunks')
        if not is_sha1(checksum):
            raise ApiError(400, 'The checksum field is required and must be a 40-character hexadecimal string.')
        if not isinstance(chunks, list) or len(chunks) > 10000 or not all(is_sha1(c) for c in chunks):
            raise ApiError(400, 'The chunks field is required and must be provided as an array of '
                                '40-character hexadecimal strings.')
        return data, checksum, chunks

    @route('/api/0/organizations/<org>/artifactbundle/assemble/', 'POST')
    def assemble_artifact_bundle(org):
        scope = token_scope()
        data, checksum, chunks = assemble_request()
        slugs, version, dist = data.get('projects'), data.get('version'), data.get('dist')
        if not isinstance(slugs, list) or not slugs or len(slugs) > 100:
            raise ApiError(400, 'You need to specify at least one project')
        if version is not None and (not isinstance(version, str) or not version or '/' in version
                                    or len(version) > 200):
            raise ApiError(400, 'The version field cannot be empty and cannot contain any "/" characters.')
        if dist is not None and (not isinstance(dist, str) or len(dist) > 64):
            raise ApiError(400, 'The dist field must be a string.')
        if dist and not version:
            raise ApiError(400, 'You need to specify a release together with a dist')
        project_ids = [p['id'] for p in projects_for(slugs, scope)]
        return assemble(project_ids, checksum, chunks, version, dist)

    @route('/api/0/organizations/<org>/releases/<version>/assemble/', 'POST')
    def assemble_release_files(org, version):
        scope = token_scope()
        data, checksum, chunks = assemble_request(legacy=True)
        release = bundles.release([p['id'] for p in visible_projects(scope)], version)
        if release is None:
            raise ApiError(404, 'release %s not found (create it first: sentry-cli releases new)' % version)
        return assemble(release['project_ids'], checksum, chunks, version, None, legacy=True)

    # -- releases --

    def new_release(scope, slugs, status=400):
        data = parse_json(read_body(LIMIT_READ_API))
        if not isinstance(data, dict):
            raise ApiError(400, 'Invalid json body')
        version = data.get('version')
        if not isinstance(version, str) or not version.strip() or '/' in version or len(version) > 200 \
                or version in ('.', '..') or any(c in version for c in '\r\n\t\x00'):
            raise ApiError(400, 'version: a release version may not be empty, contain "/" or newlines, '
                                'or be longer than 200 characters')
        if slugs is None:
            slugs = data.get('projects')
            if not isinstance(slugs, list):
                raise ApiError(400, 'projects: this field is required')
        if not slugs and scope is not None:
            projects = visible_projects(scope)
        else:
            projects = projects_for(slugs, scope, status)
        if not projects:
            raise ApiError(400, 'projects: at least one project is required')
        url = data.get('url') if isinstance(data.get('url'), str) else None
        released = parse_timestamp(data.get('dateReleased'), 'dateReleased') if data.get('dateReleased') else None
        bundles.save_release([p['id'] for p in projects], version, clip(url, 2048), released)
        return reply(release_info(bundles.release([p['id'] for p in projects], version), projects), 201)

    @route('/api/0/organizations/<org>/releases/', 'POST')
    def create_release(org):
        return new_release(token_scope(), None)

    @route('/api/0/projects/<org>/<project>/releases/', 'POST')
    def create_project_release(org, project):
        return new_release(token_scope(), [project], status=404)

    def releases_of(projects):
        rows = {}
        for p in projects:
            for version in bundles.release_versions(p['id']):
                rows.setdefault(version, []).append(p)
        return [release_info(bundles.release([p['id'] for p in ps], v), ps) for v, ps in sorted(rows.items())]

    @route('/api/0/organizations/<org>/releases/')
    def list_releases(org):
        return reply(releases_of(visible_projects(token_scope())))

    @route('/api/0/projects/<org>/<project>/releases/')
    def list_project_releases(org, project):
        return reply(releases_of(projects_for([project], token_scope(), 404)))

    def one_release(projects, version):
        release = bundles.release([p['id'] for p in projects], version)
        if release is None:
            raise ApiError(404, 'The requested resource does not exist')
        return release, [p for p in projects if p['id'] in release['project_ids']]

    def release_projects(project):
        scope = token_scope()
        return visible_projects(scope) if project is None else projects_for([project], scope, 404)

    def show_release(org, version, project=None):
        release, projects = one_release(release_projects(project), version)
        return reply(release_info(release, projects))

    def update_release(org, version, project=None):
        release, projects = one_release(release_projects(project), version)
        data = parse_json(read_body(LIMIT_READ_API))
        if not isinstance(data, dict):
            raise ApiError(400, 'Invalid json body')
        released = parse_timestamp(data.get('dateReleased'), 'dateReleased') if data.get('dateReleased') else None
        url = data.get('url') if isinstance(data.get('url'), str) else None
        bundles.save_release(release['project_ids'], version, clip(url, 2048), released)
        return reply(release_info(bundles.release(release['project_ids'], version), projects))

    # `releases info` and `releases finalize`: 3.x asks the organization, 2.x the project
    for prefix in ('/api/0/organizations/<org>', '/api/0/projects/<org>/<project>'):
        route(prefix + '/releases/<version>/')(show_release)
        route(prefix + '/releases/<version>/', 'PUT')(update_release)


###############################################################################
# Read API (/api/v1/...) ######################################################
###############################################################################
# Owns the JSON the viewer and scripts read: issues, events and every other
# kind of data, paged with opaque cursors. The store hands over model objects
# and rows named by their columns; every answer is shaped here: its field
# names (camelCase) and its times (ISO-8601). A project key reads its own
# project and nothing else. Errors answer {"error": "..."}.


def found(value, what):
    """value, or a 404 naming what is not in the key's project."""
    if not value:
        raise ApiError(404, 'no such %s in this project' % what)
    return value


def read_api_error(status, message, code=None, details=None, headers=None):
    body = {'error': message}
    if details:
        body['details'] = details
    return reply(body, status, headers)


def encode_cursor(value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return '~'.join(repr(v) if isinstance(v, float) else str(v) for v in value)
    return str(value)


def decode_cursor(text, parts=1):
    if not text:
        return None
    try:
        values = [float(p) if ('.' in p or 'e' in p) else int(p) for p in text.split('~')]
    except ValueError:
        raise ApiError(400, 'invalid cursor')
    if len(values) != parts or any(abs(v) >= 1 << 63 or v != v for v in values):
        raise ApiError(400, 'invalid cursor')
    return tuple(values) if parts > 1 else values[0]


def decode_replay_cursor(text):
    if not text:
        return None
    last_ms, _, session_id = text.partition('~')
    if not last_ms.isdigit() or len(last_ms) > 18 or not session_id:
        raise ApiError(400, 'invalid cursor')
    return int(last_ms), session_id


def choice_param(name, choices, default=None):
    value = bottle.request.query.getunicode(name)
    if value in (None, ''):
        return default
    if value not in choices:
        raise ApiError(400, '%s must be one of %s' % (name, ', '.join(choices)))
    return value


def text_param(name, limit=500):
    value = bottle.request.query.getunicode(name)
    return value[:limit] if value else None


def with_times(item, *fields):
    """item with the named epoch-second fields as ISO-8601 text."""
    out = dict(item)
    for field in fields:
        out[field] = iso(item[field])
    return out


def issue_json(issue):
    """An issue (Issues._row); searched with event terms, its count and
    histogram are the matching events' and totalCount is all of them."""
    out = {'id': issue['id'], 'title': issue['title'], 'culprit': issue['culprit'], 'type': issue['type'],
           'value': issue['value'], 'level': issue['level'], 'status': issue['status'],
           'regression': issue['regression'], 'count': issue['count'], 'firstSeen': iso(issue['first_seen']),
           'lastSeen': iso(issue['last_seen']), 'lastRelease': issue['last_release'], 'releases': issue['releases'],
           'environments': issue['environments'], 'seq': issue['seq'], 'firstRelease': issue['first_release'],
           'regressedIn': issue['regressed_in'], 'histogram24h': issue['hours'], 'userCount': issue['users'],
           'statusDetails': {'inNextRelease': True, 'afterRelease': issue['resolved_after']}
           if issue['in_next_release'] else {}}
    if 'matching_count' in issue:
        out.update(count=issue['matching_count'], totalCount=issue['count'], histogram24h=issue['matching_hours'])
    return out


def release_json(release):
    """A release (Releases._row; issues only when shown alone)."""
    out = {'version': release['version'], 'firstSeen': iso(release['first_seen']),
           'lastSeen': iso(release['last_seen']), 'environments': release['environments'],
           'events': release['events'], 'newIssues': release['new_issues']}
    if 'issues' in release:
        out['issues'] = release['issues']
    return out


def http_stats_json(stats):
    classes, by_code = {}, {}
    for code, count in stats['status_codes']:
        label = '%dxx' % (code // 100) if code else '0'
        classes[label] = classes.get(label, 0) + count
        by_code[str(code or 0)] = by_code.get(str(code or 0), 0) + count  # no status (no answer): "0"
    overall = stats['percentiles']
    return {'count': stats['count'], 'p50': overall.get(50), 'p95': overall.get(95), 'p99': overall.get(99),
            'statusCodes': by_code, 'statusClasses': classes,
            'histogram': [{'le': bound_ms, 'count': count} for bound_ms, count in stats['histogram']],
            'byHost': [{'host': host, 'count': count, 'p50': ranks.get(50), 'p95': ranks.get(95)}
                       for host, count, ranks in stats['hosts']]}


def replay_session_json(session):
    """A replay session (Telemetry._replay_row)."""
    meta = session['meta']
    return {'sessionId': session['session_id'], 'fingerprint': session['fingerprint'],
            'firstSeen': iso(session['first_ms'] / 1000.0), 'lastSeen': iso(session['last_ms'] / 1000.0),
            'events': session['events'], 'urls': session['urls'], 'source': session['source'],
            'errorCount': session['errors'], 'environment': meta.get('environment'), 'release': meta.get('release'),
            'segments': len(meta.get('segments', [])), 'traceIds': meta.get('traceIds', [])}


def replay_event_json(event):
    return {'id': event['id'], 'eventType': event['eventType'], 'eventData': event['eventData'], 'url': event['url'],
            'timestampMillis': event['timestampMs'], 'timestamp': iso(event['timestampMs'] / 1000.0)}


def finite(number, digits):
    """number rounded, or None when it is not a finite number (JSON has no
    Infinity, and a sum of huge floats stored before bounds existed is one)."""
    return round(number, digits) if number is not None and math.isfinite(number) else None


def transaction_summary_json(row):
    return {'name': row['name'], 'count': row['count'], 'errors': row['errors'], 'p50': row['p50_duration_ms'],
            'p95': row['p95_duration_ms'], 'avg': finite(row['avg_duration_ms'], 3),
            'lastSeen': iso(row['last_timestamp'])}


def ai_usage_json(usage):
    """Telemetry.ai_usage as the AI page reads it."""
    sums = lambda row: {'count': row['count'], 'inputTokens': row['input_tokens'], 'outputTokens': row['output_tokens'],
                        'costUsd': finite(row['cost_usd'], 6)}
    return {'totals': dict(sums(usage['totals']), errors=usage['totals']['errors']),
            'byModel': [dict(sums(row), provider=row['provider'], model=row['model'], errors=row['errors'],
                             p50LatencyMs=row['p50_latency_ms']) for row in usage['by_model']],
            'overTime': [dict(sums(row), bucket=iso(row['bucket'])) for row in usage['over_time']],
            'recent': [{'id': row['id'], 'provider': row['provider'], 'model': row['model'],
                        'inputTokens': row['input_tokens'], 'outputTokens': row['output_tokens'],
                        'totalCostUsd': row['cost_usd'], 'latencyMs': row['latency_ms'], 'status': row['status'],
                        'timestamp': iso(row['timestamp'])} for row in usage['recent']]}


def monitor_json(monitor):
    status, expected = monitor_state(monitor)
    # schedule null: made by a Sentry check-in without monitor_config
    return {'slug': monitor['slug'], 'name': monitor['name'], 'schedule': monitor['schedule'] or None,
            'grace': monitor['grace'], 'maxRuntime': monitor['maxRuntime'], 'timezone': monitor['timezone'],
            'status': status, 'lastPing': iso(monitor['lastPing']), 'lastStatus': monitor['lastStatus'],
            'nextExpected': iso(expected), 'created': iso(monitor['created'])}


def waterfall(spans):
    """Spans in waterfall order: each followed by its own children, siblings by
    start, with depth (0 = a child of the root). A span whose parent is not
    among them (or a cycle) stands at the top."""
    by_id = {span['spanId']: span for span in spans if span.get('spanId')}
    children, roots = {}, []
    for span in spans:
        parent = span.get('parentSpanId')
        if parent in by_id and parent != span.get('spanId'):
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    order = lambda span: (span['startMs'] if span.get('startMs') is not None else float('inf'), span.get('spanId') or '')
    out, placed = [], set()
    stack = [(span, 0) for span in sorted(roots, key=order, reverse=True)]
    while stack:
        span, depth = stack.pop()
        if id(span) in placed:
            continue
        placed.add(id(span))
        out.append(dict(span, depth=depth))
        stack.extend((child, depth + 1) for child in sorted(children.get(span.get('spanId'), ()), key=order,
                                                            reverse=True))
    out.extend(dict(span, depth=0) for span in spans if id(span) not in placed)  # parents in a cycle
    return out


def transaction_json(tx):
    """A stored transaction as the read API shows it: spans as a waterfall,
    web vitals from the page-load span and from the vital spans (LCP, CLS,
    INP arrive as spans of their own, often after the page load)."""
    out = {k: v for k, v in tx.items() if k not in ('spans', 'segmentId')}
    vitals = dict(tx.get('webVitals') or {})
    spans = []
    for span in tx.get('spans') or []:
        span = dict(span)
        span.setdefault('attributes', None)
        span['attributes'] = span['attributes'] or {}
        for name, value in span_web_vitals(span['attributes']).items():
            vitals.setdefault(name, value)
        spans.append(span)
    out.update(spans=waterfall(spans), webVitals=vitals, attributes=tx.get('attributes') or {},
               source=tx.get('source') or 'transaction', replayId=tx.get('replayId'),
               segmentSpanId=tx.get('segmentId'), timestamp=iso(tx['timestamp']))
    return out


FEEDBACK_FIELDS = ('id', 'eventId', 'kind', 'message', 'name', 'email', 'url', 'source', 'associatedEventId',
                   'replayId', 'traceId', 'environment', 'release')


def feedback_json(item):
    """Feedback (Feedback.list) with event: the error it is about, when stored."""
    out = {field: item.get(field) for field in FEEDBACK_FIELDS}
    out['event'] = {'id': item['event_row'], 'issueId': item['issue_id']} if item['event_row'] is not None else None
    out['timestamp'] = iso(item['timestamp'])
    return out


def public_event(event):
    """A stored event as the read API shows it (times as ISO strings)."""
    out = dict(event)
    out['received'] = iso(event['received'])
    out['timestamp'] = iso(event['timestamp'])
    out['traceId'], out['replayId'] = event_links(event)
    return out


def event_summary(event):
    exceptions = event.get('exception') or []
    message = event.get('message')
    if not message and exceptions:
        raised = exceptions[-1]
        message = '%s: %s' % (raised['type'], raised.get('value', ''))
    return {'id': event['id'], 'issueId': event.get('issueId'), 'eventId': event.get('eventId'),
            'timestamp': iso(event['timestamp']), 'received': iso(event['received']), 'level': event.get('level'),
            'message': message, 'environment': event.get('environment'), 'release': event.get('release'),
            'dialect': event.get('dialect'), 'traceId': event_links(event)[0], 'user': event.get('user')}


TRACE_KINDS = ('transaction', 'span', 'error', 'http_request', 'log', 'ai_generation')  # order within one instant


def trace_items(errors, others):
    """One timeline of a trace: errors (model events) and the other kinds
    (Telemetry.in_trace), spans beside their transactions, as read API items
    sorted by time, then kind, then id."""
    items = []
    for event in errors:
        summary = event_summary(event)
        items.append(dict(kind='error', id=event['id'], timestamp=event['timestamp'], issueId=event['issueId'],
                          title=summary['message'], level=event.get('level'), message=event.get('message'),
                          replayId=event_links(event)[1],
                          spanId=event.get('spanId') or _context_text(event.get('contexts'), 'trace', 'span_id')))
    for item in others:
        item = dict(item)
        if item['kind'] == 'transaction':
            for span in item.pop('spans'):
                start = item['timestamp'] + (span.get('startMs') or 0) / 1000.0
                items.append({'kind': 'span', 'id': item['id'], 'timestamp': start, 'transactionId': item['id'],
                              'spanId': span.get('spanId'), 'parentSpanId': span.get('parentSpanId'),
                              'op': span.get('op'), 'description': span.get('description'),
                              'durationMs': span.get('durationMs'), 'status': span.get('status')})
        items.append(item)
    items.sort(key=lambda x: (x['timestamp'], TRACE_KINDS.index(x['kind']), x['id']))
    return items


def attachment_json(attachment):
    out = {key: attachment[key] for key in Attachments.FIELDS}
    out.update(created=iso(attachment['created']), url='/api/v1/attachments/%d' % attachment['id'])
    return out


def event_answer(store, project_id, event):
    """The event E every read API answer that shows one event carries (the
    event's own route and the issue's navigation alike): its public form plus
    the feedback and attachments that came with it."""
    out = public_event(event)
    out['feedback'] = [feedback_json(item) for item in store.feedback.list(
        project_id, event_id=event['eventId'], limit=100)[0]] if event.get('eventId') else []
    out['attachments'] = [attachment_json(a) for a in store.attachments.of_event(project_id, event.get('eventId'))]
    return out


# Types a browser may be handed as they are: they cannot run script. Anything
# else (html, svg, xml, javascript, pdf, unknown) is a plain download.
INERT_TYPES = ('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'application/json',
               'application/zip', 'application/gzip', 'application/x-tar', 'application/octet-stream')


def served_type(content_type):
    base = (content_type or '').split(';')[0].strip().lower()
    if base in INERT_TYPES:
        return base
    if base.startswith('text/') or base in ('application/x-ndjson', 'application/x-yaml'):
        return 'text/plain; charset=utf-8'  # text/html and friends too: shown as text, never rendered
    return 'application/octet-stream'


def attachment_download(attachment):
    """An attachment's bytes, always as a download that cannot run in our
    origin: Content-Disposition attachment, nosniff, a sandboxing CSP and a
    content type that no browser renders as a page."""
    name, content_type, data = attachment['name'], attachment['contentType'], attachment['data']
    plain = ''.join(c if c.isascii() and (c.isalnum() or c in '._-') else '_' for c in name)[:100] or 'attachment'
    quoted = ''.join(c if c.isascii() and (c.isalnum() or c in '._-~') else
                     ''.join('%%%02X' % b for b in c.encode('utf-8')) for c in name[:200])
    return bottle.HTTPResponse(bytes(data), 200, {
        'Content-Type': served_type(content_type),
        'Content-Disposition': 'attachment; filename="%s"; filename*=UTF-8\'\'%s' % (plain, quoted),
        'Content-Length': str(len(data)),
        'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': "sandbox; default-src 'none'",
        'Cache-Control': 'private, no-store',
        'Referrer-Policy': 'no-referrer'})


def read_route(app):
    """route(path, methods) decorates a read-API handler: every failure answers as read_api_error."""
    return lambda path, method='GET': lambda fn: app.route(path, method=method)(guarded(read_api_error)(fn))


def key_project(store):
    """The project whose key the request carries: a key reads its own project and nothing else."""
    request = bottle.request
    key = header('X-ErrorCapture-Key') or request.query.getunicode('key')
    if not key:
        raise ApiError(401, 'project key required (?key= or X-ErrorCapture-Key)')
    found = store.project_by_key(key.strip())
    if found is None:
        raise ApiError(401, 'unknown project key')
    return found


def limit_param():
    return int_param('limit', 50, minimum=1, maximum=500)


def json_body():
    data = parse_json(read_body(LIMIT_READ_API))
    if not isinstance(data, dict):
        raise ApiError(400, 'body must be a JSON object')
    return data


def mount_projects_api(route, project, ctx):
    """Read API: projects: create, list, show and change settings."""
    store = ctx.store

    @route('/api/v1/projects', 'POST')
    def create_project():
        ctx.require_admin()
        data = json_body() if bottle.request.content_length else {}
        name = data.get('name') or ''
        if not isinstance(name, str):
            raise ApiError(400, 'name must be a string')
        created = store.create_project(name=clip(name.strip(), 200))
        return reply({'project': ctx.project_json(created)}, 201)

    @route('/api/v1/projects')
    def list_projects():
        environ = bottle.request.environ
        if not ctx.settings['admin_token'] and (
                ctx.settings['host'] not in LOOPBACK_HOSTS or ctx.settings['public_url']
                or environ.get('errorcapture.proxied') or environ.get('HTTP_X_REAL_IP') or environ.get('HTTP_VIA')
                or not re.match(r'^(127\.|::1$|::ffff:127\.)', environ.get('REMOTE_ADDR') or '127.0.0.1')):
            # every key at once: without a token only for a local user on a
            # loopback server, never through a proxy (which makes it public)
            raise ApiError(403, 'listing projects needs an admin token on an exposed server (or behind a proxy)')
        ctx.require_admin()
        listed = []
        for item in sorted(store.projects(), key=lambda p: (p['name'].lower(), p['id'])):
            issues, events, last_seen = store.project_counts(item['id'])
            listed.append(dict(ctx.project_json(item), issues=issues, events=events, lastSeen=iso(last_seen)))
        return reply({'projects': listed})

    @route('/api/v1/project')
    def show_project():
        return reply({'project': ctx.project_json(project(), with_settings=True)})

    @route('/api/v1/stats')
    def project_stats():
        current = project()
        count, size = store.attachments.totals(current['id'])
        return reply({'notStored': [{'type': kind, 'count': count, 'lastSeen': iso(last)}
                                    for kind, count, last in store.item_counts.list(current['id'])],
                      'attachments': {'count': count, 'bytes': size}})

    @route('/api/v1/project', ['PUT', 'PATCH', 'POST'])
    def change_project():
        current = project()
        data = json_body()
        settings = dict(current['settings'])
        name = data.get('name')
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ApiError(400, 'name must be a non-empty string')
        for field, (_, low, high) in PROJECT_SETTINGS.items():
            if field in data:
                value = data[field]
                if value is None:
                    settings.pop(field, None)
                elif not (is_int(value) and low <= value <= high):
                    raise ApiError(400, '%s must be an integer from %d to %d' % (field, low, high))
                else:
                    settings[field] = value
        if 'webhookUrl' in data:
            url = data['webhookUrl']
            if url in (None, ''):
                settings.pop('webhookUrl', None)
            else:
                try:
                    webhook_target(url, ctx.settings['allow_private_webhooks'])
                except WebhookRefused as exc:
                    raise ApiError(400, str(exc))
                settings['webhookUrl'] = url
        store.update_project(current['id'], clip(name.strip(), 200) if name else None, settings)
        return reply({'project': ctx.project_json(store.project_by_id(current['id']), with_settings=True)})


ISSUE_SORTS = {'lastSeen': 'last_seen', 'firstSeen': 'first_seen', 'count': 'count'}  # ?sort= -> Issues.SORTS


def mount_issues_api(route, project, ctx):
    """Read API: issues and their error events."""
    store = ctx.store

    def search_query(current, legacy=True):
        """?query= in the search grammar, with the older single filters
        (status, level, environment, q) as terms of their own; 400 for a
        malformed query or a key neither built in nor carried by any event."""
        try:
            query = parse_search(bottle.request.query.getunicode('query'))
        except BadQuery as exc:
            raise ApiError(400, exc.message, details=exc.details())
        status = choice_param('status', ('unresolved', 'resolved', 'ignored', 'all'), 'all')
        level, environment = choice_param('level', LEVELS), text_param('environment', SEARCH_MAX_VALUE)
        text = text_param('q', SEARCH_MAX_VALUE)
        for kind, key, value in (('is', 'is', status if status != 'all' else None), ('level', 'level', level),
                                 ('tag', 'environment', environment), ('text', None, text)):
            if value and legacy:
                query.terms.append(SearchTerm(kind, key, (value,), False, None))
        named = [t for t in query.of('tag', 'has') if t.key not in BUILTIN_TAGS + HIDDEN_TAGS]
        known = store.tags.key_ids(current['id'], {t.key for t in named})
        for term in named:
            if term.key not in known:
                raise ApiError(400, 'unknown search key "%s"' % term.key,
                               details={'key': term.key, 'position': term.position})
        return query

    @route('/api/v1/issues')
    def list_issues():
        current = project()
        sort = ISSUE_SORTS[choice_param('sort', tuple(ISSUE_SORTS), 'lastSeen')]
        changed_since = int_param('changedSince', None)
        query = search_query(current)
        seq = store.current_seq()  # before the query: see current_seq
        issues, next_cursor = store.issues.list(
            current['id'], query, sort=sort, cursor=decode_cursor(bottle.request.query.get('cursor'), 2),
            limit=limit_param(), changed_since=changed_since)
        return reply({'issues': [issue_json(i) for i in issues], 'nextCursor': encode_cursor(next_cursor),
                      'seq': seq})

    def issue_or_404(current, issue_id):
        return found(store.issues.get(current['id'], issue_id), 'issue')

    @route('/api/v1/issues/<issue_id:id>')
    def show_issue(issue_id):
        return reply({'issue': issue_json(issue_or_404(project(), issue_id))})

    @route('/api/v1/issues/<issue_id:id>', ['POST', 'PUT', 'PATCH'])
    def change_issue(issue_id):
        current = project()
        data = json_body()
        status = data.get('status')
        if status not in ('unresolved', 'resolved', 'ignored'):
            raise ApiError(400, 'status must be one of unresolved, resolved, ignored')
        issue_or_404(current, issue_id)
        store.issues.set_status(current['id'], issue_id, status, in_next_release_param(data, status))
        return reply({'issue': issue_json(issue_or_404(current, issue_id))})

    @route('/api/v1/issues/<issue_id:id>/events')
    def list_issue_events(issue_id):
        current = project()
        issue_or_404(current, issue_id)
        since = int_param('since', None)
        events, next_cursor = store.events.of_issue(current['id'], issue_id, decode_cursor(
            bottle.request.query.get('cursor'), 2), limit_param(), since, event_sets(current))
        return reply({'events': [event_summary(e) for e in events],
                      'nextCursor': encode_cursor(next_cursor) if since is None else None,
                      'newestId': store.events.newest_id(current['id'], issue_id)})

    # -- tag facets --

    def facet_value(row, total):
        value, events, first_seen, last_seen = row[:4]
        return {'value': value, 'count': events, 'share': round(events / total, 4) if total else 0,
                'firstSeen': iso(first_seen), 'lastSeen': iso(last_seen)}

    def facet_order(key):
        """The built-ins first, in their own order, then a project's own keys by name."""
        return (BUILTIN_TAGS.index(key), '') if key in BUILTIN_TAGS else (len(BUILTIN_TAGS), key)

    @route('/api/v1/issues/<issue_id:id>/tags')
    def issue_tags(issue_id):
        current = project()
        issue = issue_or_404(current, issue_id)
        top = int_param('top', 10, minimum=1, maximum=50)
        tags = []
        for key, key_id, events, distinct in sorted(store.tags.issue_keys(issue_id), key=lambda r: facet_order(r[0])):
            if key in HIDDEN_TAGS:
                continue
            tags.append({'key': key, 'totalEvents': events, 'uniqueValues': distinct,
                         'topValues': [facet_value(r, issue['count'])
                                       for r in store.tags.issue_values(issue_id, key_id, top)]})
        return reply({'issueCount': issue['count'], 'tags': tags})

    @route('/api/v1/issues/<issue_id:id>/tags/<tag_key:path>')
    def issue_tag_values(issue_id, tag_key):
        current = project()
        issue = issue_or_404(current, issue_id)
        limit = limit_param()
        found_key = [r for r in store.tags.issue_keys(issue_id) if r[0] == tag_key]
        if not found_key:
            raise ApiError(404, 'no event of this issue has the tag %s' % tag_key[:200])
        _, key_id, events, distinct = found_key[0]
        rows = store.tags.issue_values(issue_id, key_id, limit + 1, decode_cursor(
            bottle.request.query.get('cursor'), 2))
        next_cursor = (rows[limit - 1][1], rows[limit - 1][4]) if len(rows) > limit else None
        return reply({'key': tag_key, 'totalEvents': events, 'uniqueValues': distinct,
                      'values': [facet_value(r, issue['count']) for r in rows[:limit]],
                      'nextCursor': encode_cursor(next_cursor)})

    @route('/api/v1/tags')
    def project_tags():
        rows = sorted(store.tags.project_keys(project()['id']), key=lambda r: facet_order(r[0]))
        return reply({'tags': [{'key': key, 'uniqueValues': distinct, 'events': events}
                               for key, events, distinct in rows],
                      'searchKeys': list(SEARCH_KEYS)})

    @route('/api/v1/tags/<tag_key:path>')
    def project_tag_values(tag_key):
        current = project()
        rows = store.tags.project_values(current['id'], tag_key, text_param('prefix', SEARCH_MAX_VALUE),
                                         int_param('limit', 20, minimum=1, maximum=100))
        return reply({'key': tag_key, 'values': [{'value': value, 'count': events, 'lastSeen': iso(last_seen)}
                                                 for value, events, last_seen in rows]})

    def event_sets(current):
        """The event terms of ?query= (tags, release, environment, user), as
        Tags.event_sets: None when no stored event can match."""
        terms = search_query(current, legacy=False).event_terms
        return store.tags.event_sets(current['id'], terms) if terms else ()

    @route('/api/v1/issues/<issue_id:id>/events/<which:re:latest|oldest|[0-9]+>')
    def show_issue_event(issue_id, which):
        current = project()
        issue_or_404(current, issue_id)
        sets = event_sets(current)
        event = None if sets is None else store.events.pick(current['id'], issue_id, which if which in (
            'latest', 'oldest') else int(which), sets)
        event = found(event, 'event of this issue' + (' matching the query' if sets else ''))
        return reply({'event': event_answer(store, current['id'], event),
                      'navigation': store.events.navigation(current['id'], issue_id, event, sets)})

    def in_next_release_param(data, status):
        value = data.get('inNextRelease', False)
        if value not in (True, False) or (value and status != 'resolved'):
            raise ApiError(400, 'inNextRelease must be true or false, and true only with status resolved')
        return value

    @route('/api/v1/releases')
    def list_releases():
        current = project()
        releases, next_cursor = store.releases.list(current['id'], decode_cursor(bottle.request.query.get('cursor'), 2),
                                                    limit_param())
        return reply({'releases': [release_json(r) for r in releases], 'nextCursor': encode_cursor(next_cursor)})

    @route('/api/v1/releases/<version:path>')
    def show_release(version):
        current = project()
        release = found(store.releases.get(current['id'], version), 'release')
        new, _ = store.issues.list(current['id'], SearchQuery([SearchTerm('firstRelease', 'firstRelease', (version,),
                                                                          False, None)]), limit=100)
        regressed, _ = store.issues.list(current['id'], SearchQuery([SearchTerm(
            'regressedIn', 'regressedIn', (version,), False, None)]), limit=100)
        return reply({'release': release_json(release), 'newIssues': [issue_json(i) for i in new],
                      'regressedIssues': [issue_json(i) for i in regressed]})

    @route('/api/v1/issues/merge', 'POST')
    def merge_issues():
        current = project()
        ids = json_body().get('ids')
        if not (isinstance(ids, list) and 2 <= len(set(ids)) and len(ids) <= 100
                and all(is_int(i) and 0 < i < 1 << 62 for i in ids)):
            raise ApiError(400, 'ids must be a list of 2 to 100 issue ids')
        result = found(store.issues.merge(current['id'], list(dict.fromkeys(ids))), 'issue (one of ids)')
        return reply({'issue': issue_json(issue_or_404(current, result[0])), 'merged': result[1]})

    @route('/api/v1/issues/bulk', 'POST')
    def change_issues():
        current = project()
        data = json_body()
        ids, status = data.get('ids'), data.get('status')
        if not (isinstance(ids, list) and 1 <= len(ids) <= 1000 and all(is_int(i) and 0 < i < 1 << 62 for i in ids)):
            raise ApiError(400, 'ids must be a list of 1 to 1000 issue ids')
        if status not in ('unresolved', 'resolved', 'ignored'):
            raise ApiError(400, 'status must be one of unresolved, resolved, ignored')
        ids = list(dict.fromkeys(ids))
        updated = store.issues.set_statuses(current['id'], ids, status, in_next_release_param(data, status))
        return reply({'updated': updated, 'missing': [i for i in ids if i not in set(updated)]})

    @route('/api/v1/traces/<trace_id>')
    def show_trace(trace_id):
        current = project()
        limit = int_param('limit', 1000, minimum=1, maximum=5000)
        trace_id = trace_id[:200]
        errors = store.events.linked(current['id'], 'trace_id', trace_id, limit + 1)
        items = trace_items(errors, store.telemetry.in_trace(current['id'], trace_id, limit))
        if not items:
            raise ApiError(404, 'nothing in this project has that trace id')
        counts = {}
        for item in items:
            counts[item['kind']] = counts.get(item['kind'], 0) + 1
        start = items[0]['timestamp']
        end = max(item['timestamp'] + (item.get('durationMs') or 0) / 1000.0 for item in items)
        return reply({'traceId': trace_id, 'items': [with_times(item, 'timestamp') for item in items[:limit]],
                      'truncated': len(items) > limit or errors.more, 'start': iso(start), 'end': iso(end),
                      'durationMs': round((end - start) * 1000.0, 3), 'counts': counts})

    @route('/api/v1/events')
    def list_events():
        current = project()
        since = int_param('since', None)
        events, next_cursor = store.events.latest(current['id'], decode_cursor(
            bottle.request.query.get('cursor'), 2), limit_param(), since)
        if since is not None:  # the poller's next since is the last id listed
            next_cursor = None
        return reply({'events': [event_summary(e) for e in events], 'nextCursor': encode_cursor(next_cursor)})

    @route('/api/v1/events/<event_id:id>')
    def show_event(event_id):
        current = project()
        return reply({'event': event_answer(store, current['id'], found(store.events.get(current['id'], event_id),
                                                                        'event'))})

    @route('/api/v1/events/<event_id:id>/attachments')
    def list_event_attachments(event_id):
        current = project()
        event = found(store.events.get(current['id'], event_id), 'event')
        return reply({'attachments': [attachment_json(row) for row in
                                      store.attachments.of_event(current['id'], event['eventId'])]})

    @route('/api/v1/attachments/<attachment_id:id>')
    def download_attachment(attachment_id):
        row = found(store.attachments.get(project()['id'], attachment_id), 'attachment')
        return attachment_download(row)


def mount_feedback_api(route, project, ctx):
    """Read API: user feedback, per project and per issue."""
    store = ctx.store

    def feedback_page(current, **which):
        items, next_cursor = store.feedback.list(current['id'], cursor=decode_cursor(
            bottle.request.query.get('cursor'), 2), limit=limit_param(), **which)
        return reply({'feedback': [feedback_json(item) for item in items], 'nextCursor': encode_cursor(next_cursor)})

    @route('/api/v1/feedback')
    def list_feedback():
        return feedback_page(project())

    @route('/api/v1/issues/<issue_id:id>/feedback')
    def list_issue_feedback(issue_id):
        current = project()
        found(store.issues.get(current['id'], issue_id), 'issue')
        return feedback_page(current, issue_id=issue_id)


def mount_http_requests_api(route, project, ctx):
    """Read API: HTTP request telemetry."""
    store = ctx.store

    def http_filters():
        status = text_param('status', 10)
        if status and not re.match(r'^([1-5]xx|0|[1-5]\d\d)$', status):
            raise ApiError(400, 'status must be like 200, 404 or 5xx')
        method = text_param('method', 10)
        return {'direction': choice_param('direction', ('inbound', 'outbound')),
                'method': method.upper() if method else None, 'host': text_param('host'),
                'path': text_param('path'), 'status': status}

    @route('/api/v1/http-requests')
    def list_http_requests():
        current = project()
        since = int_param('since', None)
        rows, next_cursor = store.telemetry.list_http_requests(current['id'], http_filters(), decode_cursor(
            bottle.request.query.get('cursor'), 2), limit_param(), since)
        return reply({'requests': [with_times(r, 'timestamp') for r in rows],
                      'nextCursor': encode_cursor(next_cursor) if since is None else None,
                      'newestId': store.telemetry.newest_id('http_requests', current['id'])})

    @route('/api/v1/http-requests/stats')
    def http_request_stats():
        current = project()
        hours = int_param('hours', 24, minimum=1, maximum=24 * 90)
        stats = store.telemetry.http_request_stats(current['id'], http_filters(), now() - hours * 3600)
        return reply(http_stats_json(stats))


def mount_replays_and_logs_api(route, project, ctx):
    """Read API: replays and logs."""
    store = ctx.store

    @route('/api/v1/replays')
    def list_replays():
        current = project()
        sessions, next_cursor = store.telemetry.list_replays(current['id'], decode_replay_cursor(
            bottle.request.query.getunicode('cursor')), limit_param())
        cursor = '%d~%s' % next_cursor if next_cursor else None
        return reply({'sessions': [replay_session_json(s) for s in sessions], 'nextCursor': cursor})

    @route('/api/v1/replays/<session_id:path>')
    def show_replay(session_id):
        current = project()
        session = found(store.telemetry.replay_session(current['id'], session_id), 'replay session')
        events, truncated = store.telemetry.replay_events(current['id'], session_id)
        errors = store.events.linked(current['id'], 'replay_id', session_id[:200])
        return reply(dict(replay_session_json(session), events=[replay_event_json(e) for e in events],
                          eventsTruncated=truncated, errors=[event_summary(e) for e in errors]))

    @route('/api/v1/logs')
    def list_logs():
        current = project()
        since = int_param('since', None)
        logs, next_cursor = store.telemetry.list_logs(
            current['id'], level=choice_param('level', LOG_LEVELS), service=text_param('service', 200),
            search=text_param('q'), since=since, limit=int_param('limit', 100, minimum=1, maximum=1000),
            before=decode_cursor(bottle.request.query.get('before'), 2), trace_id=text_param('traceId', 200))
        cursor = max([entry['id'] for entry in logs] + [since or 0])
        return reply({'logs': [with_times(entry, 'timestamp') for entry in logs], 'cursor': cursor,
                      'nextCursor': encode_cursor(next_cursor)})


def mount_performance_api(route, project, ctx):
    """Read API: performance (transactions) and AI usage."""
    store = ctx.store

    @route('/api/v1/transactions')
    def transaction_summary():
        current = project()
        hours = int_param('hours', 24, minimum=1, maximum=24 * 90)
        rows = store.telemetry.transaction_summary(current['id'], now() - hours * 3600)
        return reply({'transactions': [transaction_summary_json(row) for row in rows]})

    @route('/api/v1/transactions/list')
    def list_transactions():
        current = project()
        since = int_param('since', None)
        rows, next_cursor = store.telemetry.list_transactions(current['id'], text_param('name', 500), decode_cursor(
            bottle.request.query.get('cursor'), 2), limit_param(), since)
        return reply({'transactions': [with_times(r, 'timestamp') for r in rows],
                      'nextCursor': encode_cursor(next_cursor) if since is None else None,
                      'newestId': store.telemetry.newest_id('transactions', current['id'])})

    @route('/api/v1/transactions/<tx_id:id>')
    def show_transaction(tx_id):
        current = project()
        transaction = found(store.telemetry.get_transaction(current['id'], tx_id), 'transaction')
        errors = store.events.linked(current['id'], 'trace_id', transaction['traceId']) if transaction.get(
            'traceId') else []
        return reply({'transaction': transaction_json(transaction), 'errors': [event_summary(e) for e in errors]})

    @route('/api/v1/ai')
    def ai_usage():
        current = project()
        days = int_param('days', 7, minimum=1, maximum=365)
        bucket = 3600 if days <= 2 else 86400
        return reply(ai_usage_json(store.telemetry.ai_usage(current['id'], now() - days * 86400, bucket)))


def mount_monitors_api(route, project, ctx):
    """Read API: cron monitors."""
    store = ctx.store

    def monitor_or_404(current, slug):
        return found(store.monitors.get(current['id'], slug), 'monitor')

    @route('/api/v1/monitors')
    def list_monitors():
        return reply({'monitors': [monitor_json(m) for m in store.monitors.list(project()['id'])]})

    @route('/api/v1/monitors', 'POST')
    def create_monitor():
        current = project()
        fields = validate_monitor(json_body())
        store.monitors.save(current['id'], fields, create=True)
        return reply({'monitor': monitor_json(monitor_or_404(current, fields['slug']))}, 201)

    @route('/api/v1/monitors/<slug>')
    def show_monitor(slug):
        current = project()
        monitor = monitor_or_404(current, slug)
        history = [with_times(checkin, 'timestamp') for checkin in store.monitors.history(monitor['id'])]
        return reply({'monitor': monitor_json(monitor), 'history': history})

    @route('/api/v1/monitors/<slug>', ['PUT', 'PATCH', 'POST'])
    def change_monitor(slug):
        current = project()
        monitor_or_404(current, slug)
        fields = validate_monitor(json_body(), partial=True)
        fields['slug'] = slug
        store.monitors.save(current['id'], fields, create=False)
        return reply({'monitor': monitor_json(monitor_or_404(current, slug))})

    @route('/api/v1/monitors/<slug>', 'DELETE')
    def delete_monitor(slug):
        current = project()
        found(store.monitors.delete(current['id'], slug), 'monitor')
        return reply({'ok': True})


def token_json(token):
    """An upload token (SourceMaps.tokens; value only as it is created)."""
    out = {'id': token['id'], 'projectId': token['project_id'], 'name': token['name'],
           'created': iso(token['created']), 'lastUsed': iso(token['last_used'])}
    if 'value' in token:
        out['value'] = token['value']  # shown once, when it is created
    return out


def bundle_json(bundle):
    """An artifact bundle (SourceMaps.bundles)."""
    return {'id': bundle['id'], 'bundleId': bundle['bundle_id'], 'release': bundle['release'], 'dist': bundle['dist'],
            'uploaded': iso(bundle['uploaded']), 'lastUsed': iso(bundle['last_used']), 'size': bundle['size'],
            'files': bundle['files']}


def mount_upload_tokens_api(route, project, ctx):
    """Read API: upload tokens for sentry-cli (admin) and the artifact bundles a
    project has (its key). Answered without Access-Control-Allow-Origin: no page
    of another origin may read a token."""
    store = ctx.store
    uncors = lambda fn: functools.wraps(fn)(lambda *a, **k: no_cors(fn(*a, **k)))

    def project_or_404(project_id):
        ctx.require_admin()
        return found(store.project_by_id(project_id), 'project')

    @route('/api/v1/projects/<project_id:id>/tokens', 'POST')
    @uncors
    def create_token(project_id):
        project = project_or_404(project_id)
        data = json_body() if bottle.request.content_length else {}
        name = data.get('name', '')
        if not isinstance(name, str):
            raise ApiError(400, 'name must be a string')
        return reply({'token': token_json(store.sourcemaps.create_token(project['id'], name.strip()))}, 201)

    @route('/api/v1/projects/<project_id:id>/tokens')
    @uncors
    def list_tokens(project_id):
        return reply({'tokens': [token_json(t) for t in store.sourcemaps.tokens(project_or_404(project_id)['id'])]})

    @route('/api/v1/projects/<project_id:id>/tokens/<token_id:id>', 'DELETE')
    @uncors
    def delete_token(project_id, token_id):
        found(store.sourcemaps.delete_token(project_or_404(project_id)['id'], token_id), 'token')
        return reply({'deleted': token_id})

    @route('/api/v1/sourcemaps')
    def list_bundles():
        bundles = store.sourcemaps.bundles(project()['id'])
        return reply({'bundles': [bundle_json(b) for b in bundles]})


def mount_read_api(app, ctx):
    """Every part of the read API (its entry in DIALECTS). Each part takes
    route(path, methods), the decorator of its handlers, and project(), the
    project the request's key reads."""
    route = read_route(app)
    project = lambda: key_project(ctx.store)
    for mount in (mount_projects_api, mount_issues_api, mount_feedback_api, mount_http_requests_api,
                  mount_replays_and_logs_api, mount_performance_api, mount_monitors_api, mount_upload_tokens_api):
        mount(route, project, ctx)


###############################################################################
# Background work: retention, missed cron runs, alerts #########################
###############################################################################
# Owns what happens without a request: pruning old data in short transactions,
# noticing cron monitors that stopped pinging, and delivering webhook alerts
# (Slack-compatible JSON) from their own thread, retried with backoff, so
# alerting never slows ingest.


class Alerter(object):
    """Delivers alerts to each project's webhook URL. Notices from the store
    (new issue, regression, failed check-in) wait in its alert_outbox, written
    with their change, whichever process made it; one thread takes them from
    it (woken by this process's commits, and looking every POLL seconds for
    other processes'), and each leaves it only once delivered or finally
    failed, so none is lost with a process that dies first. Each project has
    its own bounded queue, delivered in order, one delivery in flight at a
    time; a few threads take the projects in turn and wait for a retry
    without holding a thread, so a webhook that never answers delays only its
    own project's alerts."""

    PER_PROJECT = 100   # alerts waiting per project; past it new ones are dropped (logged)
    THREADS = 4
    TIMEOUT = 10.0      # seconds per attempt (connect, then each read)
    POLL = 1.0          # seconds between looks at the outbox when nothing here rang

    def __init__(self, store, delays=(1, 5, 30), allow_private=False):
        self.store, self.delays, self.allow_private = store, delays, allow_private
        self.pending = {}                    # project id -> deque of [due, attempt, url, body]
        self.turns = collections.deque()     # projects with alerts and none in flight, in turn
        self.changed = threading.Condition()
        self.stopping = False
        self.flying = set()                  # projects with a delivery in flight
        self.threads = []
        self.rung = threading.Event()        # this process committed a notice: look at the outbox now
        self.taken = set()                   # ids of alert_outbox rows queued here, not done yet
        # Held while the outbox is read and its rows filtered by taken, and
        # while a done row is deleted and forgotten: else a read from before
        # the delete, filtered after the forget, would send that alert again.
        self.outbox_lock = threading.Lock()

    def start(self):
        for number in range(self.THREADS):
            thread = threading.Thread(target=self.run, name='errorcapture-alerts-%d' % number, daemon=True)
            thread.start()
            self.threads.append(thread)
        thread = threading.Thread(target=self.take_notices, name='errorcapture-outbox', daemon=True)
        thread.start()
        self.threads.append(thread)

    def on_notice(self, kind, notice):
        """Store listener: called after commit with new_issue, regression and cron_failed notices."""
        self.rung.set()

    def take_notices(self):
        """Move notices from the store's outbox to the projects' queues; each
        stays in the outbox until its webhook answered or it finally failed
        (done), so alerts a dead process had taken are delivered by the next
        one: at least once."""
        name_os_thread('ec-outbox')
        while not self.stopping:
            self.rung.wait(self.POLL)
            self.rung.clear()
            try:
                while not self.stopping:
                    with self.outbox_lock:
                        taken = self.store.pending_alerts(self.taken)
                        self.taken.update(row[0] for row in taken)
                    for outbox_id, project_id, kind, notice, url in taken:  # storage names, named as the alert's data is
                        self.alert(project_id, kind, {ALERT_DATA_NAMES.get(k, k): v for k, v in notice.items()}, url,
                                   outbox_id)
                    if not taken:
                        break
            except (StorageUnavailable, Overloaded) as exc:
                log.warning('alerts not taken yet: %s', exc)
            except Exception:
                log.exception('taking alerts failed')

    def alert(self, project_id, kind, payload, url=None, outbox_id=None):
        """Queue an alert for the project's webhook: url, the one it had when
        the alert was raised, or (None) the one it has now. outbox_id: its row
        in alert_outbox, removed once it is done."""
        project = self.store.project_by_id(project_id)
        url = project and (url or project['settings'].get('webhookUrl'))
        if not url:
            return self.done(outbox_id)
        body = dumps(alert_message(project, kind, payload)).encode('utf-8')
        with self.changed:
            waiting = self.pending.setdefault(project_id, collections.deque())
            full = len(waiting) >= self.PER_PROJECT
            if not full:
                waiting.append([0.0, 0, url, body, outbox_id])
                if project_id not in self.turns and project_id not in self.flying:
                    self.turns.append(project_id)
                self.changed.notify()
        if full:
            log.warning('alert queue of project %d full; dropped a %s alert', project_id, kind)
            self.done(outbox_id)

    def done(self, outbox_id):
        """An alert was delivered or finally failed: off the outbox (if it
        came from there). Should that fail, it stays and is sent again by the
        next alerter (at least once)."""
        if outbox_id is None:
            return
        with self.outbox_lock:
            try:
                self.store.done_alert(outbox_id)
            except (StorageUnavailable, Overloaded) as exc:
                log.warning('delivered alert not taken off the outbox (it will be sent again after a restart): %s', exc)
                return
            self.taken.discard(outbox_id)

    def stop(self):
        """Never blocks on a full queue: threads stop after their current attempt."""
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        self.rung.set()
        deadline = time.time() + 2.0  # a thread in a hanging call is a daemon: left behind, not waited for
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.time()))

    def _next(self):
        """(project id, job) whose turn it is and whose retry is due, or None when stopping."""
        with self.changed:
            while not self.stopping:
                at, soonest = time.time(), None
                for _ in range(len(self.turns)):
                    project_id = self.turns.popleft()
                    job = self.pending[project_id][0]
                    if job[0] <= at:
                        self.pending[project_id].popleft()
                        self.flying.add(project_id)
                        return project_id, job
                    self.turns.append(project_id)
                    soonest = job[0] if soonest is None else min(soonest, job[0])
                self.changed.wait(None if soonest is None else max(0.01, soonest - at))
            return None

    def _done(self, project_id, job, ok):
        with self.changed:
            self.flying.discard(project_id)
            waiting = self.pending[project_id]
            delays = tuple(self.delays)
            retry = not ok and job[1] < len(delays)
            if retry:
                job[0], job[1] = time.time() + delays[job[1]], job[1] + 1
                waiting.appendleft(job)  # the same alert again, before the project's later ones
            if waiting:
                self.turns.append(project_id)  # behind the other projects: fair turns
                self.changed.notify()
            else:
                del self.pending[project_id]
        if not retry:
            self.done(job[4])

    def run(self):
        name_os_thread('ec-alerts')
        while True:
            taken = self._next()
            if taken is None:
                return
            project_id, job = taken
            ok = False
            try:
                status = post_webhook(job[2], job[3], self.allow_private, self.TIMEOUT)
                ok = 200 <= status < 300
                if not ok:
                    log.warning('webhook %s answered %d (attempt %d)', job[2], status, job[1] + 1)
            except WebhookRefused as exc:
                log.warning('webhook of project %d refused: %s', project_id, exc)
                job[1] = len(self.delays)  # no retry: it will not become allowed
            except Exception as exc:
                log.warning('webhook %s failed (attempt %d): %s', job[2], job[1] + 1, exc)
            self._done(project_id, job, ok)


ALERT_TITLES = {'new_issue': 'New issue', 'regression': 'Regression', 'cron_failed': 'Cron job failed',
                'cron_missed': 'Cron job missed', 'cron_timeout': 'Cron job timed out'}


ALERT_DATA_NAMES = {'project_id': 'projectId', 'issue_id': 'issueId'}  # a store notice's names -> the alert's


def alert_message(project, kind, payload):
    subject = payload.get('title') or payload.get('name') or payload.get('slug') or ''
    text = '[%s] %s: %s' % (project['name'] or 'project %d' % project['id'], ALERT_TITLES.get(kind, kind), subject)
    if payload.get('message'):
        text += ' (%s)' % payload['message']
    return {'text': text, 'kind': kind, 'project': {'id': project['id'], 'name': project['name']},
            'data': payload}


class Sweeper(threading.Thread):
    """Every `interval` seconds: apply retention, then look for cron monitors
    that turned missed or timed out, alerting once per missed run (through
    the outbox, as every alert), then count
    the tags of events stored before tags existed, until none are left."""

    def __init__(self, store, settings, interval, resolver=None):
        threading.Thread.__init__(self, name='errorcapture-sweeper', daemon=True)
        self.store, self.settings, self.interval = store, settings, interval
        self.resolver = resolver
        self.stopping = threading.Event()

    def stop(self):
        self.stopping.set()

    def run(self):
        name_os_thread('ec-sweeper')
        while not self.stopping.wait(self.interval):
            try:
                self.sweep()
            except (StorageUnavailable, Overloaded) as exc:
                log.warning('background pass skipped: %s', exc)
            except Exception:
                log.exception('background pass failed')

    def sweep(self):
        for project in self.store.projects():
            cap = project_setting(project, 'retentionEvents', self.settings)
            days = project_setting(project, 'retentionDays', self.settings)
            cutoff = now() - days * 86400 if days else 0
            while not self.stopping.is_set() and self.store.retention.prune_events(project['id'], cap, cutoff):
                time.sleep(0.01)  # short transactions: let ingest in between
            if cutoff:
                while not self.stopping.is_set() and self.store.retention.prune_telemetry(project['id'], cutoff):
                    time.sleep(0.01)
        self.prune_sourcemaps()
        self.check_monitors()
        self.backfill_tags()

    BACKFILL_SECONDS = 5.0  # of each pass, at most, so that a large backlog does not hold up the next one

    def backfill_tags(self):
        """Count the tags of events stored before tags existed (Tags.backfill),
        a short transaction at a time, until none are left."""
        deadline = time.monotonic() + self.BACKFILL_SECONDS
        while not self.stopping.is_set() and self.store.tags.backfill() is not None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)  # short transactions: let ingest in between

    def prune_sourcemaps(self):
        """Bundles neither uploaded nor used by an event within the project's
        retention days go, and so do chunks of uploads that never finished."""
        if self.resolver is not None:
            self.resolver.flush_used()
        for project_id in sorted(self.store.sourcemaps.projects_with_bundles()):
            project = self.store.project_by_id(project_id)
            days = project['settings'].get('retentionDays', self.settings['retention_days']) if project else 0
            if not days:
                continue
            cutoff = now() - days * 86400
            while not self.stopping.is_set() and self.store.sourcemaps.prune(project_id, cutoff):
                time.sleep(0.01)
        self.store.sourcemaps.prune_chunks(now() - PENDING_CHUNK_SECONDS)

    def check_monitors(self):
        at = now()
        for monitor in self.store.monitors.all():
            status, expected = monitor_state(monitor, at)
            if status not in ('missed', 'timeout'):
                continue
            mark = '%s:%s' % (status, monitor['runningSince'] if status == 'timeout' else expected)
            if monitor.get('alerted') == mark:
                continue
            self.store.monitors.mark_alerted(monitor['id'], mark, 'cron_' + status, {
                'project_id': monitor['projectId'], 'slug': monitor['slug'], 'name': monitor['name'],
                'expected': iso(expected)})


def start_background(store, settings, resolver=None):
    """The alerter and the sweeper of a server (one per server, whatever
    its processes), started; returns (alerter, sweeper)."""
    alerter = Alerter(store, allow_private=settings['allow_private_webhooks'])
    store.listeners.append(alerter.on_notice)
    alerter.start()
    sweeper = Sweeper(store, settings, settings['sweep_interval'], resolver)
    if settings['sweep_interval'] > 0:
        sweeper.start()
    return alerter, sweeper


def stop_background(alerter, sweeper):
    """Stop the sweeper (waiting up to 10 s for its pass to finish) and the
    alerter (its stop waits for its threads)."""
    sweeper.stop()
    alerter.stop()
    if sweeper.ident is not None:  # started: it is not when sweep_interval is 0
        sweeper.join(10)


###############################################################################
# App factory #################################################################
###############################################################################
# Owns assembly: the DIALECTS table, one store, every dialect mounted, the
# viewer's static files and docs/openapi.json, CORS preflight, JSON for
# unknown routes, and the security headers; then the waitress server around
# it, and a serving process's setup and run until Ctrl-C or SIGTERM.


def data_root(name, marker):
    """The directory name/ (holding marker) beside this file (a checkout) or
    under the install prefix (setup.cfg's data_files, installed by pip)."""
    import site
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, name)]
    for prefix in (sys.prefix, getattr(site, 'USER_BASE', None) or '', '/usr/local', '/usr'):
        candidates.append(os.path.join(prefix, 'share', 'errorcapture', name))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, marker)):
            return candidate
    return candidates[0]


VIEWER_HEADERS = {
    'Content-Security-Policy': ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
}


# Every dialect the server speaks, in the order paths are matched: the paths
# it owns, its error answer, the function that mounts its routes, the request
# headers its clients send from browsers (CORS preflight allows them) and the
# endpoint the setup page shows, as (label, url(base URL, DSN)). The read API
# comes last and owns every path no ingest dialect does.
Dialect = collections.namedtuple('Dialect', 'name paths error mount headers endpoint')
DIALECTS = (
    Dialect('api_php', re.compile(r'/api\.php\Z'), api_php_error, mount_api_php, (),
            ('api_php', lambda base, dsn: base + '/api.php')),
    Dialect('seestack', re.compile(r'/ingest/'), seestack_error, mount_seestack, ('X-SeeStack-Key',),
            ('seestack', lambda base, dsn: base + '/ingest/v1')),
    Dialect('open_sentry', re.compile(r'/v1/ingest/*\Z'), open_sentry_error, mount_open_sentry,
            ('X-Open-Sentry-Key', 'X-Sentry-Clone-Key'), ('open_sentry', lambda base, dsn: base + '/v1/ingest')),
    Dialect('sentry', re.compile(r'^(/api/([^/]+/(envelope|store)|embed/error-page)/?|/stream)$'), sentry_error, mount_sentry,
            ('X-Sentry-Auth', 'Authorization', 'sentry-trace', 'baggage'), ('sentry_dsn', lambda base, dsn: dsn)),
    Dialect('sentry_web_api', re.compile(r'/api/0/'), sentry_api_error, mount_sourcemap_api, (), None),
    Dialect('read_api', re.compile(''), read_api_error, mount_read_api, ('X-ErrorCapture-Key', 'Authorization'),
            None),
)

CORS_HEADERS = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'GET, POST, PUT, PATCH, DELETE, OPTIONS',
    'Access-Control-Allow-Headers': ', '.join(dict.fromkeys(
        ('Content-Type', 'Content-Encoding') + sum((dialect.headers for dialect in DIALECTS), ()))),
    'Access-Control-Expose-Headers': EXPOSED_HEADERS,
    'Access-Control-Max-Age': '86400',
}


CLI_ONLY_PATH = re.compile(r'/api/v1/projects/[^/]*/tokens(/|\Z)')


def is_cli_only_path(path):
    """The upload API (Sentry's web API under /api/0/) and upload token
    management: sentry-cli and operators use them, never a page."""
    dialect = next(dialect for dialect in DIALECTS if dialect.paths.match(path))
    return dialect.name == 'sentry_web_api' or bool(CLI_ONLY_PATH.match(path))


def is_cross_origin(environ):
    """Whether a browser sent the request from another origin: its
    Sec-Fetch-Site says so, or its Origin is not this server's own."""
    site = environ.get('HTTP_SEC_FETCH_SITE')
    if site and site not in ('same-origin', 'none'):
        return True
    origin = environ.get('HTTP_ORIGIN')
    if origin is None:
        return False   # CLIs send none; browsers send one on every cross-origin POST
    scheme = environ.get('wsgi.url_scheme', 'http')
    host = (environ.get('HTTP_HOST') or environ.get('SERVER_NAME', '')).lower()
    default_port = ':443' if scheme == 'https' else ':80'
    own = '%s://%s' % (scheme, host[:-len(default_port)] if host.endswith(default_port) else host)
    origin = origin.lower()
    return (origin[:-len(default_port)] if origin.endswith(default_port) else origin) != own


def dialect_error(path):
    """The error answer of the dialect that owns path: for answers made outside
    a dialect's routes (unknown paths, wrong methods, HTTP framing errors)."""
    return next(dialect.error for dialect in DIALECTS if dialect.paths.match(path))


def make_app(db_path=None, **options):
    """The WSGI application. ``options`` are the settings named in OPTIONS
    (environment variables and defaults fill the rest). The app carries
    ``app.store`` and ``app.close()`` (drains the writer, closes the database)."""
    if db_path is not None:
        options['db'] = db_path
    wsgi = assemble(resolve_options(options))
    wsgi.alerter, wsgi.sweeper = start_background(wsgi.store, wsgi.settings, wsgi.ctx.resolver)
    return wsgi


def assemble(settings, shared=False):
    """The WSGI application over its store, without the background work
    (make_app starts that; under --workers the parent runs it for all, and
    each worker's store is shared)."""
    if _brotli is None:
        log.warning(BROTLI_MISSING)
    store = Store(settings['db'], settings['synchronous'], settings['max_queue'], settings['wal_autocheckpoint'],
                  shared)
    ctx = Context(store, settings, endpoints=[dialect.endpoint for dialect in DIALECTS if dialect.endpoint])
    ctx.resolver = SourceMapResolver(store)
    app = bottle.Bottle(catchall=True)
    # <name:id>: a row id that SQLite can hold; anything longer is simply not found
    app.router.add_filter('id', lambda config: (r'[0-9]{1,18}', int, str))

    for dialect in DIALECTS:
        dialect.mount(app, ctx)

    root, docs = data_root('static', 'index.html'), data_root('docs', 'openapi.json')

    @app.route('/health')
    def health():
        return reply({'status': 'ok'})

    @app.route('/api/openapi.json')
    def openapi():
        """The OpenAPI description of every route (routes, never data: no key needed)."""
        return bottle.static_file('openapi.json', root=docs, mimetype='application/json', charset='utf-8')

    @app.route('/')
    def index():
        return static('index.html')

    @app.route('/static/<path:path>')
    def static(path):
        answer = bottle.static_file(path, root=root)
        for name, value in VIEWER_HEADERS.items():
            answer.set_header(name, value)
        answer.set_header('Cache-Control', 'no-cache')
        return answer

    def json_error(error):
        status = error.status_code
        message = {404: 'Not found', 405: 'Method not allowed'}.get(status, error.body or 'Error')
        if status >= 500:
            message = 'An unexpected error occurred'
        return dialect_error(bottle.request.path)(status, message)

    for code in (400, 404, 405, 413, 500):
        app.error(code)(json_error)
    return ErrorCaptureApp(app, store, ctx)


class ErrorCaptureApp(object):
    """The WSGI entry point: answers CORS preflight for every path (so that
    unknown paths still get 404, not 405) and hands the rest to bottle."""

    PREFLIGHT_HEADERS = list(CORS_HEADERS.items()) + [('Content-Length', '0')]
    SAFE_METHODS = frozenset(('GET', 'HEAD', 'OPTIONS'))
    alerter = sweeper = None  # make_app starts them; a --workers process has none

    def __init__(self, bottle_app, store, ctx):
        self.bottle, self.store, self.ctx, self.settings = bottle_app, store, ctx, ctx.settings

    def __call__(self, environ, start_response):
        method, path = environ.get('REQUEST_METHOD'), environ.get('PATH_INFO') or '/'
        cli_only = is_cli_only_path(path)
        environ['errorcapture.ingest'] = ingest = is_ingest(environ) and not cli_only
        environ['errorcapture.settings'] = self.settings
        # Proxy headers are not trusted (bottle would build DSNs from them); a
        # request that carries them came through a proxy, which listing
        # projects without a token must know.
        proxied = False
        for name in PROXY_HEADERS:
            proxied = environ.pop(name, None) is not None or proxied
        environ['errorcapture.proxied'] = proxied
        if method == 'OPTIONS':
            # a preflight is granted only where browsers may call us from anywhere
            # (not the upload and token APIs, which are for CLIs)
            start_response('204 No Content', self.PREFLIGHT_HEADERS if ingest else [('Content-Length', '0')])
            return [b'']
        if cli_only and method not in self.SAFE_METHODS and is_cross_origin(environ):
            # a simple (text/plain, form) POST needs no preflight: refuse it here
            bottle.response.bind()
            body = no_cors(dialect_error(path)(403, 'cross-origin requests are refused here', 'FORBIDDEN'))
            start_response(bottle.response.status_line, [(name, value) for name, value in bottle.response.headerlist
                                                         if name.lower() != 'content-length']
                           + [('Content-Length', str(len(body)))])
            return [body]
        return self.bottle(environ, start_response)

    def close(self):
        """Stop the background work (stop_background), then drain the writer
        and close the database."""
        if self.sweeper is not None:
            stop_background(self.alerter, self.sweeper)
        self.store.close()


# waitress settings shared by the command line and serve_in_background: bodies
# up to the largest dialect limit (the app answers 413 itself, in each dialect's
# format), room for many slow clients, and poll() rather than select(). Proxy headers reach the app, which
# drops them itself (ErrorCaptureApp) after noting that they were there.
WAITRESS_OPTIONS = dict(max_request_body_size=LIMIT_SENTRY_COMPRESSED + (1 << 20), clear_untrusted_proxy_headers=False,
                        ident='errorcapture', connection_limit=1000, backlog=2048, cleanup_interval=1,
                        asyncore_use_poll=True)  # select() fails on descriptors past 1023: 1,000 connections reach them

# A request must arrive in time: its headers within HEADER_DEADLINE seconds of
# its first byte, its body at no less than BODY_MIN_RATE bytes a second after
# that (waitress's own idle timeout is reset by every byte, so a client sending
# one byte every few seconds would hold its connection forever).
HEADER_DEADLINE = 30.0
BODY_MIN_RATE = 32 << 10


def create_server(app, host, port, threads, **options):
    """A waitress server for app with ErrorCapture's settings (options: other
    waitress settings over WAITRESS_OPTIONS). Requests that
    waitress refuses before the app sees them (an unreadable Content-Length, a
    body over its limit, oversized headers) get its status with the JSON error
    of the dialect that owns the path, not waitress's plain text."""
    import waitress.channel
    import waitress.parser
    import waitress.server
    import waitress.task

    class RequestLineParser(waitress.parser.HTTPRequestParser):
        request_line = b''  # kept even when the headers after it cannot be parsed

        def parse_header(self, header_plus):
            self.request_line = self.request_line or header_plus.split(b'\r\n', 1)[0]
            return waitress.parser.HTTPRequestParser.parse_header(self, header_plus)

    class DialectErrorTask(waitress.task.ErrorTask):
        def execute(self):
            request, error = self.request, self.request.error
            # Oversized headers stop waitress before it reads the request line
            # (it parses a stand-in); the start of what came holds the real one.
            line = request.header_plus if error.code == 431 else getattr(request, 'request_line', b'')
            parts = line.split(b'\r\n', 1)[0].split(b' ')
            path = parts[1].decode('latin-1').split('?', 1)[0] if len(parts) == 3 else '/'
            bottle.response.bind()  # this worker thread's response, outside any app call
            environ = {'PATH_INFO': path, 'REQUEST_METHOD': parts[0].decode('latin-1') if len(parts) == 3 else 'GET'}
            environ['errorcapture.ingest'] = is_ingest(environ)  # CORS as the path would get it
            bottle.request.bind(environ)
            message = '%s: %s' % (error.reason, error.body)
            # waitress says 501 for a Transfer-Encoding it does not know; that is
            # the client's input, and bad input gets a 4xx here.
            status = 400 if error.code == 501 else error.code
            body = dialect_error(path)(status, message, 'BAD_REQUEST' if status == 400 else None)
            self.status = bottle.response.status_line
            self.response_headers.extend((name, value) for name, value in bottle.response.headerlist
                                         if name.lower() != 'content-length')
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    settings = getattr(app, 'settings', None) or DEFAULTS
    per_client = settings['connections_per_client']
    clients = collections.Counter()  # client address -> open connections (the server loop's thread only)

    class DialectErrorChannel(waitress.channel.HTTPChannel):
        parser_class = RequestLineParser
        error_task_class = DialectErrorTask
        request_started = None  # when the first byte of the request being read came
        client = None

        def __init__(self, server, sock, addr, adj, map=None):
            waitress.channel.HTTPChannel.__init__(self, server, sock, addr, adj, map)
            self.client = addr[0] if isinstance(addr, tuple) else addr
            clients[self.client] += 1
            if per_client and clients[self.client] > per_client:
                self.will_close = True  # closed at once: one address cannot take every connection

        def writable(self):
            # While a request thread holds the output lock it sends what it
            # appends itself (and pulls the trigger when it is done). Polling
            # the socket for writing meanwhile returns at once, handle_write
            # cannot take the lock, and the loop spins holding the
            # interpreter lock that thread needs: measured 16-22 empty
            # write events and 3-4x the loop's CPU per request.
            if self.requests and self.total_outbufs_len and not (self.will_close or self.close_when_flushed):
                if not self.outbuf_lock.acquire(False):
                    return False
                self.outbuf_lock.release()
            return waitress.channel.HTTPChannel.writable(self)

        def del_channel(self, map=None):
            if self.client is not None:
                clients[self.client] -= 1
                if clients[self.client] <= 0:
                    del clients[self.client]
                self.client = None
            waitress.channel.HTTPChannel.del_channel(self, map)

        def received(self, data):
            if data and self.request_started is None:
                self.request_started = time.time()
            answer = waitress.channel.HTTPChannel.received(self, data)
            if self.request is None:  # nothing half-read: the next request starts its own clock
                self.request_started = None
            return answer

        def overdue(self, at):
            request = self.request
            if request is None or self.request_started is None:
                return False
            allowed = HEADER_DEADLINE
            if request.headers_finished:
                allowed += (getattr(request, 'content_length', 0) or 0) / float(BODY_MIN_RATE)
            return at - self.request_started > allowed

    def maintenance(listener, at):
        type(listener).maintenance(listener, at)  # waitress's idle timeout
        for channel in list(listener.active_channels.values()):
            if isinstance(channel, DialectErrorChannel) and channel.overdue(at):
                channel.will_close = True

    # sockets=[...] already bound (a --workers process): waitress takes no host or port then
    where = {} if options.get('sockets') else {'host': host, 'port': port}
    server = waitress.server.create_server(app, threads=threads, **dict(WAITRESS_OPTIONS, **dict(where, **options)))
    # one listening socket, or several (a host name with v4 and v6 addresses)
    for listener in [server] + list(getattr(server, 'map', {}).values()):
        if isinstance(listener, waitress.server.BaseWSGIServer):
            listener.channel_class = DialectErrorChannel
            listener.maintenance = functools.partial(maintenance, listener)
    return server


def serve_in_background(app, host='127.0.0.1', port=0, threads=8):
    """Serve app with waitress from a daemon thread. Returns a handle with
    .url, .port and .stop() (which also closes the app's store)."""
    server = create_server(app, host, port, threads)
    thread = threading.Thread(target=server.run, name='errorcapture-server', daemon=True)
    thread.start()

    port = int(server.effective_port)  # waitress 3 reports it as a string

    class Handle(object):
        url = 'http://%s:%d' % (host if ':' not in host else '[%s]' % host, port)

        @staticmethod
        def stop():
            stop_server(server, thread)
            if hasattr(app, 'close'):
                app.close()
    Handle.port = port
    Handle.server = server
    return Handle()


def stop_server(server, thread=None):
    """Stop a waitress server: close the listening socket and every
    connection, then let in-flight tasks finish. When its loop runs in
    `thread`, the closing happens inside that loop (waitress's trigger), so no
    socket is closed under a select() in progress."""
    def close_all():
        for channel in list(server._map.values()):
            try:
                channel.close()
            except Exception:
                pass
    if thread is not None and thread.is_alive():
        try:
            server.trigger.pull_trigger(close_all)
        except OSError:
            # The trigger's pipe is already closed (seen rarely under load, at
            # teardown; cause not found yet): the loop can no longer be woken
            # to close its own channels, so close them from here.
            close_all()
        thread.join(10)
    else:
        close_all()
    server.task_dispatcher.shutdown(timeout=10)


def run_until_stopped(server):
    """Run a waitress server's loop until Ctrl-C or SIGTERM (main thread
    only). Signals after the first are ignored: they must not cut the drain
    short (under --workers a worker gets Ctrl-C and its parent's SIGTERM)."""
    stopping = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


def configure_process(settings, who=None):
    """Logging (who: which worker, under --workers) and the interpreter's
    settings for a serving process."""
    logging.basicConfig(level=getattr(logging, settings['log_level'].upper(), logging.INFO),
                        format='%(asctime)s %(levelname)s %(name)s' + (' [%s]' % who if who else '') + ': %(message)s')
    # Python's default 5 ms GIL switch interval makes waitress threads thrash on
    # a 2-core box; a longer interval keeps throughput flat as connections grow.
    sys.setswitchinterval(0.025)
    # waitress logs "Task queue depth" on every request once connections
    # outnumber threads: thousands of lines a second under load
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)


# --cpu-affinity auto. A process's threads take turns on one interpreter lock;
# spread over cores, every hand-over wakes a thread on another core, and on a
# 2-core box the same requests then took ~1.5x the CPU (bench/run.py: Sentry
# envelopes +55-70%, Open Sentry batches +35-45% kept on one core). Workers
# get a CPU each from the parent; a single process picks the CPU others use
# least and looks again every AFFINITY_INTERVAL, so a busy neighbour does not
# hold it back for long.
AFFINITY_INTERVAL = 10.0  # seconds between two looks for a less used CPU
AFFINITY_MARGIN = 0.25    # of a core: how much more others must use its CPU than another before it moves


def allowed_cpus():
    """The CPUs this process may run on, in order; [] where that cannot be set."""
    if not hasattr(os, 'sched_setaffinity'):
        return []
    try:
        return sorted(os.sched_getaffinity(0))
    except OSError:
        return []


def pin_threads(cpu):
    """Every thread of this process, and the threads they start, onto one CPU."""
    try:
        tids = [int(tid) for tid in os.listdir('/proc/self/task')]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, [cpu])
        except OSError:
            pass  # a thread that ended meanwhile


def cpu_times():
    """{cpu: (busy, total)} in clock ticks since boot, from /proc/stat; {} elsewhere."""
    times = {}
    try:
        with open('/proc/stat') as stat:
            for line in stat:
                name, _, rest = line.partition(' ')
                if name.startswith('cpu') and name[3:].isdigit():
                    ticks = [int(value) for value in rest.split()[:8]]
                    idle = sum(ticks[3:5])  # idle, iowait
                    times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    except (OSError, ValueError):
        return {}
    return times


def least_used_cpu(cpus, before, after, current=None, own_ticks=0):
    """The CPU of cpus that others used least between two cpu_times()
    samples. own_ticks: what this process used meanwhile, all on current (it
    was kept there), which is not counted against it. current stays unless
    another is at least AFFINITY_MARGIN of a core less used."""
    used = {}
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy = after[cpu][0] - before[cpu][0] - (own_ticks if cpu == current else 0)
            used[cpu] = max(busy, 0) / float(max(after[cpu][1] - before[cpu][1], 1))
    if not used:
        return current
    best = min(used, key=lambda cpu: (used[cpu], cpu != current))
    if current in used and used[current] - used[best] < AFFINITY_MARGIN:
        return current
    return best


def keep_on_one_cpu(settings, stopped):
    """--cpu-affinity auto for a single process: onto the least used CPU
    now, then a thread that moves it when another has been much less used
    by others for an interval. Returns that thread, or None."""
    cpus = allowed_cpus()
    if settings['cpu_affinity'] != 'auto' or len(cpus) < 2 or not cpu_times():
        return None
    before = cpu_times()
    time.sleep(0.1)
    current = least_used_cpu(cpus, before, cpu_times())
    pin_threads(current)

    def watch():
        nonlocal current
        name_os_thread('ec-affinity')
        ticks_per_second = os.sysconf('SC_CLK_TCK')
        before, own_before = cpu_times(), time.process_time()
        while not stopped.wait(AFFINITY_INTERVAL):
            after, own_after = cpu_times(), time.process_time()
            chosen = least_used_cpu(cpus, before, after, current, (own_after - own_before) * ticks_per_second)
            if chosen != current:
                log.info('moving to CPU %d: CPU %d is busy with other work', chosen, current)
                current = chosen
                pin_threads(current)
            before, own_before = after, own_after
    watcher = threading.Thread(target=watch, name='errorcapture-affinity', daemon=True)
    watcher.start()
    return watcher


###############################################################################
# Several server processes (--workers) ########################################
###############################################################################
# Owns serving one port from several processes on one database file. The
# parent binds the listening sockets once (on Linux a set per worker, which
# the kernel balances new connections over) and starts each worker as a fresh
# interpreter that inherits its set (serve_worker: its own waitress, writer
# and caches); it replaces a worker that dies, runs the one alerter and sweeper
# of the server, and on SIGTERM or Ctrl-C lets every worker drain as a single
# process does, then exits. Commits take turns on SQLite's write lock; what
# the processes must agree on lives in the file (the Store's counters,
# quota_windows and alert_outbox). make_app and serve_in_background stay
# single-process.

WORKER_RESTART_DELAY = 1.0   # seconds at least between two starts of one worker (one that cannot start is not spun)
WORKER_DRAIN_SECONDS = 90.0  # a worker still draining after this long is killed


def listening_socket(family, socktype, proto, address, reuse_port=False):
    """One listening socket, bound as waitress binds its own; reuse_port:
    open to more sockets on the same address (SO_REUSEPORT)."""
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(WAITRESS_OPTIONS['backlog'])
    except OSError:
        sock.close()
        raise
    return sock


def bind_worker_sockets(host, port, workers):
    """The listening sockets (a host name may have v4 and v6 addresses) of
    each worker slot. On Linux every slot has its own, on the same addresses
    with SO_REUSEPORT: the kernel spreads new connections evenly over them,
    where one socket shared by every process gives most of them to whichever
    process is quickest to accept (and clients keep their connections alive,
    so that split stays). The parent keeps them all open, so a replacement
    worker takes up the backlog of the one that died. Elsewhere the slots
    share one set."""
    import waitress.adjustments
    reuse_port = sys.platform.startswith('linux') and hasattr(socket, 'SO_REUSEPORT')
    slots = []
    try:
        for slot in range(workers if reuse_port else 1):
            if slot == 0:
                addresses = waitress.adjustments.Adjustments(host=host, port=port).listen
            else:  # the addresses the first slot got (with port 0, the ports it was given)
                addresses = [(sock.family, sock.type, sock.proto, sock.getsockname()) for sock in slots[0]]
            slots.append([])
            for family, socktype, proto, address in addresses:
                slots[-1].append(listening_socket(family, socktype, proto, address, reuse_port))
    except OSError:
        for sock in (sock for sockets in slots for sock in sockets):
            sock.close()
        raise
    return slots if reuse_port else slots * workers


class Supervisor(object):
    """The parent of the worker processes (serve_forever with workers > 1)."""

    def __init__(self, settings):
        if fcntl is None or os.name != 'posix':
            raise ValueError('--workers above 1 needs a POSIX system (inherited sockets, flock)')
        self.settings = settings
        self.slot_sockets = bind_worker_sockets(settings['host'], settings['port'], settings['workers'])
        self.port = self.slot_sockets[0][0].getsockname()[1]
        # the parent opens the file first: migrations run once, before any worker starts
        self.store = Store(settings['db'], settings['synchronous'], settings['max_queue'],
                           settings['wal_autocheckpoint'], shared=True)
        self.alerter, self.sweeper = start_background(self.store, settings)
        self.workers = [None] * settings['workers']   # slot -> its process
        self.started = [0.0] * settings['workers']    # slot -> when its process started (monotonic)
        self.stopping = threading.Event()

    def start_worker(self, slot):
        """A fresh interpreter running this same module's serve_worker, the
        listening sockets passed down; its settings come on stdin, which then
        stays open: its end (this process gone) stops the worker."""
        # this very file, whatever its name and whatever else `errorcapture`
        # names on the path (an installed copy, another checkout)
        code = ('import importlib.util, sys; '
                'spec = importlib.util.spec_from_file_location("errorcapture", %r); '
                'module = sys.modules["errorcapture"] = importlib.util.module_from_spec(spec); '
                'spec.loader.exec_module(module); sys.exit(module.serve_worker())' % os.path.abspath(__file__))
        fds = [sock.fileno() for sock in self.slot_sockets[slot]]
        process = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, pass_fds=fds)
        cpus = allowed_cpus() if self.settings['cpu_affinity'] == 'auto' else []
        cpu = cpus[slot % len(cpus)] if len(cpus) > 1 else None  # --cpu-affinity auto: a CPU each, in turn
        process.stdin.write((dumps({'slot': slot, 'fds': fds, 'cpu': cpu, 'settings': self.settings}) + '\n')
                            .encode('utf-8'))
        process.stdin.flush()
        self.workers[slot], self.started[slot] = process, time.monotonic()
        log.info('worker %d started (pid %d)', slot, process.pid)

    def run(self):
        """Start the workers and keep them running until SIGTERM or Ctrl-C;
        then stop (every worker drains) and return 0."""
        def on_signal(signum, frame):
            self.stopping.set()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for slot in range(len(self.workers)):
            self.start_worker(slot)
        log.info('ErrorCapture %s serving http://%s:%s from %d processes with database %s', __version__,
                 self.settings['host'], self.port, len(self.workers), os.path.abspath(self.settings['db']))
        while not self.stopping.wait(0.2):
            for slot, process in enumerate(self.workers):
                if process.poll() is not None and time.monotonic() - self.started[slot] >= WORKER_RESTART_DELAY:
                    log.warning('worker %d (pid %d) exited with %s; starting another', slot, process.pid,
                                process.returncode)
                    process.stdin.close()
                    self.start_worker(slot)
        self.stop()
        return 0

    def stop(self):
        log.info('shutting down: every worker finishes its in-flight requests and queued writes')
        for sock in set(sock for sockets in self.slot_sockets for sock in sockets):
            sock.close()  # the workers hold their own copies until they have drained
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for slot, process in enumerate(self.workers):
            try:
                process.wait(WORKER_DRAIN_SECONDS)
            except subprocess.TimeoutExpired:
                log.error('worker %d (pid %d) did not drain in %d s; killed', slot, process.pid,
                          WORKER_DRAIN_SECONDS)
                process.kill()
                process.wait()
            process.stdin.close()
        stop_background(self.alerter, self.sweeper)
        self.store.close()
        log.info('stopped cleanly')


def serve_worker():
    """Entry point of one worker process, started by the Supervisor with its
    slot, the listening sockets' descriptors and the settings as a JSON line
    on stdin. Serves until SIGTERM, Ctrl-C or the end of stdin (the parent is
    gone), then drains as a single process does. Returns the exit status."""
    line = b''
    while not line.endswith(b'\n'):  # the raw descriptor: a buffered stdin would hold a lock at exit
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return 2  # the supervisor went before it said anything
        line += chunk
    config = json.loads(line)
    settings = config['settings']
    configure_process(settings, 'worker %d' % config['slot'])
    if config.get('cpu') is not None:
        pin_threads(config['cpu'])  # before its threads start: they inherit it
    sockets = [socket.socket(fileno=fd) for fd in config['fds']]
    app = assemble(settings, shared=True)
    server = create_server(app, None, None, settings['threads'], sockets=sockets)

    def watch_parent():
        while os.read(0, 1 << 16):  # returns b'' at EOF: the supervisor is gone
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    def flush_used():  # the parent's sweeper prunes source map bundles by when events last used them
        while not stopped.wait(settings['sweep_interval']):
            try:
                app.ctx.resolver.flush_used()
            except (StorageUnavailable, Overloaded) as exc:
                log.warning('bundle use not noted yet: %s', exc)
    stopped = threading.Event()
    threading.Thread(target=watch_parent, name='errorcapture-parent', daemon=True).start()
    if settings['sweep_interval'] > 0:
        threading.Thread(target=flush_used, name='errorcapture-bundle-use', daemon=True).start()
    try:
        run_until_stopped(server)
    finally:
        stopped.set()
        stop_server(server)
        app.close()
    return 0


###############################################################################
# Command line ################################################################
###############################################################################
# Owns `python errorcapture.py` / `errorcapture`: flags over environment over
# defaults, clean shutdown on Ctrl-C and SIGTERM.


def build_parser():
    parser = argparse.ArgumentParser(
        prog='errorcapture', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='ErrorCapture: a self-hosted error tracker in one file.',
        epilog='Every flag can also be set with an environment variable ERRORCAPTURE_<NAME>\n'
               '(for example ERRORCAPTURE_PORT=9000); flags win over the environment, which wins\n'
               'over the defaults shown.\n\n'
               'Management commands (run `errorcapture projects --help` / `errorcapture monitors --help`):\n'
               '  errorcapture projects add NAME | list\n'
               '  errorcapture monitors add|set|list|delete --key KEY ...\n'
               '  errorcapture tokens add|list|delete --key KEY ...   (upload tokens for sentry-cli)')
    for name, kind, default, help_text in OPTIONS:
        flag = '--' + name.replace('_', '-')
        env = 'ERRORCAPTURE_' + name.upper()
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help='%s [env %s, default: %s]' % (help_text, env, 'on' if default else 'off'))
        else:
            parser.add_argument(flag, dest=name, type=kind, default=None, metavar=name.upper(),
                                help='%s [env %s, default: %r]' % (help_text, env, default))
    parser.add_argument('--version', action='version', version='errorcapture ' + __version__)
    return parser


def serve_forever(settings):
    configure_process(settings)
    if settings['host'] not in ('127.0.0.1', 'localhost', '::1') and not settings['admin_token']:
        log.warning('listening on %s without --admin-token: anyone who can reach this port can create and '
                    'list projects; set --admin-token (guards the generate action, project creation and '
                    'listing) and --no-auto-create (stops /api.php from creating projects for unknown keys)',
                    settings['host'])
    if settings['workers'] > 1:
        return Supervisor(settings).run()
    app = make_app(**settings)
    server = create_server(app, settings['host'], settings['port'], settings['threads'])
    stopped = threading.Event()
    keep_on_one_cpu(settings, stopped)  # once the database opened and the port is bound: the threads it has
    log.info('ErrorCapture %s serving http://%s:%s with database %s', __version__, settings['host'],
             server.effective_port, os.path.abspath(settings['db']))

    try:
        run_until_stopped(server)
    finally:
        log.info('shutting down: finishing in-flight requests and queued writes')
        stopped.set()
        stop_server(server)
        app.close()
        log.info('stopped cleanly')


def build_admin_parser():
    parser = argparse.ArgumentParser(
        prog='errorcapture', description='Manage projects, cron monitors and upload tokens in an ErrorCapture database '
                                         '(works while the server runs).')
    # --db and --public-url go before the command or after it, and every help shows them
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument('--db', default=argparse.SUPPRESS,
                       help='database file [env ERRORCAPTURE_DB, default: errorcapture.db]')
    where.add_argument('--public-url', default=argparse.SUPPRESS,
                       help='base URL for the DSNs shown [env ERRORCAPTURE_PUBLIC_URL, '
                            'default: http://HOST:PORT from the settings]')
    parser.add_argument('--db', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--public-url', default=None, help=argparse.SUPPRESS)
    groups = parser.add_subparsers(dest='group', required=True)
    projects = groups.add_parser('projects', help='create and list projects', parents=[where]).add_subparsers(
        dest='action', required=True)
    add = projects.add_parser('add', help='create a project and print its key and DSN', parents=[where])
    add.add_argument('name')
    projects.add_parser('list', help='list projects with their keys and DSNs', parents=[where])
    monitors = groups.add_parser('monitors', help='create, list, change and delete cron monitors',
                                 parents=[where]).add_subparsers(dest='action', required=True)
    for action in ('add', 'set'):
        sub = monitors.add_parser(action, help='%s a monitor' % ('create' if action == 'add' else 'change'),
                                  parents=[where])
        sub.add_argument('--key', required=True, help='project key')
        sub.add_argument('slug', help='[a-z0-9_-]+, unique per project')
        sub.add_argument('--name', help='display name (default: the slug)')
        sub.add_argument('--schedule', required=action == 'add', help='interval (5m, 1h, 1d) or cron expression (UTC)')
        sub.add_argument('--grace', type=int, help='minutes of grace after the expected time (1-1440, default 5)')
        sub.add_argument('--max-runtime', type=int, help='minutes an in-progress run may take')
        sub.add_argument('--timezone', help='IANA time zone of a cron schedule (default UTC)')
    listing = monitors.add_parser('list', help='list monitors with status and next expected run', parents=[where])
    listing.add_argument('--key', required=True, help='project key')
    delete = monitors.add_parser('delete', help='delete a monitor and its history', parents=[where])
    delete.add_argument('--key', required=True, help='project key')
    delete.add_argument('slug')
    tokens = groups.add_parser('tokens', help='create, list and delete upload tokens (sentry-cli --auth-token)',
                               parents=[where]).add_subparsers(dest='action', required=True)
    add = tokens.add_parser('add', help="create a project's upload token and print it (shown once)", parents=[where])
    add.add_argument('--key', required=True, help='project key')
    add.add_argument('--name', default='', help='what the token is for (e.g. "ci")')
    listing = tokens.add_parser('list', help="list a project's upload tokens (not their values)", parents=[where])
    listing.add_argument('--key', required=True, help='project key')
    delete = tokens.add_parser('delete', help='delete an upload token', parents=[where])
    delete.add_argument('--key', required=True, help='project key')
    delete.add_argument('id', type=int, help='the token id that `tokens list` shows')
    return parser


def administer(argv):
    """`errorcapture projects ...`, `errorcapture monitors ...` and `errorcapture tokens ...`."""
    args = build_admin_parser().parse_args(argv)
    settings = resolve_options({'db': args.db, 'public_url': args.public_url})
    base = (settings['public_url'] or 'http://%s:%d' % (settings['host'], settings['port'])).rstrip('/')
    if not (args.group == 'projects' and args.action == 'add') and not os.path.exists(settings['db']):
        # a mistyped --db would otherwise leave an empty database behind
        print('errorcapture: no database at %s (set --db or ERRORCAPTURE_DB)' % settings['db'], file=sys.stderr)
        return 2
    store = Store(settings['db'], settings['synchronous'], autocheckpoint=settings['wal_autocheckpoint'])
    try:
        def show_project(project):
            scheme, _, rest = base.partition('://')
            print('%-4d %-24s key=%s  dsn=%s://%s@%s/%d' % (project['id'], project['name'][:24], project['key'],
                                                             scheme, project['key'], rest, project['id']))
        if args.group == 'projects':
            if args.action == 'add':
                show_project(store.create_project(name=args.name))
            else:
                for project in store.projects():
                    show_project(project)
            return 0
        project = store.project_by_key(args.key)
        if project is None:
            print('errorcapture: unknown project key', file=sys.stderr)
            return 2
        return (administer_tokens if args.group == 'tokens' else administer_monitors)(store, project, args)
    finally:
        store.close()


def reported_delete(deleted, what, label):
    """The exit status of a `delete`, said on the terminal: 2 when there was no such thing."""
    if not deleted:
        print('errorcapture: no such %s' % what, file=sys.stderr)
        return 2
    print('deleted %s' % label)
    return 0


def administer_monitors(store, project, args):
    """`errorcapture monitors add|set|list|delete --key KEY`."""
    if args.action in ('add', 'set'):
        fields = {'slug': args.slug}
        for name, value in (('name', args.name), ('schedule', args.schedule), ('grace', args.grace),
                            ('maxRuntime', args.max_runtime), ('timezone', args.timezone)):
            if value is not None:
                fields[name] = value
        try:
            store.monitors.save(project['id'], validate_monitor(fields, partial=args.action == 'set'),
                                create=args.action == 'add')
        except Invalid as exc:
            print('errorcapture: %s %s' % (exc.field or '', exc.message), file=sys.stderr)
            return 2
        args.action = 'list'
    if args.action == 'delete':
        return reported_delete(store.monitors.delete(project['id'], args.slug), 'monitor', args.slug)
    for monitor in store.monitors.list(project['id']):
        status, expected = monitor_state(monitor)
        print('%-24s %-9s schedule=%-14s grace=%dm next=%s last=%s' % (
            monitor['slug'], status, monitor['schedule'], monitor['grace'], iso(expected) or '-',
            iso(monitor['lastPing']) or '-'))
    return 0


def administer_tokens(store, project, args):
    """`errorcapture tokens add|list|delete --key KEY`."""
    if args.action == 'add':
        token = store.sourcemaps.create_token(project['id'], args.name)
        print(token['value'])
        print('upload token %d for project %s: sentry-cli --auth-token <it> (or SENTRY_AUTH_TOKEN); it is not '
              'shown again' % (token['id'], project['name'] or project['id']), file=sys.stderr)
        return 0
    if args.action == 'delete':
        return reported_delete(store.sourcemaps.delete_token(project['id'], args.id), 'token', 'token %d' % args.id)
    for token in store.sourcemaps.tokens(project['id']):
        print('%-4d %-24s created=%s last_used=%s' % (token['id'], token['name'][:24] or '-', iso(token['created']),
                                                        iso(token['last_used']) or '-'))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    position = 0
    while position < len(argv) and argv[position].split('=', 1)[0] in ('--db', '--public-url'):
        position += 1 if '=' in argv[position] else 2  # management commands may follow these two options
    try:
        if position < len(argv) and argv[position] in ('projects', 'monitors', 'tokens'):
            return administer(argv)
        args = build_parser().parse_args(argv)
        options = {name: getattr(args, name) for name in OPTION_TYPES if getattr(args, name) is not None}
        serve_forever(resolve_options(options))
    except (ValueError, OSError, sqlite3.Error) as exc:
        # a bad setting, a port in use, a database that cannot be opened: say so, no traceback
        print('errorcapture: %s' % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
