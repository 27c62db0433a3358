"""Run the console: bind checks first (loopback unless told, TLS off loopback), then uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class ServeError(Exception):
    """The console must not start this way; the message says what to change."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, ssl_certfile: str | None, ssl_keyfile: str | None) -> bool:
    """Refuse a non-loopback host without TLS; returns whether cookies must be Secure."""
    loopback = is_loopback(host)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ServeError("give both --ssl-certfile and --ssl-keyfile (or neither on loopback)")
    for name, path in (("--ssl-certfile", ssl_certfile), ("--ssl-keyfile", ssl_keyfile)):
        if path is not None and not Path(path).is_file():
            raise ServeError(f"{name} {path} is not a file: point it at the PEM file")
    if not loopback and ssl_certfile is None:
        raise ServeError(
            f"refusing to serve the console on {host} without TLS: bind 127.0.0.1 (and reach it "
            "through an SSH tunnel) or give --ssl-certfile and --ssl-keyfile"
        )
    return not loopback or ssl_certfile is not None


def serve(
    settings: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Serve until interrupted."""
    import uvicorn

    from xbot_assets.console.app import create_app

    secure = check_bind(host, ssl_certfile, ssl_keyfile)
    app = create_app(settings, secure_cookies=secure)
    print(
        f"xbot console on http{'s' if ssl_certfile else ''}://{host}:{port}/ ({settings.app_env})"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="warning",
        server_header=False,
    )


@contextlib.contextmanager
def running_console(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields the base URL (tests, the
    benchmark and the screenshot script)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"console-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
