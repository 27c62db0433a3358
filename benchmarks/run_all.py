"""Run every benchmark in turn (`make bench`); each writes its figures to benchmarks/results/.

Pass names to run only some: `python benchmarks/run_all.py hot_path learning`. Add `--quick`
to run each in its quick mode where it has one. Heavy ones (learning at 20,000 decisions, the
warehouse at 10M posts, the crash matrix at 100 rounds) take many minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "hot_path": ["hot_path.py"],
    "hot_path_faults": ["hot_path_faults.py"],
    "durable_store": ["durable_store.py"],
    "warehouse": ["warehouse.py"],
    "learning": ["learning.py", "--workers", "2"],
    "sandbox_oracle": ["sandbox_oracle.py"],
    "health_scrape": ["health_scrape.py"],
    "crash_matrix": ["crash_matrix.py"],
    "main_job": ["main_job.py"],
}
QUICK_CAPABLE = {"hot_path", "learning", "sandbox_oracle", "health_scrape", "main_job"}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmarks {unknown}: choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        script, *args = BENCHMARKS[name]
        if quick and name in QUICK_CAPABLE:
            args.append("--quick")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        print(f"== {name}: exit {code} in {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
