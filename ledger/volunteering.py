"""A volunteer's record per bounty, from the event index: tasks claimed, in flight, pending a verdict, accepted,
slashed and expired, what it earned, and tokens per hour over the time it took part (its first claim to its
last task event in the bounty, on the chain's clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ledger.earnings import earnings
from ledger.index import EventIndex

_TASK_EVENTS = ("TaskClaimed", "TaskCommitted", "TaskAccepted", "TaskSlashed", "LeaseExpired")


@dataclass(frozen=True)
class BountyRecord:
    bounty_id: int
    claimed: int
    in_flight: int  # claimed, neither committed nor expired yet
    pending: int  # committed, no verdict yet: its stake is locked until one
    accepted: int
    slashed: int
    slashed_amount: int
    expired: int
    lease_penalties: int
    earned: int  # task rewards credited (verifier fees and the like are in `rewards`)
    hours: float  # first claim to last task event, on the chain's clock
    earned_per_hour: int | None  # task rewards (wei) per hour of taking part; None before any reward

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def volunteer_record(index: EventIndex, account: str, block_time: Callable[[int], int]) -> list[BountyRecord]:
    """Per bounty the account took tasks in, oldest bounty first (the index must be synced)."""
    who = account.lower()
    mine = [e for e in index.events(account=account, names=_TASK_EVENTS) if str(e.args["volunteer"]).lower() == who]
    task_rewards: dict[int, int] = {}
    for row in earnings(index, account).rows:
        if row.kind == "task reward":
            task_rewards[row.bounty_id] = task_rewards.get(row.bounty_id, 0) + row.amount
    records = []
    for bounty_id in sorted({int(e.args["bountyId"]) for e in mine}):
        events = [e for e in mine if int(e.args["bountyId"]) == bounty_id]
        count = {name: sum(e.name == name for e in events) for name in _TASK_EVENTS}
        # Each attempt ends once: committed (then accepted or slashed) or expired.
        in_flight = count["TaskClaimed"] - count["TaskCommitted"] - count["LeaseExpired"]
        pending = count["TaskCommitted"] - count["TaskAccepted"] - count["TaskSlashed"]
        seconds = block_time(events[-1].block) - block_time(events[0].block)
        earned = task_rewards.get(bounty_id, 0)
        hours = seconds / 3600
        records.append(
            BountyRecord(
                bounty_id=bounty_id,
                claimed=count["TaskClaimed"],
                in_flight=max(in_flight, 0),
                pending=max(pending, 0),
                accepted=count["TaskAccepted"],
                slashed=count["TaskSlashed"],
                slashed_amount=sum(int(e.args["amount"]) for e in events if e.name == "TaskSlashed"),
                expired=count["LeaseExpired"],
                lease_penalties=sum(int(e.args["penalty"]) for e in events if e.name == "LeaseExpired"),
                earned=earned,
                hours=round(hours, 4),
                earned_per_hour=earned * 3600 // seconds if seconds > 0 and earned else None,
            )
        )
    return records
