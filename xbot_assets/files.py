"""Files replaced whole: written beside their path, then renamed onto it.

Why here, in neither layer: the learning layer's model files, the browser poster's session file
and the main job's report all need the same guarantee (a reader sees the old file or the new
one, never half of one; a failed write leaves the old file and no temporary behind), and the
posting layer must not import from the learning layer to get it. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: Path, *, mode: int | None = None) -> Iterator[Path]:
    """A temporary file in ``path``'s folder to write; renamed onto ``path`` when the block ends
    without an error, removed otherwise. With ``mode`` (say ``0o600`` for a session's cookies)
    the temporary file is created with it before a byte is written, so the secret is never
    readable by others, not even for a moment."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if mode is not None:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
            os.chmod(tmp, mode)  # whatever the umask did to it
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write or the rename failed


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` all at once (:func:`replaced_whole`)."""
    with replaced_whole(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
