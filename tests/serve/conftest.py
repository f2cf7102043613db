"""A real uvicorn server on a free loopback port, in a thread, for the API and browser tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from cnnkit.serve.app import Limits, create_app


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on uvicorn in a thread, on 127.0.0.1 (port picked by the OS); yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running(predictor, limits: Limits = Limits(), **app_args) -> Iterator[str]:
    """Serve ``predictor`` on 127.0.0.1 (port picked by the OS); yields the base URL. ``app_args``: create_app's
    others (a recognition model's gallery, allow_enrol)."""
    with serving(create_app(predictor, limits, **app_args)) as url:
        yield url
