"""The engine tests run in the orchestration tests' fresh local deployment (``env``)."""

from tests.orchestration.conftest import env

__all__ = ["env"]
