"""Ids and change numbers only ever grow: clients poll "since id N" (the
ErrorCapture API's errors action, the logs tail) and "changedSince" (the
viewer), so a clear, retention or a restart must never hand out an id or a
seq that a poller has already seen."""
import json

import webtest

import errorcapture
from helpers import create_project


def submit(client, key, message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message,
                                                 'file': '/srv/%s.php' % message, 'line': 1}),
                         content_type='application/json')
    assert answer.json['ok'] is True
    return answer.json['id']


def poll(client, key, since):
    return [row['message'] for row in client.get('/api.php?action=errors&hash=%s&since=%d' % (key, since))
            .json['errors']]


def test_a_poller_sees_errors_sent_after_a_clear(client):
    key = create_project(client, 'ids')['hash']
    seen = max(submit(client, key, 'before-%d' % n) for n in range(3))
    assert client.get('/api.php?action=clear&hash=%s' % key).json == {'ok': True, 'deleted': 3}
    after = submit(client, key, 'after-clear')
    assert after > seen
    assert poll(client, key, seen) == ['after-clear']


def test_a_restart_after_a_clear_keeps_ids_and_change_numbers_growing(tmp_path):
    path = str(tmp_path / 'restart.db')
    app = errorcapture.make_app(path, sweep_interval=0)
    client = webtest.TestApp(app)
    key = create_project(client, 'ids')['hash']
    last_event = max(submit(client, key, 'old-%d' % n) for n in range(4))
    issues = client.get('/api/v1/issues?key=' + key).json['issues']
    last_issue, last_seq = max(i['id'] for i in issues), max(i['seq'] for i in issues)
    client.get('/api.php?action=clear&hash=%s' % key)
    app.close()

    app = errorcapture.make_app(path, sweep_interval=0)  # the server restarts
    try:
        client = webtest.TestApp(app)
        assert submit(client, key, 'new-after-restart') > last_event
        assert poll(client, key, last_event) == ['new-after-restart']
        (issue,) = client.get('/api/v1/issues?key=%s&changedSince=%d' % (key, last_seq)).json['issues']
        assert issue['id'] > last_issue and issue['seq'] > last_seq
    finally:
        app.close()


def test_the_logs_tail_sees_logs_sent_after_retention_emptied_it(make, monkeypatch):
    client = make(sweep_interval=0)
    key = create_project(client, 'logs')['hash']

    def send_log(message, timestamp=None):
        body = {'level': 'info', 'message': message}
        if timestamp:
            body['timestamp'] = timestamp
        answer = client.post('/ingest/v1/logs', json.dumps(body), headers={'X-SeeStack-Key': key},
                             content_type='application/json')
        assert answer.status_int == 202, answer.body

    for n in range(3):
        send_log('ancient %d' % n, '2020-01-01T00:00:00.000Z')
    tail = client.get('/api/v1/logs?key=' + key).json
    assert len(tail['logs']) == 3
    real_now = errorcapture.now
    monkeypatch.setattr(errorcapture, 'now', lambda: real_now() + 91 * 86400)
    client.wsgi.sweeper.sweep()  # 91 days later, past the 90-day retention: all three go
    monkeypatch.setattr(errorcapture, 'now', real_now)
    assert client.get('/api/v1/logs?key=' + key).json['logs'] == []
    send_log('fresh')
    assert [entry['message'] for entry in client.get('/api/v1/logs?key=%s&since=%d' % (key, tail['cursor']))
            .json['logs']] == ['fresh']
