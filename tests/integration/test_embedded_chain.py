"""The same contracts on the embedded py-evm chain (the zero-set-up default): Cancun opcodes, time travel."""

from __future__ import annotations

import pytest

from ledger.chain import connect
from tests.support.chain import ACCEPTED, RARE_CHECKS, TOKEN, Chain, reverts

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
