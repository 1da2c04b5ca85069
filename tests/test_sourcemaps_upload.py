"""The upload API sentry-cli calls (chunk-upload options, multipart gzip chunks
named by their sha1, artifact bundle assembly, releases), the tokens that guard
it, and hostile uploads: every bad one gets a 4xx in Sentry's {"detail": ...}
form and leaves nothing stored."""
import gzip
import hashlib
import json
import random
import sqlite3

import pytest

import errorcapture
from test_sourcemap_bundles import DEBUG_ID, bundle, lying_zip_bomb, manifest

ADMIN = 'upload-admin-token'


@pytest.fixture
def server(make):
    return make(admin_token=ADMIN)


def bearer(token):
    return {'Authorization': 'Bearer ' + token}


def new_project(server, name='shop'):
    return server.post_json('/api/v1/projects', {'name': name}, headers=bearer(ADMIN)).json['project']


def new_token(server, project, name='ci'):
    answer = server.post_json('/api/v1/projects/%d/tokens' % project['id'], {'name': name}, headers=bearer(ADMIN))
    assert answer.status_int == 201
    return answer.json['token']['value']


def upload_chunks(server, token, data, chunk_size=None, status=200, gzip_chunks=True):
    options = server.get('/api/0/organizations/any/chunk-upload/', headers=bearer(token)).json
    size = chunk_size or options['chunkSize']
    pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b'']
    files = [('file_gzip' if gzip_chunks else 'file', hashlib.sha1(p).hexdigest(),
              gzip.compress(p) if gzip_chunks else p) for p in pieces]
    answer = server.post('/api/0/organizations/any/chunk-upload/', upload_files=files, headers=bearer(token),
                         status=status)
    return [hashlib.sha1(p).hexdigest() for p in pieces], answer


def assemble(server, token, data, chunks, projects=('shop',), status=200, **extra):
    body = dict({'checksum': hashlib.sha1(data).hexdigest(), 'chunks': chunks, 'projects': list(projects)}, **extra)
    return server.post_json('/api/0/organizations/any/artifactbundle/assemble/', body, headers=bearer(token),
                            status=status)


def upload(server, token, data, projects=('shop',), **extra):
    """What `sentry-cli sourcemaps upload` does: assemble (learn what is
    missing), upload the missing chunks, assemble again."""
    checksum = hashlib.sha1(data).hexdigest()
    first = assemble(server, token, data, [checksum], projects, **extra).json
    assert first['state'] == 'not_found' and first['missingChunks'] == [checksum]
    chunks, _ = upload_chunks(server, token, data)
    return assemble(server, token, data, chunks, projects, **extra)


def stored_rows(server, table):
    path = server.wsgi.store.path
    with sqlite3.connect(path) as conn:
        return conn.execute('SELECT COUNT(*) FROM %s' % table).fetchone()[0]


def test_chunk_upload_options_are_what_sentry_cli_needs(server):
    options = server.get('/api/0/organizations/acme/chunk-upload/', headers=bearer(ADMIN)).json
    assert options['url'].endswith('/api/0/organizations/acme/chunk-upload/')
    assert options['hashAlgorithm'] == 'sha1' and options['compression'] == ['gzip']
    size = options['chunkSize']
    assert size > 0 and size & (size - 1) == 0   # a power of two, as sentry-cli before 2.40 requires
    assert {'artifact_bundles', 'artifact_bundles_v2', 'release_files'} <= set(options['accept'])
    for field in ('chunksPerRequest', 'maxRequestSize', 'maxFileSize', 'concurrency'):
        assert isinstance(options[field], int) and options[field] > 0
    assert 'Access-Control-Allow-Origin' not in server.get(
        '/api/0/organizations/acme/chunk-upload/', headers=bearer(ADMIN)).headers


def test_a_project_token_uploads_a_bundle_that_is_then_stored(server):
    project = new_project(server)
    token = new_token(server, project)
    answer = upload(server, token, bundle())
    assert answer.json == {'state': 'ok', 'missingChunks': [], 'detail': None}
    # asked again (sentry-cli polls), the same answer
    again = assemble(server, token, bundle(), [hashlib.sha1(bundle()).hexdigest()])
    assert again.json['state'] == 'ok'
    listed = server.get('/api/v1/sourcemaps?key=' + project['key']).json['bundles']
    assert len(listed) == 1 and listed[0]['files'] == 2
    assert stored_rows(server, 'upload_chunks') == 0   # assembled chunks go


def test_the_admin_token_uploads_too_and_projects_are_matched_by_name(server):
    new_project(server, 'My Shop')
    assert upload(server, ADMIN, bundle(), projects=['my-shop']).json['state'] == 'ok'
    assert upload(server, ADMIN, bundle(manifest_data=dict(manifest(**{
        'files/_/_/app.min.js': {'type': 'minified_source', 'url': '~/app.min.js',
                                 'headers': {'debug-id': DEBUG_ID}}})), entries={
        'files/_/_/app.min.js': b'x'}), projects=['My Shop']).json['state'] == 'ok'


@pytest.mark.parametrize('token, status', [('', 401), ('wrong', 401), ('ab' * 32, 401)])
def test_uploads_need_a_valid_token(server, token, status):
    new_project(server)
    for method, path in (('get', '/api/0/organizations/o/chunk-upload/'),
                         ('post', '/api/0/organizations/o/chunk-upload/'),
                         ('post', '/api/0/organizations/o/artifactbundle/assemble/'),
                         ('post', '/api/0/organizations/o/releases/')):
        answer = getattr(server, method)(path, headers=bearer(token) if token else {}, status=status)
        assert set(answer.json) == {'detail'}, answer.json


def test_a_token_only_uploads_to_its_own_project(server):
    new_project(server, 'shop')
    other = new_project(server, 'other')
    token = new_token(server, other)
    data = bundle()
    chunks, _ = upload_chunks(server, token, data)
    answer = assemble(server, token, data, chunks, ['shop'], status=403)
    assert 'own project' in answer.json['detail']
    assert stored_rows(server, 'sourcemap_bundles') == 0


def test_unknown_projects_are_refused(server):
    new_project(server)
    answer = assemble(server, ADMIN, bundle(), [hashlib.sha1(bundle()).hexdigest()], ['nope'], status=400)
    assert 'nope' in answer.json['detail']


def test_tokens_are_stored_by_digest_and_can_be_listed_and_deleted(server):
    project = new_project(server)
    token = new_token(server, project, 'deploy')
    with sqlite3.connect(server.wsgi.store.path) as conn:
        dump = '\n'.join(conn.iterdump())
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump
    listed = server.get('/api/v1/projects/%d/tokens' % project['id'], headers=bearer(ADMIN)).json['tokens']
    assert [t['name'] for t in listed] == ['deploy'] and 'value' not in listed[0]
    server.get('/api/v1/projects/%d/tokens' % project['id'], status=401)   # admin only
    server.delete('/api/v1/projects/%d/tokens/%d' % (project['id'], listed[0]['id']), headers=bearer(ADMIN))
    server.get('/api/0/organizations/o/chunk-upload/', headers=bearer(token), status=401)


# -- hostile uploads -------------------------------------------------------------

def nothing_stored(server):
    return stored_rows(server, 'sourcemap_bundles') == 0 and stored_rows(server, 'sourcemap_files') == 0


def assemble_refused(server, data, message):
    chunks, _ = upload_chunks(server, ADMIN, data)
    answer = assemble(server, ADMIN, data, chunks, status=400)
    assert set(answer.json) == {'detail'} and message in answer.json['detail'], answer.json
    assert nothing_stored(server)


def test_a_corrupt_zip_is_refused(server):
    new_project(server)
    assemble_refused(server, b'SYSB\x02\x00\x00\x00' + b'PK\x03\x04 this is not a zip' * 10, 'not a valid zip')


def test_a_zip_bomb_is_refused(server, monkeypatch):
    new_project(server)
    monkeypatch.setattr(errorcapture, 'MAX_BUNDLE_FILE', 1 << 20)
    assemble_refused(server, lying_zip_bomb(8 << 20, 8 << 20), 'larger than')


def test_path_traversal_and_absolute_names_are_refused(server):
    new_project(server)
    for name in ('files/../../etc/cron.d/x', '/etc/passwd'):
        entries = {'files/_/_/app.min.js': b'x', name: b'x'}
        assemble_refused(server, bundle(entries), 'unsafe file name')


def test_a_manifest_that_does_not_parse_is_refused(server):
    new_project(server)
    assemble_refused(server, bundle(manifest_data=b'{"files": {'), 'manifest.json is not valid JSON')


def test_a_chunk_whose_checksum_does_not_match_is_refused(server):
    new_project(server)
    answer = server.post('/api/0/organizations/o/chunk-upload/', headers=bearer(ADMIN), status=400,
                         upload_files=[('file_gzip', 'a' * 40, gzip.compress(b'some bytes'))])
    assert 'Checksum mismatch' in answer.json['detail']
    assert stored_rows(server, 'upload_chunks') == 0


def test_chunks_that_do_not_add_up_to_the_checksum_are_refused(server):
    new_project(server)
    data = bundle()
    chunks, _ = upload_chunks(server, ADMIN, data)
    body = {'checksum': hashlib.sha1(b'something else').hexdigest(), 'chunks': chunks, 'projects': ['shop']}
    answer = server.post_json('/api/0/organizations/o/artifactbundle/assemble/', body, headers=bearer(ADMIN),
                              status=400)
    assert 'checksum mismatch' in answer.json['detail']
    assert nothing_stored(server)


def test_bundles_past_the_size_cap_are_refused(server, monkeypatch):
    new_project(server)
    monkeypatch.setattr(errorcapture, 'MAX_BUNDLE_BYTES', 1000)
    data = bundle(entries={'files/_/_/app.min.js': random.Random(1).randbytes(4000),  # does not compress
                           'files/_/_/app.min.js.map': b'{}'})
    assemble_refused(server, data, 'larger than 1000 bytes')


def test_a_gzip_chunk_that_inflates_past_the_chunk_size_is_refused(server, monkeypatch):
    monkeypatch.setattr(errorcapture, 'CHUNK_SIZE', 1 << 16)
    data = b'\x00' * (1 << 20)
    answer = server.post('/api/0/organizations/o/chunk-upload/', headers=bearer(ADMIN), status=400,
                         upload_files=[('file_gzip', hashlib.sha1(data).hexdigest(), gzip.compress(data))])
    assert answer.json == {'detail': 'Chunk size too large'}


@pytest.mark.parametrize('body, message', [
    (b'not json', 'Invalid'), (b'[]', 'Invalid json body'),
    (json.dumps({'checksum': 'x', 'chunks': [], 'projects': ['shop']}).encode(), 'checksum'),
    (json.dumps({'checksum': 'a' * 40, 'chunks': 'x', 'projects': ['shop']}).encode(), 'chunks'),
    (json.dumps({'checksum': 'a' * 40, 'chunks': [], 'projects': []}).encode(), 'at least one project'),
    (json.dumps({'checksum': 'a' * 40, 'chunks': [], 'projects': ['shop'], 'version': 'a/b'}).encode(), 'version'),
    (json.dumps({'checksum': 'a' * 40, 'chunks': [], 'projects': ['shop'], 'dist': 'd'}).encode(), 'dist'),
])
def test_bad_assemble_requests(server, body, message):
    new_project(server)
    answer = server.post('/api/0/organizations/o/artifactbundle/assemble/', body, headers=dict(
        bearer(ADMIN), **{'Content-Type': 'application/json'}), status=400)
    assert message in answer.json['detail'], answer.json


def test_malformed_multipart_bodies(server):
    for body, content_type in ((b'x', 'multipart/form-data; boundary=zz'), (b'x', 'application/json'),
                               (b'--zz\r\nbroken', 'multipart/form-data; boundary=zz')):
        answer = server.post('/api/0/organizations/o/chunk-upload/', body, status=400,
                             headers=dict(bearer(ADMIN), **{'Content-Type': content_type}))
        assert set(answer.json) == {'detail'}


def test_a_bundle_without_debug_ids_needs_a_release(server):
    new_project(server)
    data = bundle(manifest_data=manifest(**{'files/_/_/app.min.js': {'type': 'minified_source',
                                                                      'url': '~/app.min.js'}}),
                  entries={'files/_/_/app.min.js': b'x'})
    assemble_refused(server, data, 'without debug ids or release')
    chunks, _ = upload_chunks(server, ADMIN, data)
    assert assemble(server, ADMIN, data, chunks, version='1.0').json['state'] == 'ok'


def test_a_newer_bundle_replaces_the_files_of_the_same_debug_id(server):
    project = new_project(server)
    upload(server, ADMIN, bundle())
    changed = bundle(entries={'files/_/_/app.min.js': b'// v2', 'files/_/_/app.min.js.map': b'{"v": 2}'})
    upload(server, ADMIN, changed)
    listed = server.get('/api/v1/sourcemaps?key=' + project['key']).json['bundles']
    assert len(listed) == 1   # the older bundle had nothing left and is gone


# -- releases, as `sentry-cli releases new` creates them ---------------------------------

def test_releases_new_for_both_cli_majors(server):
    new_project(server)
    made = server.post_json('/api/0/organizations/o/releases/', {'version': 'shop@1.0', 'projects': ['shop'],
                                                                  'dateStarted': '2026-12-01T21:18:27.59Z'},
                            headers=bearer(ADMIN), status=201).json
    assert made['version'] == 'shop@1.0' and made['dateCreated'] and made['projects'][0]['slug'] == 'shop'
    legacy = server.post_json('/api/0/projects/o/shop/releases/', {'version': 'shop@2.0', 'projects': ['shop']},
                              headers=bearer(ADMIN), status=201).json
    assert legacy['version'] == 'shop@2.0'
    shown = server.get('/api/0/organizations/o/releases/shop@2.0/', headers=bearer(ADMIN)).json
    assert shown['version'] == 'shop@2.0'
    server.get('/api/0/organizations/o/releases/nope/', headers=bearer(ADMIN), status=404)
    # `releases info` / `releases finalize` (2.x asks through the project)
    assert server.get('/api/0/projects/o/shop/releases/shop@1.0/', headers=bearer(ADMIN)).json['dateReleased'] is None
    done = server.put_json('/api/0/projects/o/shop/releases/shop@1.0/', {'dateReleased': '2026-12-01T22:00:00Z'},
                           headers=bearer(ADMIN)).json
    assert done['dateReleased'].startswith('2026-12-01T22:00:00')
    server.post_json('/api/0/projects/o/nope/releases/', {'version': '1', 'projects': ['nope']},
                     headers=bearer(ADMIN), status=404)


def test_the_legacy_release_assemble_endpoint(server):
    project = new_project(server)
    server.post_json('/api/0/organizations/o/releases/', {'version': 'r1', 'projects': ['shop']},
                     headers=bearer(ADMIN))
    data = bundle(manifest_data=dict(manifest(**{'files/_/_/app.min.js': {'type': 'minified_source',
                                                                           'url': '~/app.min.js'}}),
                                     release='r1'), entries={'files/_/_/app.min.js': b'x'})
    chunks, _ = upload_chunks(server, ADMIN, data)
    body = {'checksum': hashlib.sha1(data).hexdigest(), 'chunks': chunks}
    answer = server.post_json('/api/0/organizations/o/releases/r1/assemble/', body, headers=bearer(ADMIN))
    assert answer.json['state'] == 'ok'
    assert server.get('/api/v1/sourcemaps?key=' + project['key']).json['bundles'][0]['release'] == 'r1'
    server.post_json('/api/0/organizations/o/releases/r2/assemble/', body, headers=bearer(ADMIN), status=404)


@pytest.mark.parametrize('path', ['/api/0/organizations/any/chunk-upload/', '/api/v1/projects/1/tokens',
                                  '/api/v1/projects/1/tokens/1'])
def test_a_preflight_to_the_upload_and_token_apis_is_not_approved(server, path):
    answer = server.options(path, headers={'Origin': 'http://evil.example', 'Access-Control-Request-Method': 'POST',
                                           'Access-Control-Request-Headers': 'authorization'})
    assert not [name for name in answer.headers if name.lower().startswith('access-control-')]
    # ingest keeps its preflight: browser SDKs need it
    ingest = server.options('/api/1/envelope/', headers={'Origin': 'http://evil.example'})
    assert ingest.headers['Access-Control-Allow-Origin'] == '*'


@pytest.mark.parametrize('headers', [{'Origin': 'http://evil.example'}, {'Origin': 'null'},
                                     {'Sec-Fetch-Site': 'cross-site'}])
def test_a_cross_origin_post_cannot_create_a_token_or_upload(make, headers):
    server = make()   # loopback without an admin token: what a page in the user's browser can reach
    project = server.post_json('/api/v1/projects', {'name': 'shop'}).json['project']
    answer = server.post('/api/v1/projects/%d/tokens' % project['id'], '{"name": "x"}', headers=headers,
                         content_type='text/plain', expect_errors=True)
    assert answer.status_int == 403 and 'Access-Control-Allow-Origin' not in answer.headers
    assert stored_rows(server, 'upload_tokens') == 0
    refused = server.post('/api/0/organizations/any/chunk-upload/', 'x', headers=headers,
                          content_type='text/plain', expect_errors=True)
    assert refused.status_int == 403 and 'detail' in refused.json
    # the same request from the server's own origin, or from a CLI (no Origin), is served
    own = server.post('/api/v1/projects/%d/tokens' % project['id'], '{"name": "x"}',
                      headers={'Origin': 'http://localhost'}, content_type='text/plain', expect_errors=True)
    assert own.status_int == 201
    cli = server.post_json('/api/v1/projects/%d/tokens' % project['id'], {'name': 'cli'})
    assert cli.status_int == 201 and stored_rows(server, 'upload_tokens') == 2


def test_a_body_of_delimiters_alone_is_refused_without_splitting_it_all():
    import tracemalloc
    body = b'--a\r\n' * 1000000   # a million delimiters, each opening a part
    tracemalloc.start()
    try:
        with pytest.raises(errorcapture.ApiError, match='too many parts'):
            errorcapture.parse_multipart(body, 'multipart/form-data; boundary=a', max_parts=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200000   # split, a million pieces: more than 40 MB
    parts = errorcapture.parse_multipart(b'--a\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n' * 3 + b'--a--\r\n',
                                         'multipart/form-data; boundary=a', max_parts=3)
    assert [data for _, _, data in parts] == [b'x'] * 3


def test_an_assembly_over_the_size_cap_loads_no_chunk(server, monkeypatch):
    new_project(server)
    data = random.Random(2).randbytes(3000)
    chunks, _ = upload_chunks(server, ADMIN, data, chunk_size=1000)
    store = server.wsgi.store.sourcemaps
    queries = []
    query = store.query
    monkeypatch.setattr(store, 'query', lambda sql, params=(): queries.append(sql) or query(sql, params))
    with pytest.raises(errorcapture.BundleError, match='larger than 2000'):
        store.chunk_data(chunks, 2000)
    assert not [sql for sql in queries if sql.startswith('SELECT data')]
    assert store.chunk_data(chunks + chunks[:1], 4000) == data + data[:1000]


def test_a_tokens_last_use_is_recorded(server):
    project = new_project(server)
    token = new_token(server, project)
    listed = server.get('/api/v1/projects/%d/tokens' % project['id'], headers=bearer(ADMIN)).json['tokens']
    assert listed[0]['lastUsed'] is None
    server.get('/api/0/organizations/any/chunk-upload/', headers=bearer(token))
    listed = server.get('/api/v1/projects/%d/tokens' % project['id'], headers=bearer(ADMIN)).json['tokens']
    assert listed[0]['lastUsed'] is not None
