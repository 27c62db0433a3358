"""The dbt project handle, in its own module so `dagster-dbt project prepare-and-package` loads it.

``dagster-dbt project prepare-and-package --file xbot_assets/warehouse/project.py`` parses the
project and writes ``dbt/target/manifest.json`` before the definitions load; ``dagster dev`` /
``dg dev`` prepare it on their own through :meth:`DbtProject.prepare_if_dev`.

dagster-dbt looks for ``dbt`` on PATH, which misses it when the virtual environment is not
activated (``.venv/bin/dg ...``); every invocation here uses the ``dbt`` installed beside the
running interpreter instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer
from dagster_shared.record import replace

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent.parent / "dbt"
"""The dbt project folder at the checkout's root."""

DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
"""The dbt of this environment (dbt-core installed beside the interpreter)."""


class VenvDbtPreparer(DagsterDbtProjectPreparer):
    """Parses the project with this environment's dbt, whatever PATH says."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()


dbt_project = replace(
    DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR),
    preparer=VenvDbtPreparer(),
)
"""The one dbt project; its target follows APP_ENV through ``dbt/profiles.yml``."""

dbt_project.prepare_if_dev()
