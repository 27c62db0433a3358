"""Import the fault harness from ``benchmarks/`` (a folder of scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HARNESS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "hotpath_harness.py"


def load_harness() -> ModuleType:
    name = "xbot_hotpath_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HARNESS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
