"""Reading artifact bundles as sentry-cli builds them, and refusing hostile ones:
corrupt zips, zip bombs (sizes counted while reading, not taken from the
headers), unsafe names, bad manifests, over-cap bundles."""
import io
import json
import struct
import zipfile

import pytest

import errorcapture as sm
from errorcapture import BundleError, read_bundle, read_bundle_file

DEBUG_ID = '2b57f07a-432c-5662-9998-ec91f641a263'
MINIFIED = b'(()=>{function e(o){throw new Error("x")}e();})();\n//# debugId=' + DEBUG_ID.encode() + b'\n'
MAP = json.dumps({'version': 3, 'sources': ['../src/a.js'], 'names': [], 'mappings': 'AAAA',
                  'debug_id': DEBUG_ID}).encode()


def manifest(**files):
    return {'files': files, 'debug_id': 'fbaccd0f-c5a8-5612-b60d-d34377a1e018', 'org': 'o', 'project': 'p'}


def good_manifest():
    return manifest(**{
        'files/_/_/app.min.js': {'type': 'minified_source', 'url': '~/app.min.js',
                                 'headers': {'debug-id': DEBUG_ID, 'Sourcemap': 'app.min.js.map'}},
        'files/_/_/app.min.js.map': {'type': 'source_map', 'url': '~/app.min.js.map',
                                     'headers': {'debug-id': DEBUG_ID.replace('-', '').upper()}}})


def bundle(entries=None, manifest_data=None, header=True):
    """A bundle as symbolic's SourceBundleWriter writes it: 'SYSB', version 2, zip."""
    if entries is None:
        entries = {'files/_/_/app.min.js': MINIFIED, 'files/_/_/app.min.js.map': MAP}
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if manifest_data is not False:
            raw = manifest_data if isinstance(manifest_data, bytes) else json.dumps(
                manifest_data if manifest_data is not None else good_manifest()).encode()
            archive.writestr('manifest.json', raw)
    return (b'SYSB' + struct.pack('<I', 2) if header else b'') + out.getvalue()


def test_a_bundle_as_sentry_cli_writes_it():
    attributes, files = read_bundle(bundle())
    assert attributes['debug_id'] == 'fbaccd0f-c5a8-5612-b60d-d34377a1e018'
    assert attributes['project'] == 'p'
    by_url = {f['url']: f for f in files}
    assert by_url['~/app.min.js']['type'] == 'minified_source'
    assert by_url['~/app.min.js']['sourcemap'] == 'app.min.js.map'   # header names are case-insensitive
    assert by_url['~/app.min.js.map']['debug_id'] == DEBUG_ID         # normalized from 32 upper-case hex
    assert by_url['~/app.min.js']['size'] == len(MINIFIED)
    assert read_bundle_file(bundle(), 'files/_/_/app.min.js.map') == MAP
    assert read_bundle(bundle(header=False))[1]  # a plain zip works too


def test_the_real_sentry_cli_bundle_format_fixture():
    """Bytes sentry-cli 3.8.0 uploaded (recorded once, kept in tests/seeds)."""
    import os
    path = os.path.join(os.path.dirname(__file__), 'seeds', 'sentry-cli-artifact-bundle.zip')
    attributes, files = read_bundle(open(path, 'rb').read())
    assert attributes['org'] == 'myorg'
    assert {f['type'] for f in files} == {'minified_source', 'source_map'}
    assert all(f['debug_id'] == DEBUG_ID for f in files)


@pytest.mark.parametrize('data', [b'', b'SYSB\x02\x00\x00\x00not a zip', b'PK\x03\x04' + b'\x00' * 40,
                                  b'SYSB\x09\x00\x00\x00', b'\x00' * 100])
def test_corrupt_bundles(data):
    with pytest.raises(BundleError):
        read_bundle(data)


def test_truncated_and_bit_flipped_bundles():
    good = bundle()
    with pytest.raises(BundleError):
        read_bundle(good[:len(good) // 2])
    # flip a byte inside the compressed data of the first entry: a CRC or inflate error, not a crash
    position = good.index(b'files/_/_/app.min.js') + len('files/_/_/app.min.js') + 5
    broken = good[:position] + bytes([good[position] ^ 0xFF]) + good[position + 1:]
    with pytest.raises(BundleError):
        read_bundle(broken)


def lying_zip_bomb(real_size, claimed_size):
    """One deflated entry of real_size zero bytes whose headers claim claimed_size."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('files/_/_/bomb.js', b'\x00' * real_size)
        archive.writestr('manifest.json', json.dumps(manifest(**{
            'files/_/_/bomb.js': {'type': 'minified_source', 'url': '~/bomb.js'}})))
    data = bytearray(out.getvalue())
    for signature, offset in ((b'PK\x03\x04', 22), (b'PK\x01\x02', 24)):  # local header, central directory
        at = data.index(signature)
        struct.pack_into('<I', data, at + offset, claimed_size)
    return bytes(data)


def test_a_zip_bomb_stops_at_the_cap_even_when_its_headers_lie(monkeypatch):
    monkeypatch.setattr(sm, 'MAX_BUNDLE_FILE', 1 << 20)
    honest = lying_zip_bomb(4 << 20, 4 << 20)
    with pytest.raises(BundleError, match='larger than'):
        read_bundle(honest)
    lying = lying_zip_bomb(4 << 20, 100)
    assert len(lying) < 64 << 10
    with pytest.raises(BundleError):
        read_bundle(lying)


def test_the_unpacked_total_is_capped(monkeypatch):
    monkeypatch.setattr(sm, 'MAX_BUNDLE_UNPACKED', 100)
    with pytest.raises(BundleError, match='unpacks to more than'):
        read_bundle(bundle())


def test_the_bundle_size_and_entry_count_are_capped(monkeypatch):
    monkeypatch.setattr(sm, 'MAX_BUNDLE_BYTES', 100)
    with pytest.raises(BundleError, match='larger than'):
        read_bundle(bundle())
    monkeypatch.setattr(sm, 'MAX_BUNDLE_BYTES', 1 << 20)
    monkeypatch.setattr(sm, 'MAX_BUNDLE_ENTRIES', 1)
    with pytest.raises(BundleError, match='more than 1 files'):
        read_bundle(bundle())


@pytest.mark.parametrize('name', ['../evil.js', 'files/../../evil.js', '/etc/passwd', 'C:/x.js',
                                  'files\\..\\evil.js', 'files//x.js', 'files/./x.js'])
def test_unsafe_entry_names_are_refused(name):
    entries = {'files/_/_/app.min.js': MINIFIED, 'files/_/_/app.min.js.map': MAP, name: b'x'}
    with pytest.raises(BundleError, match='unsafe file name'):
        read_bundle(bundle(entries))


@pytest.mark.parametrize('manifest_data, message', [
    (False, 'no manifest.json'),
    (b'{"files": ', 'not valid JSON'),
    (b'\xff\xfe', 'not valid JSON'),
    (b'[]', 'must be an object'),
    (b'{"files": []}', 'must be an object'),
    ({'files': {'files/_/_/missing.js': {'url': '~/missing.js'}}}, 'does not have'),
    ({'files': {'files/_/_/app.min.js': 'x'}}, 'must be an object'),
    ({'files': {'files/_/_/app.min.js': {'type': 'minified_source'}}}, 'needs a url'),
    ({'files': {'files/_/_/app.min.js': {'url': '~/a', 'type': 'exe'}}}, 'unknown type'),
    ({'files': {'files/_/_/app.min.js': {'url': '~/a', 'headers': {'debug-id': 'nope'}}}}, 'malformed debug-id'),
    ({'files': {'files/_/_/app.min.js': {'url': '~/a', 'headers': {'debug-id': 7}}}}, 'must be strings'),
    ({'files': {}}, 'no files'),
])
def test_bad_manifests_are_refused(manifest_data, message):
    with pytest.raises(BundleError, match=message):
        read_bundle(bundle(manifest_data=manifest_data))


def test_encrypted_and_unsupported_entries_are_refused():
    data = bytearray(bundle(header=False))
    at = data.index(b'PK\x01\x02')
    struct.pack_into('<H', data, at + 8, 1)  # the encrypted flag in the central directory
    with pytest.raises(BundleError):
        read_bundle(bytes(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_BZIP2) as archive:
        archive.writestr('files/_/_/a.js', b'x')
        archive.writestr('manifest.json', json.dumps(manifest(**{'files/_/_/a.js': {'url': '~/a.js'}})))
    with pytest.raises(BundleError, match='unsupported compression'):
        read_bundle(out.getvalue())
