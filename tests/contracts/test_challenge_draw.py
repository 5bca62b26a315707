"""protocol.challenge reproduces the contract's spot-check draw, so auditors and simulations see what the
chain decided."""

from __future__ import annotations

from protocol.challenge import draw, draw_seed
from tests.contracts.harness import Chain


def test_python_draw_matches_challenge_of_for_many_commits(chain: Chain) -> None:
    bounty = chain.post_and_open(shards=12, rounds=1, segmentsPerTask=8, segmentsPerCheck=3, checkBps=5000, minCheckBps=2000)
    chain.stake("alice", 5_000 * 10**18)
    for shard in range(12):
        task = chain.task_id(bounty, 0, shard)
        chain.claim_and_commit("alice", task)
        chain.mine(2)
        t = chain.task(task)
        block_hash = bytes(chain.w3.eth.get_block(t["commitBlock"] + 1)["hash"])
        checked, segments = draw(draw_seed(block_hash, task, t["attempt"]), t["checkBps"], 8, 3)
        on_chain_checked, mask = chain.view("challengeOf", task)
        assert checked == on_chain_checked
        assert sorted(segments) == [i for i in range(8) if mask >> i & 1]
