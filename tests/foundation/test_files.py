"""``xbot_assets/files.py``: files are replaced whole, private ones private from the first byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xbot_assets.files import replaced_whole, write_atomic


def _interrupt_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: object, dst: object) -> None:
        raise OSError("the machine stopped mid-write")

    monkeypatch.setattr(os, "replace", interrupted)


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_atomic(tmp_path / "model.json", '{"old": true}')
    _interrupt_rename(monkeypatch)
    with pytest.raises(OSError, match="mid-write"):
        write_atomic(path, '{"new": true}')
    with pytest.raises(RuntimeError), replaced_whole(path) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("the writer failed")
    monkeypatch.undo()
    assert path.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
    write_atomic(path, '{"new": true}')
    assert path.read_text() == '{"new": true}'


def test_a_private_file_is_private_before_its_first_byte(tmp_path: Path) -> None:
    """The session's cookies: the temporary file already has mode 0600 when the writer gets it
    (whatever the umask), and the file renamed onto the path keeps it."""
    old_umask = os.umask(0)
    try:
        with replaced_whole(tmp_path / "session.json", mode=0o600) as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
            assert tmp.read_text() == ""
            tmp.write_text('{"cookies": []}')
        path = write_atomic(tmp_path / "other.json", "{}", mode=0o600)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "session.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "session.json").read_text() == '{"cookies": []}'
