"""Every example of the ErrorCapture API seed (tests/seeds/errorcapture-api.txt),
run as written against a real server: the curl calls with the real curl binary,
the Python, Node and Bash snippets as real programs, and the minimal POST.
The examples are cut out of the seed text, so the tests follow the document."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')
with open(os.path.join(SEEDS, 'errorcapture-api.txt'), encoding='utf-8') as _seed:
    SEED = _seed.read()

SEED_BASE = 'https://errorcapture.com'
RECEIVED_AT = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$')

needs_curl = pytest.mark.skipif(shutil.which('curl') is None, reason='needs the curl binary')


# -- cutting the examples out of the seed ---------------------------------------

def between(start, end, text=SEED):
    """The seed text after the first `start` and before the next `end`."""
    head = text.index(start) + len(start)
    return text[head:text.index(end, head)]


def json_after(marker, text=SEED):
    """The first JSON value that follows marker in the seed."""
    head = text.index(marker)
    head = text.index('{', head) if text.find('{', head) != -1 else head
    value, _ = json.JSONDecoder().raw_decode(text, head)
    return value


SUBMIT_CURL = re.search(r"^curl -X POST https://errorcapture\.com/api\.php \\\n.*?^  \}'$", SEED, re.M | re.S).group(0)
SUBMIT_RESPONSE = json_after('Response', between('POST /api.php', 'GET /api.php?action=generate'))
GENERATE_CURL = re.search(r'^curl "https://errorcapture\.com/api\.php\?action=generate[^"]*"$', SEED, re.M).group(0)
ERRORS_CURL = re.search(r'^curl "https://errorcapture\.com/api\.php\?action=errors[^"]*"$', SEED, re.M).group(0)
ERRORS_RESPONSE = json_after('{\n  "errors"')
CLEAR_CURL = re.search(r'^curl "https://errorcapture\.com/api\.php\?action=clear[^"]*"$', SEED, re.M).group(0)
CLEAR_RESPONSE = json_after('Response', between('GET /api.php?action=clear', 'Integration examples'))
PYTHON_SNIPPET = between('\nPython\n', '\nNode.js\n').strip('\n') + '\n'
NODE_SNIPPET = between('\nNode.js\n', '\nBash / cURL\n').strip('\n') + '\n'
BASH_SNIPPET = re.search(r'^report_error\(\) \{\n.*?^\}\n\n# Usage:\nreport_error .*?$', SEED, re.M | re.S).group(0)
MINIMAL_BODY = json_after('Send this JSON as a POST')


def test_the_examples_were_found_in_the_seed():
    # Guards the cutting above: each example is what the seed shows.
    assert '"hash": "your-project-key"' in SUBMIT_CURL and SUBMIT_CURL.endswith("}'")
    assert SUBMIT_RESPONSE == {'ok': True, 'id': 1}
    assert set(ERRORS_RESPONSE['errors'][0]) == {'id', 'level', 'message', 'file', 'line', 'url', 'method',
                                                 'get_params', 'post_params', 'hostname', 'received_at'}
    assert CLEAR_RESPONSE == {'ok': True, 'deleted': 4}
    assert 'sys.excepthook = report_error' in PYTHON_SNIPPET
    assert 'process.on("uncaughtException"' in NODE_SNIPPET and 'process.exit(1);' in NODE_SNIPPET
    assert BASH_SNIPPET.startswith('report_error() {') and 'report_error "Error"' in BASH_SNIPPET
    assert MINIMAL_BODY == {'hash': 'your-project-key', 'level': 'Error', 'message': 'Something went wrong'}


# -- helpers ------------------------------------------------------------------------

def run_shell(command, base_url, cwd=None):
    """Run a seed shell command with bash, the seed's base URL replaced."""
    command = command.replace(SEED_BASE, base_url)
    done = subprocess.run(['bash', '-c', command], capture_output=True, text=True, timeout=30, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def errors_of(server, key):
    status, body = get_json('%s/api.php?action=errors&hash=%s&since=0' % (server.url, key))
    assert status == 200, body
    return body['errors']


def expected_row(row_id, **fields):
    """A row of the errors list in the seed's shape, every context field null unless given."""
    row = {'id': row_id, 'level': None, 'message': None, 'file': None, 'line': None, 'url': None,
           'method': None, 'get_params': None, 'post_params': None, 'hostname': None}
    row.update(fields)
    return row


def assert_row(actual, expected):
    assert set(actual) == set(expected) | {'received_at'}
    assert RECEIVED_AT.match(actual['received_at']), actual['received_at']
    assert {k: v for k, v in actual.items() if k != 'received_at'} == expected


# -- the curl examples -----------------------------------------------------------------

@needs_curl
def test_curl_submit_answers_the_seed_response(live_server):
    assert run_shell(SUBMIT_CURL, live_server.url) == SUBMIT_RESPONSE


@needs_curl
def test_curl_errors_lists_exactly_the_seed_row(live_server):
    run_shell(SUBMIT_CURL, live_server.url)
    # the seed's submit uses "your-project-key", its errors call "your-key": poll the key we wrote
    answer = run_shell(ERRORS_CURL.replace('hash=your-key', 'hash=your-project-key'), live_server.url)
    expected = ERRORS_RESPONSE
    assert list(answer) == ['errors'] and len(answer['errors']) == 1
    (row,) = answer['errors']
    assert_row(row, {k: v for k, v in expected['errors'][0].items() if k != 'received_at'})


@needs_curl
def test_curl_generate_answers_a_hash(live_server):
    answer = run_shell(GENERATE_CURL, live_server.url)
    assert re.match(r'^[0-9a-f]{32}$', answer['hash'])
    assert answer['name'] == 'my-app'
    status, project = get_json('%s/api/v1/project?key=%s' % (live_server.url, answer['hash']))
    assert status == 200 and project['project']['name'] == 'my-app'


@needs_curl
def test_curl_clear_deletes_the_four_errors_of_the_seed_response(live_server):
    for _ in range(4):
        run_shell(SUBMIT_CURL.replace('your-project-key', 'your-key'), live_server.url)
    assert len(errors_of(live_server, 'your-key')) == 4
    assert run_shell(CLEAR_CURL, live_server.url) == CLEAR_RESPONSE
    assert errors_of(live_server, 'your-key') == []


# -- the integration snippets ---------------------------------------------------------------

def configure(snippet, server):
    """The snippet pointed at the test server (endpoint replaced, hash kept as "your-key")."""
    return snippet.replace(SEED_BASE + '/api.php', server.url + '/api.php')


def test_python_snippet_reports_an_uncaught_exception(live_server, tmp_path):
    pytest.importorskip('requests')
    program = configure(PYTHON_SNIPPET, live_server) + (
        '\n\n'
        'def checkout(total, items):\n'
        '    return total / items\n'
        '\n'
        'checkout(10, 0)\n')
    script = tmp_path / 'app.py'
    script.write_text(program)
    failing_line = program.splitlines().index('    return total / items') + 1
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    # the hook reports, then the default hook still prints the traceback and the program fails
    assert done.returncode == 1
    assert 'ZeroDivisionError: division by zero' in done.stderr
    (row,) = errors_of(live_server, 'your-key')
    assert_row(row, expected_row(1, level='ZeroDivisionError', message='division by zero',
                                 file=str(script), line=failing_line))


def node_or_skip():
    node = shutil.which('node')
    if node is None:
        pytest.skip('needs node')
    version = subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip('v').split('.')[0]) < 18:
        pytest.skip('the seed snippet needs a global fetch (Node 18+), found %s' % version)
    return node


NODE_THROW = ('\nfunction loadUser(id) {\n'
              '  throw new TypeError("Cannot read properties of undefined (reading \'name\')");\n'
              '}\n'
              'loadUser(17);\n')


def wait_for_errors(server, key, want, attempts=50):
    """Poll the errors list until `want` rows arrived or attempts run out."""
    rows = []
    for _ in range(attempts):
        status, body = get_json('%s/api.php?action=errors&hash=%s&since=0' % (server.url, key))
        rows = body.get('errors', []) if status == 200 else []
        if len(rows) >= want:
            break
        time.sleep(0.1)
    return rows


def test_node_snippet_as_written(live_server, tmp_path):
    node = node_or_skip()
    program = configure(NODE_SNIPPET, live_server) + NODE_THROW
    script = tmp_path / 'app.js'
    script.write_text(program)
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    # The seed's handler calls fetch() and then process.exit(1) at once, without
    # waiting: Node exits before the request is (fully) sent, so in practice nothing
    # arrives. Whatever the server did receive must be a correct row (and a
    # truncated request must not leave a broken one).
    rows = wait_for_errors(live_server, 'your-key', 1, attempts=5)
    assert len(rows) <= 1
    for row in rows:
        assert_row(row, expected_row(row['id'], level='TypeError',
                                     message="Cannot read properties of undefined (reading 'name')",
                                     file=str(script), line=program.splitlines().index(
                                         '  throw new TypeError("Cannot read properties of undefined '
                                         '(reading \'name\')");') + 1))


def node_snippet_waiting_for_fetch(server):
    """The seed's Node snippet with one change: exit once the fetch settled."""
    snippet = configure(NODE_SNIPPET, server)
    racing = '}).catch(() => {});\n  process.exit(1);'
    assert racing in snippet
    return snippet.replace(racing, '}).catch(() => {}).finally(() => process.exit(1));')


def test_node_snippet_delivers_when_exit_waits_for_fetch(live_server, tmp_path):
    node = node_or_skip()
    program = node_snippet_waiting_for_fetch(live_server) + NODE_THROW
    script = tmp_path / 'app.js'
    script.write_text(program)
    throw_line = program.splitlines().index(
        '  throw new TypeError("Cannot read properties of undefined (reading \'name\')");') + 1
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    (row,) = wait_for_errors(live_server, 'your-key', 1)
    assert_row(row, expected_row(1, level='TypeError',
                                 message="Cannot read properties of undefined (reading 'name')",
                                 file=str(script), line=throw_line))


def test_node_snippet_error_without_stack_frames(live_server, tmp_path):
    # No "at fn (file:line:col)" in the stack: the snippet sends file "" and line 0.
    node = node_or_skip()
    program = node_snippet_waiting_for_fetch(live_server) + (
        '\nconst err = new RangeError("queue is full");\n'
        'err.stack = "RangeError: queue is full";\n'
        'throw err;\n')
    script = tmp_path / 'app.js'
    script.write_text(program)
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    (row,) = wait_for_errors(live_server, 'your-key', 1)
    assert_row(row, expected_row(1, level='RangeError', message='queue is full', file='', line=0))


def test_node_nan_line_arrives_as_null(live_server):
    # A JavaScript client's parseInt of nothing is NaN, which JSON.stringify writes
    # as null: the body a JS client sends must be accepted with line null.
    node = node_or_skip()
    built = subprocess.run(
        [node, '-e', 'process.stdout.write(JSON.stringify({hash: "your-key", level: "Error", '
                     'message: "no line", file: "bundle.js", line: parseInt(undefined)}))'],
        capture_output=True, text=True, timeout=30)
    body = json.loads(built.stdout)
    assert body['line'] is None
    assert post_json(live_server.url + '/api.php', body) == {'ok': True, 'id': 1}
    (row,) = errors_of(live_server, 'your-key')
    assert_row(row, expected_row(1, level='Error', message='no line', file='bundle.js', line=None))


@needs_curl
def test_bash_report_error_function(live_server, tmp_path):
    script_text = '#!/usr/bin/env bash\n' + configure(BASH_SNIPPET, live_server) + '\n'
    script = tmp_path / 'deploy.sh'
    script.write_text(script_text)
    call_line = next(number for number, line in enumerate(script_text.splitlines(), 1)
                     if line.startswith('report_error "'))
    done = subprocess.run(['bash', str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {'ok': True, 'id': 1}
    (row,) = errors_of(live_server, 'your-key')
    assert_row(row, expected_row(1, level='Error', message='Deploy failed: migration returned non-zero',
                                 file=str(script), line=call_line))


@needs_curl
def test_bash_report_error_from_an_interactive_shell(live_server):
    # Sourced into a shell with no caller file: BASH_SOURCE[1] is empty -> "unknown".
    command = configure(BASH_SNIPPET, live_server)
    done = subprocess.run(['bash', '-c', command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)['ok'] is True
    (row,) = errors_of(live_server, 'your-key')
    assert row['file'] in ('unknown', 'bash')  # bash -c may name itself as the source
    assert isinstance(row['line'], int)
    assert row['message'] == 'Deploy failed: migration returned non-zero'


def test_minimal_post(live_server):
    assert post_json(live_server.url + '/api.php', MINIMAL_BODY) == {'ok': True, 'id': 1}
    (row,) = errors_of(live_server, MINIMAL_BODY['hash'])
    assert_row(row, expected_row(1, level='Error', message='Something went wrong'))
