"""Each adversarial module gets its own arena: a fresh anvil and market, stopped when the module is done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.anvil import Anvil
from tests.support.arena import Arena
from tests.support.marketplace import start


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    node = Anvil()
    root = tmp_path_factory.mktemp("arena")
    yield Arena(start(node.url, root), root / "work")
    node.stop()
