"""``cnnkit serve`` as a user runs it: its own process, bound to 127.0.0.1 by default."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from cnnkit.cli.main import build_parser
from tests.export.helpers import write_checkpoint
from tests.serve.test_api import png_bytes


def test_serve_defaults_to_loopback():
    args = build_parser().parse_args(["serve", "--weights", "w.pt"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_cnnkit_serve_process_answers(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    weights = write_checkpoint(tmp_path, "classify")
    server = subprocess.Popen([sys.executable, "-m", "cnnkit.cli.main", "serve", "--weights", str(weights),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        body = httpx.post(f"http://127.0.0.1:{port}/predict?topk=2", content=png_bytes()).json()
        assert len(body["topk"]) == 2
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output
