from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import HTTPProvider, Web3

from devtools.anvil import Anvil
from tests.support.chain import Chain


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def deployed(anvil: Anvil) -> Chain:
    w3 = Web3(HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
    return Chain.deploy_fresh(w3)


@pytest.fixture
def chain(deployed: Chain) -> Iterator[Chain]:
    """The deployed contracts, rolled back to their fresh state after each test."""
    snap = deployed.snapshot()
    yield deployed
    deployed.revert_to(snap)
