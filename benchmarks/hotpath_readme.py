"""Refresh the hot-path section of ``benchmarks/README.md`` from the committed result files."""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    bench = json.loads((HERE / "results" / "hot_path.json").read_text(encoding="utf-8"))
    faults = json.loads((HERE / "results" / "hot_path_faults.json").read_text(encoding="utf-8"))
    stream, sync = bench["stream"], bench["sync_to_supabase"]
    chaos, outage = faults["redis_chaos"], faults["postgres_outage"]
    table = "\n".join(
        [
            "<!-- hot_path figures -->",
            "| measure | figure | goal |",
            "| --- | --- | --- |",
            f"| stream enqueue+ack (msgs/s) | {stream['enqueue_ack_msgs_per_s']:,} | >= 20,000 |",
            f"| stream enqueue only (msgs/s) | {stream['enqueue_only_msgs_per_s']:,} | |",
            f"| stream CPU per message, client + redis-server (µs) | "
            f"{stream['client_cpu_us_per_msg']} + {stream['server_cpu_us_per_msg']} | |",
            f"| stream messages per CPU-second (load-independent) | "
            f"{stream['msgs_per_cpu_second']:,} | |",
            f"| sync batched (rows/s) | {sync['batched_rows_per_s']:,} | |",
            f"| sync naive, one row per transaction (rows/s) | {sync['naive_rows_per_s']:,} | |",
            f"| batched / naive | {sync['ratio']}x | >= 10x |",
            f"| (machine load average at the run) | {bench['machine']['load_avg_1m']} "
            f"on {bench['machine']['cpus']} cores | |",
            "<!-- /hot_path figures -->",
        ]
    )
    injected = sum(1 for f in chaos["faults"] if "killed" in f or "flushed" in f)
    fault1 = (
        f"{chaos['items_total']:,} items, {injected} faults: {chaos['posted']} posted, "
        f"{chaos['metrics_rows']} + {chaos['audit_rows']} event rows, caps exceeded: "
        f"{chaos['cap_violations'] or 'none'}, brake held: {chaos['brake_kept']}, "
        f"problems: {chaos['problems'] or 'none'} ({chaos['seconds']} s)"
    )
    fault2 = (
        f"{outage['items_total']:,} events, {outage['faults'][-1]}: {outage['metrics_rows']} + "
        f"{outage['audit_rows']} rows, duplicates: {outage['duplicate_attempts']}, problems: "
        f"{outage['problems'] or 'none'} ({outage['seconds']} s)"
    )
    readme = HERE / "README.md"
    text = readme.read_text(encoding="utf-8")
    text = re.sub(
        r"<!-- hot_path figures -->.*?<!-- /hot_path figures -->", table, text, flags=re.S
    )
    text = re.sub(r"(\| Redis killed or flushed 20 times[^|]*\| ).*", rf"\g<1>{fault1} |", text)
    text = re.sub(r"(\| Postgres stopped \(immediate\)[^|]*\| ).*", rf"\g<1>{fault2} |", text)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
