"""Tiers: `./scripts/test --fast` runs the unit tests and everything on the embedded in-process chain
(`-m "unit or embedded"`); the full `./scripts/test` runs everything."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.unit)
