"""Which segments of a commit the chain sampled: recorded while it can be, reconstructed the same way later.

The contract's draw depends on *when* it is read: an unrecorded seed is lost once the draw block leaves
the 256-block `blockhash` horizon, and then every segment is checked (protocol.challenge). So whoever checks a
commit first records the draw on-chain (`drawChallenge`, idempotent); from then on settle, every verifier and
the auditor see the same segments at any time. For a draw nobody recorded, the auditor evaluates it at the
block where the first verdict was attested, where the contract itself decided that the task was checked.
"""

from __future__ import annotations

from ledger.errors import error_class
from ledger.market import Market, Task
from protocol.challenge import Challenge, challenge, draw_seed, seed_is_live


def recorded_seed(market: Market, task: Task) -> bytes | None:
    """The seed recorded on-chain for the task's current attempt, if any (ChallengeDrawn after its commit)."""
    latest = market.w3.eth.block_number
    if latest <= task.commit_block:
        return None
    logs = market.logs("ChallengeDrawn", task.commit_block, latest, {"taskId": task.task_id})
    seeds = [bytes(entry["args"]["seed"]) for entry in logs if int(entry["args"]["attempt"]) == task.attempt]
    return seeds[-1] if seeds else None


def record_draw(market: Market, task: Task) -> bool:
    """Records the commit's draw while its block hash is still served; True when this call recorded it.

    Nothing to do when it is already recorded, when the draw block is not mined yet (the caller's
    `challengeOf` says so), or when the seed is already lost (the contract then checks every segment).
    """
    latest = market.w3.eth.block_number
    if not seed_is_live(task.commit_block, latest + 1) or recorded_seed(market, task) is not None:
        return False
    try:
        market.draw_challenge(task.task_id)
    except (error_class("MarketChallengeNotDrawnYet"), error_class("MarketTaskNotInStatus")):
        return False  # the horizon passed while we sent, or the task was settled meanwhile
    return True


def sampled(
    *,
    task_id: int,
    attempt: int,
    commit_block: int,
    segments: int,
    picks: int,
    draw_block_hash: bytes,
    recorded: bytes | None,
    decided_at: int | None,
    disputed: int | None,
) -> Challenge:
    """The segments the chain sampled for one commit, from its history: the recorded seed if any, else the
    live seed as of block `decided_at` (where the first verdict was attested), else every segment."""
    if recorded is not None:
        seed: bytes | None = recorded
    elif decided_at is None or seed_is_live(commit_block, decided_at):
        seed = draw_seed(draw_block_hash, task_id, attempt)
    else:
        seed = None
    # Only the segments matter here: whether the task was checked is read from its verdicts.
    return challenge(seed, 0, segments, picks, disputed)
