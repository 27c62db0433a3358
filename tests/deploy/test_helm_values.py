"""The Helm values and manifests for Kubernetes, checked offline (no cluster, no chart archive).

Validated: every key in deploy/helm/values.yaml is one the Dagster chart knows, with the right
type (models in helm_values_model.py, written from the chart's own schema); the run launcher is
K8sRunLauncher; the code location's module loads as Definitions; every secret and config map the
values name is defined in deploy/helm/secrets.example.yaml with the keys the chart and xbot read;
those keys are xbot settings, and together they make a production configuration that starts;
no secret value sits in the values file; the per-account run limit equals deploy/dagster.yaml's.
Not validated: rendering by Helm (`helm template`), the Kubernetes API server accepting the
rendered objects, images existing, and anything at run time on a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.deploy.helm_values_model import ConfigMap, DagsterValues, Secret
from xbot_assets.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy/helm/values.yaml"
MANIFESTS = ROOT / "deploy/helm/secrets.example.yaml"
INSTANCE = ROOT / "deploy/dagster.yaml"
NOT_SETTINGS = {"DO_NOT_TRACK", "DBT_SEND_ANONYMOUS_USAGE_STATS"}


def load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def manifests() -> dict[str, Secret | ConfigMap]:
    objects: dict[str, Secret | ConfigMap] = {}
    for doc in yaml.safe_load_all(MANIFESTS.read_text(encoding="utf-8")):
        model = Secret if doc["kind"] == "Secret" else ConfigMap
        obj = model.model_validate(doc)
        objects[obj.metadata.name] = obj
    return objects


def test_values_match_the_charts_schema() -> None:
    values = DagsterValues.model_validate(load_values())
    assert values.runLauncher.type == "K8sRunLauncher"
    assert values.runLauncher.config.k8sRunLauncher is not None
    assert values.postgresql.enabled is False and values.generatePostgresqlPasswordSecret is False
    assert values.global_ is not None and values.global_.postgresqlSecretName


@pytest.mark.parametrize(
    "path, bad",
    [
        (("runLauncher",), {"type": "K8sRunLaucher", "config": {}}),
        (("dagster-user-deployments", "deployments", 0, "envSecret"), [{"name": "xbot-env"}]),
        (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxRuns"), 4),
        (("runLauncherr",), {}),
        (("dagsterWebserver", "resources", "requests", "cpu"), "a quarter"),
    ],
)
def test_the_models_reject_what_helm_would_silently_ignore(path: tuple[Any, ...], bad: Any) -> None:
    values = copy.deepcopy(load_values())
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(ValidationError):
        DagsterValues.model_validate(values)


def test_the_code_location_module_loads_as_definitions() -> None:
    import importlib

    import dagster as dg

    (deployment,) = load_values()["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    module = args[args.index("--module-name") + 1]
    loaded = importlib.import_module(module).defs
    defs = loaded() if callable(loaded) else loaded  # @dg.definitions wraps a function
    assert isinstance(defs, dg.Definitions)
    assert defs.resolve_job_def("post_job") is not None


def _referenced(values: dict[str, Any]) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                if key in ("envSecrets", "envConfigMaps"):
                    names.update(ref["name"] for ref in child)
                else:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(values)
    return names


def test_every_referenced_secret_and_config_map_is_defined() -> None:
    values = load_values()
    objects = manifests()
    missing = _referenced(values) - set(objects)
    assert not missing, f"values name objects secrets.example.yaml does not define: {missing}"
    pg = objects[values["global"]["postgresqlSecretName"]]
    assert isinstance(pg, Secret) and "postgresql-password" in pg.stringData
    # the xbot processes (code server, run pods, daemon) all get the settings
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for holder in (launcher, deployment):
        assert {"xbot-env", "xbot-config"} <= _referenced(holder)


def test_manifest_keys_are_xbot_settings_that_start_in_production(tmp_path: Path) -> None:
    env_names = {(f.alias or name).upper() for name, f in Settings.model_fields.items()}
    env: dict[str, str] = {}
    for obj in manifests().values():
        if obj.metadata.name == "dagster-postgresql-secret":
            continue
        items = obj.stringData if isinstance(obj, Secret) else obj.data
        unknown = set(items) - env_names - NOT_SETTINGS
        assert not unknown, f"{obj.metadata.name} sets {unknown}, which xbot does not read"
        env.update({k: v for k, v in items.items() if k not in NOT_SETTINGS})
    xbot_env = manifests()["xbot-env"]
    assert isinstance(xbot_env, Secret)
    assert all(v == "REPLACE_ME" for v in xbot_env.stringData.values())
    # with real-looking values in place of REPLACE_ME the combination passes the start-up rules
    fake = {
        "DATABASE_URL": "postgresql://xbot:pw@db.example:5432/xbot",
        "REDIS_URL": "redis://redis.example:6379/0",
        "X_HANDLE": "my_account",
    }
    overrides: dict[str, str | Path] = {k.lower(): fake.get(k, v) for k, v in env.items()}
    overrides["xbot_home"] = tmp_path
    settings = load_settings(env_file=None, **overrides)
    assert settings.app_env == "production" and settings.resolved_poster == "api"
    assert settings.resolved_redis_prefix == "prod:" and settings.clock_speed is None


def test_no_secret_value_in_the_values_file() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                lowered = str(key).lower()
                secretish = ("password", "token", "apikey", "secretkey")
                if any(w in lowered for w in secretish) and not isinstance(child, bool):
                    assert child in ("", None), f"{path}.{key} holds a value: use a Secret"
                walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}[{i}]")

    walk(load_values(), "values")


def test_per_account_run_limit_matches_the_instance_config() -> None:
    instance = yaml.safe_load(INSTANCE.read_text(encoding="utf-8"))
    daemon = load_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert (
        daemon["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert daemon["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
