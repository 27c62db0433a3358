"""``xbot-dbt``: the dbt command line, started warm.

Why: importing dbt-core costs about 5 s of CPU on our 2-core machines (mashumaro schema
compilation, the jsonschema format checkers, the adapter), and dagster-dbt pays it twice per
materialisation (``dbt --version``, then the command). That fixed cost alone exceeded the
warehouse's 5 s budget for an incremental refresh whatever the data size.

How: a *fork server*. The first ``xbot-dbt`` call starts a server process that imports dbt once
and listens on a Unix socket in a private folder. Each call then sends the server its argv, working
directory, environment and its stdin/stdout/stderr file descriptors (``SCM_RIGHTS``); the server
forks, and the child runs dbt's own click entry point exactly as the ``dbt`` script would, writing
straight to the caller's descriptors. Every invocation gets a fresh copy of the freshly imported
process (no state carried between runs), the caller sees the same output and exit code as
``dbt`` itself, and SIGINT/SIGTERM sent to the caller (dagster-dbt cancels a run with SIGINT) are
forwarded to the child.

The server exits after ``XBOT_DBT_WARM_IDLE_S`` seconds without work (default 900). Anything
unusual (no ``fork``, a folder someone else can read, a server that does not come up) falls back
to running the real ``dbt``: the warm path is a speed-up, never a new way to fail.
``XBOT_DBT_WARM=0`` switches it off.

This module imports only the standard library at import time, so the client starts in
milliseconds; dbt is imported by the server alone.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

WARM_ENV = "XBOT_DBT_WARM"
"""``0``/``false``/``off`` runs the real dbt every time."""
DIR_ENV = "XBOT_DBT_WARM_DIR"
"""Folder of the server's socket, lock and log (default: a per-user folder under /tmp)."""
TRACE_ENV = "XBOT_DBT_WARM_TRACE"
"""``1`` makes the client say on stderr which server and child ran the command (tests, support)."""
IDLE_ENV = "XBOT_DBT_WARM_IDLE_S"
"""Seconds without work after which the server exits."""
DEFAULT_IDLE_S = 900.0
START_TIMEOUT_S = 90.0
"""How long a caller waits for a new server to import dbt before running dbt itself."""

_HEADER = struct.Struct("!I")


def real_dbt() -> str:
    """The ``dbt`` script installed beside this interpreter (the cold path)."""
    return str(Path(sys.executable).parent / "dbt")


def warm_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether calls go through the fork server (on unless switched off or unsupported)."""
    if environ.get(WARM_ENV, "1").strip().lower() in {"0", "false", "off", "no"}:
        return False
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and sys.platform != "win32"


def server_key() -> str:
    """Identifies the interpreter and dbt versions a server was started with.

    A server keeps the dbt it imported and the xbot code it imported; upgrading dbt, another
    checkout's virtual environment, or another checkout's project folder must reach a different
    server, so the socket's name carries this key. The interpreter's real path alone is not
    enough: every venv made from one Python resolves to the same binary, so clones on one
    machine shared a server and ran each other's code.
    """
    from importlib import metadata

    parts = [
        os.path.realpath(sys.executable),
        os.path.realpath(sys.prefix),
        str(Path(__file__).resolve().parents[2]),
    ]
    for dist in ("dbt-core", "dbt-duckdb", "dbt-adapters"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def server_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """The private folder holding sockets (created 0700; refused if others can enter it)."""
    base = environ.get(DIR_ENV) or f"/tmp/xbot-dbt-{os.getuid()}"  # noqa: S108 - per-user, checked below
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(
            f"{path} must belong to you with mode 0700 (it holds the warm dbt server's socket); "
            f"fix it with `chmod 700 {path}` or set {DIR_ENV} to another folder"
        )
    return path


def socket_path(folder: Path) -> Path:
    return folder / f"dbt-{server_key()}.sock"


# --------------------------------------------------------------------------------------------
# client


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _start_server(folder: Path, path: Path) -> socket.socket | None:
    """Spawn a server (unless one is starting) and wait until it accepts connections."""
    log = open(folder / "server.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "xbot_assets.warehouse.dbt_warm", "serve", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        if server.poll() is not None:  # exited: it refused to serve, or lost the lock race
            sock = _connect(path)
            if sock is None and server.returncode != 0:
                return None
            if sock is not None:
                return sock
        time.sleep(0.05)
    return None


def _send_request(sock: socket.socket, argv: Sequence[str]) -> None:
    payload = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(sock, [_HEADER.pack(len(payload))], [0, 1, 2])
    sock.sendall(payload)


def _read_lines(sock: socket.socket) -> Any:
    """Yield the JSON messages the child sends (its pid, then its exit code)."""
    buffer = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def run_warm(argv: Sequence[str]) -> int | None:
    """Run dbt with ``argv`` through the server; None when the warm path is unavailable."""
    try:
        folder = server_dir()
    except OSError as exc:
        print(f"xbot-dbt: warm server unavailable ({exc}); running dbt directly", file=sys.stderr)
        return None
    path = socket_path(folder)
    sock = _connect(path) or _start_server(folder, path)
    if sock is None:
        return None
    child: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child[0], signum)

    with sock:
        try:
            _send_request(sock, argv)
        except OSError:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        for message in _read_lines(sock):
            if "pid" in message:
                child.append(int(message["pid"]))
                if os.environ.get(TRACE_ENV) == "1":
                    print(f"xbot-dbt: warm server {message.get('server')} child {child[0]}",
                          file=sys.stderr, flush=True)  # fmt: skip
            elif "exit" in message:
                return int(message["exit"])
    if not child:
        return None  # the server went away before forking: nothing ran, run dbt cold
    print("xbot-dbt: the warm dbt process ended without an exit code", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``xbot-dbt``: dbt's command line, warm when possible."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--xbot-stop-server"]:
        sys.exit(0 if stop_server() else 1)
    if warm_enabled():
        code = run_warm(args)
        if code is not None:
            sys.exit(code)
    dbt = real_dbt()
    os.execv(dbt, [dbt, *args])  # noqa: S606 - the dbt installed beside this interpreter


def stop_server(folder: Path | None = None) -> bool:
    """Ask this environment's server (if any) to exit now; True if one was running."""
    try:
        path = socket_path(folder or server_dir())
    except OSError:
        return False
    sock = _connect(path)
    if sock is None:
        return False
    with sock:
        payload = json.dumps({"stop": True}).encode()
        socket.send_fds(sock, [_HEADER.pack(len(payload))], [])
        sock.sendall(payload)
        with contextlib.suppress(OSError):
            sock.recv(16)
    return True


# --------------------------------------------------------------------------------------------
# server


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("caller hung up before sending its request")
        data += chunk
    return data


def _run_child(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> NoReturn:
    """In the forked child: become the caller's ``dbt`` process, run it, report the exit code."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["dbt", *request["argv"]]
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        conn.sendall(json.dumps({"pid": os.getpid(), "server": os.getppid()}).encode() + b"\n")
        from dbt.cli.main import cli

        try:
            cli.main(args=request["argv"], prog_name="dbt")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except KeyboardInterrupt:
            code = 130
    except BaseException as exc:  # report, never return into the server loop
        with contextlib.suppress(Exception):
            print(f"xbot-dbt: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()  # what a normal exit runs (multiprocessing's clean-up)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


_WARMUP_PROJECT = {
    "dbt_project.yml": "name: warmup\nversion: '1.0.0'\nconfig-version: 2\nprofile: warmup\n",
    "profiles.yml": "warmup:\n  target: x\n  outputs:\n    x:\n      type: duckdb\n"
    "      path: ':memory:'\n",
    "models/warmup.sql": "select 1 as one",
}


def _os_threads() -> int:
    """Threads of this process as the kernel sees them (DuckDB's C++ threads included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _warm_up(folder: Path) -> None:
    """Import dbt and parse a tiny project, so forked children start with the lazily built parts
    (mashumaro's generated (de)serialisers, the adapter's macros) already in memory."""
    import multiprocessing.resource_tracker

    import dbt.adapters.duckdb
    import dbt.cli.main
    import dbt.task.build
    import dbt.task.run
    import dbt.version

    # `dbt --version` (which dagster-dbt runs before every command) asks the package registry
    # for the latest dbt-core and adapter releases, a network call of up to 1 s each. The
    # installed versions are all callers need; answering "could not be determined" keeps the
    # output format and keeps the warehouse offline.
    dbt.version.get_latest_version = lambda *args, **kwargs: None

    project = folder / "warmup"
    for name, text in _WARMUP_PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    # --no-static-parser: dbt-extractor (Rust) starts a thread pool on first use, and a process
    # with threads must not fork; children still use the static parser, starting their own pool.
    args = ["parse", "--quiet", "--no-partial-parse", "--no-static-parser",
            "--project-dir", str(project),
            "--profiles-dir", str(project), "--target-path", str(project / "target"),
            "--log-path", str(project / "logs")]  # fmt: skip
    saved = dict(os.environ)
    os.environ.update({"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    try:
        dbt.cli.main.cli.main(args=args, prog_name="dbt", standalone_mode=False)
    except Exception as exc:  # warming is best effort; the imports are what matter
        print(f"xbot-dbt: warm-up parse failed ({type(exc).__name__}); serving anyway", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # dbt creates multiprocessing locks; one shared tracker saves every child spawning its own.
    multiprocessing.resource_tracker.ensure_running()


def serve(path: Path, idle_s: float | None = None) -> int:
    """Serve dbt invocations on ``path`` until idle for ``idle_s`` seconds (or asked to stop)."""
    idle = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)) if idle_s is None else idle_s
    lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server for this socket is starting or running
    _warm_up(path.parent)
    if _os_threads() != 1:  # forking a threaded process is unsafe: refuse
        names = [p.read_text().strip() for p in Path("/proc/self/task").glob("*/comm")]
        print(f"xbot-dbt: threads left after warm-up ({names}); not serving", flush=True)
        return 1
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(32)
    listener.settimeout(1.0)
    inode = path.stat().st_ino
    children: set[int] = set()
    last_work = time.monotonic()
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print(f"xbot-dbt server {os.getpid()} serving {path} (idle exit after {idle:.0f}s)", flush=True)
    try:
        while not stopping:
            for pid in list(children):
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                children.discard(pid)
                last_work = time.monotonic()
            if not children and time.monotonic() - last_work > idle:
                break
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            last_work = time.monotonic()
            with conn:
                conn.settimeout(10.0)
                try:
                    header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
                    (size,) = _HEADER.unpack(header)
                    request = json.loads(_recv_exact(conn, size))
                except (OSError, ValueError, struct.error) as exc:
                    print(f"xbot-dbt: bad request ({type(exc).__name__})", flush=True)
                    continue
                if request.get("stop"):
                    stopping = True
                    conn.sendall(b"bye\n")
                    continue
                conn.settimeout(None)
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    lock.close()  # only the server holds the lock: a successor may start
                    _run_child(conn, fds, request)
                children.add(pid)
                for fd in fds:
                    os.close(fd)
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        sys.exit(serve(Path(sys.argv[2])))
    main()
