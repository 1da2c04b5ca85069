"""Sentry check-ins settled as Sentry settles them: a closing check-in closes its
own run (check_in_id) whatever the arrival order, an in-progress run without
max_runtime times out after 30 minutes, and no sequence of quick check-ins leaves
a monitor `running`.

The check-ins are built as the SDKs build them: @sentry/node's withMonitor sends
`monitor_config` with its in_progress check-in only and closes with
`{monitor_slug, status, check_in_id, duration}`; over two connections the closing
one can arrive first."""
import json
import random
import uuid

import pytest

import errorcapture
from helpers import create_project, sentry_auth

CONFIG = {'schedule': {'type': 'crontab', 'value': '*/5 * * * *'}, 'checkin_margin': 1}


def new_id():
    return uuid.uuid4().hex


def opening(slug, run, config=CONFIG):
    payload = {'check_in_id': run, 'monitor_slug': slug, 'status': 'in_progress'}
    if config:
        payload['monitor_config'] = config
    return payload


def closing(slug, run, status='ok', duration=0.25):
    payload = {'check_in_id': run, 'monitor_slug': slug, 'status': status}
    if duration is not None:
        payload['duration'] = duration
    return payload


@pytest.fixture
def project(client):
    return client, create_project(client, 'crons')


def send(project, payload):
    client, created = project
    data = json.dumps(payload).encode()
    body = b'{}\n' + json.dumps({'type': 'check_in', 'length': len(data)}).encode() + b'\n' + data + b'\n'
    answer = client.post('/api/%d/envelope/' % created['id'], body, headers=sentry_auth(created['hash']),
                         content_type='application/x-sentry-envelope')
    assert answer.status_int == 200, answer.body


def shown(project, slug):
    client, created = project
    return client.get('/api/v1/monitors/%s' % slug, params={'key': created['hash']}).json


def all_monitors(project):
    client, created = project
    return client.get('/api/v1/monitors', params={'key': created['hash']}).json['monitors']


def test_in_order_the_run_opens_and_closes(project):
    run = new_id()
    send(project, opening('backup', run))
    assert shown(project, 'backup')['monitor']['status'] == 'running'
    send(project, closing('backup', run, duration=2.5))
    answer = shown(project, 'backup')
    assert answer['monitor']['status'] == 'healthy'
    assert [(h['status'], h['durationMs']) for h in answer['history']] == [('success', 2500), ('in_progress', None)]


def test_a_closing_check_in_before_its_monitor_exists_closes_the_run(project):
    """withMonitor with a quick callback: the closing check-in (no monitor_config)
    beats the in_progress one that creates the monitor."""
    run = new_id()
    send(project, closing('quick-job', run, status='error', duration=0.01))
    # an unknown slug without monitor_config makes a monitor without a schedule (nothing is dropped)
    assert [(m['slug'], m['schedule']) for m in all_monitors(project)] == [('quick-job', None)]
    send(project, opening('quick-job', run))
    answer = shown(project, 'quick-job')
    assert answer['monitor']['status'] == 'failed'
    assert answer['monitor']['lastStatus'] == 'failed'
    assert [(h['status'], h['durationMs']) for h in answer['history']] == [('failed', 10)]


def test_a_closing_check_in_before_its_opening_one_on_an_existing_monitor(project):
    first = new_id()
    send(project, opening('nightly', first))
    send(project, closing('nightly', first))
    second = new_id()
    send(project, closing('nightly', second, status='error'))
    send(project, opening('nightly', second))  # late: its run is over
    answer = shown(project, 'nightly')
    assert answer['monitor']['status'] == 'failed'
    assert [h['status'] for h in answer['history']] == ['failed', 'success', 'in_progress']


def test_overlapping_runs_each_close_their_own(project):
    a, b = new_id(), new_id()
    send(project, opening('overlap', a))
    send(project, opening('overlap', b))
    send(project, closing('overlap', a))
    assert shown(project, 'overlap')['monitor']['status'] == 'running'  # b still runs
    send(project, closing('overlap', b))
    assert shown(project, 'overlap')['monitor']['status'] == 'healthy'


def test_a_closing_check_in_without_a_duration_takes_it_from_its_own_run(project, monkeypatch):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(errorcapture, 'now', lambda: clock[0])
    a, b = new_id(), new_id()
    send(project, opening('timed', a))
    clock[0] += 10
    send(project, opening('timed', b))
    clock[0] += 5
    send(project, closing('timed', a, duration=None))
    history = shown(project, 'timed')['history']
    assert history[0]['status'] == 'success' and history[0]['durationMs'] == 15000


@pytest.mark.parametrize('seed', range(5))
def test_no_order_of_quick_check_ins_leaves_a_monitor_running(project, seed):
    """20 monitors, each a quick failing withMonitor run, delivered in any order."""
    check_ins = []
    for index in range(20):
        run = new_id()
        check_ins.append([opening('job-%d' % index, run), closing('job-%d' % index, run, status='error')])
    shuffled = random.Random(seed)
    pending = [pair for pair in check_ins]
    while pending:  # interleave monitors; within one, either message may come first
        pair = pending.pop(shuffled.randrange(len(pending)))
        if shuffled.random() < 0.5:
            pair.reverse()
        send(project, pair.pop(0))
        if pair:
            pending.append(pair)
    monitors = all_monitors(project)
    assert len(monitors) == 20
    assert {m['status'] for m in monitors} == {'failed'}, [(m['slug'], m['status']) for m in monitors]


def test_a_run_without_max_runtime_times_out_after_30_minutes_and_alerts_once(client, monkeypatch):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(errorcapture, 'now', lambda: clock[0])
    project = (client, create_project(client, 'timeouts'))
    send(project, opening('stuck', new_id(), config={'schedule': {'type': 'interval', 'value': 1, 'unit': 'day'}}))
    assert shown(project, 'stuck')['monitor']['maxRuntime'] is None
    clock[0] += 29 * 60
    assert shown(project, 'stuck')['monitor']['status'] == 'running'
    alerts = []  # every alert the store raises, as it commits (the alerter's outbox takes them then)
    client.wsgi.store.listeners.append(lambda kind, notice: alerts.append((kind, notice['slug'])))
    client.wsgi.sweeper.check_monitors()
    assert alerts == []
    clock[0] += 2 * 60
    assert shown(project, 'stuck')['monitor']['status'] == 'timeout'
    client.wsgi.sweeper.check_monitors()
    client.wsgi.sweeper.check_monitors()
    assert alerts == [('cron_timeout', 'stuck')]


def test_a_timed_out_run_whose_closing_was_lost_ends_with_the_next_run(project, monkeypatch):
    clock = [1_800_000_000.0]
    monkeypatch.setattr(errorcapture, 'now', lambda: clock[0])
    send(project, opening('lossy', new_id()))
    clock[0] += 3600
    assert shown(project, 'lossy')['monitor']['status'] == 'timeout'
    send(project, closing('lossy', new_id()))  # a later run that reported only its end
    assert shown(project, 'lossy')['monitor']['status'] == 'healthy'
