"""The explorer caches no outage: while its IPFS daemon is down a snapshot shows a round without its metric and a
bounty of unknown family (and nothing escapes), and once the daemon is back on the same port and repo the next
snapshot shows both. A cached outage would hide them for the life of the API process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from content.ipfs import IpfsStore
from coordinator.api import Explorer
from devtools.anvil import Anvil
from devtools.localstack import start_ipfs
from ledger.market import Market
from protocol.errors import StoreUnavailable
from tests.support.marketplace import start
from tests.support.processes import stop_group
from tests.support.specs import small_spec


@pytest.fixture
def chain() -> Iterator[Anvil]:
    node = Anvil()
    yield node
    node.stop()


def test_an_ipfs_outage_is_not_remembered_as_missing_content(chain: Anvil, tmp_path: Path) -> None:
    home = tmp_path / "ipfs-home"
    (home / "logs").mkdir(parents=True)
    daemon, api = start_ipfs(home)
    try:
        m = start(chain.url, tmp_path)
        m = dataclasses.replace(m, store=IpfsStore(api))
        bounty_id = m.post_and_open(small_spec())  # spec, shards, round-0 model and manifest: all on the daemon
        explorer = Explorer(Market(m.w3, m.deployment), IpfsStore(api), tmp_path / "index.sqlite")
        manifest_cid = m.poster.opened_rounds(bounty_id=bounty_id)[0].model_cid  # the round manifest

        stop_group(daemon)
        with pytest.raises(StoreUnavailable):
            explorer.store.get(manifest_cid)  # the outage is real: the port refuses connections
        try:
            down = explorer.build().bounties[bounty_id]
        except StoreUnavailable as exc:
            pytest.fail(f"the outage escaped the snapshot: {exc}")
        assert down["family"] == "unknown"
        assert [(r["metric_name"], r["metric"]) for r in down["round_history"]] == [(None, None)]

        daemon, _ = start_ipfs(home, int(api.rsplit(":", 1)[1]))  # same port, same repo
        back = explorer.build()
        bounty = back.bounties[bounty_id]
        assert bounty["family"] == "mnist-mlp"
        ((name, metric),) = [(r["metric_name"], r["metric"]) for r in bounty["round_history"]]
        assert name == "accuracy" and isinstance(metric, float)
        assert {t["family"] for t in back.open_tasks} == {"mnist-mlp"}
    finally:
        stop_group(daemon)
