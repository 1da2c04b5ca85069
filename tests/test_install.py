"""After `pip install .`, the `errorcapture` command serves everything, the
viewer included, from any directory (static/ travels with the package)."""
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from helpers import create_project, free_port

COMMAND = shutil.which('errorcapture')


@pytest.mark.skipif(COMMAND is None, reason='the errorcapture console script is not installed (pip install .)')
def test_installed_command_serves_the_viewer_from_another_directory(tmp_path):
    port = free_port()
    process = subprocess.Popen([COMMAND, '--port', str(port), '--db', str(tmp_path / 'x.db')], cwd=str(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                page = urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=2).read().decode()
                break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert '<script src="/static/app.js"' in page or 'app.js' in page
        script = urllib.request.urlopen('http://127.0.0.1:%d/static/app.js' % port, timeout=5)
        assert script.status == 200 and len(script.read()) > 1000
        assert len(create_project('http://127.0.0.1:%d' % port)['hash']) == 32
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_a_pip_installed_module_serves_openapi_json_from_the_install_prefix(tmp_path):
    """setup.cfg installs docs/openapi.json as data beside static/ (share/errorcapture/),
    and the module alone (as pip puts it in site-packages, far from docs/) finds it there."""
    import configparser
    import json
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = configparser.ConfigParser()
    config.read(os.path.join(root, 'setup.cfg'))
    data_files = {target.strip(): source.strip() for target, source in config['options.data_files'].items()}
    assert data_files['share/errorcapture/docs'] == 'docs/openapi.json'
    site_packages, prefix = tmp_path / 'site-packages', tmp_path / 'prefix'
    site_packages.mkdir()
    shutil.copy(os.path.join(root, 'errorcapture.py'), str(site_packages))
    (prefix / 'share' / 'errorcapture' / 'docs').mkdir(parents=True)
    shutil.copy(os.path.join(root, 'docs', 'openapi.json'), str(prefix / 'share' / 'errorcapture' / 'docs'))
    script = ('import sys; sys.prefix = %r; sys.path.insert(0, %r); import errorcapture, webtest; '
              'app = errorcapture.make_app(db=%r, sweep_interval=0); '
              'answer = webtest.TestApp(app).get("/api/openapi.json"); app.close(); '
              'sys.stdout.write(answer.text)') % (str(prefix), str(site_packages), str(tmp_path / 'x.db'))
    served = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), capture_output=True, timeout=60)
    assert served.returncode == 0, served.stderr.decode()[-2000:]
    assert json.loads(served.stdout)['paths']['/api/openapi.json']
