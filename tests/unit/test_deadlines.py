"""What each task waits for next (bounty show, the explorer): the contract's own windows, read from its terms."""

from __future__ import annotations

import pytest

from ledger.market import Bounty, BountyStatus, Task, TaskStatus, next_deadline

BOUNTY = Bounty(
    bounty_id=1,
    poster="0x" + "11" * 20,
    coordinator="0x" + "22" * 20,
    status=BountyStatus.ACTIVE,
    shards=2,
    rounds=1,
    current_round=0,
    round_open=True,
    deadline=10**9,
    reward_per_task=10,
    stake_per_task=100,
    segments_per_task=4,
    escrow=1_000,
    raw={"challengeWindow": 600, "verifyWindow": 1_200},
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TaskStatus.OPEN, None),
        (TaskStatus.CLAIMED, ("commit", 5_000)),  # the lease's end
        (TaskStatus.COMMITTED, ("challenge window closes", 5_600)),  # deadline = commit time, then the window
        (TaskStatus.CHALLENGED, ("verify window closes", 6_800)),
        (TaskStatus.ACCEPTED, None),
    ],
)
def test_each_status_names_what_it_waits_for_and_when(status: TaskStatus, expected: tuple[str, int] | None) -> None:
    task = Task(task_id=7, volunteer="0x" + "33" * 20, status=status, attempt=0, deadline=5_000, commit_block=9)
    assert next_deadline(task, BOUNTY) == expected
