"""Sentry attachments (`attachment` items; `scope.add_attachment` in sentry-sdk):
stored up to their caps (1 MiB each, 20 MiB per event, a per-project total),
listed on their event, downloadable through the read API with their content type
but never rendered as a page in our origin, pruned with their event, and counted
in the project's stats."""
import json
import uuid

import pytest

import errorcapture
from helpers import create_project, post_envelope

MIB = 1 << 20


def envelope(event_id, items, with_event=True):
    parts = [json.dumps({'event_id': event_id}).encode()]
    if with_event:
        event = json.dumps({'event_id': event_id, 'message': 'with attachments'}).encode()
        parts += [json.dumps({'type': 'event', 'length': len(event)}).encode(), event]
    for header, data in items:
        parts += [json.dumps(dict(header, type='attachment', length=len(data))).encode(), data]
    return b'\n'.join(parts) + b'\n'




def event_of(client, project, event_id):
    rows = client.get('/api/v1/events', params={'key': project['hash']}).json['events']
    row = next(r for r in rows if r['eventId'] == event_id)
    return client.get('/api/v1/events/%d' % row['id'], params={'key': project['hash']}).json['event']


def download(client, project, attachment, **options):
    return client.get(attachment['url'], params={'key': project['hash']}, **options)


def test_attachments_are_listed_on_their_event_and_downloadable(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    log = b'2026-12-01 10:00:01 ERROR payment failed\n' * 20
    image = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4
    post_envelope(client, project, envelope(event_id, [
        ({'filename': 'app.log', 'content_type': 'text/plain'}, log),
        ({'filename': 'screenshot.png', 'content_type': 'image/png', 'attachment_type': 'event.attachment'}, image)]))
    event = event_of(client, project, event_id)
    listed = event['attachments']
    assert [(a['name'], a['contentType'], a['size']) for a in listed] == [
        ('app.log', 'text/plain', len(log)), ('screenshot.png', 'image/png', len(image))]
    assert all(a['eventId'] == event_id and a['attachmentType'] == 'event.attachment' for a in listed)
    again = client.get('/api/v1/events/%d/attachments' % event['id'], params={'key': project['hash']}).json
    assert again['attachments'] == listed
    text = download(client, project, listed[0])
    assert text.body == log
    assert text.headers['Content-Type'] == 'text/plain; charset=utf-8'
    assert text.headers['Content-Disposition'].startswith('attachment; filename="app.log"')
    assert text.headers['X-Content-Type-Options'] == 'nosniff'
    png = download(client, project, listed[1])
    assert png.body == image and png.headers['Content-Type'] == 'image/png'


def test_an_event_without_attachments_lists_none(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    post_envelope(client, project, envelope(event_id, []))
    assert event_of(client, project, event_id)['attachments'] == []


def test_the_attachment_may_come_before_its_event_in_the_envelope(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    event = json.dumps({'event_id': event_id, 'message': 'event last'}).encode()
    body = b'\n'.join([json.dumps({'event_id': event_id}).encode(),
                       json.dumps({'type': 'attachment', 'filename': 'a.txt', 'length': 2}).encode(), b'hi',
                       json.dumps({'type': 'event', 'length': len(event)}).encode(), event]) + b'\n'
    post_envelope(client, project, body)
    assert [a['name'] for a in event_of(client, project, event_id)['attachments']] == ['a.txt']


@pytest.mark.parametrize('content_type, name', [
    ('text/html', 'page.html'), ('image/svg+xml', 'logo.svg'), ('application/xhtml+xml', 'x.xhtml'),
    ('text/xml', 'feed.xml'), ('application/javascript', 'evil.js'), (None, 'unknown.bin'),
    ('application/pdf', 'report.pdf'), ('TEXT/HTML; charset=utf-8', 'upper.html'),
])
def test_an_attachment_is_never_rendered_as_a_page(client, content_type, name):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    header = {'filename': name}
    if content_type:
        header['content_type'] = content_type
    payload = b'<html><script>parent.stolen = document.cookie</script><svg onload="alert(1)"/></html>'
    post_envelope(client, project, envelope(event_id, [(header, payload)]))
    attachment = event_of(client, project, event_id)['attachments'][0]
    answer = download(client, project, attachment)
    assert answer.body == payload
    served = answer.headers['Content-Type'].split(';')[0]
    assert served in ('text/plain', 'application/octet-stream'), served
    assert answer.headers['Content-Disposition'].startswith('attachment;')
    assert answer.headers['X-Content-Type-Options'] == 'nosniff'
    assert answer.headers['Content-Security-Policy'].startswith('sandbox')


def test_a_hostile_file_name_stays_inside_its_header(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    post_envelope(client, project, envelope(event_id, [({'filename': 'a"; filename=x.html\r\n\u00e9t\u00e9.txt'}, b'x')]))
    attachment = event_of(client, project, event_id)['attachments'][0]
    disposition = download(client, project, attachment).headers['Content-Disposition']
    assert disposition.count('"') == 2 and '\r' not in disposition and '\n' not in disposition
    assert "filename*=UTF-8''a%22%3B%20filename%3Dx.html%0D%0A%C3%A9t%C3%A9.txt" in disposition


def test_another_projects_key_cannot_list_or_download(client):
    project, other = create_project(client, 'one'), create_project(client, 'two')
    event_id = uuid.uuid4().hex
    post_envelope(client, project, envelope(event_id, [({'filename': 'secret.txt'}, b'secret')]))
    attachment = event_of(client, project, event_id)['attachments'][0]
    answer = client.get(attachment['url'], params={'key': other['hash']}, expect_errors=True)
    assert answer.status_int == 404 and 'secret' not in answer.text
    assert client.get(attachment['url'], expect_errors=True).status_int == 401


def test_caps_per_attachment_and_per_event_count_what_is_not_stored(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    post_envelope(client, project, envelope(event_id, [({'filename': 'too-big.bin'}, b'x' * (MIB + 1)),
                                              ({'filename': 'fits.bin'}, b'y' * MIB)]))
    assert [a['name'] for a in event_of(client, project, event_id)['attachments']] == ['fits.bin']
    # 20 MiB per event, across envelopes: 19 more of 1 MiB fit, the 21st does not
    for index in range(20):
        post_envelope(client, project, envelope(event_id, [({'filename': 'more-%d.bin' % index}, b'z' * MIB)],
                                       with_event=False))
    names = [a['name'] for a in event_of(client, project, event_id)['attachments']]
    assert len(names) == 20 and 'more-19.bin' not in names
    stats = client.get('/api/v1/stats', params={'key': project['hash']}).json
    assert {r['type']: r['count'] for r in stats['notStored']} == {'attachment': 2}
    assert stats['attachments'] == {'count': 20, 'bytes': 20 * MIB}


def test_the_project_storage_cap_holds(make):
    client = make(attachment_storage_mb=2)
    project = create_project(client)
    for index in range(3):
        post_envelope(client, project, envelope(uuid.uuid4().hex, [({'filename': 'f%d' % index}, b'a' * MIB)]))
    stats = client.get('/api/v1/stats', params={'key': project['hash']}).json
    assert stats['attachments'] == {'count': 2, 'bytes': 2 * MIB}
    assert stats['notStored'][0]['type'] == 'attachment'


def test_an_attachment_without_an_event_id_is_counted_not_stored(client):
    project = create_project(client)
    body = b'{}\n' + json.dumps({'type': 'attachment', 'filename': 'orphan.txt', 'length': 3}).encode() + b'\nabc\n'
    post_envelope(client, project, body)
    stats = client.get('/api/v1/stats', params={'key': project['hash']}).json
    assert stats['attachments']['count'] == 0 and stats['notStored'][0]['type'] == 'attachment'


def test_retention_prunes_attachments_with_their_event(make):
    client = make(retention_events=1)
    project = create_project(client)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    post_envelope(client, project, envelope(first, [({'filename': 'old.txt'}, b'old')]))
    post_envelope(client, project, envelope(second, [({'filename': 'new.txt'}, b'new')]))
    client.wsgi.sweeper.sweep()
    stats = client.get('/api/v1/stats', params={'key': project['hash']}).json
    assert stats['attachments'] == {'count': 1, 'bytes': 3}
    assert [a['name'] for a in event_of(client, project, second)['attachments']] == ['new.txt']


def test_attachments_whose_event_never_came_go_after_a_day(make):
    client = make()
    project = create_project(client)
    post_envelope(client, project, envelope(uuid.uuid4().hex, [({'filename': 'lonely.txt'}, b'x')], with_event=False))
    store = client.wsgi.store
    client.wsgi.sweeper.sweep()
    assert store.attachments.totals(project['id'])[0] == 1  # its event may still come
    store.write(lambda conn: conn.execute('UPDATE attachments SET created=created-2*86400'))
    client.wsgi.sweeper.sweep()
    assert store.attachments.totals(project['id'])[0] == 0


def test_clear_removes_attachments(client):
    project = create_project(client)
    post_envelope(client, project, envelope(uuid.uuid4().hex, [({'filename': 'a.txt'}, b'abc')]))
    assert client.post('/api.php?action=clear&hash=%s' % project['hash']).json['ok'] is True
    stats = client.get('/api/v1/stats', params={'key': project['hash']}).json
    assert stats['attachments'] == {'count': 0, 'bytes': 0}


def test_attachments_are_kept_byte_for_byte(client):
    project = create_project(client)
    event_id = uuid.uuid4().hex
    blob = bytes(range(256)) * 100 + b'\n\r\x00' * 10
    post_envelope(client, project, envelope(event_id, [({'filename': 'core.dmp', 'attachment_type': 'event.minidump',
                                                'content_type': 'application/x-dmp'}, blob)]))
    attachment = event_of(client, project, event_id)['attachments'][0]
    assert attachment['attachmentType'] == 'event.minidump'
    answer = download(client, project, attachment)
    assert answer.body == blob and answer.headers['Content-Type'] == 'application/octet-stream'
    assert errorcapture.served_type('image/png') == 'image/png'
