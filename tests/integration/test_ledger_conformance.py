"""One ledger suite, run against both chains the product supports: the embedded py-evm chain and anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from devtools.anvil import Anvil
from ledger.amounts import UNIT
from ledger.chain import advance_time, connect, dev_accounts
from ledger.deploy import deploy
from ledger.errors import error_class
from ledger.index import Event, EventIndex
from ledger.market import BountyStatus, Market, TaskStatus, task_id_of
from ledger.terms import BountyTerms
from ledger.tx import Transactor


@pytest.fixture(params=[pytest.param("embedded", marks=pytest.mark.embedded), "anvil"], scope="module")
def w3(request: pytest.FixtureRequest) -> Iterator[Web3]:
    if request.param == "embedded":
        yield connect(None)
        return
    node = Anvil()
    yield connect(node.url)
    node.stop()


@pytest.fixture(scope="module")
def markets(w3: Web3) -> dict[str, Market]:
    keys = dev_accounts(w3, 5)
    deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
    clients = {
        name: Market(w3, deployment, Transactor(w3, key))
        for name, key in zip(["poster", "coord", "alice", "bob"], keys[1:5], strict=True)
    }
    for m in clients.values():
        m.faucet(m.address, 5_000 * UNIT)
    return clients


def test_stake_unstake_withdraw_follow_the_unbonding_delay(markets: dict[str, Market]) -> None:
    alice = markets["alice"]
    alice.stake(300 * UNIT)
    alice.request_unstake(100 * UNIT)
    s = alice.stake_of(alice.address)
    assert (s.bonded, s.unbonding, s.free) == (200 * UNIT, 100 * UNIT, 200 * UNIT)
    with pytest.raises(error_class("StakingNothingToWithdraw")) as info:
        alice.withdraw()
    assert info.value.fields["nextReleaseAt"] > alice.now()
    before = alice.balance(alice.address)
    advance_time(alice.w3, 3601)
    alice.withdraw()
    assert alice.balance(alice.address) - before == 100 * UNIT


def test_typed_errors_carry_their_fields_and_nothing_is_mined(markets: dict[str, Market]) -> None:
    bob = markets["bob"]
    nonce = bob.w3.eth.get_transaction_count(bob.address)
    with pytest.raises(error_class("StakingInsufficientStake")) as info:
        bob.request_unstake(1 * UNIT)
    assert info.value.fields == {"account": bob.address, "bonded": 0, "needed": UNIT}
    with pytest.raises(error_class("MarketNothingToClaim")):
        bob.claim_rewards()
    assert bob.w3.eth.get_transaction_count(bob.address) == nonce


def test_post_claim_commit_and_the_event_index_rebuilds_to_the_chain(
    markets: dict[str, Market], tmp_path: Path
) -> None:
    poster, coord, alice = markets["poster"], markets["coord"], markets["alice"]
    terms = BountyTerms(coordinator=coord.address)
    params = terms.params("QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX", 2, 1, 4, poster.now())
    poster.ensure_allowance(terms.escrow(2))
    bounty_id = poster.post_bounty(params)
    assert poster.bounty(bounty_id).status == BountyStatus.ACTIVE and poster.bounty(bounty_id).escrow == terms.escrow(2)
    coord.open_round(bounty_id, "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX")
    task = task_id_of(bounty_id, 0, 1)
    alice.claim(task)
    alice.commit(
        task,
        b"\x01" * 32,
        b"\x02" * 32,
        "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX",
        "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX",
    )
    assert alice.task(task).status == TaskStatus.COMMITTED
    event = alice.commit_event(task)
    assert event is not None and event["traceRoot"] == b"\x01" * 32
    (opened,) = alice.opened_rounds(bounty_id=bounty_id)
    assert opened.round == 0 and opened.block_hash == bytes(alice.w3.eth.get_block(opened.block_number)["hash"])

    index = EventIndex(tmp_path / "index.sqlite", poster)
    assert index.sync() > 0
    names = [e.name for e in index.events(bounty_id=bounty_id)]
    assert names == ["BountyPosted", "RoundOpened", "TaskClaimed", "TaskCommitted"]
    assert index.revalidate() == []
    reopened = EventIndex(tmp_path / "index.sqlite", poster)  # survives a restart, adds nothing twice
    assert reopened.sync() == 0 and [e.name for e in reopened.events(bounty_id=bounty_id)] == names


def test_event_index_rewinds_when_the_chain_forgets_blocks(tmp_path: Path) -> None:
    node = Anvil()
    try:
        w3 = connect(node.url)
        keys = dev_accounts(w3, 3)
        deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
        alice, bob = (Market(w3, deployment, Transactor(w3, k)) for k in keys[1:])
        index = EventIndex(tmp_path / "index.sqlite", alice)
        snapshot = w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
        alice.faucet(alice.address, 7 * UNIT)
        index.sync()
        assert [e.args["to"] for e in index.events(names=("FaucetDripped",))] == [alice.address]
        w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        bob.faucet(bob.address, 9 * UNIT)  # a different history at the same height
        index.sync()
        assert [e.args["to"] for e in index.events(names=("FaucetDripped",))] == [bob.address]
        assert index.revalidate() == []
    finally:
        node.stop()


def test_revalidate_ignores_blocks_another_process_indexes_while_it_reads(
    markets: dict[str, Market], tmp_path: Path
) -> None:
    """The API keeps syncing its index while `audit` or a test revalidates the same file: blocks it adds after
    the range was fixed are not differences."""
    poster, alice = markets["poster"], markets["alice"]
    path = tmp_path / "index.sqlite"
    writer = EventIndex(path, poster)
    writer.sync()

    class ReaderRacedByTheWriter(EventIndex):
        def events(self, **kwargs: Any) -> list[Event]:
            read = super().events(**kwargs)
            alice.faucet(alice.address, 1 * UNIT)  # a new event, indexed by the other process mid-read
            writer.sync()
            return read

    reader = ReaderRacedByTheWriter(path, poster)
    assert reader.revalidate() == []
    assert EventIndex(path, poster).revalidate() == []
