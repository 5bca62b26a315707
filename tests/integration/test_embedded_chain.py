"""The same contracts on the embedded py-evm chain (the zero-set-up default): Cancun opcodes, time travel."""

from __future__ import annotations

import pytest

from coordinator.worker import TRANSIENT as CELERY_RETRIED
from ledger import market as market_module
from ledger.chain import connect
from ledger.errors import TransactionFailed
from ledger.market import Market
from tests.support.chain import ACCEPTED, RARE_CHECKS, TOKEN, Chain, reverts
from verifier.daemon import TRANSIENT as VERIFIER_RETRIED

pytestmark = pytest.mark.embedded


def test_task_lifecycle_runs_on_the_embedded_chain() -> None:
    chain = Chain.deploy_fresh(connect(None))
    bounty = chain.post_and_open(**RARE_CHECKS)
    chain.stake("alice", 2_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    with reverts("MarketChallengeWindowOpen", taskId=task):
        chain.tx("bob", "settle", task)
    chain.advance(601)
    chain.mine()
    assert chain.view("challengeOf", task)[0] is False
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED
    before = chain.balance("alice")
    chain.tx("alice", "claimRewards")  # nonReentrant uses TSTORE: needs Cancun on py-evm too
    assert chain.balance("alice") - before == TOKEN // 10


def test_a_transaction_mined_out_of_gas_is_a_transient_failure_not_a_crash() -> None:
    """A verifier's vote estimated before another's lands can be mined as the deciding one, which needs more
    gas than estimated; the receipt says "out of gas", and the caller must be able to re-read and retry."""
    chain = Chain.deploy_fresh(connect(None))
    bounty = chain.post_and_open(**RARE_CHECKS)
    chain.stake("alice", 2_000 * TOKEN)
    task = chain.task_id(bounty)
    with pytest.raises(TransactionFailed, match="ran out of gas"):
        chain.actors["alice"].send(chain.market.functions.claim(task), gas=30_000)
    assert TransactionFailed in CELERY_RETRIED and TransactionFailed in VERIFIER_RETRIED
    chain.tx("alice", "claim", task)  # the retry, estimated afresh, goes through


def test_history_is_read_in_bounded_ranges_with_nothing_lost_at_their_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Public RPC nodes refuse an eth_getLogs over a long range; daemons read the chain's history in pieces."""
    chain = Chain.deploy_fresh(connect(None))
    bounty = chain.post_and_open(**RARE_CHECKS)
    chain.stake("alice", 2_000 * TOKEN)
    for shard in range(2):
        chain.claim_and_commit("alice", chain.task_id(bounty, 0, shard))
    market = Market(chain.w3, chain.deployment)
    whole = market.logs("TaskCommitted", chain.deployment.block)
    monkeypatch.setattr(market_module, "LOG_RANGE", 1)  # every block its own request
    assert market.logs("TaskCommitted", chain.deployment.block) == whole and len(whole) == 2
    assert market.logs("TaskClaimed", chain.deployment.block, filters={"volunteer": chain.addr("bob")}) == []
