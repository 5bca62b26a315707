"""protocol.challenge reproduces the contract's spot-check draw, so auditors and simulations see what the
chain decided."""

from __future__ import annotations

from judge.draw import sampled
from protocol.challenge import challenge, draw, draw_seed, seed_is_live
from tests.support.chain import TOKEN, Chain


def test_python_draw_matches_challenge_of_for_many_commits(chain: Chain) -> None:
    bounty = chain.post_and_open(
        shards=12, rounds=1, segmentsPerTask=8, segmentsPerCheck=3, checkBps=5000, minCheckBps=2000
    )
    chain.stake("alice", 5_000 * TOKEN)
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


def _mask(segments: tuple[int, ...] | list[int]) -> int:
    return sum(1 << s for s in segments)


def test_sampled_mirrors_the_contract_before_and_after_the_blockhash_horizon(chain: Chain) -> None:
    """judge.draw.sampled is what the auditor replays: it must be what challengeOf said when the verdict was
    decided, on both sides of the 256-block horizon (the demo's flaky audit: the auditor used the block hash
    after the contract had switched to checking every segment)."""
    bounty = chain.post_and_open(
        shards=2, rounds=1, segmentsPerTask=8, segmentsPerCheck=2, checkBps=5000, minCheckBps=2000
    )
    chain.stake("alice", 5_000 * TOKEN)
    task = chain.task_id(bounty, 0, 0)
    chain.claim_and_commit("alice", task)
    t = chain.task(task)
    chain.mine(2)
    block_hash = bytes(chain.w3.eth.get_block(t["commitBlock"] + 1)["hash"])
    terms = {
        "task_id": task,
        "attempt": t["attempt"],
        "commit_block": t["commitBlock"],
        "segments": 8,
        "picks": 2,
        "draw_block_hash": block_hash,
        "recorded": None,
        "disputed": None,
    }
    live = chain.view("challengeOf", task)
    at = chain.w3.eth.block_number
    assert seed_is_live(t["commitBlock"], at)
    assert _mask(sampled(**terms, decided_at=at).segments) == live[1]
    chain.mine(300)
    lost = chain.view("challengeOf", task)
    at = chain.w3.eth.block_number
    assert not seed_is_live(t["commitBlock"], at)
    assert lost == [True, 2**8 - 1]
    assert _mask(sampled(**terms, decided_at=at).segments) == lost[1]
    assert challenge(None, 5000, 8, 2).seed_lost


def test_a_recorded_draw_is_what_everyone_sees_at_any_time(chain: Chain) -> None:
    bounty = chain.post_and_open(
        shards=2, rounds=1, segmentsPerTask=8, segmentsPerCheck=2, checkBps=5000, minCheckBps=2000
    )
    chain.stake("alice", 5_000 * TOKEN)
    task = chain.task_id(bounty, 0, 1)
    chain.claim_and_commit("alice", task)
    chain.mine(2)
    seed = chain.events(chain.tx("bob", "drawChallenge", task), "ChallengeDrawn")[0]["seed"]
    t = chain.task(task)
    chain.mine(300)
    recorded = sampled(
        task_id=task,
        attempt=t["attempt"],
        commit_block=t["commitBlock"],
        segments=8,
        picks=2,
        draw_block_hash=b"\0" * 32,
        recorded=bytes(seed),
        decided_at=chain.w3.eth.block_number,
        disputed=None,
    )
    assert _mask(recorded.segments) == chain.view("challengeOf", task)[1]


def test_a_dispute_adds_its_segment_to_the_sample() -> None:
    seed = b"\x01" * 32
    plain = challenge(seed, 10_000, 8, 2)
    extra = next(s for s in range(8) if s not in plain.segments)
    disputed = challenge(seed, 0, 8, 2, disputed=extra)
    assert disputed.checked and set(disputed.segments) == {*plain.segments, extra}
