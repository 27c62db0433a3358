"""The main job evaluates sensors as the daemon does: a sensor may add a dynamic partition and
request a run for it in the same tick (e.g. learning_rebuild_sensor adding a new account's
tweet_metrics partitions)."""

from __future__ import annotations

import dagster as dg
import pytest

from xbot_assets.runner import evaluate_sensor

toy_partitions = dg.DynamicPartitionsDefinition(name="toy_accounts")


@dg.asset(partitions_def=toy_partitions)
def toy_asset() -> None:
    """Stands in for a per-account asset."""


toy_job = dg.define_asset_job("toy_job", selection=[toy_asset], partitions_def=toy_partitions)


@dg.sensor(job=toy_job)
def adds_and_requests(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Adds a partition and asks for a run of it in one result."""
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key="new_account", run_key="new_account")],
        dynamic_partitions_requests=[toy_partitions.build_add_request(["new_account"])],
    )


@dg.sensor(job=toy_job)
def requests_existing(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Asks for a run of a partition the instance already has."""
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key="old_account")])


DEFS = dg.Definitions(
    assets=[toy_asset], jobs=[toy_job], sensors=[adds_and_requests, requests_existing]
)


def test_a_sensor_can_request_a_run_for_the_partition_it_adds_in_the_same_tick() -> None:
    with dg.instance_for_test() as instance:
        data = evaluate_sensor(DEFS, instance, "adds_and_requests", None, {})
        assert [r.partition_keys for r in data.dynamic_partitions_requests] == [["new_account"]]
        [request] = data.run_requests
        assert request.partition_key == "new_account"
        assert request.tags["dagster/partition"] == "new_account"
        # Evaluating applied nothing: the runner adds the partitions before launching.
        assert instance.get_dynamic_partitions("toy_accounts") == []


def test_an_ephemeral_instance_without_a_ref_still_evaluates_sensors() -> None:
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(Exception, match="ineligible DagsterInstance"):
        instance.get_ref()
    instance.add_dynamic_partitions("toy_accounts", ["old_account"])
    data = evaluate_sensor(DEFS, instance, "requests_existing", None, {})
    assert [r.partition_key for r in data.run_requests] == ["old_account"]
