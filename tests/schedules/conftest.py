"""Real clusters for the schedules' tests: the integration tests' harness, with its subreaper."""

from __future__ import annotations

from integration.conftest import make_cluster, subreaper  # noqa: F401  (fixtures)
