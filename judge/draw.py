"""Which segments of a commit the chain sampled: recorded while it can be, reconstructed the same way later.

The contract's draw depends on *when* it is read: an unrecorded seed is lost once the draw block leaves
the 256-block `blockhash` horizon, and then every segment is checked (protocol.challenge). So the coordinator
records the draws of a round's fresh commits on-chain, in one `drawMany` transaction; from then on settle, every
verifier and the auditor see the same segments at any time. For a draw nobody recorded, the auditor evaluates it
at the block where the first verdict was attested, where the contract itself decided that the task was checked.
"""

from __future__ import annotations

from ledger.market import Market, Task, TaskStatus
from protocol.challenge import Challenge, challenge, draw_seed, seed_is_live


def recorded_seed(market: Market, task: Task) -> bytes | None:
    """The seed recorded on-chain for the task's current attempt, if any (ChallengeDrawn after its commit)."""
    latest = market.w3.eth.block_number
    if latest <= task.commit_block:
        return None
    logs = market.logs("ChallengeDrawn", task.commit_block, latest, {"taskId": task.task_id})
    seeds = [bytes(entry["args"]["seed"]) for entry in logs if int(entry["args"]["attempt"]) == task.attempt]
    return seeds[-1] if seeds else None


def record_draws(market: Market, tasks: list[Task], *, min_age_blocks: int = 0) -> list[int]:
    """Records, in one `drawMany` transaction, the draws of every committed task among `tasks` whose seed is live
    and not yet recorded; returns the ids recorded. A round's fresh commits share one transaction instead of one
    each (the seed's slot costs less than the transaction around it). Sends nothing when there is nothing to do.

    `min_age_blocks` leaves alone draws younger than that: a verifier records only as a safety net, when no
    coordinator recorded a draw within half the horizon, so that the coordinator's batch is not split up."""
    latest = market.w3.eth.block_number
    live = [
        task
        for task in tasks
        if task.status in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED, TaskStatus.CONTESTED)
        and seed_is_live(task.commit_block, latest + 1)
        and latest - task.commit_block >= min_age_blocks
    ]
    if not live:
        return []
    # One log query for all of them: a draw recorded since the earliest commit, for this attempt.
    logs = market.logs(
        "ChallengeDrawn", min(t.commit_block for t in live), latest, {"taskId": [t.task_id for t in live]}
    )
    recorded = {(int(e["args"]["taskId"]), int(e["args"]["attempt"])) for e in logs}
    due = [t.task_id for t in live if (t.task_id, t.attempt) not in recorded]
    return market.draw_many(due) if due else []


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
