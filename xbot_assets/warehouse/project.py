"""The dbt project handle, in its own module so `dagster-dbt project prepare-and-package` loads it.

``dagster-dbt project prepare-and-package --file xbot_assets/warehouse/project.py`` parses the
project and writes ``dbt/target/manifest.json`` before the definitions load; ``dagster dev`` /
``dg dev`` prepare it on their own through :meth:`DbtProject.prepare_if_dev`.

dagster-dbt looks for ``dbt`` on PATH, which misses it when the virtual environment is not
activated (``.venv/bin/dg ...``); every invocation here uses the ``xbot-dbt`` installed beside the
running interpreter instead: dbt's own command line, served warm by a fork server
(``xbot_assets/warehouse/dbt_warm.py``), falling back to the plain ``dbt`` beside it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer
from dagster_shared.record import replace

from xbot_assets.warehouse.dbt_env import dbt_environment

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent.parent / "dbt"
"""The dbt project folder at the checkout's root."""

DBT_CLI = str(Path(sys.executable).parent / "dbt")
"""dbt-core's own ``dbt`` script in this environment (every call pays dbt's ~5 s import)."""

_WARM_CLI = Path(sys.executable).parent / "xbot-dbt"
DBT_EXECUTABLE = str(_WARM_CLI) if _WARM_CLI.exists() else DBT_CLI
"""What Dagster runs: ``xbot-dbt`` (same arguments, output and exit codes as ``dbt``, without the
import cost after the first call) when the project is installed, else ``dbt``."""


class VenvDbtPreparer(DagsterDbtProjectPreparer):
    """Parses the project with this environment's dbt, whatever PATH says."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        # dbt discards its partial-parse state when the profile's connection (the DuckDB path)
        # differs from the parse's, and every Dagster run starts from this parse: parsing with the
        # warehouse the settings name lets runs skip a full re-parse (~4 s each).
        # Plain dbt: a one-off parse gains nothing from the warm server, and starting one here
        # would leave it running after `make prepare` (and CI) for its idle timeout.
        with _settings_dbt_environment():
            DbtCliResource(project_dir=project, dbt_executable=DBT_CLI).cli(
                ["parse", "--quiet"], target_path=project.target_path
            ).wait()


@contextmanager
def _settings_dbt_environment() -> Iterator[None]:
    """The dbt variables of the current settings, or nothing when settings cannot load (a build
    machine without configuration parses with the profile's fallback path)."""
    from xbot_assets.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError:
        yield
        return
    with dbt_environment(settings.app_env, settings.resolved_warehouse_path):
        yield


dbt_project = replace(
    DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR),
    preparer=VenvDbtPreparer(),
)
"""The one dbt project; its target follows APP_ENV through ``dbt/profiles.yml``."""

dbt_project.prepare_if_dev()
