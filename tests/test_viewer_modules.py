"""The viewer's ES modules (static/*.js) hold together without a browser:
every import names a sibling that exports it, no module leans on a sibling's
name it did not import, each file is served as JavaScript under the viewer's
CSP, each is installed by setup.cfg, and none writes HTML from strings."""
import configparser
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC = os.path.join(ROOT, 'static')
MODULES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(STATIC, '*.js')))
DECLARATION = re.compile(r'^(export\s+)?(?:async\s+function|function|const|let|class)\s+([A-Za-z_$][\w$]*)', re.M)
LOCAL_DECLARATION = re.compile(r'^\s*(?:export\s+)?(?:async\s+function|function|const|let|class)\s+([A-Za-z_$][\w$]*)', re.M)
IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([^"]+)";$', re.M)
NAME = re.compile(r'(?<![\w$.])([A-Za-z_$][\w$]*)(?![\w$])')


def source(name):
    with open(os.path.join(STATIC, name), encoding='utf-8') as handle:
        return handle.read()


def regex_starts_at(text, i):
    """A / at i opens a regular expression literal (not a division) when what comes before it cannot end a value."""
    before = text[:i].rstrip()
    return not before or before[-1] in '(,=:[!&|?{};+-*%<>~^' or re.search(r'(?<![\w$])(return|typeof|case)$', before)


def code_only(text):
    """The text without comments, string and regular expression literals (so words in them are not names)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == '/' and not text.startswith('//', i) and not text.startswith('/*', i) and regex_starts_at(text, i):
            j, in_class = i + 1, False
            while j < n and (in_class or text[j] != '/'):
                if text[j] == '\\':
                    j += 1
                elif text[j] == '[':
                    in_class = True
                elif text[j] == ']':
                    in_class = False
                j += 1
            out.append('/x/')
            i = j + 1
        elif text.startswith('//', i):
            end = text.find('\n', i)
            i = n if end < 0 else end
        elif text.startswith('/*', i):
            end = text.find('*/', i + 2)
            i = n if end < 0 else end + 2
        elif text[i] in '"\'`':
            quote, j = text[i], i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == '\\' else 1
            out.append('""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


def exports():
    """name -> the module that exports it."""
    found = {}
    for module in MODULES:
        for exported, name in DECLARATION.findall(source(module)):
            if exported:
                assert name not in found, '%s is exported by both %s and %s' % (name, found[name], module)
                found[name] = module
    return found


def test_the_entry_module_is_the_only_script_of_the_page():
    html = source('index.html')
    scripts = re.findall(r'<script\b[^>]*>', html)
    assert scripts == ['<script type="module" src="/static/app.js">']
    assert 'app.js' in MODULES and len(MODULES) > 5


def test_every_import_names_an_export_of_that_sibling():
    exported = exports()
    for module in MODULES:
        for names, target in IMPORT.findall(source(module)):
            assert target in MODULES, '%s imports the missing file %s' % (module, target)
            for name in filter(None, (n.strip() for n in names.split(','))):
                assert exported.get(name) == target, '%s imports %s from %s, which does not export it' % (
                    module, name, target)
    for module in MODULES:
        for statement in re.findall(r'^import\b[^;]*;', source(module), re.M):
            assert IMPORT.fullmatch(statement), '%s: an import the checks cannot read: %s' % (module, statement)


def test_no_module_uses_a_siblings_name_without_importing_it():
    exported = exports()
    for module in MODULES:
        text = source(module)
        own = set(LOCAL_DECLARATION.findall(text))  # a local of the same name shadows a sibling's
        imported = {n.strip() for names, _ in IMPORT.findall(text) for n in names.split(',')}
        for name in set(NAME.findall(code_only(text))):
            if name in exported and exported[name] != module:
                assert name in own or name in imported, '%s uses %s (from %s) without importing it' % (
                    module, name, exported[name])


def test_no_module_writes_html_from_strings():
    for module in MODULES:
        code = code_only(source(module))
        for banned in ('innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(',
                       'new Function', 'srcdoc', 'createContextualFragment'):
            assert banned not in code, '%s uses %s' % (module, banned)


def test_setup_cfg_installs_every_static_file():
    """data_files takes static/* (one level), so the viewer must stay flat."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, 'setup.cfg'))
    assert config['options.data_files']['share/errorcapture/static'].split() == ['static/*']
    assert not [p for p in glob.glob(os.path.join(STATIC, '*')) if os.path.isdir(p)]


@pytest.mark.parametrize('module', MODULES)
def test_each_module_is_served_as_javascript_under_the_csp(client, module):
    answer = client.get('/static/' + module)
    assert answer.status_int == 200
    assert answer.content_type in ('text/javascript', 'application/javascript')
    assert answer.headers['X-Content-Type-Options'] == 'nosniff'
    assert "script-src 'self'" in answer.headers['Content-Security-Policy']
    assert answer.body.decode('utf-8') == source(module)
