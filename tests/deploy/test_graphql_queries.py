"""The GraphQL the deployment scripts send (start sensors and schedules, read runs and assets)
is valid against the installed Dagster webserver's schema, so a Dagster upgrade that renames a
field fails here instead of in the middle of a rehearsal."""

from __future__ import annotations

import re
from pathlib import Path

from dagster_graphql.schema import create_schema
from graphql import parse, validate

ROOT = Path(__file__).resolve().parents[2]
FILES = ("scripts/deploy_local.py", "benchmarks/deployment.py", "tests/deploy/test_deploy_local.py")
QUERY = re.compile(
    r'"""\s*((?:\{|query|mutation)[\s\S]*?)"""'  # triple-quoted queries
    r'|"((?:\{ runsOrError|mutation \{)[^"]*)"'  # one-line ones
)


def test_deployment_graphql_is_valid_for_this_dagster() -> None:
    schema = create_schema().graphql_schema
    seen = 0
    for name in FILES:
        for block, inline in QUERY.findall((ROOT / name).read_text(encoding="utf-8")):
            query = block or inline
            errors = validate(schema, parse(query))
            assert not errors, f"{name}: {errors} in {query[:80]!r}"
            seen += 1
    assert seen >= 9  # start sensor/schedule, list instigators, runs, assets, states
    # a misspelt field is caught
    assert validate(schema, parse("{ runsOrError { ... on Runs { results { jobNam } } } }"))


def test_the_one_request_that_starts_the_automation_is_valid_for_this_dagster() -> None:
    """``start_document`` builds its mutation (one field per sensor or schedule) at run time."""
    from scripts.deploy_local import Repository, start_document

    repo = Repository("xbot", "__repository__", ("posting_sensor",), ("daily_summaries_schedule",))
    query, variables = start_document(
        [(repo, "sensor", "posting_sensor"), (repo, "schedule", "daily_summaries_schedule")]
    )
    assert not validate(create_schema().graphql_schema, parse(query))
    assert variables["i0"]["sensorName"] == "posting_sensor"
    assert variables["i1"]["scheduleName"] == "daily_summaries_schedule"
