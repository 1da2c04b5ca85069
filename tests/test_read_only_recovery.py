"""A database file that really is read-only (its permissions taken away, not
an injected connection) answers 503, and once it is writable again writes
succeed without a restart (issue 16, item 9). As root every file is
writable, so the check runs in a child process without CAP_DAC_OVERRIDE
(setpriv); it is skipped where that cannot be done."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import errorcapture, webtest
folder = sys.argv[2]
db = os.path.join(folder, 'ro.db')
app = errorcapture.make_app(db, sweep_interval=0)
client = webtest.TestApp(app)
key = client.get('/api.php?action=generate').json['hash']

def post(message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message}),
                         content_type='application/json', expect_errors=True)
    return answer.status_int

def files(mode):
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(db + suffix):
            os.chmod(db + suffix, mode)

results = [post('before')]
app.close()
files(0o444)                      # restored from a backup with the wrong permissions, say
app = errorcapture.make_app(db, sweep_interval=0)
client = webtest.TestApp(app)
results += [post('while read-only'), post('still read-only')]
files(0o644)                      # fixed by the operator: no restart
results += [post('after'), post('after again')]
stored = [e['message'] for e in client.get('/api.php?action=errors&hash=' + key).json['errors']]
app.close()
print(json.dumps({'statuses': results, 'stored': stored}))
'''


# The server stopped cleanly (SQLite removed the -wal and -shm files), the file came
# back read-only, and the server started on it: SQLite then makes the -shm file with
# the database file's mode (read-only), and every connection of the process shares
# that one read-only mapping. Making the database writable again must be enough.
COLD_START_CHILD = r'''
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import errorcapture, webtest
folder = sys.argv[2]
db = os.path.join(folder, 'ro.db')
first_run = ("import json, sys; sys.path.insert(0, %r); import errorcapture, webtest; "
             "app = errorcapture.make_app(%r, sweep_interval=0); client = webtest.TestApp(app); "
             "key = client.get('/api.php?action=generate').json['hash']; "
             "client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': 'before'}), "
             "content_type='application/json'); app.close(); print(key)") % (sys.argv[1], db)
key = subprocess.run([sys.executable, '-c', first_run], capture_output=True, text=True, check=True).stdout.split()[-1]
leftovers = sorted(name for name in os.listdir(folder) if name != 'ro.db')
os.chmod(db, 0o444)
app = errorcapture.make_app(db, sweep_interval=0)
client = webtest.TestApp(app)

def post(message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message}),
                         content_type='application/json', expect_errors=True)
    return answer.status_int

def stored():
    return sorted(e['message'] for e in client.get('/api.php?action=errors&hash=' + key).json['errors'])

results = [post('while read-only'), post('still read-only')]
seen_while_read_only = stored()
os.chmod(db, 0o644)               # fixed by the operator: no restart
results += [post('after'), post('after again')]
seen_after = stored()
app.close()
print(json.dumps({'leftovers': leftovers, 'statuses': results, 'while': seen_while_read_only, 'after': seen_after}))
'''


def run_without_dac_override(tmp_path, child):
    """child's JSON result, run as root without the capability that makes every file writable."""
    setpriv = shutil.which('setpriv')
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip('needs root and setpriv to take CAP_DAC_OVERRIDE away from a child process')
    drop = '-dac_override,-dac_read_search'
    done = subprocess.run([setpriv, '--bounding-set', drop, '--inh-caps', drop, sys.executable, '-c', child, ROOT,
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    if 'Operation not permitted' in done.stderr and done.returncode != 0 and 'statuses' not in done.stdout:
        pytest.skip('setpriv cannot drop capabilities here: %s' % done.stderr.strip()[-200:])
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_really_read_only_file_answers_503_and_recovers_without_a_restart(tmp_path):
    result = run_without_dac_override(tmp_path, CHILD)
    assert result['statuses'] == [200, 503, 503, 200, 200], result
    assert sorted(result['stored']) == ['after', 'after again', 'before']


def test_a_server_started_on_a_read_only_file_recovers_once_it_is_writable(tmp_path):
    result = run_without_dac_override(tmp_path, COLD_START_CHILD)
    assert result['leftovers'] == [], result  # a clean stop: no -wal or -shm left behind
    assert result['statuses'] == [503, 503, 200, 200], result
    assert result['while'] == ['before'], result
    assert result['after'] == ['after', 'after again', 'before'], result
