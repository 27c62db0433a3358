"""scripts/processes.py: what deploy-local and the rehearsals read of their process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from scripts import processes


def test_a_child_is_found_by_parent_environment_and_command_and_is_dead_once_killed() -> None:
    marker = uuid.uuid4().hex
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        env={**os.environ, "XBOT_TEST_MARKER": marker},
    )
    try:
        assert child.pid in processes.children(os.getpid())
        assert processes.parent(child.pid) == os.getpid()
        assert processes.cmdline(child.pid)[-1] == "import time; time.sleep(30)"
        assert processes.with_environment("XBOT_TEST_MARKER", marker) == [child.pid]
        assert processes.alive(child.pid)
        assert (processes.cpu_seconds(child.pid) or 0.0) >= 0.0
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while processes.alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes.alive(child.pid)  # a zombie until reaped, and not alive already
        assert processes.parent(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()
    # reaped: gone, every question has its empty answer instead of an exception
    assert processes.children(child.pid) == []
    assert processes.parent(child.pid) is None
    assert processes.cmdline(child.pid) == []
    assert processes.cpu_seconds(child.pid) is None
    assert processes.reaped_children_cpu(child.pid) is None
    assert processes.with_environment("XBOT_TEST_MARKER", marker) == []


def test_reaped_children_count_in_the_parents_cpu() -> None:
    before = processes.reaped_children_cpu(os.getpid()) or 0.0
    subprocess.run(
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True
    )  # reaped by run()
    after = processes.reaped_children_cpu(os.getpid()) or 0.0
    assert after > before
    own = processes.cpu_seconds(os.getpid()) or 0.0
    assert (processes.cpu_seconds(os.getpid(), reaped_children=True) or 0.0) >= own + after - 0.01
