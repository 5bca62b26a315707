"""A bounty's full history for the explorer, from its indexed events: every attempt of every task (who claimed
it, when it was committed, each verifier's verdict, how it ended) and every payment with its kind."""

from __future__ import annotations

from typing import Any

from ledger.earnings import credit_kinds
from ledger.index import Event
from ledger.market import split_task_id


def bounty_history(events: list[Event]) -> dict[str, Any]:
    """`events`: the bounty's own, in chain order (EventIndex.events(bounty_id=…))."""
    attempts: list[dict[str, Any]] = []
    current: dict[int, dict[str, Any]] = {}  # task id → its attempt under way
    by_task: dict[int, list[Event]] = {}
    for e in events:
        if "taskId" not in e.args:
            continue
        task_id = int(e.args["taskId"])
        by_task.setdefault(task_id, []).append(e)
        if e.name == "TaskClaimed":
            _, round_, shard = split_task_id(task_id)
            current[task_id] = {
                "task_id": str(task_id),
                "task_id_hex": hex(task_id),
                "round": round_,
                "shard": shard,
                "attempt": int(e.args["attempt"]),
                "volunteer": e.args["volunteer"],
                "claimed_block": e.block,
                "committed_block": None,
                "outcome": "training",
                "reward": "0",
                "slashed": "0",
                "disputed": False,
                "verdicts": [],
                "trace_cid": None,
                "reason": None,  # why it was slashed or expired, in words
                "_review": False,
                "_steps": None,  # the stretch a bisection game narrowed to
                "_ruled_wrong": False,
                "_forfeited": None,  # whose turn a forfeited game was at
            }
            attempts.append(current[task_id])
            continue
        row = current.get(task_id)
        if row is None:
            continue
        if e.name == "TaskCommitted":
            row.update(committed_block=e.block, outcome="pending", trace_cid=e.args["traceCid"])
        elif e.name == "VerdictAttested":
            row["verdicts"].append({"verifier": e.args["verifier"], "passed": bool(e.args["passed"]), "block": e.block})
        elif e.name == "TaskDisputed":
            row["disputed"] = True
        elif e.name == "TaskAccepted":
            row.update(outcome="accepted", reward=str(e.args["reward"]))
        elif e.name == "ReviewOpened":
            row["_review"] = True
        elif e.name in ("GameOpened", "GameAnswered"):
            row["_steps"] = (int(e.args["loStep"]), int(e.args["hiStep"]))
        elif e.name == "GameRuled":
            row["_ruled_wrong"] = not e.args["stepCorrect"]
        elif e.name == "GameForfeited":
            row["_forfeited"] = int(e.args["turn"])
        elif e.name == "TaskSlashed":
            row.update(outcome="slashed", slashed=str(e.args["amount"]), reason=_slash_reason(row))
        elif e.name == "LeaseExpired":
            row.update(outcome="expired", slashed=str(e.args["penalty"]), reason="its lease ran out before a commit")
    for row in attempts:
        for key in ("_review", "_steps", "_ruled_wrong", "_forfeited"):
            del row[key]
    kinds = {key: kind for task_events in by_task.values() for key, kind in credit_kinds(task_events).items()}
    payments = [
        {
            "block": e.block,
            "account": e.args["account"],
            "amount": str(e.args["amount"]),
            "kind": kinds[(e.tx, e.log_index)],
            "task_id_hex": hex(int(e.args["taskId"])),
        }
        for e in events
        if e.name == "RewardCredited"
    ]
    return {"attempts": attempts, "payments": payments}


VOLUNTEER_TURN = 1  # IMarketTypes.GameTurn.Volunteer


def _slash_reason(row: dict[str, Any]) -> str:
    """Why an attempt was slashed, from the events of its attempt (reviews, games, disputes, verdicts)."""
    if row["_forfeited"] == VOLUNTEER_TURN:
        return "it forfeited its bisection game: no move in time"
    if row["_ruled_wrong"] and row["_review"]:
        return "a FAIL quorum of verifiers, confirmed by the referee's replay"
    if row["_ruled_wrong"] and row["_steps"] is not None:
        return f"it lost a bisection game: the referee recomputed step {row['_steps'][1]} and got another state"
    if row["disputed"]:
        return "the check a dispute forced failed"
    if any(not v["passed"] for v in row["verdicts"]):
        return "a FAIL quorum of verifiers"
    return "slashed"
