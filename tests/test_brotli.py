"""Content-Encoding br on the Sentry endpoints: brotli is a run-time dependency,
decompressed in bounded steps (a br bomb is 413, as a gzip bomb is), and a
lone copy of the module without brotli still imports, warns once and answers
br with 415."""
import json
import os
import subprocess
import sys
import uuid

import pytest

import errorcapture

brotli = pytest.importorskip('brotli', reason='brotli is a run-time dependency: pip install brotli')

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def project(client):
    created = client.get('/api.php?action=generate&name=br').json
    return client, created


def send(project, body, encoding='br'):
    client, created = project
    return client.post('/api/%d/envelope/' % created['id'], body, expect_errors=True, headers={
        'Content-Encoding': encoding, 'Content-Type': 'application/x-sentry-envelope',
        'X-Sentry-Auth': 'Sentry sentry_key=%s, sentry_version=7' % created['hash']})


def error_envelope(value):
    event_id = uuid.uuid4().hex
    event = {'event_id': event_id, 'exception': {'values': [{'type': 'ValueError', 'value': value}]}}
    payload = json.dumps(event).encode()
    return event_id, b'\n'.join([json.dumps({'event_id': event_id}).encode(),
                                 json.dumps({'type': 'event', 'length': len(payload)}).encode(), payload])


def stored_event_ids(project):
    client, created = project
    return [e['eventId'] for e in client.get('/api/v1/events', params={'key': created['hash']}).json['events']]


def bomb(size=101 * MIB):
    """Zeros past the 100 MiB decompressed limit: about 165 bytes of br."""
    return brotli.compress(b'\0' * size, quality=4)


def test_a_br_envelope_is_stored(project):
    event_id, body = error_envelope('sent as br')
    answer = send(project, brotli.compress(body))
    assert answer.status_int == 200, answer.body
    assert answer.json == {'id': event_id}
    assert stored_event_ids(project) == [event_id]


def test_a_br_bomb_is_413_and_the_next_envelope_is_stored(project):
    body = bomb()
    assert len(body) < 1024
    answer = send(project, body)
    assert answer.status_int == 413, answer.body
    assert 'exceeds' in answer.json['detail']
    assert stored_event_ids(project) == []
    event_id, body = error_envelope('after the bomb')
    assert send(project, brotli.compress(body)).json == {'id': event_id}


class Recording(object):
    """A brotli Decompressor that notes the size of every step's output."""
    steps = []
    real = brotli.Decompressor

    def __init__(self):
        self.inner = Recording.real()

    def process(self, data, **options):
        out = self.inner.process(data, **options)
        Recording.steps.append(len(out))
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize('bounded', [True, False], ids=['output_buffer_limit', 'small-input-steps'])
def test_br_is_decompressed_in_bounded_steps(project, monkeypatch, bounded):
    """Whatever the binding offers, no step makes more than a few MiB: the
    bomb never sits in memory whole, and the limit is checked between steps."""
    monkeypatch.setattr(errorcapture, 'BROTLI_BOUNDED', bounded)
    monkeypatch.setattr(errorcapture._brotli, 'Decompressor', Recording)
    Recording.steps = []
    assert send(project, bomb()).status_int == 413
    assert len(Recording.steps) > 10
    assert max(Recording.steps) <= 16 * MIB
    assert sum(Recording.steps) <= 110 * MIB  # stopped just past the limit
    Recording.steps = []
    event_id, body = error_envelope('bounded %s' % bounded)
    assert send(project, brotli.compress(body)).json == {'id': event_id}


@pytest.mark.parametrize('body', [b'not brotli at all', b''], ids=['garbage', 'empty'])
def test_bad_br_is_400(project, body):
    answer = send(project, body)
    assert answer.status_int == 400, answer.body
    assert 'br' in answer.json['detail']


def test_truncated_br_is_400(project):
    _, body = error_envelope('cut short')
    compressed = brotli.compress(body * 50)
    answer = send(project, compressed[:len(compressed) // 2])
    assert answer.status_int == 400
    assert 'truncated' in answer.json['detail']
    assert stored_event_ids(project) == []


def test_without_brotli_br_is_415_naming_the_fix(project, monkeypatch):
    monkeypatch.setattr(errorcapture, '_brotli', None)
    _, body = error_envelope('no brotli here')
    answer = send(project, brotli.compress(body))
    assert answer.status_int == 415
    assert 'brotli' in answer.json['detail'] and 'gzip' in answer.json['detail']
    assert stored_event_ids(project) == []


def test_brotli_is_a_run_time_dependency():
    with open(os.path.join(ROOT, 'setup.cfg')) as handle:
        text = handle.read()
    install_requires = text.split('install_requires =', 1)[1].split('\n[', 1)[0]
    assert 'brotli' in install_requires


def test_a_lone_module_without_brotli_imports_and_warns_once(tmp_path):
    """Someone may copy errorcapture.py alone: it must still run."""
    script = '''
import sys, logging
sys.modules['brotli'] = None        # makes "import brotli" fail
sys.modules['brotlicffi'] = None
sys.path.insert(0, %r)
logging.basicConfig(level=logging.WARNING, format='%%(levelname)s %%(message)s')
import errorcapture, webtest
app = errorcapture.make_app(%r)
client = webtest.TestApp(app)
created = client.get('/api.php?action=generate&name=x').json
answer = client.post('/api/%%d/envelope/' %% created['id'], b'\\x1b\\x00', expect_errors=True,
                     headers={'Content-Encoding': 'br', 'X-Sentry-Auth': 'Sentry sentry_key=' + created['hash']})
print(answer.status_int)
app.close()
''' % (ROOT, str(tmp_path / 'lone.db'))
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == '415'
    warnings = [line for line in done.stderr.splitlines() if 'brotli' in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith('WARNING') and 'pip install brotli' in warnings[0]
