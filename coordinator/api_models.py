"""The read API's response models: what each route answers, typed (they are also the OpenAPI schema the
API's fuzz tests check every answer against). Amounts are decimal strings of base units: JSON numbers
cannot hold 256-bit integers exactly."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    status: str  # "ok", or "degraded" when the last rebuild failed or the snapshot is over 30 s old
    block: int
    snapshot_age_s: float
    error: str | None
    bounties: int


class UpdateScoreOut(_Out):
    """An accepted update judged by what it did alone to the model it started from (judge/improvement.py)."""

    task_id: str  # decimal: task ids exceed JavaScript's safe integers
    volunteer: str
    score: float
    used: bool


class RoundOut(_Out):
    round: int
    manifest_cid: str
    opened_block: int | None = None  # None for the final model's row
    at: int | None = None  # the chain time the round opened (the final row: the bounty finalized)
    final: bool = False
    metric_name: str | None  # None while the manifest cannot be read
    metric: float | None
    cross_class_tolerance: float | None = None  # δ× measured at intake (None: not measured, or the final row)
    # The previous round's updates, each scored alone on the held-out data, and whether this model used it.
    update_scores: list[UpdateScoreOut] = []
    # Shards whose task of this round starts from the optimizer state its shard carried (optimizer.carry_state).
    carried_states: int = 0


class Numerics(_Out):
    """The numeric environment a commit's trace records (protocol.manifests.NumericEnvironment)."""

    torch: str
    machine: str
    kernels: str
    profile: str
    threads: int
    fingerprint: str


class Verdict(_Out):
    taskId: int  # noqa: N815 - the event's own argument names
    verifier: str
    passed: bool


class SlashOut(_Out):
    task_id: int
    task_id_hex: str
    volunteer: str
    amount: int
    block: int
    verdicts: list[Verdict]
    trace_cid: str | None
    trace_root: str | None
    numerics: Numerics | None = None


class Deadline(_Out):
    what: str  # "commit", "challenge window closes" or "verify window closes"
    at: int  # unix time on the chain


class TaskOut(_Out):
    task_id: int
    task_id_hex: str
    bounty_id: int
    round: int
    shard: int
    status: str
    volunteer: str
    attempt: int
    numerics: Numerics | None = None  # of the current commit; None before one, or while its trace is unreadable
    next_deadline: Deadline | None = None  # what the task waits for next and when (chain time); None: nothing


class OpenTaskOut(TaskOut):
    family: str
    stake_per_task: str
    reward_per_task: str


class BountySummary(_Out):
    bounty_id: int
    status: str
    poster: str
    coordinator: str
    family: str
    spec_cid: str
    shards: int
    rounds: int
    current_round: int
    escrow: str
    reward_per_task: str
    stake_per_task: str
    round_history: list[RoundOut]
    final_model_cid: str | None


class BountyOut(BountySummary):
    current_tasks: list[TaskOut]
    slashes: list[SlashOut]


class VerdictOut(_Out):
    verifier: str
    passed: bool
    block: int


class AttemptOut(_Out):
    """One attempt at a task: claimed by a volunteer, and how it ended (coordinator/history.py)."""

    task_id: str  # decimal: task ids exceed JavaScript's safe integers
    task_id_hex: str
    round: int
    shard: int
    attempt: int
    volunteer: str
    claimed_block: int
    committed_block: int | None
    outcome: str  # "training", "pending" (committed, no verdict yet), "accepted", "slashed" or "expired"
    reward: str
    slashed: str  # the stake slashed, or the lease penalty of an expired attempt
    disputed: bool
    verdicts: list[VerdictOut]
    trace_cid: str | None
    losses: list[float] | None = None  # training loss per step, from the trace manifest (None: not committed/readable)
    numerics: Numerics | None = None  # the numeric class its trace manifest records
    # Trained from a fresh optimizer: its shard's carried state was not served (TraceManifest.fresh_start).
    fresh_start: bool | None = None
    reason: str | None = None  # why it was slashed or expired


class PaymentOut(_Out):
    block: int
    account: str
    amount: str
    kind: str  # one of ledger.earnings.KINDS ("task reward", "verifier fee", "challenge", "compensation", …)
    task_id_hex: str


class EscrowStepOut(_Out):
    """The bounty's escrow after a block that moved it, and that block's events that can move escrow."""

    block: int
    escrow: str
    change: str  # since the previous step (signed)
    events: list[str]


class BountyHistoryOut(_Out):
    attempts: list[AttemptOut]
    payments: list[PaymentOut]
    escrow: list[EscrowStepOut] = []


class VolunteerPaymentOut(PaymentOut):
    bounty_id: int


class VolunteerOut(_Out):
    address: str
    claimed: int
    accepted: int
    slashed: int
    earned: str
    slashed_amount: str
    tasks: list[int]
    payments: list[VolunteerPaymentOut] = []
