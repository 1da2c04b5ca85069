"""Webhook alerts: a tiny local HTTP receiver stands in for Slack. A new issue
fires one alert with Slack-compatible JSON, a repeat of the issue fires none, a
regression fires one, a failed heartbeat fires one, a missed cron run fires
once per missed run, failed deliveries are retried, and a hanging webhook does
not hold up ingest.

"Fires none" is shown without sleeping: alerts are delivered in commit order
by one thread, so after a quiet event we send a marker event that does alert,
and the marker must be the very next alert to arrive."""
import json
import threading
import time

import pytest

from helpers import Receiver, create_project, free_port, sentry_auth

WAIT = 20  # generous bound for any delivery, in seconds


@pytest.fixture
def receivers():
    made = []

    def factory(**kwargs):
        receiver = Receiver(**kwargs)
        made.append(receiver)
        return receiver
    yield factory
    for receiver in made:
        receiver.close()


@pytest.fixture
def setup(make, receivers):
    """setup(**receiver options) -> (client, key, project id, receiver) with the
    project's webhookUrl pointing at the receiver and short retry delays."""
    def factory(**options):
        client = make(sweep_interval=0, allow_private_webhooks=True)  # the receiver is on loopback
        client.wsgi.alerter.delays = (0.05, 0.1)
        created = create_project(client, 'alerting')
        key, project_id = created['hash'], created['id']
        receiver = receivers(**options)
        set_webhook(client, key, receiver.url)
        return client, key, project_id, receiver
    return factory


def set_webhook(client, key, url):
    answer = client.put('/api/v1/project?key=' + key, json.dumps({'webhookUrl': url}),
                        content_type='application/json')
    assert answer.json['project']['settings']['webhookUrl'] == url


def error(client, key, message):
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error', 'message': message}),
                         content_type='application/json')
    assert answer.json['ok'] is True
    return answer.json['id']


def issue_of(client, key, event_row_id):
    return client.get('/api/v1/events/%d?key=%s' % (event_row_id, key)).json['event']['issueId']


def heartbeat(client, key, slug, status, message=None):
    body = {'slug': slug, 'status': status}
    if message:
        body['message'] = message
    answer = client.post('/ingest/v1/heartbeat', json.dumps(body), headers={'X-SeeStack-Key': key},
                         content_type='application/json')
    assert answer.status_int == 202, answer.body


def create_monitor(client, key, slug, schedule='5m', grace=1):
    answer = client.post('/api/v1/monitors?key=' + key, json.dumps({'slug': slug, 'name': slug.title(),
                                                                    'schedule': schedule, 'grace': grace}),
                         content_type='application/json')
    assert answer.status_int == 201


def assert_slack_compatible(record_json, kind, subject):
    assert isinstance(record_json.get('text'), str) and record_json['text'].strip(), record_json
    assert subject in record_json['text'], record_json
    assert record_json.get('kind') == kind, record_json


# -- issues ----------------------------------------------------------------------------

def test_a_new_issue_fires_one_slack_compatible_alert(setup):
    client, key, project_id, receiver = setup()
    event_row_id = error(client, key, 'Payment gateway timeout')
    alerts = receiver.wait_for(1)
    assert_slack_compatible(alerts[0], 'new_issue', 'Payment gateway timeout')
    assert 'alerting' in alerts[0]['text']  # the project's name
    # what a receiver's script reads to link back to the issue
    assert alerts[0]['data'] == {'projectId': project_id, 'issueId': issue_of(client, key, event_row_id),
                                 'title': 'Payment gateway timeout'}
    record = receiver.delivered[0]
    assert record['path'] == '/hooks/test'
    assert record['headers'].get('Content-Type', '').startswith('application/json')
    assert len(receiver.attempts) == 1


def test_a_second_event_of_the_same_issue_fires_none(setup):
    client, key, _, receiver = setup()
    error(client, key, 'Disk quota exceeded')
    receiver.wait_for(1)
    error(client, key, 'Disk quota exceeded')
    error(client, key, 'Disk quota exceeded')
    error(client, key, 'Marker issue')  # alerts
    alerts = receiver.wait_for(2)
    assert [a['kind'] for a in alerts] == ['new_issue', 'new_issue']
    assert 'Marker issue' in alerts[1]['text']
    assert len(receiver.attempts) == 2


def test_a_regression_fires_one_alert(setup):
    client, key, _, receiver = setup()
    issue_id = issue_of(client, key, error(client, key, 'Cache stampede'))
    receiver.wait_for(1)
    answer = client.post('/api/v1/issues/%d?key=%s' % (issue_id, key), json.dumps({'status': 'resolved'}),
                         content_type='application/json')
    assert answer.json['issue']['status'] == 'resolved'
    error(client, key, 'Cache stampede')  # the resolved issue happens again
    alerts = receiver.wait_for(2)
    assert_slack_compatible(alerts[1], 'regression', 'Cache stampede')
    # it is unresolved again: a further event is just an event
    error(client, key, 'Cache stampede')
    error(client, key, 'Another marker')
    alerts = receiver.wait_for(3)
    assert alerts[2]['kind'] == 'new_issue' and 'Another marker' in alerts[2]['text']
    assert len(receiver.attempts) == 3


def test_a_refused_event_fires_nothing(setup):
    client, key, _, receiver = setup()
    answer = client.post('/api.php', json.dumps({'hash': key, 'level': 'error'}),  # no message
                         content_type='application/json', expect_errors=True)
    assert answer.status_int == 400
    error(client, key, 'Marker after refusal')
    alerts = receiver.wait_for(1)
    assert 'Marker after refusal' in alerts[0]['text'] and len(receiver.attempts) == 1


def test_projects_without_a_webhook_alert_nobody(setup):
    client, key, _, receiver = setup()
    other = create_project(client, 'quiet')['hash']
    error(client, other, 'Quiet project problem')
    error(client, key, 'Loud project problem')
    alerts = receiver.wait_for(1)
    assert 'Loud project problem' in alerts[0]['text'] and len(receiver.attempts) == 1


# -- cron monitors ----------------------------------------------------------------------

def test_a_failed_heartbeat_fires_one_alert(setup):
    client, key, _, receiver = setup()
    create_monitor(client, key, 'nightly-backup', schedule='1d', grace=30)
    heartbeat(client, key, 'nightly-backup', 'success')  # fine: no alert
    heartbeat(client, key, 'nightly-backup', 'failed', 'disk full')
    alerts = receiver.wait_for(1)
    assert_slack_compatible(alerts[0], 'cron_failed', 'Nightly-Backup')
    assert 'disk full' in alerts[0]['text']
    error(client, key, 'Marker after cron')
    alerts = receiver.wait_for(2)
    assert alerts[1]['kind'] == 'new_issue' and len(receiver.attempts) == 2


def test_a_failed_sentry_check_in_fires_one_alert(setup):
    client, key, project_id, receiver = setup()
    create_monitor(client, key, 'hourly-sync', schedule='1h', grace=5)
    payload = json.dumps({'check_in_id': 'a' * 32, 'monitor_slug': 'hourly-sync', 'status': 'error'}).encode()
    body = b'{}\n' + json.dumps({'type': 'check_in', 'length': len(payload)}).encode() + b'\n' + payload + b'\n'
    answer = client.post('/api/%d/envelope/' % project_id, body,
                         headers=sentry_auth(key),
                         content_type='application/x-sentry-envelope')
    assert answer.status_int == 200
    alerts = receiver.wait_for(1)
    assert alerts[0]['kind'] == 'cron_failed' and 'Hourly-Sync' in alerts[0]['text']


def test_a_missed_cron_run_fires_once_per_missed_run(setup):
    client, key, _, receiver = setup()
    app = client.wsgi
    create_monitor(client, key, 'every-five', schedule='5m', grace=1)
    app.sweeper.check_monitors()  # never pinged: pending, not missed
    heartbeat(client, key, 'every-five', 'success')
    app.sweeper.check_monitors()  # just pinged: healthy
    app.store.write(lambda conn: conn.execute('UPDATE monitors SET last_ping=last_ping-86400'))
    assert client.get('/api/v1/monitors/every-five?key=' + key).json['monitor']['status'] == 'missed'
    app.sweeper.check_monitors()
    alerts = receiver.wait_for(1)
    assert_slack_compatible(alerts[0], 'cron_missed', 'Every-Five')
    # the same missed run is not announced again, however often the sweeper looks
    app.sweeper.check_monitors()
    app.sweeper.check_monitors()
    app.sweeper.sweep()
    error(client, key, 'Marker after missed')
    alerts = receiver.wait_for(2)
    assert alerts[1]['kind'] == 'new_issue', alerts
    # the job comes back, then misses again: that is a new missed run, announced once
    heartbeat(client, key, 'every-five', 'success')
    app.sweeper.check_monitors()
    app.store.write(lambda conn: conn.execute('UPDATE monitors SET last_ping=last_ping-3*86400'))
    app.sweeper.check_monitors()
    app.sweeper.check_monitors()
    alerts = receiver.wait_for(3)
    assert alerts[2]['kind'] == 'cron_missed'
    error(client, key, 'Final marker')
    alerts = receiver.wait_for(4)
    assert alerts[3]['kind'] == 'new_issue' and len(receiver.attempts) == 4


def test_the_background_sweeper_notices_a_missed_run(make, receivers):
    client = make(sweep_interval=0.2, allow_private_webhooks=True)
    client.wsgi.alerter.delays = (0.05, 0.1)
    key = create_project(client, 'bg')['hash']
    receiver = receivers()
    set_webhook(client, key, receiver.url)
    create_monitor(client, key, 'bg-job', schedule='5m', grace=1)
    heartbeat(client, key, 'bg-job', 'success')
    client.wsgi.store.write(lambda conn: conn.execute('UPDATE monitors SET last_ping=last_ping-86400'))
    alerts = receiver.wait_for(1)
    assert alerts[0]['kind'] == 'cron_missed'
    time.sleep(1.0)  # a few more background passes
    error(client, key, 'Marker')
    alerts = receiver.wait_for(2)
    assert alerts[1]['kind'] == 'new_issue', alerts


# -- delivery --------------------------------------------------------------------------------

def test_a_receiver_that_fails_twice_gets_the_alert_on_the_retry(setup):
    client, key, _, receiver = setup(fail_first=2)
    error(client, key, 'Retried problem')
    alerts = receiver.wait_for(1)
    assert 'Retried problem' in alerts[0]['text']
    assert len(receiver.attempts) == 3
    assert receiver.attempts[0]['body'] == receiver.attempts[2]['body']  # the same alert, resent


def test_an_alert_delivered_while_the_outbox_is_read_is_not_sent_again(setup):
    # The outbox thread reads the waiting alerts, then skips those it has
    # queued already. Were an alert delivered, deleted and forgotten between
    # that read and that skip, it would be queued and sent a second time.
    client, key, _, receiver = setup()
    store = client.wsgi.store
    plain_query = store.query

    def slow_outbox_read(sql, params=()):
        rows = plain_query(sql, params)
        if 'FROM alert_outbox' in sql:
            time.sleep(0.3)  # room for a delivery to finish after the read
        return rows
    store.query = slow_outbox_read
    error(client, key, 'Delivered during a read')
    receiver.wait_for(1)
    time.sleep(0.5)
    error(client, key, 'Marker after delivery')
    alerts = receiver.wait_for(2)
    assert 'Marker after delivery' in alerts[1]['text'], alerts
    assert 'Delivered during a read' in alerts[0]['text']


def test_an_unreachable_webhook_does_not_break_ingest_and_later_alerts_arrive(setup):
    client, key, _, receiver = setup()
    dead = 'http://127.0.0.1:%d/nothing-listens-here' % free_port()
    set_webhook(client, key, dead)
    for index in range(3):
        error(client, key, 'Unheard problem %d' % index)
    set_webhook(client, key, receiver.url)
    error(client, key, 'Heard problem')
    alerts = receiver.wait_for(1)
    assert any('Heard problem' in a['text'] for a in alerts)


def test_a_hanging_webhook_does_not_slow_ingest(setup):
    gate = threading.Event()
    client, key, project_id, receiver = setup(gate=gate)
    error(client, key, 'First problem')
    assert receiver.entered.wait(WAIT), 'the webhook was never called'
    # the alerter is now stuck inside the receiver; ingest must still answer
    names = ('alpha', 'bravo', 'charlie', 'delta', 'echo')  # five distinct issues
    accepted = [error(client, key, 'Problem while the webhook hangs: %s' % name) for name in names]
    answer = client.post('/api/%d/store/' % project_id, json.dumps({'message': 'Sentry while hanging'}),
                         headers=sentry_auth(key), content_type='application/json')
    assert answer.status_int == 200
    assert len(accepted) == 5
    assert not gate.is_set() and receiver.delivered == []  # all of that happened while the webhook hung
    gate.set()
    alerts = receiver.wait_for(7)
    assert sum('Problem while the webhook hangs' in a['text'] for a in alerts) == 5


def test_webhook_url_must_be_http(client):
    key = create_project(client, 'x')['hash']
    for url in ('ftp://example.com/hook', 'javascript:alert(1)', 'file:///etc/passwd', 'http://', 12, ['http://x']):
        answer = client.put('/api/v1/project?key=' + key, json.dumps({'webhookUrl': url}),
                            content_type='application/json', expect_errors=True)
        assert answer.status_int == 400, (url, answer.body)
        assert 'error' in answer.json
    assert client.get('/api/v1/project?key=' + key).json['project']['settings']['webhookUrl'] is None
