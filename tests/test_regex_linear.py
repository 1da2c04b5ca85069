"""Every regular expression that sees client text runs in time linear in its
input (issue 16, item 2).

Python's re backtracks, so a pattern is only as safe as its shape. Timing a
pattern on a noisy shared machine proves nothing, so this checks the shape:
the parse tree of every compiled pattern in the module must be free of the
three forms that make a backtracking matcher super-linear:

  A. a repeat whose body holds an unbounded repeat (``(a+)+``, star height 2),
     or an unbounded repeat of anything longer than one character;
  B. two unbounded repeats that can share the same characters with nothing
     between them that only one of them can take (``[0-9a-f]*\\d[0-9a-f]*``:
     the shape of the cubic hex pattern this test was written for);
  C. in a pattern used to search (not anchored at the start), an unbounded
     repeat that can start anywhere inside a run of its own characters and
     then still fail (``[a-z.]*://`` over ``a.a.a.a...``): each start scans
     the run again.

Beside the shapes, the functional tests check that normalization still means
what it meant, on the inputs that used to take seconds."""
import re
import subprocess
import sys

import pytest

import errorcapture

try:
    import re._parser as sre_parse
    import re._constants as sre_constants
except ImportError:  # Python < 3.11
    import sre_parse
    import sre_constants

C = sre_constants
MAXREPEAT = C.MAXREPEAT
REPEATS = tuple(getattr(C, name) for name in ('MAX_REPEAT', 'MIN_REPEAT', 'POSSESSIVE_REPEAT') if hasattr(C, name))
# Characters stand for their classes: every ASCII one and a few beyond.
ALPHABET = frozenset(chr(i) for i in range(128)) | frozenset('\u00e9\u00df\u2028\u4e2d\u0660\u00a0')
WORD = frozenset(ch for ch in ALPHABET if re.match(r'\w', ch))
CATEGORIES = {}
for _name, _regex in (('DIGIT', r'\d'), ('WORD', r'\w'), ('SPACE', r'\s')):
    CATEGORIES[getattr(C, 'CATEGORY_' + _name)] = frozenset(ch for ch in ALPHABET if re.match(_regex, ch))
    CATEGORIES[getattr(C, 'CATEGORY_NOT_' + _name)] = ALPHABET - CATEGORIES[getattr(C, 'CATEGORY_' + _name)]


def cased(chars, ignore_case):
    if not ignore_case:
        return frozenset(chars)
    return frozenset(c for ch in chars for c in (ch, ch.lower(), ch.upper()) if c in ALPHABET)


def char_set(node, ignore_case):
    """The characters a one-character node takes, or None if it is not one."""
    op, av = node
    if op is C.LITERAL:
        return cased([chr(av)], ignore_case) & ALPHABET or frozenset([chr(av)])
    if op is C.NOT_LITERAL:
        return ALPHABET - cased([chr(av)], ignore_case)
    if op is C.ANY:
        return ALPHABET - {'\n'}
    if op is C.IN:
        chars, negate = set(), False
        for item_op, item_av in av:
            if item_op is C.NEGATE:
                negate = True
            elif item_op is C.LITERAL:
                chars.add(chr(item_av))
            elif item_op is C.RANGE:
                chars.update(ch for ch in ALPHABET if item_av[0] <= ord(ch) <= item_av[1])
            elif item_op is C.CATEGORY:
                chars.update(CATEGORIES[item_av])
            else:
                return None
        chars = cased(chars, ignore_case)
        return ALPHABET - chars if negate else frozenset(chars)
    return None


def repeat_parts(node):
    op, av = node
    if op in REPEATS:
        return av  # (min, max, body)
    return None


def flatten(sequence):
    """Items of a sequence with plain groups opened (their items join it)."""
    out = []
    for op, av in sequence:
        if op is C.SUBPATTERN:
            out.extend(flatten(av[-1]))
        else:
            out.append((op, av))
    return out


def expansions(sequence):
    """Every branch-free sequence the pattern can take (alternatives expanded)."""
    items = flatten(sequence)
    for index, (op, av) in enumerate(items):
        if op is C.BRANCH:
            for alternative in av[1]:
                for rest in expansions(list(alternative) + items[index + 1:]):
                    yield items[:index] + rest
            return
    yield items


def has_unbounded(sequence):
    for op, av in sequence:
        parts = repeat_parts((op, av))
        if parts is not None:
            if parts[1] == MAXREPEAT or has_unbounded(parts[2]):
                return True
        elif op is C.SUBPATTERN and has_unbounded(av[-1]):
            return True
        elif op is C.BRANCH and any(has_unbounded(alt) for alt in av[1]):
            return True
    return False


def single(body, ignore_case):
    items = flatten(body)
    return char_set(items[0], ignore_case) if len(items) == 1 else None


def problems(pattern):
    ignore_case = bool(pattern.flags & re.IGNORECASE)
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    found = []
    anchored = bool(tree.data) and tree.data[0] == (C.AT, C.AT_BEGINNING) and not pattern.flags & re.MULTILINE

    def nested(sequence):
        for op, av in sequence:
            parts = repeat_parts((op, av))
            if parts is not None:
                low, high, body = parts
                if high == MAXREPEAT and single(body, ignore_case) is None:
                    found.append('A: unbounded repeat of more than one character')
                elif high > 1 and has_unbounded(body):
                    found.append('A: a repeat holds an unbounded repeat')
                nested(body)
            elif op is C.SUBPATTERN:
                nested(av[-1])
            elif op is C.BRANCH:
                for alternative in av[1]:
                    nested(alternative)

    def adjacent(items, top):
        for index, node in enumerate(items):
            parts = repeat_parts(node)
            if parts is None:
                continue
            if parts[1] != MAXREPEAT:
                adjacent(flatten(parts[2]), False)
                continue
            first = single(parts[2], ignore_case)
            if first is None:
                continue
            middles = []
            for later in items[index + 1:]:
                later_parts = repeat_parts(later)
                if later[0] is C.AT:
                    continue
                if later_parts is not None and later_parts[1] == MAXREPEAT:
                    second = single(later_parts[2], ignore_case)
                    if second is not None and first & second and all(m & first and m & second for m in middles):
                        found.append('B: two unbounded repeats share characters')
                    break
                if later_parts is not None and later_parts[0] == 0:
                    continue  # may match nothing
                middle = single(later_parts[2], ignore_case) if later_parts else char_set(later, ignore_case)
                if middle is None or not middle & first:
                    break
                middles.append(middle)
            if top and not anchored:
                restart(items, index, first)

    def restart(items, index, chars):
        # Something after the repeat must be able to fail, or the match just ends there.
        after = items[index + 1:]
        can_fail = any(not (node[0] is C.AT and node[1] == C.AT_END) and not (
            repeat_parts(node) is not None and repeat_parts(node)[0] == 0) for node in after)
        if not can_fail:
            return
        for earlier in items[:index]:
            if earlier == (C.AT, C.AT_BOUNDARY) and chars <= WORD:
                return  # only the first character of a word run can start it
            parts = repeat_parts(earlier)
            if parts is not None and parts[0] == 0:
                continue
            one = single(parts[2], ignore_case) if parts else char_set(earlier, ignore_case)
            if one is not None and not one & chars:
                return  # a delimiter it cannot take starts every match
        found.append('C: a search can start anywhere in a run of the repeat and fail')

    nested(tree.data)
    for items in expansions(list(tree.data)):
        adjacent(items, True)
    return sorted(set(found))


def module_patterns():
    """Every compiled pattern the module holds (at top level or in a table)."""
    seen = {}

    def visit(value, name):
        if isinstance(value, re.Pattern):
            seen.setdefault(value.pattern, (name, value))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, '%s[%d]' % (name, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, '%s[%r]' % (name, key))
    for name, value in vars(errorcapture).items():
        if not name.startswith('__'):
            visit(value, name)
    for cls in [v for v in vars(errorcapture).values() if isinstance(v, type)]:
        for name, value in vars(cls).items():
            visit(value, '%s.%s' % (cls.__name__, name))
    # and the literal patterns passed to re.match, re.sub... inside functions
    import ast
    with open(errorcapture.__file__, encoding='utf-8') as source:
        tree = ast.parse(source.read())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == 're'
                and node.func.attr in ('compile', 'match', 'fullmatch', 'search', 'sub', 'subn', 'findall',
                                       'finditer', 'split') and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            flags = 0
            for keyword in node.keywords:
                if keyword.arg == 'flags' and isinstance(keyword.value, ast.Attribute):
                    flags |= getattr(re, keyword.value.attr)
            if len(node.args) > 1 and node.func.attr == 'compile' and isinstance(node.args[1], ast.Attribute):
                flags |= getattr(re, node.args[1].attr)
            pattern = re.compile(node.args[0].value, flags)
            seen.setdefault(pattern.pattern, ('line %d' % node.lineno, pattern))
    return sorted(seen.values(), key=lambda pair: pair[0])


def test_the_checker_finds_the_shapes_it_is_for():
    assert problems(re.compile(r'\b([0-9a-f]*\d[0-9a-f]*[a-f][0-9a-f]*)\b', re.I))
    assert problems(re.compile(r'(a+)+$'))
    assert problems(re.compile(r'\b[a-z][a-z0-9+.-]*://x'))
    assert problems(re.compile(r'^\s*(?P<function>[^@]*)@'))
    assert problems(re.compile(r'(/<)+$'))
    assert not problems(re.compile(r'\b[0-9a-f]+\b'))
    assert not problems(re.compile(r"'[^']*'"))
    assert not problems(re.compile(r'^at (?P<file>[^()]+?):(?P<line>\d+)$'))


def test_the_module_holds_the_patterns_it_uses():
    names = [name for name, _ in module_patterns()]
    assert len(names) >= 25, names
    assert any(name.startswith('MESSAGE_VARIABLES') for name in names)


@pytest.mark.parametrize('name,pattern', module_patterns(), ids=lambda value: value if isinstance(value, str) else '')
def test_pattern_cannot_backtrack_super_linearly(name, pattern):
    assert problems(pattern) == [], '%s = %r' % (name, pattern.pattern)


HOSTILE_MESSAGES = ['1a' * 511 + '_', 'a1' * 512, ('0' * 40 + 'f') * 25 + '_', 'a.' * 512 + '!',
                    'x@' * 512, '1.' * 512 + 'x', '-' * 1024, "'" * 1024, 'http' + ':/' * 510]


def run_guarded(code):
    """Run code in a child Python; the timeout only guards against a hang."""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            cwd=errorcapture.__file__.rsplit('/', 1)[0])
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_hostile_messages_normalize_without_hanging():
    out = run_guarded('import errorcapture\n'
                      'for text in %r:\n'
                      '    print(repr(errorcapture.normalize_message(text)))\n' % (HOSTILE_MESSAGES,))
    assert len(out.splitlines()) == len(HOSTILE_MESSAGES)


def test_hostile_stack_lines_parse_without_hanging():
    # built in the child: the lines are too long for a command line
    lines = ("[' ' * 200000, ' ' * 100000 + 'x', 'at ' + '/<' * 50000 + 'x', 'a@' * 50000, "
             "'at ' + 'a (' * 30000, '  File \"' + '\"' * 50000, ' ' * 100000 + '@x:1']")
    out = run_guarded('import errorcapture\nprint(len(errorcapture.parse_stack_trace(%s)))' % lines)
    assert out.strip().isdigit()


@pytest.mark.parametrize('text,expected', [
    ('user 17 not found', 'user <num> not found'),
    ('timeout after 3.5 s', 'timeout after <num> s'),
    ('GET https://example.com/a?b=1 failed', 'GET <url> failed'),
    ('mail to bob.smith+x@mail.example.org bounced', 'mail to <email> bounced'),
    ('row 550e8400-e29b-41d4-a716-446655440000 is locked', 'row <uuid> is locked'),
    ('connect 10.0.0.12:5432 refused', 'connect <ip> refused'),
    ('object 0x7f3a2b1c at rest', 'object <hex> at rest'),
    ('commit deadbeef12 missing', 'commit <hex> missing'),
    ('word deadbeef stays, so does abc123', 'word deadbeef stays, so does abc123'),
    ("key 'abc' missing", 'key <str> missing'),
    ('value "x y" and `z`', 'value <str> and <str>'),
    ('1a' * 511 + '_', '1a' * 511 + '_'),  # one word, not hex: it has an underscore
    ('token ' + '1a' * 8 + ' expired', 'token <hex> expired'),
])
def test_message_variables_still_group_as_before(text, expected):
    assert errorcapture.normalize_message(text) == expected


def test_firefox_and_node_frames_still_parse():
    frames = errorcapture.parse_stack_trace([
        'TypeError: x is undefined',
        '    at Object.<anonymous> (/srv/app/index.js:10:15)',
        '    at next (/srv/app/node_modules/express/router.js:3:7)',
        'outer/</inner@https://host/app.js:20:5',
    ])
    assert [(f.get('function'), f.get('lineno')) for f in frames] == [
        ('outer/</inner', 20), ('next', 3), ('Object.<anonymous>', 10)]
    python = errorcapture.parse_stack_trace(
        'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in main\n    run()\n')
    assert python[0]['function'] == 'main' and python[0]['contextLine'] == 'run()'
