"""The source map parser: base64 VLQ, mappings, lookups, index maps, context
lines, and the URL and name rules a mapped frame follows."""
import json
import random

import pytest

from errorcapture import (SourceMapError, context_around, decode_vlq, join_url, map_frame,
                             parse_source_map, release_file_candidates, source_filename)

BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def encode_vlq(number):
    """The test's own encoder (the spec's definition), to round-trip against."""
    value = (-number << 1) | 1 if number < 0 else number << 1
    out = ''
    while True:
        digit, value = value & 31, value >> 5
        out += BASE64[digit | (32 if value else 0)]
        if not value:
            return out


def encode_mappings(lines):
    """lines: per generated line, a list of (column, source, line, column, name or None)."""
    previous = [0, 0, 0, 0]
    texts = []
    for segments in lines:
        column = 0
        parts = []
        for generated, source, line, original, name in segments:
            fields = [generated - column, source - previous[0], line - previous[1], original - previous[2]]
            column = generated
            previous[:3] = [source, line, original]
            if name is not None:
                fields.append(name - previous[3])
                previous[3] = name
            parts.append(''.join(encode_vlq(f) for f in fields))
        texts.append(','.join(parts))
    return ';'.join(texts)


def make_map(lines, sources=('a.js',), names=(), contents=None, **extra):
    data = {'version': 3, 'sources': list(sources), 'names': list(names), 'mappings': encode_mappings(lines)}
    if contents is not None:
        data['sourcesContent'] = contents
    data.update(extra)
    return json.dumps(data).encode()


def test_vlq_values_from_the_specification():
    assert decode_vlq('AAAA') == [0, 0, 0, 0]
    assert decode_vlq('AACA') == [0, 0, 1, 0]
    assert decode_vlq('D') == [-1]
    assert decode_vlq('gB') == [16]
    assert decode_vlq('hB') == [-16]
    assert decode_vlq('2HwcrxB') == [123, 456, -789]
    for number in (0, 1, -1, 15, 16, -16, 1023, 1 << 20, -(1 << 30)):
        assert decode_vlq(encode_vlq(number)) == [number]


@pytest.mark.parametrize('bad', ['AA!A', 'g', 'gggggggggggggggB'])
def test_bad_vlq_is_a_malformed_map(bad):
    with pytest.raises(SourceMapError) as caught:
        decode_vlq(bad)
    assert caught.value.kind == 'malformed_sourcemap'


def test_lookup_finds_the_closest_mapping_at_or_before_the_column():
    smap = parse_source_map(make_map([[(0, 0, 0, 0, None), (10, 0, 4, 2, 0), (20, 0, 9, 0, None)]],
                                     names=['computeTotal']))
    assert smap.lookup(0, 0).line == 0
    token = smap.lookup(0, 15)
    assert (token.source, token.line, token.column, token.name) == ('a.js', 4, 2, 'computeTotal')
    assert smap.lookup(0, 10).line == 4
    assert smap.lookup(0, 10 ** 6).line == 9
    assert smap.lookup(-1, 0) is None


def test_a_line_without_mappings_falls_back_to_the_last_mapping_before_it():
    smap = parse_source_map(make_map([[(5, 0, 2, 0, None)], [], [(3, 0, 7, 0, None)]]))
    assert smap.lookup(1, 0).line == 2   # empty line: the previous line's last token
    assert smap.lookup(2, 1).line == 2   # before the first token of line 2: same rule
    assert smap.lookup(2, 3).line == 7
    assert smap.lookup(0, 1) is None     # nothing at or before it at all


def test_a_segment_that_maps_nothing_gives_no_token():
    smap = parse_source_map(json.dumps({'version': 3, 'sources': ['a.js'], 'names': [],
                                        'mappings': 'AAAA,K'}).encode())
    assert smap.lookup(0, 2).line == 0
    assert smap.lookup(0, 5) is None


def test_random_maps_round_trip_against_a_brute_force_lookup():
    rng = random.Random(18)
    for _ in range(30):
        lines = []
        for _ in range(rng.randint(1, 6)):
            columns = sorted(rng.sample(range(0, 5000), rng.randint(0, 40)))
            lines.append([(c, rng.randrange(3), rng.randrange(400), rng.randrange(120),
                           rng.choice([None, rng.randrange(5)])) for c in columns])
        smap = parse_source_map(make_map(lines, sources=['a.js', 'b.js', 'c.js'], names=list('vwxyz')))
        flat = [(line, seg) for line, segments in enumerate(lines) for seg in segments]
        for _ in range(60):
            line, column = rng.randrange(len(lines) + 1), rng.randrange(5200)
            before = [(l, seg) for l, seg in flat if (l, seg[0]) <= (line, column)]
            token = smap.lookup(line, column)
            if not before:
                assert token is None
                continue
            _, (generated, source, original_line, original_column, name) = max(before, key=lambda x: (x[0], x[1][0]))
            assert (token.source, token.line, token.column) == ('abc'[source] + '.js', original_line, original_column)
            assert token.name == (None if name is None else 'vwxyz'[name])


def test_index_maps_look_up_inside_their_sections():
    first = json.loads(make_map([[(0, 0, 1, 0, None)]], sources=['one.js']))
    second = json.loads(make_map([[(0, 0, 3, 0, None), (4, 0, 5, 0, None)]], sources=['two.js'],
                                 contents=['a\nb\nc\nd\ne\nf\n']))
    smap = parse_source_map(json.dumps({'version': 3, 'sections': [
        {'offset': {'line': 0, 'column': 0}, 'map': first},
        {'offset': {'line': 0, 'column': 100}, 'map': second}]}).encode())
    assert smap.lookup(0, 50).source == 'one.js'
    token = smap.lookup(0, 105)
    assert (token.source, token.line) == ('two.js', 5)
    assert smap.source_lines(token)[5] == 'f'


@pytest.mark.parametrize('raw', [
    b'not json', b'[]', b'{"version": 2, "sources": [], "mappings": ""}',
    b'{"version": 3, "sources": "a.js", "mappings": ""}',
    b'{"version": 3, "sources": ["a.js"], "names": [], "mappings": "AAAA,ACAA"}',   # source index 1 of 1
    b'{"version": 3, "sources": ["a.js"], "names": [], "mappings": "AAAAC"}',       # name index 1 of 0
    b'{"version": 3, "sources": ["a.js"], "names": [], "mappings": "AA"}',          # 2 fields
    b'{"version": 3, "sources": ["a.js"], "names": [], "mappings": 7}',
    b'\xff\xfe',
])
def test_broken_maps_are_reported_as_malformed(raw):
    with pytest.raises(SourceMapError) as caught:
        parse_source_map(raw)
    assert caught.value.kind == 'malformed_sourcemap'


def test_source_root_and_the_xssi_guard():
    smap = parse_source_map(b")]}'\n" + make_map([[(0, 0, 0, 0, None)]], sources=['x.js'], sourceRoot='src/'))
    assert smap.lookup(0, 0).source == 'src/x.js'


def test_context_lines_around_the_original_line():
    lines = ['line %d' % n for n in range(1, 21)]
    pre, line, post = context_around(lines, 10)
    assert line == 'line 10'
    assert pre == ['line 5', 'line 6', 'line 7', 'line 8', 'line 9']
    assert post == ['line 11', 'line 12', 'line 13', 'line 14', 'line 15']
    assert context_around(lines, 1)[0] == []
    assert context_around(lines, 21) == (None, None, None)
    long_line = 'x' * 5000 + 'HERE' + 'y' * 5000
    assert 'HERE' in context_around([long_line], 1, 5000)[1]
    assert len(context_around([long_line], 1, 5000)[1]) < 400


def test_urls_of_sources_and_release_files():
    assert join_url('http://h/static/app.min.js.map', '../app/src.js') == 'http://h/app/src.js'
    assert join_url('~/static/app.min.js.map', '../app/src.js') == '~/app/src.js'
    assert join_url('~/app.min.js', 'app.min.js.map') == '~/app.min.js.map'
    assert join_url('http://h/a.js.map', 'webpack://app/./src/x.js') == 'webpack://app/./src/x.js'
    assert source_filename('http://h/app/src.js') == 'app/src.js'
    assert source_filename('~/app/src.js') == 'app/src.js'
    assert source_filename('webpack://app/./src/x.js') == 'src/x.js'
    assert source_filename('webpack:///./src/x.js') == 'src/x.js'
    assert release_file_candidates('http://h:1/static/app.min.js?v=2') == [
        'http://h:1/static/app.min.js?v=2', 'http://h:1/static/app.min.js', '~/static/app.min.js?v=2',
        '~/static/app.min.js']


def test_a_mapped_frame_takes_file_line_column_context_and_the_callers_name():
    source = 'function computeTotal(items) {\n  let total = 0;\n  throw new Error("x");\n}\n'
    smap = parse_source_map(make_map([[(0, 0, 0, 0, None), (40, 0, 2, 2, 1), (80, 0, 0, 9, 0)]],
                                     sources=['../src/cart.js'], names=['computeTotal', 'Error'],
                                     contents=[source]))
    minified = {'filename': 'http://h/static/app.min.js', 'absPath': 'http://h/static/app.min.js',
                'function': 'e', 'lineno': 1, 'colno': 41, 'inApp': True}
    caller = smap.lookup(0, 81)   # the call site e(...) in the caller's frame
    token = smap.lookup(0, 40)
    mapped = map_frame(minified, token, smap, 'http://h/static/app.min.js.map', caller_token=caller)
    assert mapped['filename'] == 'src/cart.js'
    assert mapped['absPath'] == 'http://h/src/cart.js'
    assert (mapped['lineno'], mapped['colno'], mapped['function']) == (3, 3, 'computeTotal')
    assert mapped['contextLine'] == '  throw new Error("x");'
    assert mapped['preContext'] == ['function computeTotal(items) {', '  let total = 0;']
    assert mapped['postContext'] == ['}']
    assert mapped['inApp'] is True
    # without a caller the minified name stays (the throw site's token names Error, not the function)
    assert map_frame(minified, token, smap, 'http://h/static/app.min.js.map')['function'] == 'e'


def test_the_minified_name_of_a_frames_function():
    from errorcapture import minified_function_name
    assert minified_function_name('e') == 'e'
    assert minified_function_name('Object.e') == 'e'
    assert minified_function_name('HTMLButtonElement.t [as onclick]') == 't'
    assert minified_function_name('new Ab') == 'Ab'
    assert minified_function_name('async $x') == '$x'
    for anonymous in (None, '', '<anonymous>', '?', 'eval at x', 7):
        assert minified_function_name(anonymous) is None


def test_where_a_minified_function_is_declared():
    from errorcapture import declaration_column
    code = 'function e(o){return 1}function c(){return e([1])};var t=function(){throw 1},at=(x)=>x;' \
           'class K{m(){throw 2}}'
    assert declaration_column(code, 'e', code.index('return 1')) == 9
    assert declaration_column(code, 'c', code.index('e([1])')) == code.index('c(')
    assert declaration_column(code, 't', code.index('throw 1')) == code.index('t=function')
    assert declaration_column(code, 'm', code.index('throw 2')) == code.index('m(){')
    assert declaration_column(code, 'e', 3) is None          # nothing declared before the position
    assert declaration_column(code, 'x', len(code)) is None  # never declared as a function
    # `at=(` is not the declaration of `t`
    assert declaration_column('var at=(x)=>x;', 't', 12) is None


def test_segments_out_of_order_are_sorted_once_not_inserted(monkeypatch):
    import errorcapture

    class NoInsert(errorcapture.array):
        def insert(self, *args):
            raise AssertionError('array.insert makes a descending line quadratic')
    monkeypatch.setattr(errorcapture, 'array', NoInsert)
    descending = [[(column, 0, column, 0, None) for column in range(2000, 0, -1)] + [(5, 0, 9999, 0, None)]]
    smap = parse_source_map(make_map(descending))   # encode_mappings keeps the order given (deltas go negative)
    columns, _ = smap.lines[0]
    assert list(columns) == sorted(columns) and len(columns) == 2001
    assert smap.lookup(0, 1500).line == 1500
    assert smap.lookup(0, 5).line == 9999   # equal columns: the later segment wins, as before
    assert smap.lookup(0, 0) is None


def test_empty_lines_share_one_object_and_count_in_the_weight():
    from errorcapture import MAX_MAP_LINES
    smap = parse_source_map(make_map([[]] * 100000 + [[(0, 0, 0, 0, None)]]))
    assert len(smap.lines) == 100001
    assert len({id(line) for line in smap.lines[:-1]}) == 1
    assert smap.weight >= 12 * 100000
    with pytest.raises(SourceMapError, match='generated lines'):
        parse_source_map(json.dumps({'version': 3, 'sources': ['a.js'], 'names': [],
                                     'mappings': ';' * MAX_MAP_LINES}).encode())
    # at the cap, a map still parses
    assert len(parse_source_map(json.dumps({'version': 3, 'sources': ['a.js'], 'names': [],
                                            'mappings': ';' * (MAX_MAP_LINES - 1)}).encode()).lines) == MAX_MAP_LINES


def test_a_declaration_is_looked_for_only_within_a_bounded_window():
    from errorcapture import DECLARATION_WINDOW, declaration_column
    near = 'function e(){' + 'x;' * 1000 + 'throw 1}'
    assert declaration_column(near, 'e', near.index('throw')) == 9
    far = 'function e(){' + 'x;' * DECLARATION_WINDOW + 'throw 1}'
    assert declaration_column(far, 'e', far.index('throw')) is None
    assert DECLARATION_WINDOW <= 64 << 10
