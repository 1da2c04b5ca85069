"""Frames resolved on ingest: by debug id and by release + URL; the minified
frames kept beside the original ones; grouping by the original frames; a
missing or broken map said on the frame; each map parsed once; retention of
bundles no event uses; the upload token CLI."""
import contextlib
import io
import json
import time

import pytest

import errorcapture
from helpers import sentry_auth
from test_sourcemap_bundles import manifest
from test_sourcemap_parsing import encode_mappings
from test_sourcemaps_upload import ADMIN, bearer, new_project, upload

CART = """function computeTotal(items) {
  let total = 0;
  for (const item of items) total += item.price;
  throw new Error('total too large: ' + total);
}
function checkout() {
  return computeTotal([{price: 7}, {price: 9}]);
}
"""
URL = 'http://shop.example/static/app.min.js'


def build(debug_id, names=('e', 'c'), shift=0):
    """A minified build of CART (one line) and its map: the throw and the
    call of computeTotal, at columns that differ between builds."""
    callee, caller = names
    pad = ' ' * shift
    minified = ('%sfunction %s(t){throw new Error("total too large: "+t)}function %s(){return %s([{price:7}])}'
                % (pad, callee, caller, callee))
    throw_at = minified.index('throw')
    call_at = minified.rindex(callee + '(')
    start_at = minified.index('function ' + caller)
    # as bundlers write them: a mapping at each declared name, with its original name
    smap = {'version': 3, 'sources': ['../src/cart.js'], 'names': ['computeTotal', 'checkout'],
            'sourcesContent': [CART],
            'mappings': encode_mappings([[(shift, 0, 0, 0, None), (shift + 9, 0, 0, 9, 0), (throw_at, 0, 3, 2, None),
                                          (start_at, 0, 5, 0, None), (start_at + 9, 0, 5, 9, 1),
                                          (call_at, 0, 6, 9, 0)]])}
    if debug_id:
        smap['debug_id'] = debug_id
    frames = [{'filename': URL, 'abs_path': URL, 'function': caller, 'lineno': 1, 'colno': call_at + 1,
               'in_app': True},
              {'filename': URL, 'abs_path': URL, 'function': callee, 'lineno': 1, 'colno': throw_at + 1,
               'in_app': True}]
    return minified.encode(), json.dumps(smap).encode(), frames


def artifact_bundle(minified, smap, debug_id=None, url_prefix='~/static'):
    from test_sourcemap_bundles import bundle
    headers = {'debug-id': debug_id} if debug_id else {}
    return bundle(entries={'files/_/_/app.min.js': minified, 'files/_/_/app.min.js.map': smap},
                  manifest_data=dict(manifest(**{
                      'files/_/_/app.min.js': {'type': 'minified_source', 'url': url_prefix + '/app.min.js',
                                               'headers': dict(headers, sourcemap='app.min.js.map')},
                      'files/_/_/app.min.js.map': {'type': 'source_map', 'url': url_prefix + '/app.min.js.map',
                                                   'headers': headers}}), debug_id=debug_id or 'x'))


DEBUG_ID = '11111111-2222-4333-8444-555555555555'
OTHER_ID = '99999999-2222-4333-8444-555555555555'


@pytest.fixture
def server(make):
    return make(admin_token=ADMIN, sweep_interval=0)


def send(server, project, frames, debug_id=None, release=None, dist=None, message='total too large: 16'):
    event = {'platform': 'javascript', 'level': 'error',
             'exception': {'values': [{'type': 'Error', 'value': message, 'stacktrace': {'frames': frames}}]}}
    if debug_id:
        event['debug_meta'] = {'images': [{'type': 'sourcemap', 'code_file': URL, 'debug_id': debug_id}]}
    if release:
        event['release'] = release
    if dist:
        event['dist'] = dist
    server.post_json('/api/%d/store/' % project['id'], event, headers=sentry_auth(project['key']))
    events = server.get('/api/v1/events?key=' + project['key']).json['events']
    return server.get('/api/v1/events/%d?key=%s' % (events[0]['id'], project['key'])).json['event']


def test_frames_are_mapped_by_debug_id_and_the_minified_ones_kept(server):
    project = new_project(server)
    minified, smap, frames = build(DEBUG_ID)
    upload(server, ADMIN, artifact_bundle(minified, smap, DEBUG_ID))
    event = send(server, project, frames, debug_id=DEBUG_ID)
    raised = event['exception'][-1]
    top = raised['frames'][-1]
    assert top['filename'] == 'src/cart.js'
    assert (top['function'], top['lineno'], top['colno']) == ('computeTotal', 4, 3)
    assert top['contextLine'] == "  throw new Error('total too large: ' + total);"
    assert top['preContext'][-1] == '  for (const item of items) total += item.price;'
    assert top['postContext'][0] == '}'
    assert top['sourceMap'] == {'url': '~/static/app.min.js.map', 'resolvedWith': 'debug-id'}
    # the outer frame: its name from the declaration of `c`, which the map names checkout
    assert raised['frames'][0]['lineno'] == 7 and raised['frames'][0]['function'] == 'checkout'
    assert [f['function'] for f in raised['rawFrames']] == ['c', 'e']
    assert raised['rawFrames'][-1]['filename'] == URL
    issue = server.get('/api/v1/issues/%d?key=%s' % (event['issueId'], project['key'])).json['issue']
    assert 'computeTotal' in issue['culprit'] and 'src/cart.js' in issue['culprit']


def test_grouping_uses_the_original_frames(server):
    project = new_project(server)
    first_build, second_build = build(DEBUG_ID), build(OTHER_ID, names=('x', 'y'), shift=7)
    upload(server, ADMIN, artifact_bundle(first_build[0], first_build[1], DEBUG_ID))
    upload(server, ADMIN, artifact_bundle(second_build[0], second_build[1], OTHER_ID, url_prefix='~/v2'))
    one = send(server, project, first_build[2], debug_id=DEBUG_ID)
    two = send(server, project, second_build[2], debug_id=OTHER_ID)
    # two builds: different minified names and columns, one original function
    assert one['exception'][-1]['rawFrames'][-1]['function'] != two['exception'][-1]['rawFrames'][-1]['function']
    assert one['issueId'] == two['issueId']


def test_a_missing_map_leaves_the_frame_and_says_why(server):
    project = new_project(server)
    minified, smap, frames = build(DEBUG_ID)
    upload(server, ADMIN, artifact_bundle(minified, smap, DEBUG_ID))
    event = send(server, project, frames, debug_id=OTHER_ID)
    top = event['exception'][-1]['frames'][-1]
    assert top['filename'] == URL and top['function'] == 'e'
    assert top['sourceMapError']['type'] == 'missing_sourcemap'
    assert OTHER_ID in top['sourceMapError']['message']
    plain = send(server, project, frames)   # neither a debug id nor a release
    assert plain['exception'][-1]['frames'][-1]['sourceMapError']['type'] == 'missing_sourcemap'
    no_column = send(server, project, [dict(frames[-1], colno=None)], debug_id=DEBUG_ID)
    assert no_column['exception'][-1]['frames'][-1]['sourceMapError']['type'] == 'no_column'


def test_a_broken_map_leaves_the_frame_and_says_why(server):
    project = new_project(server)
    minified, _, frames = build(DEBUG_ID)
    upload(server, ADMIN, artifact_bundle(minified, b'{"version": 3, "mappings": "!!"', DEBUG_ID))
    top = send(server, project, frames, debug_id=DEBUG_ID)['exception'][-1]['frames'][-1]
    assert top['function'] == 'e' and top['sourceMapError']['type'] == 'malformed_sourcemap'


def test_frames_are_mapped_by_release_and_url(server):
    project = new_project(server)
    minified, smap, frames = build(None)
    upload(server, ADMIN, artifact_bundle(minified, smap), version='shop@1.0', dist='web')
    top = send(server, project, frames, release='shop@1.0', dist='web')['exception'][-1]['frames'][-1]
    assert (top['filename'], top['function'], top['lineno']) == ('src/cart.js', 'computeTotal', 4)
    assert top['sourceMap']['resolvedWith'] == 'release'
    other_dist = send(server, project, frames, release='shop@1.0', dist='ios')['exception'][-1]['frames'][-1]
    assert other_dist['sourceMapError']['type'] == 'missing_source'
    other_release = send(server, project, frames, release='shop@2.0', dist='web')['exception'][-1]['frames'][-1]
    assert other_release['sourceMapError']['type'] == 'missing_source'


def test_the_source_mapping_url_comment_is_followed_when_the_manifest_has_no_header(server):
    project = new_project(server)
    minified, smap, frames = build(None)
    from test_sourcemap_bundles import bundle
    data = bundle(entries={'files/_/_/app.min.js': minified + b'\n//# sourceMappingURL=maps/app.js.map\n',
                           'files/_/_/maps/app.js.map': smap},
                  manifest_data=dict(manifest(**{
                      'files/_/_/app.min.js': {'type': 'minified_source', 'url': '~/static/app.min.js'},
                      'files/_/_/maps/app.js.map': {'type': 'source_map', 'url': '~/static/maps/app.js.map'}})))
    upload(server, ADMIN, data, version='r1')
    top = send(server, project, frames, release='r1')['exception'][-1]['frames'][-1]
    assert top['function'] == 'computeTotal' and top['sourceMap']['url'] == '~/static/maps/app.js.map'


def test_each_map_is_parsed_once_and_a_new_upload_is_seen(server):
    project = new_project(server)
    resolver = server.wsgi.ctx.resolver
    minified, smap, frames = build(DEBUG_ID)
    upload(server, ADMIN, artifact_bundle(minified, smap, DEBUG_ID))
    for _ in range(20):
        assert send(server, project, frames, debug_id=DEBUG_ID)['exception'][-1]['frames'][-1]['lineno'] == 4
    assert resolver.parsed == 1
    # the same debug id uploaded again with a changed map: the next event uses it
    changed = json.loads(smap)
    changed['mappings'] = encode_mappings([[(0, 0, 0, 0, None), (minified.index(b'throw'), 0, 2, 0, None)]])
    upload(server, ADMIN, artifact_bundle(minified + b' ', json.dumps(changed).encode(), DEBUG_ID))
    assert send(server, project, frames, debug_id=DEBUG_ID)['exception'][-1]['frames'][-1]['lineno'] == 3
    assert resolver.parsed == 2


def test_projects_without_bundles_are_left_alone(server):
    shop, other = new_project(server, 'shop'), new_project(server, 'other')
    minified, smap, frames = build(DEBUG_ID)
    upload(server, ADMIN, artifact_bundle(minified, smap, DEBUG_ID), projects=['shop'])
    event = send(server, other, frames, debug_id=DEBUG_ID)
    assert 'rawFrames' not in event['exception'][-1]
    assert event['exception'][-1]['frames'][-1]['function'] == 'e'   # shop's maps never apply to other


def test_retention_removes_bundles_no_event_uses(server, monkeypatch):
    project = new_project(server)
    old, used = build(DEBUG_ID), build(OTHER_ID)
    upload(server, ADMIN, artifact_bundle(old[0], old[1], DEBUG_ID))
    upload(server, ADMIN, artifact_bundle(used[0], used[1], OTHER_ID, url_prefix='~/v2'))
    later = time.time() + 91 * 86400   # past the default 90 retention days
    monkeypatch.setattr(errorcapture, 'now', lambda: later)
    send(server, project, used[2], debug_id=OTHER_ID)   # an event uses the second bundle
    server.wsgi.sweeper.prune_sourcemaps()
    left = server.get('/api/v1/sourcemaps?key=' + project['key']).json['bundles']
    assert [b['bundleId'] for b in left] == [OTHER_ID]


def test_the_tokens_cli(server, tmp_path):
    project = new_project(server)
    db = server.wsgi.store.path
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert errorcapture.main(['tokens', 'add', '--key', project['key'], '--name', 'ci', '--db', db]) == 0
    token = out.getvalue().strip()
    assert len(token) == 64
    server.get('/api/0/organizations/o/chunk-upload/', headers=bearer(token))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert errorcapture.main(['tokens', 'list', '--key', project['key'], '--db', db]) == 0
    assert 'ci' in out.getvalue() and token not in out.getvalue()
    token_id = int(out.getvalue().split()[0])
    with contextlib.redirect_stdout(io.StringIO()):
        assert errorcapture.main(['tokens', 'delete', '--key', project['key'], str(token_id), '--db', db]) == 0
    server.get('/api/0/organizations/o/chunk-upload/', headers=bearer(token), status=401)


def test_chunks_of_an_upload_that_never_finished_are_pruned(server, monkeypatch):
    from test_sourcemaps_upload import stored_rows, upload_chunks
    new_project(server)
    upload_chunks(server, ADMIN, b'half an upload')
    server.wsgi.sweeper.prune_sourcemaps()
    assert stored_rows(server, 'upload_chunks') == 1   # a fresh chunk may still be assembled
    later = time.time() + 2 * 3600
    monkeypatch.setattr(errorcapture, 'now', lambda: later)
    server.wsgi.sweeper.prune_sourcemaps()
    assert stored_rows(server, 'upload_chunks') == 0


def test_a_url_urlsplit_refuses_is_a_frame_error_and_the_event_is_stored(server):
    project = new_project(server)
    minified, smap, frames = build(None)
    upload(server, ADMIN, artifact_bundle(minified, smap), version='shop@1.0')
    bad_url = 'http://[x/app.js'
    bad_frames = [dict(f, filename=bad_url, abs_path=bad_url) for f in frames]
    top = send(server, project, bad_frames, release='shop@1.0')['exception'][-1]['frames'][-1]
    assert top['filename'] == bad_url and top['function'] == 'e'
    assert top['sourceMapError']['type'] == 'invalid_abs_path'
    # a map whose sources hold such a URL: the frame says so, the event is stored
    broken = json.loads(smap)
    broken['sources'] = ['http://[bad/src/cart.js']
    upload(server, ADMIN, artifact_bundle(minified, json.dumps(broken).encode()), version='shop@2.0')
    top = send(server, project, frames, release='shop@2.0')['exception'][-1]['frames'][-1]
    assert top['function'] == 'e' and top['sourceMapError']['type'] == 'invalid_abs_path'
