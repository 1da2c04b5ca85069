"""The event model's fast paths give exactly what the plain code gave.

Each hot helper has a shortcut for the common case (iso() without datetime,
bound() copying plain leaves, cached stack traces and fingerprints). These
tests pin the answers a user sees in stored events, at the edges where a
shortcut could drift from the careful path."""
import random
from datetime import datetime, timezone

import pytest

import errorcapture as ec


def reference_iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


@pytest.mark.parametrize('ts', [0, 0.0004999, 0.0005, 0.0009999999, 1.9995, 1.0005, 1700000000.123456,
                                1700000000.9999996, 1700000000.0004999, 4102444799.9999, 253402300799.999])
def test_iso_matches_datetime_at_rounding_edges(ts):
    assert ec.iso(ts) == reference_iso(ts)


def test_iso_matches_datetime_on_random_times():
    rng = random.Random(7)
    for _ in range(20000):
        ts = rng.uniform(0, 4102444800)
        assert ec.iso(ts) == reference_iso(ts), ts


@pytest.mark.parametrize('ts', [None, float('inf'), float('nan'), 1e20, 253402300800])
def test_iso_gives_none_for_what_it_cannot_show(ts):
    assert ec.iso(ts) is None


def test_bound_keeps_plain_data_and_fixes_every_kind_of_leaf_at_any_depth():
    long_text = 'x' * (ec.MAX_STRING + 5)
    leaves = {'text': 'ok', 'nul': 'a\x00b', 'long': long_text, 'small': 7, 'huge': 1 << 70,
              'nan': float('nan'), 'inf': float('inf'), 'real': 1.5, 'yes': True, 'none': None,
              'k\x00ey': 1, 'k' * 300: 2}
    expected = {'text': 'ok', 'nul': 'a\ufffdb', 'long': ec.clip(long_text), 'small': 7, 'huge': str(1 << 70),
                'nan': None, 'inf': None, 'real': 1.5, 'yes': True, 'none': None,
                'k\ufffdey': 1, ec.clip('k' * 300, 256): 2}
    assert ec.bound(leaves) == expected
    assert ec.bound([leaves, [leaves]]) == [expected, [expected]]
    assert ec.bound({'a': {'b': [leaves]}}) == {'a': {'b': [expected]}}
    assert long_text not in str(ec.bound({'deep': [[long_text]]}))


def test_bound_caps_depth_and_width_with_visible_markers():
    deep = 'bottom'
    for _ in range(ec.MAX_DEPTH + 3):
        deep = {'next': deep}
    out, depth = ec.bound(deep), 0
    while isinstance(out, dict):
        out, depth = out['next'], depth + 1
    assert out == '[\u2026]' and depth == ec.MAX_DEPTH
    wide = ec.bound({str(i): i for i in range(ec.MAX_ITEMS + 5)})
    assert len(wide) == ec.MAX_ITEMS + 1 and wide['\u2026'] == '[5 more keys truncated]'
    long_list = ec.bound(list(range(ec.MAX_ITEMS + 3)))
    assert long_list[-1] == '[3 more items truncated]' and long_list[:3] == [0, 1, 2]


def test_bound_returns_copies_not_the_clients_objects():
    data = {'user': {'id': 1}, 'tags': ['a']}
    out = ec.bound(data)
    out['user']['id'] = 2
    out['tags'].append('b')
    assert data == {'user': {'id': 1}, 'tags': ['a']}


JS_STACK = ['at getUserId (auth.js:42:18)', 'at validateSession (session.js:17:5)',
            'at Object.<anonymous> (/srv/app/node_modules/express/index.js:88:3)']


def test_a_repeated_stack_trace_parses_the_same_and_each_event_owns_its_frames():
    first = ec.parse_stack_trace(JS_STACK)
    assert [f['function'] for f in first] == ['Object.<anonymous>', 'validateSession', 'getUserId']
    assert [f['inApp'] for f in first] == [False, True, True]
    first[0]['function'] = 'changed by a caller'
    first.append({'function': 'extra'})
    assert ec.parse_stack_trace(list(JS_STACK)) == ec.parse_stack_trace('\n'.join(JS_STACK))
    second = ec.parse_stack_trace(JS_STACK)
    assert [f['function'] for f in second] == ['Object.<anonymous>', 'validateSession', 'getUserId']


def test_a_very_long_stack_trace_is_parsed_without_being_remembered():
    lines = ['at handler%d (/srv/app/src/module%d.js:%d:7)' % (i, i, i + 1) for i in range(400)]
    assert sum(map(len, lines)) > 8192
    frames = ec.parse_stack_trace(lines)
    assert frames[-1]['function'] == 'handler0' and frames[0]['function'] == 'handler399'


def test_events_with_equal_grouping_share_a_fingerprint_and_others_do_not():
    def event(message, line=42):
        return ec.api_php_event({'level': 'Warning', 'message': message, 'file': '/var/www/a.php', 'line': line})
    assert event('Undefined index 17')['_fingerprint'] == event('Undefined index 18')['_fingerprint']
    assert event('Undefined index 17')['_fingerprint'] != event('Undefined offset 17')['_fingerprint']
    assert event('Undefined index 17')['_fingerprint'] != event('Undefined index 17', line=43)['_fingerprint']
    assert ec.normalize_message('user 17 at http://x.io/a') == 'user <num> at <url>'
