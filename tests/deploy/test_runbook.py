"""Every alert rule links to a section of docs/runbook.md that exists and says what to do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "xbot_assets/health/prometheus_rules.yml"
RUNBOOK = ROOT / "docs/runbook.md"
REQUIRED_SECTIONS = (
    "Start and stop",
    "Rotate credentials",
    "Raise and lower the brake",
    "Reconcile",
    "Restore from a Postgres backup",
    "Upgrade with a migration",
)


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def sections(markdown: str) -> dict[str, str]:
    """Anchor → body text of each heading of ``markdown``."""
    found: dict[str, str] = {}
    current = None
    for line in markdown.splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            current = github_anchor(match.group(1))
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def test_github_anchor_matches_githubs_rules() -> None:
    assert github_anchor("Restore from a Postgres backup") == "restore-from-a-postgres-backup"
    assert github_anchor("XbotBrakeEngaged") == "xbotbrakeengaged"


def test_every_alert_links_to_a_runbook_section() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 10
    body = sections(RUNBOOK.read_text(encoding="utf-8"))
    for rule in alerts:
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", f"{rule['alert']}: runbook_url {url!r}"
        assert anchor in body, f"{rule['alert']}: no heading #{anchor} in docs/runbook.md"
        text = body[anchor]
        # the section is about this alert and long enough to say what to do
        assert anchor == rule["alert"].lower(), f"{rule['alert']} links to another alert's section"
        assert len(text.split()) >= 25, f"section #{anchor} is too short to say what to do"


def test_runbook_covers_the_operations_and_its_links_resolve() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    body = sections(text)
    for title in REQUIRED_SECTIONS:
        assert github_anchor(title) in body, f"docs/runbook.md lacks a section {title!r}"
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in body, f"docs/runbook.md links to #{anchor}, which is no heading"
