"""Test tiers by folder: tests/unit (unit), tests/service (service), tests/integration
(integration). Servers are started once per session by the fixture plugins below."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.pool",
    "tests.fixtures.pki",
    "tests.fixtures.postgres",
    "tests.fixtures.postgis",
    "tests.fixtures.core",
    "tests.fixtures.hdfs",
    "tests.fixtures.gluster",
    "tests.fixtures.soap",
    "tests.fixtures.gateway",
    "tests.fixtures.vo",
    "tests.fixtures.ogc",
    "tests.fixtures.workflow",
    "tests.fixtures.replicas",
    "tests.fixtures.haproxy",
    "tests.fixtures.portal",
    "tests.fixtures.myproxy",
]

_TIERS = {"unit": "unit", "service": "service", "integration": "integration"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        rel = Path(str(item.fspath)).relative_to(root)
        marker = _TIERS.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if marker:
            item.add_marker(getattr(pytest.mark, marker))
