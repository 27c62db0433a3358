"""Fixtures of the deployment tests (the settings tests' clean environment is reused)."""

from tests.foundation.conftest import clean_env  # noqa: F401 - re-exported fixture
from tests.orchestration.conftest import env  # noqa: F401 - re-exported fixture
