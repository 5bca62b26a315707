from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.anvil import Anvil
from tests.support.marketplace import Marketplace, start


@pytest.fixture(scope="module")
def anvil_node() -> Iterator[Anvil]:
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def marketplace(anvil_node: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Marketplace:
    return start(anvil_node.url, Path(tmp_path_factory.mktemp("marketplace")))
