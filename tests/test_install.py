"""After `pip install .`, the `errorcapture` command serves everything, the
viewer included, from any directory (static/ travels with the package)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

COMMAND = shutil.which('errorcapture')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


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
        answer = urllib.request.urlopen('http://127.0.0.1:%d/api.php?action=generate' % port, timeout=5)
        assert len(__import__('json').loads(answer.read())['hash']) == 32
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
