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


def test_a_really_read_only_file_answers_503_and_recovers_without_a_restart(tmp_path):
    setpriv = shutil.which('setpriv')
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip('needs root and setpriv to take CAP_DAC_OVERRIDE away from a child process')
    drop = '-dac_override,-dac_read_search'
    done = subprocess.run([setpriv, '--bounding-set', drop, '--inh-caps', drop, sys.executable, '-c', CHILD, ROOT,
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    if 'Operation not permitted' in done.stderr and done.returncode != 0 and 'statuses' not in done.stdout:
        pytest.skip('setpriv cannot drop capabilities here: %s' % done.stderr.strip()[-200:])
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result['statuses'] == [200, 503, 503, 200, 200], result
    assert sorted(result['stored']) == ['after', 'after again', 'before']
