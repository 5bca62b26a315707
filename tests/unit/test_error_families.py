"""One exception root, two families that never nest: a handler for permanent content errors can never
swallow an outage of our own services (the trapdoor that once cached an IPFS outage as missing content)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import cli
import content
import coordinator
import judge
import ledger
import node
import protocol
from protocol.errors import ContentError, PermanentError, ShardworkError, StoreUnavailable, TransientError


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found |= {sub, *_all_subclasses(sub)}
    return found


@pytest.fixture(scope="module")
def project_errors() -> set[type]:
    for package in (protocol, content, ledger, judge, node, coordinator, cli):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    return _all_subclasses(ShardworkError)


def test_no_error_is_both_transient_and_permanent(project_errors: set[type]) -> None:
    both = {c.__qualname__ for c in project_errors if issubclass(c, TransientError) and issubclass(c, PermanentError)}
    assert not both
    assert len(project_errors) > 20  # the contract's custom errors are among them: the walk really imported


def test_an_unreachable_store_is_transient_and_no_content_error() -> None:
    assert issubclass(StoreUnavailable, TransientError)
    assert not issubclass(StoreUnavailable, ContentError)
    assert issubclass(ContentError, PermanentError)
    with pytest.raises(StoreUnavailable):
        try:
            raise StoreUnavailable("daemon down")
        except ContentError:  # pragma: no cover - the trapdoor this test guards against
            pytest.fail("a ContentError handler caught an outage")
