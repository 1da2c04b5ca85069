"""Cron monitors: CRUD through the read API (docs/read-api.md), statuses derived
from the clock (errorcapture.monitor_state), schedules (errorcapture.next_run:
intervals and cron expressions in a time zone), and the command line
`python errorcapture.py monitors add|set|list|delete`."""
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

import errorcapture
from helpers import create_project

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), 'errorcapture.py')
ISO_MS_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')


def utc(text):
    """'2026-11-23 10:00' -> epoch seconds (UTC)."""
    return datetime.strptime(text, '%Y-%m-%d %H:%M').replace(tzinfo=timezone.utc).timestamp()


def utc_text(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime('%Y-%m-%d %H:%M')


def create(client, key, expect=201, **fields):
    body = {'slug': 'nightly-backup', 'name': 'Nightly backup', 'schedule': '1d', 'grace': 30}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not ...}
    answer = client.post_json('/api/v1/monitors?key=' + key, body, expect_errors=True)
    assert answer.status_int == expect, answer.body
    return answer


def monitors(client, key):
    return client.get('/api/v1/monitors?key=' + key).json['monitors']


# -- CRUD through the read API ----------------------------------------------------

def test_create_and_read(client):
    key = create_project(client, 'monitors')['hash']
    answer = create(client, key, slug='nightly-backup', name='Nightly backup', schedule='0 3 * * *', grace=30)
    monitor = answer.json['monitor']
    assert monitor['slug'] == 'nightly-backup' and monitor['name'] == 'Nightly backup'
    assert monitor['schedule'] == '0 3 * * *' and monitor['grace'] == 30
    assert monitor['status'] == 'pending'
    assert monitor['lastPing'] is None and monitor['lastStatus'] is None
    assert monitor['timezone'] == 'UTC'
    assert ISO_MS_Z.match(monitor['created']) and ISO_MS_Z.match(monitor['nextExpected'])
    assert monitor['nextExpected'][11:19] == '03:00:00'
    assert [m['slug'] for m in monitors(client, key)] == ['nightly-backup']
    shown = client.get('/api/v1/monitors/nightly-backup?key=' + key).json
    assert shown['monitor'] == monitors(client, key)[0]
    assert shown['history'] == []


def test_create_defaults(client):
    key = create_project(client, 'monitors')['hash']
    monitor = create(client, key, slug='quick', name=..., grace=...).json['monitor']
    assert monitor['name'] == 'quick'
    assert 1 <= monitor['grace'] <= 1440


def test_duplicate_slug_refused(client):
    key = create_project(client, 'monitors')['hash']
    create(client, key)
    answer = client.post_json(
        '/api/v1/monitors?key=' + key, {'slug': 'nightly-backup', 'name': 'Again', 'schedule': '1h', 'grace': 5},
        expect_errors=True)
    assert 400 <= answer.status_int < 500, answer.body
    assert 'error' in answer.json
    assert [(m['name'], m['schedule']) for m in monitors(client, key)] == [('Nightly backup', '1d')]


def test_same_slug_in_two_projects(client):
    first, second = create_project(client, 'a')['hash'], create_project(client, 'b')['hash']
    create(client, first)
    create(client, second, schedule='1h')
    assert monitors(client, first)[0]['schedule'] == '1d'
    assert monitors(client, second)[0]['schedule'] == '1h'


@pytest.mark.parametrize('fields', [
    {'slug': 'Bad Slug!'},
    {'slug': 'UPPER'},
    {'slug': ''},
    {'slug': 'x' * 65},
    {'slug': ...},
    {'grace': 0},
    {'grace': 1441},
    {'grace': -5},
    {'grace': 'five'},
    {'grace': 2.5},
    {'schedule': 'every day'},
    {'schedule': ''},
    {'schedule': ...},
    {'schedule': '61 * * * *'},
    {'schedule': '* 24 * * *'},
    {'schedule': '* * * *'},
    {'schedule': '*/0 * * * *'},
    {'schedule': '0 0 * * funday'},
    {'timezone': 'Mars/Olympus_Mons'},
    {'maxRuntime': 0},
    # found by the fuzzing pass (tests/test_fuzz.py): a 500, or a monitor that can never be on time
    {'schedule': '9' * 5000 + 'm'},
    {'schedule': '0m'},
    {'schedule': '99999999999999999999m'},
    {'schedule': ','.join(['1'] * 1000) + ' * * * *'},
])
def test_create_invalid(client, fields):
    key = create_project(client, 'monitors')['hash']
    answer = client.post_json(
        '/api/v1/monitors?key=' + key,
        {k: v for k, v in dict({'slug': 'job', 'name': 'Job', 'schedule': '5m', 'grace': 5}, **fields).items()
         if v is not ...}, expect_errors=True)
    assert 400 <= answer.status_int < 500, answer.body
    assert isinstance(answer.json['error'], str) and answer.json['error']
    assert monitors(client, key) == []


def test_a_project_holds_at_most_a_thousand_monitors(client):
    """A Sentry check-in for an unknown slug makes a monitor, and every list
    and sweep reads them all: past 1,000 a new one is refused (400 naming the
    slug), check-ins for existing ones still count, and deleting one makes room."""
    import json
    import uuid
    from helpers import sentry_auth
    project = create_project(client, 'monitors')
    key, project_id = project['hash'], project['id']

    def check_ins(slugs):
        parts = [b'{}']
        for slug in slugs:
            item = json.dumps({'check_in_id': uuid.uuid4().hex, 'monitor_slug': slug, 'status': 'ok'}).encode()
            parts += [json.dumps({'type': 'check_in', 'length': len(item)}).encode(), item]
        return client.post('/api/%d/envelope/' % project_id, b'\n'.join(parts) + b'\n', headers=sentry_auth(key),
                           content_type='application/x-sentry-envelope', expect_errors=True)

    assert check_ins(['job-%d' % i for i in range(1000)]).status_int == 200
    assert len(monitors(client, key)) == 1000
    refused = check_ins(['one-too-many'])
    assert refused.status_int == 400 and '1000 monitors' in refused.json['detail'], refused.body
    answer = client.post_json('/api/v1/monitors?key=' + key, {'slug': 'by-hand', 'schedule': '5m'},
                              expect_errors=True)
    assert answer.status_int == 400 and '1000 monitors' in answer.json['error'], answer.body
    assert check_ins(['job-7']).status_int == 200
    assert client.delete('/api/v1/monitors/job-0?key=' + key).status_int in (200, 204)
    assert check_ins(['one-too-many']).status_int == 200
    assert sorted(m['slug'] for m in monitors(client, key))[-1] == 'one-too-many'


@pytest.mark.parametrize('schedule', ['5m', '1h', '1d', '2w', '*/15 * * * *', '0 3 * * mon', '0 0 1 1 *',
                                      '30 2 * * 1-5', '0 9,17 * * *', '@daily', '@hourly'])
def test_create_accepts_schedules(client, schedule):
    key = create_project(client, 'monitors')['hash']
    monitor = create(client, key, schedule=schedule).json['monitor']
    assert monitor['schedule'] == schedule
    assert ISO_MS_Z.match(monitor['nextExpected'])


def test_update_with_put(client):
    key = create_project(client, 'monitors')['hash']
    create(client, key)
    answer = client.put_json('/api/v1/monitors/nightly-backup?key=' + key,
                             {'schedule': '0 4 * * *', 'grace': 60, 'timezone': 'Europe/Berlin'})
    monitor = answer.json['monitor']
    assert monitor['schedule'] == '0 4 * * *' and monitor['grace'] == 60
    assert monitor['timezone'] == 'Europe/Berlin'
    assert monitor['name'] == 'Nightly backup'  # partial update keeps the rest
    assert monitors(client, key)[0]['schedule'] == '0 4 * * *'
    # 04:00 in Berlin is 03:00 UTC in winter or 02:00 UTC in summer
    assert monitor['nextExpected'][11:19] in ('03:00:00', '02:00:00')
    renamed = client.put_json('/api/v1/monitors/nightly-backup?key=' + key, {'name': 'Backups'}).json['monitor']
    assert renamed['name'] == 'Backups' and renamed['schedule'] == '0 4 * * *'


@pytest.mark.parametrize('fields', [{'grace': 0}, {'schedule': 'every day'}, {'name': ''}, {'grace': 1441}])
def test_update_invalid(client, fields):
    key = create_project(client, 'monitors')['hash']
    create(client, key)
    answer = client.put_json('/api/v1/monitors/nightly-backup?key=' + key, fields, expect_errors=True)
    assert 400 <= answer.status_int < 500, answer.body
    monitor = monitors(client, key)[0]
    assert (monitor['name'], monitor['schedule'], monitor['grace']) == ('Nightly backup', '1d', 30)


def test_update_unknown_is_404(client):
    key = create_project(client, 'monitors')['hash']
    answer = client.put_json('/api/v1/monitors/nope?key=' + key, {'grace': 10}, expect_errors=True)
    assert answer.status_int == 404
    assert monitors(client, key) == []


def test_delete(client):
    key = create_project(client, 'monitors')['hash']
    create(client, key)
    create(client, key, slug='other-job')
    answer = client.delete('/api/v1/monitors/nightly-backup?key=' + key)
    assert answer.json == {'ok': True}
    assert [m['slug'] for m in monitors(client, key)] == ['other-job']
    assert client.get('/api/v1/monitors/nightly-backup?key=' + key, expect_errors=True).status_int == 404
    assert client.delete('/api/v1/monitors/nightly-backup?key=' + key, expect_errors=True).status_int == 404
    heartbeat = client.post_json('/ingest/v1/heartbeat', {'slug': 'nightly-backup', 'status': 'success'},
                                 headers={'X-SeeStack-Key': key}, expect_errors=True)
    assert heartbeat.status_int == 404


def test_delete_then_recreate_starts_fresh(client):
    key = create_project(client, 'monitors')['hash']
    create(client, key)
    client.post_json('/ingest/v1/heartbeat', {'slug': 'nightly-backup', 'status': 'failed'},
                     headers={'X-SeeStack-Key': key})
    client.delete('/api/v1/monitors/nightly-backup?key=' + key)
    create(client, key)
    shown = client.get('/api/v1/monitors/nightly-backup?key=' + key).json
    assert shown['monitor']['status'] == 'pending' and shown['history'] == []


def test_monitors_need_the_right_key(client):
    key, other = create_project(client, 'a')['hash'], create_project(client, 'b')['hash']
    create(client, key)
    assert client.get('/api/v1/monitors', expect_errors=True).status_int == 401
    assert client.post_json('/api/v1/monitors', {'slug': 'x', 'schedule': '5m'}, expect_errors=True).status_int == 401
    assert monitors(client, other) == []
    assert client.get('/api/v1/monitors/nightly-backup?key=' + other, expect_errors=True).status_int == 404
    assert client.delete('/api/v1/monitors/nightly-backup?key=' + other, expect_errors=True).status_int == 404
    assert [m['slug'] for m in monitors(client, key)] == ['nightly-backup']


def test_stopped_job_turns_missed_without_a_request(client, monkeypatch):
    """A job that stops pinging turns missed with no request arriving: the
    status is derived from the clock when read."""
    key = create_project(client, 'monitors')['hash']
    create(client, key, slug='every-5m', schedule='5m', grace=2)
    client.post_json('/ingest/v1/heartbeat', {'slug': 'every-5m', 'status': 'success'},
                     headers={'X-SeeStack-Key': key})
    shown = monitors(client, key)[0]
    assert shown['status'] == 'healthy'
    pinged = datetime.strptime(shown['lastPing'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=timezone.utc).timestamp()
    expected = datetime.strptime(shown['nextExpected'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=timezone.utc).timestamp()
    assert abs(expected - (pinged + 300)) < 0.01
    monkeypatch.setattr(errorcapture, 'now', lambda: pinged + 300 + 60)
    assert monitors(client, key)[0]['status'] == 'late'
    monkeypatch.setattr(errorcapture, 'now', lambda: pinged + 300 + 121)
    assert monitors(client, key)[0]['status'] == 'missed'
    assert client.get('/api/v1/monitors/every-5m?key=' + key).json['monitor']['status'] == 'missed'


# -- statuses from the clock (monitor_state) --------------------------------------

T0 = utc('2026-11-23 10:00')


def monitor(**fields):
    out = {'slug': 'job', 'name': 'Job', 'schedule': '5m', 'grace': 5, 'maxRuntime': None, 'timezone': 'UTC',
           'created': T0, 'lastPing': None, 'lastStatus': None, 'runningSince': None, 'runningId': None}
    out.update(fields)
    return out


def state(m, at):
    return errorcapture.monitor_state(m, at=at)[0]


def test_pending_until_the_first_ping():
    m = monitor()
    assert state(m, T0 + 1) == 'pending'
    assert state(m, T0 + 86400 * 30) == 'pending'
    assert errorcapture.monitor_state(m, at=T0 + 1)[1] == T0 + 300


def test_healthy_late_missed():
    m = monitor(lastPing=T0, lastStatus='success', grace=5)
    assert state(m, T0 + 1) == 'healthy'
    assert state(m, T0 + 299) == 'healthy'
    assert state(m, T0 + 300) == 'healthy'  # exactly on time
    assert state(m, T0 + 301) == 'late'
    assert state(m, T0 + 300 + 5 * 60) == 'late'  # still within grace
    assert state(m, T0 + 300 + 5 * 60 + 1) == 'missed'
    assert state(m, T0 + 86400) == 'missed'
    assert errorcapture.monitor_state(m, at=T0 + 1)[1] == T0 + 300


def test_a_new_ping_makes_it_healthy_again():
    m = monitor(lastPing=T0, lastStatus='success')
    assert state(m, T0 + 3600) == 'missed'
    m['lastPing'] = T0 + 3590
    assert state(m, T0 + 3600) == 'healthy'


def test_failed_until_the_next_success():
    m = monitor(lastPing=T0, lastStatus='failed')
    assert state(m, T0 + 1) == 'failed'
    assert state(m, T0 + 86400) == 'failed'
    m['lastStatus'] = 'success'
    assert state(m, T0 + 1) == 'healthy'


def test_running_and_timeout():
    m = monitor(lastPing=T0, lastStatus='success', runningSince=T0 + 60, maxRuntime=10)
    assert state(m, T0 + 120) == 'running'
    assert state(m, T0 + 60 + 10 * 60 + 1) == 'timeout'


def test_cron_monitor_late_and_missed():
    m = monitor(schedule='0 3 * * *', grace=5, lastPing=utc('2026-11-23 03:00') + 10, lastStatus='success')
    expected = errorcapture.monitor_state(m, at=utc('2026-11-23 12:00'))[1]
    assert expected == utc('2026-11-24 03:00')
    assert state(m, utc('2026-11-23 12:00')) == 'healthy'
    assert state(m, utc('2026-11-24 03:02')) == 'late'
    assert state(m, utc('2026-11-24 03:06')) == 'missed'


def test_cron_monitor_in_its_time_zone():
    m = monitor(schedule='0 3 * * *', timezone='Europe/Berlin', grace=10,
                lastPing=utc('2026-11-23 02:00') + 5, lastStatus='success')
    # 03:00 in Berlin (UTC+1 in November) is 02:00 UTC
    assert errorcapture.monitor_state(m, at=utc('2026-11-23 12:00'))[1] == utc('2026-11-24 02:00')
    assert state(m, utc('2026-11-24 02:05')) == 'late'
    assert state(m, utc('2026-11-24 02:11')) == 'missed'


# -- schedules (next_run) ---------------------------------------------------------

@pytest.mark.parametrize('schedule,seconds', [('5m', 300), ('1h', 3600), ('1d', 86400), ('15m', 900),
                                              ('2h', 7200), ('1w', 7 * 86400)])
def test_interval_schedules(schedule, seconds):
    assert errorcapture.next_run(schedule, T0) == T0 + seconds
    assert errorcapture.next_run(schedule, T0 + 17.5) == T0 + 17.5 + seconds


@pytest.mark.parametrize('schedule,after,expected', [
    ('*/15 * * * *', '2026-11-23 10:07', '2026-11-23 10:15'),
    ('*/15 * * * *', '2026-11-23 10:15', '2026-11-23 10:30'),  # strictly after
    ('*/15 * * * *', '2026-11-23 23:50', '2026-11-24 00:00'),
    ('0 3 * * mon', '2026-11-25 12:00', '2026-11-30 03:00'),  # Wednesday -> next Monday
    ('0 3 * * mon', '2026-11-23 02:59', '2026-11-23 03:00'),  # a Monday, before 03:00
    ('0 3 * * 1', '2026-11-23 03:00', '2026-11-30 03:00'),
    ('0 3 * * 0', '2026-11-23 12:00', '2026-11-29 03:00'),  # Sunday as 0
    ('0 3 * * 7', '2026-11-23 12:00', '2026-11-29 03:00'),  # and as 7
    ('30 2 * * 1-5', '2026-11-27 03:00', '2026-11-30 02:30'),  # Friday after the run -> Monday
    ('0 9,17 * * *', '2026-11-23 10:00', '2026-11-23 17:00'),
    ('0 0 1 * *', '2026-11-23 10:00', '2026-12-01 00:00'),
    ('0 0 1 1 *', '2026-11-23 10:00', '2027-01-01 00:00'),
    ('0 12 * dec *', '2026-11-23 10:00', '2026-12-01 12:00'),
    ('0 0 13 * fri', '2026-11-01 10:00', '2026-11-06 00:00'),  # day and weekday both set: either matches
    ('0 0 29 2 *', '2026-03-01 00:00', '2028-02-29 00:00'),  # leap day
    ('@daily', '2026-11-23 10:00', '2026-11-24 00:00'),
    ('@hourly', '2026-11-23 10:00', '2026-11-23 11:00'),
])
def test_cron_schedules_utc(schedule, after, expected):
    assert utc_text(errorcapture.next_run(schedule, utc(after))) == expected


@pytest.mark.parametrize('after,expected', [
    ('2026-11-23 00:00', '2026-11-23 02:00'),  # winter: Berlin is UTC+1
    ('2026-07-01 00:00', '2026-07-01 01:00'),  # summer: UTC+2
    ('2026-11-23 02:00', '2026-11-24 02:00'),
])
def test_cron_schedule_in_europe_berlin(after, expected):
    assert utc_text(errorcapture.next_run('0 3 * * *', utc(after), 'Europe/Berlin')) == expected


def test_cron_weekday_is_local_to_the_time_zone():
    # Monday 00:30 in Tokyo is Sunday 15:30 UTC
    got = errorcapture.next_run('30 0 * * mon', utc('2026-11-28 00:00'), 'Asia/Tokyo')
    assert utc_text(got) == '2026-11-29 15:30'


@pytest.mark.parametrize('schedule', ['every day', '61 * * * *', '* * *', '* * * * * *', '*/0 * * * *',
                                      '0 0 32 * *', '0 0 * 13 *', '0 0 * * 8', '5-1 * * * *', 'abc * * * *'])
def test_bad_schedules(schedule):
    with pytest.raises(errorcapture.Invalid):
        errorcapture.validate_schedule(schedule)


def test_validate_monitor():
    clean = errorcapture.validate_monitor({'slug': 'db-backup', 'name': ' DB backup ', 'schedule': '1h',
                                           'grace': 15, 'timezone': 'Europe/Berlin', 'maxRuntime': 30})
    assert clean == {'slug': 'db-backup', 'name': 'DB backup', 'schedule': '1h', 'grace': 15,
                     'timezone': 'Europe/Berlin', 'maxRuntime': 30}
    assert errorcapture.validate_monitor({'grace': 10}, partial=True) == {'grace': 10}
    for bad in ({'slug': 'Bad Slug!', 'schedule': '1h'}, {'slug': 'ok', 'schedule': '1h', 'grace': 0},
                {'slug': 'ok', 'schedule': '1h', 'grace': 1441}, {'slug': 'ok', 'schedule': 'every day'}):
        with pytest.raises(errorcapture.Invalid):
            errorcapture.validate_monitor(bad)


# -- command line -----------------------------------------------------------------

def run_cli(*args, db, cwd):
    env = dict(os.environ, ERRORCAPTURE_DB=db)
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60)


def test_cli_monitors_help():
    done = subprocess.run([sys.executable, SCRIPT, 'monitors', '--help'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for action in ('add', 'list', 'delete'):
        assert action in done.stdout


def test_cli_monitors_add_list_delete(tmp_path):
    db = str(tmp_path / 'cli.db')
    made = run_cli('projects', 'add', 'cli-app', db=db, cwd=str(tmp_path))
    assert made.returncode == 0, made.stderr
    key = re.search(r'key=([0-9a-f]{32})', made.stdout).group(1)

    added = run_cli('monitors', 'add', '--key', key, 'db-backup', '--schedule', '0 3 * * *', '--grace', '20',
                    '--name', 'DB backup', db=db, cwd=str(tmp_path))
    assert added.returncode == 0, added.stderr
    assert 'db-backup' in added.stdout
    added = run_cli('monitors', 'add', '--key', key, 'every-5m', '--schedule', '5m', db=db, cwd=str(tmp_path))
    assert added.returncode == 0, added.stderr

    listed = run_cli('monitors', 'list', '--key', key, db=db, cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    backup = next(line for line in lines if 'db-backup' in line)
    assert 'pending' in backup and '0 3 * * *' in backup

    # what the command line made, the server shows
    app = errorcapture.make_app(db)
    try:
        import webtest
        shown = webtest.TestApp(app).get('/api/v1/monitors?key=' + key).json['monitors']
    finally:
        app.close()
    assert {m['slug']: (m['name'], m['schedule'], m['grace']) for m in shown} == {
        'db-backup': ('DB backup', '0 3 * * *', 20), 'every-5m': ('every-5m', '5m', 5)}

    changed = run_cli('monitors', 'set', '--key', key, 'db-backup', '--grace', '45', db=db, cwd=str(tmp_path))
    assert changed.returncode == 0, changed.stderr

    deleted = run_cli('monitors', 'delete', '--key', key, 'every-5m', db=db, cwd=str(tmp_path))
    assert deleted.returncode == 0, deleted.stderr
    listed = run_cli('monitors', 'list', '--key', key, db=db, cwd=str(tmp_path))
    assert 'every-5m' not in listed.stdout and 'db-backup' in listed.stdout
    backup = next(line for line in listed.stdout.splitlines() if 'db-backup' in line)
    assert re.search(r'grace\W*45(?!\d)', backup), backup


def test_cli_monitors_refuses_bad_input(tmp_path):
    db = str(tmp_path / 'cli.db')
    made = run_cli('--db', db, 'projects', 'add', 'cli-app', db=db, cwd=str(tmp_path))
    key = re.search(r'key=([0-9a-f]{32})', made.stdout).group(1)
    for args in (['Bad Slug!', '--schedule', '5m'], ['job', '--schedule', 'every day'],
                 ['job', '--schedule', '5m', '--grace', '0']):
        done = run_cli('monitors', 'add', '--key', key, *args, db=db, cwd=str(tmp_path))
        assert done.returncode != 0, args
        assert done.stderr.strip(), args
    unknown = run_cli('monitors', 'list', '--key', 'f' * 32, db=db, cwd=str(tmp_path))
    assert unknown.returncode != 0 and 'key' in unknown.stderr
    missing = run_cli('monitors', 'delete', '--key', key, 'nope', db=db, cwd=str(tmp_path))
    assert missing.returncode != 0
    listed = run_cli('monitors', 'list', '--key', key, db=db, cwd=str(tmp_path))
    assert listed.returncode == 0 and listed.stdout.strip() == ''


def test_cli_takes_db_before_or_after_the_command_and_never_makes_one_by_mistake(tmp_path):
    db = str(tmp_path / 'ops.db')
    made = subprocess.run([sys.executable, SCRIPT, 'projects', 'add', 'ops', '--db', db], capture_output=True,
                          text=True, timeout=60, cwd=str(tmp_path))
    assert made.returncode == 0, made.stderr
    key = re.search(r'key=([0-9a-f]+)', made.stdout).group(1)
    for argv in (['--db', db, 'monitors', 'add', 'nightly', '--key', key, '--schedule', '1d'],
                 ['monitors', 'list', '--key', key, '--db', db],
                 ['--db=' + db, 'monitors', 'list', '--key', key]):
        done = subprocess.run([sys.executable, SCRIPT] + argv, capture_output=True, text=True, timeout=60,
                              cwd=str(tmp_path))
        assert done.returncode == 0, (argv, done.stderr)
    assert 'nightly' in done.stdout
    typo = str(tmp_path / 'opps.db')
    done = subprocess.run([sys.executable, SCRIPT, 'monitors', 'list', '--key', key, '--db', typo],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert done.returncode == 2 and 'no database at' in done.stderr
    assert not os.path.exists(typo)
    shown = subprocess.run([sys.executable, SCRIPT, 'monitors', 'list', '--help'], capture_output=True, text=True,
                           timeout=60)
    assert '--db' in shown.stdout and '--public-url' in shown.stdout
