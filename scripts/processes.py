"""The process tree of a local deployment, read through psutil.

``scripts/deploy_local.py`` and the rehearsal benchmarks (``benchmarks/deployment.py``,
``celery_rehearsal.py``, ``warehouse.py``) need a process's children, whether it still runs,
its command line, its CPU seconds and its environment. Each had parsed ``/proc/<pid>/stat`` by
hand (field offsets after the command's closing parenthesis, clock ticks); psutil reads the
same files and says what each field is. Every function answers for a process that is gone (or
was never there) instead of raising: these processes are killed on purpose."""

from __future__ import annotations

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def children(pid: int) -> list[int]:
    """The direct children of ``pid``, lowest pid first (none once it is gone)."""
    try:
        return sorted(p.pid for p in psutil.Process(pid).children())
    except _GONE:
        return []


def parent(pid: int) -> int | None:
    """The parent's pid (None once ``pid`` is gone)."""
    try:
        return psutil.Process(pid).ppid()
    except _GONE:
        return None


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie waits for its reaper)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False


def cmdline(pid: int) -> list[str]:
    """The process's argv (empty once it is gone)."""
    try:
        return psutil.Process(pid).cmdline()
    except _GONE:
        return []


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float | None:
    """User + system CPU seconds of ``pid``; with ``reaped_children``, plus those of the
    children it has reaped. None once it has exited."""
    try:
        times = psutil.Process(pid).cpu_times()
    except _GONE:
        return None
    own = times.user + times.system
    return own + times.children_user + times.children_system if reaped_children else own


def reaped_children_cpu(pid: int) -> float | None:
    """CPU seconds of the children ``pid`` has reaped (None once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except _GONE:
        return None
    return times.children_user + times.children_system


def with_environment(name: str, value: str, *, exclude: int | None = None) -> list[int]:
    """Live processes whose environment holds ``name=value`` (a deployment's processes, found
    by a variable only they carry), lowest pid first; ``exclude``: a pid to leave out."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == exclude:
            continue
        try:
            if proc.environ().get(name) == value:
                found.append(proc.pid)
        except (*_GONE, OSError):
            continue
    return sorted(found)
