"""Nothing dropped silently: every Sentry envelope item type that is not stored
(sessions, client reports, profiles, metrics, types from newer SDKs) is counted
by type and shown in the project's stats, across restarts; user IPs the SDK asks
us to infer ({{auto}}, sdk.settings.infer_ip) take the client's address."""
import json
import uuid

import errorcapture
from helpers import create_project, post_envelope, sentry_auth


def envelope(items, header=None):
    parts = [json.dumps(header or {}).encode()]
    for item_header, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        parts += [json.dumps(dict(item_header, length=len(data))).encode(), data]
    return b'\n'.join(parts) + b'\n'




def stats(client, project):
    return client.get('/api/v1/stats', params={'key': project['hash']}).json['notStored']


def test_items_not_stored_are_counted_by_type(client):
    project = create_project(client)
    event = {'event_id': uuid.uuid4().hex, 'message': 'stored'}
    post_envelope(client, project, envelope([
        ({'type': 'event'}, event),
        ({'type': 'session'}, {'sid': uuid.uuid4().hex, 'status': 'ok', 'init': True}),
        ({'type': 'client_report'}, {'discarded_events': []}),
        ({'type': 'profile'}, {'version': '1', 'profile': {}}),
        ({'type': 'statsd'}, b'page.load:120|d'),
        ({'type': 'made_up_by_sdk_v99'}, {'x': 1}),
    ], header={'event_id': event['event_id']}))
    post_envelope(client, project, envelope([({'type': 'profile'}, {}), ({'type': 'session'}, {})]))
    counted = {row['type']: row['count'] for row in stats(client, project)}
    assert counted == {'profile': 2, 'session': 2, 'client_report': 1, 'statsd': 1, 'made_up_by_sdk_v99': 1}
    rows = stats(client, project)
    assert [row['type'] for row in rows][:2] == ['profile', 'session']  # most first
    assert all(row['lastSeen'].endswith('Z') for row in rows)
    shown = client.get('/api/v1/project', params={'key': project['hash']}).json['project']
    assert shown['notStored'] == counted and shown['otherSentryItems'] == 7
    # the event beside them was stored, and counted nowhere else
    assert [e['eventId'] for e in client.get('/api/v1/events', params={'key': project['hash']}).json['events']] \
        == [event['event_id']]


def test_counts_survive_a_restart(make, tmp_path):
    path = str(tmp_path / 'counts.db')
    client = make(db=path)
    project = create_project(client)
    post_envelope(client, project, envelope([({'type': 'metric_buckets'}, {})]))
    client.wsgi.close()
    again = make(db=path)
    assert stats(again, project) and stats(again, project)[0]['type'] == 'metric_buckets'


def test_counts_belong_to_their_project(client):
    one, two = create_project(client, 'one'), create_project(client, 'two')
    post_envelope(client, one, envelope([({'type': 'profile'}, {})]))
    assert stats(client, two) == []


def test_hostile_type_names_are_bounded(client, monkeypatch):
    monkeypatch.setattr(errorcapture.ItemCounts, 'TYPES', 3)
    project = create_project(client)
    post_envelope(client, project, envelope([({'type': 'x' * 5000}, {})] + [({'type': 't%d' % i}, {}) for i in range(6)]))
    rows = stats(client, project)
    assert len(rows) <= 4
    assert all(len(row['type']) <= 64 for row in rows)
    assert sum(row['count'] for row in rows) == 7
    assert 'other' in [row['type'] for row in rows]


def error_envelope(user=None, sdk=None):
    event = {'event_id': uuid.uuid4().hex, 'message': 'where from?', 'platform': 'javascript'}
    if user is not None:
        event['user'] = user
    if sdk is not None:
        event['sdk'] = sdk
    return envelope([({'type': 'event'}, event)], header={'event_id': event['event_id']})


def stored_user(client, project):
    row = client.get('/api/v1/events', params={'key': project['hash']}).json['events'][0]
    return client.get('/api/v1/events/%d' % row['id'], params={'key': project['hash']}).json['event'].get('user')


def post_from(client, project, body, address):
    answer = client.post('/api/%d/envelope/' % project['id'], body, headers=sentry_auth(project['hash']),
                         extra_environ={'REMOTE_ADDR': address})
    assert answer.status_int == 200


def test_auto_ip_takes_the_client_address(client):
    project = create_project(client)
    post_from(client, project, error_envelope(user={'id': '7', 'ip_address': '{{auto}}'}), '203.0.113.9')
    assert stored_user(client, project) == {'id': '7', 'ip_address': '203.0.113.9'}


def test_infer_ip_auto_in_the_sdk_settings(client):
    project = create_project(client)
    post_from(client, project, error_envelope(sdk={'name': 'sentry.javascript.browser', 'version': '10.0.0',
                                                   'settings': {'infer_ip': 'auto'}}), '198.51.100.4')
    assert stored_user(client, project) == {'ip_address': '198.51.100.4'}


def test_no_ip_is_made_up_unless_asked(client):
    project = create_project(client)
    post_from(client, project, error_envelope(user={'id': '7'}, sdk={'settings': {'infer_ip': 'never'}}),
              '198.51.100.4')
    assert stored_user(client, project) == {'id': '7'}
    post_from(client, project, error_envelope(user={'ip_address': '192.0.2.1'}), '198.51.100.4')
    assert stored_user(client, project) == {'ip_address': '192.0.2.1'}


def test_a_forwarded_for_header_does_not_choose_the_address(client):
    project = create_project(client)
    answer = client.post('/api/%d/envelope/' % project['id'], error_envelope(user={'ip_address': '{{auto}}'}),
                         headers=dict(sentry_auth(project['hash']), **{'X-Forwarded-For': '10.9.9.9'}),
                         extra_environ={'REMOTE_ADDR': '203.0.113.20'})
    assert answer.status_int == 200
    assert stored_user(client, project)['ip_address'] == '203.0.113.20'
