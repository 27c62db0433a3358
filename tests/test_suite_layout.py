"""How ``make test`` spreads the suite over two workers keeps each expensive fixture single.

``--dist loadfile`` sends a file to one worker, so a module-scoped main job runs once. It stands
in for ``--dist loadgroup`` (which pytest 9.2 + xdist 3.8 silently ignore), which is only right
while every ``xdist_group`` name is used by one file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP = re.compile(r"""xdist_group\(\s*(?:name\s*=\s*)?["']([^"']+)["']""")


def test_every_xdist_group_lives_in_one_file() -> None:
    files_of: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for name in GROUP.findall(path.read_text(encoding="utf-8")):
            files_of.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    assert files_of, "no xdist_group found: the pattern above no longer matches the marks"
    shared = {name: sorted(files) for name, files in files_of.items() if len(files) > 1}
    assert not shared, f"xdist groups across files would be split by --dist loadfile: {shared}"


def test_make_test_distributes_by_file() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [command] = [line for line in makefile.splitlines() if "/pytest -n" in line]
    assert "--dist loadfile" in command and "--no-loadscope-reorder" in command, command
