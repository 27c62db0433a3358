"""The health server: ``/healthz``, ``/readyz`` and ``/metrics`` on Starlette and uvicorn.

- ``/healthz``: the process lives (200, no I/O).
- ``/readyz``: every readiness check (:mod:`xbot_assets.health.checks`) as JSON; 200 unless a
  check is ``down``, then 503. The outcome is also written to ``system_health`` (component
  ``health_server``) when it changes and at most once a minute otherwise.
- ``/metrics``: Prometheus text, read from durable state at scrape time
  (:mod:`xbot_assets.health.metrics`).

Answers carry ids, statuses, ages and counts only: no post text, no secret, no connection URL.
Endpoints are plain functions, so Starlette runs them in its thread pool and a slow store never
blocks the event loop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from xbot_assets.health.checks import HealthContext, ReadinessReport, run_checks
from xbot_assets.health.metrics import build_registry
from xbot_assets.ops.component_status import COMPONENT_HEALTH_SERVER, write_component_status
from xbot_assets.ops.redact import safe_error

log = logging.getLogger(__name__)

RECORD_INTERVAL = timedelta(seconds=60)


class _ReadinessRecorder:
    """Writes readiness outcomes to ``system_health``: on change, else at most every interval."""

    def __init__(self, ctx: HealthContext, interval: timedelta = RECORD_INTERVAL) -> None:
        self.ctx = ctx
        self.interval = interval
        self._lock = threading.Lock()
        self._last_status: str | None = None
        self._last_at: float | None = None

    def record(self, report: ReadinessReport) -> None:
        now = time.monotonic()
        with self._lock:
            due = (
                self._last_status != report.status
                or self._last_at is None
                or now - self._last_at >= self.interval.total_seconds()
            )
            if not due:
                return
            self._last_status, self._last_at = report.status, now
        if report.check("durable_store").status == "down":
            return  # nowhere to write it; the 503 answer says why
        failing = [c for c in report.checks if c.status != "ok"]
        message = "; ".join(f"{c.name}: {c.detail}" for c in failing) or "all checks ok"
        try:
            write_component_status(
                self.ctx.engine,
                environment=self.ctx.environment,
                component=COMPONENT_HEALTH_SERVER,
                status=report.status,
                message=message,
                metrics={c.name: c.status for c in report.checks},
                clock=self.ctx.clock,
            )
        except Exception as exc:  # recording is best effort; the probe answer stands
            log.warning("could not record readiness in system_health: %s", safe_error(exc))


def create_app(ctx: HealthContext) -> Starlette:
    """The ASGI app of the health server, reading through ``ctx``."""
    registry = build_registry(ctx, warm_up=True)
    recorder = _ReadinessRecorder(ctx)

    def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(request: Request) -> Response:
        report = run_checks(ctx)
        recorder.record(report)
        body: dict[str, Any] = report.as_dict()
        body["environment"] = ctx.environment
        return JSONResponse(body, status_code=200 if report.ready else 503)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found: try /healthz, /readyz or /metrics", status_code=404)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET", "HEAD"]),
        ],
        exception_handlers={404: not_found},
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one, read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class HealthServer:
    """The health server on a socket of its own; :meth:`serve` blocks, :meth:`start` threads.

    Args:
        ctx: what the checks and metrics read.
        host: interface to bind (127.0.0.1 unless told otherwise).
        port: TCP port; 0 picks a free one (see :attr:`port`).
    """

    def __init__(self, ctx: HealthContext, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ctx = ctx
        self.host = host
        self.sock = bind_socket(host, port)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(ctx), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve(self) -> None:
        """Serve until SIGINT/SIGTERM (in the main thread) or :meth:`stop`."""
        try:
            self._server.run(sockets=[self.sock])
        finally:
            self.sock.close()
            self.ctx.close()

    def start(self, timeout_s: float = 10.0) -> HealthServer:
        """Serve in a daemon thread and return once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve, name="xbot-health", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the health server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
