"""What an account earned, per bounty and kind, from the event index.

The contract credits every payment with one event, RewardCredited(account, taskId, amount), and says nothing of
why. The why is read from the transaction that paid it, where the contract emits the event that decided the
payment first: after TaskAccepted the volunteer's reward (with a failed dispute's bond); after ChallengerSlashed
the volunteer's compensation from a challenger that lost its game; after TaskSlashed the FAIL attesters' fees,
then the game winner's prize and the disputer's bond and share (challenge), in that order, so an account that
both attested and challenged is paid twice, once of each kind; after a game forfeited by a silent referee, the
disputer's bond. Elsewhere an attester of the attempt is paid its verifier fee, and anything left falls back on
the account's part in the task's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.index import Event, EventIndex

KINDS = ("task reward", "verifier fee", "referee fee", "challenge", "compensation", "other")
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
    """`account`'s part in the task whose events these are, by role (the fallback of `credit_kinds`)."""
    who = account.lower()
    for kind, name, arg in _ROLES:
        if any(e.name == name and str(e.args.get(arg, "")).lower() == who for e in task_events):
            return kind
    return "other"


def credit_kinds(task_events: list[Event]) -> dict[tuple[str, int], str]:
    """Why each RewardCredited among one task's events (in chain order) was paid, by (tx, log index)."""
    kinds: dict[tuple[str, int], str] = {}
    failed_attesters: set[str] = set()  # FAIL votes of the attempt under way: paid from a slash
    attesters: set[str] = set()
    tx, decided_by, accepted, fee_paid = "", "", "", set[str]()
    for e in task_events:
        if e.tx != tx:  # what decides a credit is emitted before it in the same transaction
            tx, decided_by, accepted, fee_paid = e.tx, "", "", set()
        if e.name == "TaskCommitted":  # a new attempt: its own ballot
            attesters, failed_attesters = set(), set()
        elif e.name == "VerdictAttested":
            attesters.add(str(e.args["verifier"]).lower())
            if not e.args["passed"]:
                failed_attesters.add(str(e.args["verifier"]).lower())
        elif e.name in ("TaskSlashed", "ChallengerSlashed", "GameForfeited"):
            decided_by = e.name
        elif e.name == "TaskAccepted":
            accepted = str(e.args["volunteer"]).lower()
        elif e.name == "RewardCredited":
            who = str(e.args["account"]).lower()
            if decided_by == "ChallengerSlashed":
                kind = "compensation"
            elif decided_by == "GameForfeited":  # a silent referee: the disputer's bond comes back
                kind = "challenge"
            elif who == accepted:
                kind, accepted = "task reward", ""
            elif decided_by == "TaskSlashed":
                kind = "verifier fee" if who in failed_attesters and who not in fee_paid else "challenge"
                fee_paid.add(who)
            elif who in attesters:
                kind = "verifier fee"
            else:
                kind = kind_of(task_events, who)
            kinds[(e.tx, e.log_index)] = kind
    return kinds


def earnings(index: EventIndex, account: str) -> Earnings:
    """Every credit to `account` summed per bounty and kind, and what it has claimed (the index must be synced)."""
    totals: dict[tuple[int, str], list[int]] = {}
    histories: dict[int, dict[tuple[str, int], str]] = {}
    for credit in index.events(account=account, names=("RewardCredited",)):
        task_id = int(credit.args["taskId"])
        if task_id not in histories:
            histories[task_id] = credit_kinds(index.events(task_id=task_id))
        row = totals.setdefault((task_id >> 64, histories[task_id][(credit.tx, credit.log_index)]), [0, 0])
        row[0] += int(credit.args["amount"])
        row[1] += 1
    claimed = sum(int(e.args["amount"]) for e in index.events(account=account, names=("RewardsClaimed",)))
    rows = [
        EarningsRow(bounty, kind, amount, count)
        for (bounty, kind), (amount, count) in sorted(totals.items(), key=lambda i: (i[0][0], KINDS.index(i[0][1])))
    ]
    return Earnings(sum(r.amount for r in rows), claimed, rows)
