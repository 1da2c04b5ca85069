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
