"""What an account earned, per bounty and kind, from the event index.

The contract credits every payment with one event, RewardCredited(account, taskId, amount), and says nothing of
why. The why is the account's part in that task's history: the volunteer whose commit was accepted earned the
task's reward; a verifier that attested earned its fee; the referee that ruled a game its fee; a challenger
(a dispute, or a game it opened or won) its bond back and its share of the slash.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.index import Event, EventIndex

KINDS = ("task reward", "verifier fee", "referee fee", "challenge", "other")
# Roles in a task's history, in the order they decide a credit's kind (a volunteer never verifies its own task).
_ROLES = (
    ("task reward", "TaskAccepted", "volunteer"),
    ("verifier fee", "VerdictAttested", "verifier"),
    ("referee fee", "GameRuled", "referee"),
    ("challenge", "TaskDisputed", "challenger"),
    ("challenge", "GameOpened", "challenger"),
    ("challenge", "GameEnded", "winner"),
)


@dataclass(frozen=True)
class EarningsRow:
    bounty_id: int
    kind: str
    amount: int
    count: int


@dataclass(frozen=True)
class Earnings:
    credited: int
    claimed: int
    rows: list[EarningsRow]  # by bounty, then kind in KINDS order


def kind_of(task_events: list[Event], account: str) -> str:
    """Why `account` was credited on the task whose events these are."""
    who = account.lower()
    for kind, name, arg in _ROLES:
        if any(e.name == name and str(e.args.get(arg, "")).lower() == who for e in task_events):
            return kind
    return "other"


def earnings(index: EventIndex, account: str) -> Earnings:
    """Every credit to `account` summed per bounty and kind, and what it has claimed (the index must be synced)."""
    totals: dict[tuple[int, str], list[int]] = {}
    histories: dict[int, list[Event]] = {}
    for credit in index.events(account=account, names=("RewardCredited",)):
        task_id = int(credit.args["taskId"])
        if task_id not in histories:
            histories[task_id] = index.events(task_id=task_id)
        row = totals.setdefault((task_id >> 64, kind_of(histories[task_id], account)), [0, 0])
        row[0] += int(credit.args["amount"])
        row[1] += 1
    claimed = sum(int(e.args["amount"]) for e in index.events(account=account, names=("RewardsClaimed",)))
    rows = [
        EarningsRow(bounty, kind, amount, count)
        for (bounty, kind), (amount, count) in sorted(totals.items(), key=lambda i: (i[0][0], KINDS.index(i[0][1])))
    ]
    return Earnings(sum(r.amount for r in rows), claimed, rows)
