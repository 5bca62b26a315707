"""The auditor: rebuilds a bounty's on-chain trail from the event index, checks every commitment's trace
against the content store, and independently replays sampled segments with the verifiers' own code.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.chainview import ChainView
from ledger.index import Event, EventIndex
from protocol.challenge import draw, draw_seed
from protocol.cid import b58decode
from protocol.manifests import TraceManifest
from protocol.merkle import merkle_proof, verify_proof
from protocol.ipfs import ContentUnavailable
from protocol.store import ContentError
from protocol.verify import verify_segment

OUTCOMES = ("TaskAccepted", "TaskSlashed", "LeaseExpired")


@dataclass
class CommitRecord:
    task_id: int
    attempt: int
    volunteer: str
    block: int
    trace_root: str
    trace_cid: str
    outcome: str  # accepted | slashed | pending
    verdicts: list[bool] = field(default_factory=list)
    disputed_segment: int | None = None
    proof_problems: list[str] = field(default_factory=list)
    trace: TraceManifest | None = None


@dataclass
class Replay:
    """The auditor's replay of one commit, against what the chain decided about it. A checked commit agrees
    when the replay reaches the verifiers' verdict; an unchecked one that fails is a cheat the sampling let
    through (a finding, but not a wrong verdict: nobody was asked to check it)."""

    task_id: int
    attempt: int
    volunteer: str
    checked: bool
    segments: list[int]
    failed: list[int]
    reason: str
    outcome: str
    agrees: bool


@dataclass
class AuditReport:
    subject: str
    commits: list[CommitRecord]
    events: list[Event]
    replays: list[Replay]

    @property
    def proof_problems(self) -> int:
        return sum(len(c.proof_problems) for c in self.commits)

    @property
    def disagreements(self) -> int:
        """Checked commits whose on-chain verdict the auditor's replay contradicts."""
        return sum(r.checked and not r.agrees for r in self.replays)

    @property
    def unchecked_cheats(self) -> int:
        """Unchecked, accepted commits whose replay fails."""
        return sum(not r.checked and not r.agrees for r in self.replays)

    @property
    def findings(self) -> int:
        """What makes an audit fail. A proof problem alone is not one: a slashed commit may rightly have them."""
        return self.disagreements + self.unchecked_cheats

    def as_dict(self) -> dict[str, Any]:
        commits = [{k: v for k, v in asdict(c).items() if k != "trace"} for c in self.commits]
        return {"subject": self.subject, "commits": commits, "replays": [asdict(r) for r in self.replays],
                "proof_problems": self.proof_problems, "disagreements": self.disagreements,
                "unchecked_cheats": self.unchecked_cheats,
                "events": [{"block": e.block, "name": e.name, "args": e.args} for e in self.events]}  # fmt: skip


def commits_of(events: list[Event]) -> list[CommitRecord]:
    """One record per commit, each with the outcome and attestations that followed it (events are ordered)."""
    records: list[CommitRecord] = []
    open_by_task: dict[int, CommitRecord] = {}
    attempts: dict[int, int] = {}
    for e in events:
        task_id = int(e.args["taskId"]) if "taskId" in e.args else None
        if task_id is None:
            continue
        if e.name == "TaskClaimed":
            attempts[task_id] = int(e.args["attempt"])
        elif e.name == "TaskCommitted":
            record = CommitRecord(task_id, attempts.get(task_id, 0), e.args["volunteer"], e.block, e.args["traceRoot"],
                                  e.args["traceCid"], "pending")  # fmt: skip
            records.append(record)
            open_by_task[task_id] = record
        elif task_id in open_by_task:
            record = open_by_task[task_id]
            if e.name == "VerdictAttested":
                record.verdicts.append(bool(e.args["passed"]))
            elif e.name == "TaskDisputed":
                record.disputed_segment = int(e.args["segment"])
            elif e.name in OUTCOMES:
                record.outcome = {"TaskAccepted": "accepted", "TaskSlashed": "slashed"}.get(e.name, "expired")
                del open_by_task[task_id]
    return records


def check_proofs(view: ChainView, record: CommitRecord) -> None:
    """Trace manifest retrievable and bound to the committed root; every leaf proves into the root; every
    checkpoint's committed hash is the digest its CID names."""
    try:
        trace = TraceManifest.parse(view.store.get(record.trace_cid, max_bytes=1 << 20))
    except ContentUnavailable:
        raise  # the auditor's own daemon is down: a finding about the volunteer would be false
    except ContentError as exc:
        record.proof_problems.append(f"trace unavailable: {exc}")
        return
    record.trace = trace
    root = bytes.fromhex(record.trace_root[2:])
    if trace.trace_root() != root:
        record.proof_problems.append("trace manifest does not hash to the committed root")
        return
    leaves = trace.leaves()
    for i, ref in enumerate(trace.checkpoints):
        if not verify_proof(merkle_proof(leaves, i), root, leaves[i]):
            record.proof_problems.append(f"leaf {i}: Merkle proof fails")
        if b58decode(ref.cid)[2:].hex() != ref.hash[2:]:
            record.proof_problems.append(f"checkpoint {i}: CID {ref.cid} does not carry the committed hash")


def drawn_segments(view: ChainView, record: CommitRecord) -> list[int]:
    """The segments the contract sampled for this commit, recomputed from chain history: the seed is the
    hash of the block after the commit mixed with the task id and attempt (BountyMarket._draw)."""
    raw = view.market.bounty(record.task_id >> 64).raw
    segments, picks = int(raw["segmentsPerTask"]), int(raw["segmentsPerCheck"])
    block_hash = bytes(view.market.w3.eth.get_block(record.block + 1)["hash"])
    _, mask = draw(draw_seed(block_hash, record.task_id, record.attempt), 0, segments, picks)
    if record.disputed_segment is not None and record.disputed_segment not in mask:
        mask.append(record.disputed_segment)
    return sorted(mask)


def _replay(view: ChainView, record: CommitRecord, segments: list[int]) -> tuple[list[int], str]:
    assert record.trace is not None
    ctx = view.round_of_task(record.task_id)
    refs = record.trace.checkpoints
    failed, reasons = [], []
    for segment in segments:
        try:
            start = view.store.get(refs[segment].cid)
            end = view.store.get(refs[segment + 1].cid) if ctx.spec.replay.mode != "exact" else None
            verdict = verify_segment(ctx.spec, ctx.workload, view.shard(record.task_id), view.seed(record.task_id),
                                     record.trace, bytes.fromhex(record.trace_root[2:]), segment, start, end)  # fmt: skip
            ok, reason = verdict.passed, verdict.reason
        except ContentUnavailable:
            raise
        except ContentError as exc:
            ok, reason = False, f"checkpoint unavailable: {exc}"
        if not ok:
            failed.append(segment)
            reasons.append(f"segment {segment}: {reason}")
    return failed, "; ".join(reasons) or "every replayed segment reproduced its checkpoint"


def replay_sample(view: ChainView, records: list[CommitRecord], budget: int, rng: random.Random) -> list[Replay]:
    """Replays commits in random order until `budget` segments are spent. A checked commit (verdicts or a
    slash) replays the segments the chain sampled, so the auditor re-decides exactly what the verifiers
    decided; an unchecked one replays a random segment, to catch cheats that went unchecked."""
    replays: list[Replay] = []
    for record in rng.sample(records, len(records)):
        if budget <= 0:
            break
        if record.outcome not in ("accepted", "slashed"):
            continue
        checked = bool(record.verdicts) or record.outcome == "slashed"
        if record.trace is None or record.proof_problems:
            # Nothing verifiable was published: only a slash agrees with that.
            replays.append(Replay(record.task_id, record.attempt, record.volunteer, checked, [], [],
                                  "trace unavailable or inconsistent", record.outcome, record.outcome == "slashed"))  # fmt: skip
            continue
        n_segments = len(record.trace.checkpoints) - 1
        segments = drawn_segments(view, record) if checked else [rng.randrange(n_segments)]
        if len(segments) > budget:
            break  # a partial re-check of a verdict would prove nothing either way
        budget -= len(segments)
        failed, reason = _replay(view, record, segments)
        agrees = bool(failed) if record.outcome == "slashed" else not failed
        replays.append(Replay(record.task_id, record.attempt, record.volunteer, checked, segments, failed, reason,
                              record.outcome, agrees))  # fmt: skip
    return replays


def audit(index: EventIndex, view: ChainView, *, bounty_id: int | None = None, task_id: int | None = None,
          account: str | None = None, replay: int = 0, seed: int | None = None) -> AuditReport:  # fmt: skip
    index.sync()
    if task_id is not None:
        events, subject = index.events(task_id=task_id), f"task {task_id:#x}"
    elif bounty_id is not None:
        events, subject = index.events(bounty_id=bounty_id), f"bounty {bounty_id}"
    else:
        assert account is not None
        events, subject = index.events(account=account), f"node {account}"
    task_events = events
    if account is not None:  # a node's commits: follow each of its tasks' full history
        task_ids = {int(e.args["taskId"]) for e in events if "taskId" in e.args}
        task_events = sorted((e for t in task_ids for e in index.events(task_id=t)), key=lambda e: (e.block, e.log_index))
    records = commits_of(task_events)
    if account is not None:
        records = [r for r in records if r.volunteer.lower() == account.lower()]
    for record in records:
        check_proofs(view, record)
    return AuditReport(subject, records, events, replay_sample(view, records, replay, random.Random(seed)))
