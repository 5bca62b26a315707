"""Checks of committed work: the cheap audit every commit gets, and the spot-check replay.

Untrusted volunteer content never raises out of here: every problem becomes a reason in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from judge.context import ChainView, Commit
from ledger.market import Market, Task
from protocol.compression import CompressedUpdate, send
from protocol.errors import ContentError, ContentMissing
from protocol.manifests import TraceManifest, trace_manifest_limit
from protocol.tensors import Tensors, canonical_hash, hash_as_read, to_bytes
from protocol.training import MODEL_PREFIX, inner_state
from protocol.verify import (
    SegmentVerdict,
    checkpoint_limit,
    needs_end,
    parse_checkpoint,
    verify_segment,
)


@dataclass
class CommitAudit:
    task_id: int
    problems: list[str] = field(default_factory=list)
    trace: TraceManifest | None = None
    commit: Commit | None = None  # the attempt this audit is about (replays check against its root)
    update: CompressedUpdate | None = None  # what the update stands for, each tensor decompressed when read
    # The optimizer state the last checkpoint ends with, kept when the spec carries it into the next round.
    end_state: Tensors | None = None
    # With compression: what the update did not send, carried into the shard's next update (error feedback).
    error: Tensors | None = None
    missing: bool = False  # some content was not (yet) retrievable, as opposed to wrong
    # The trace held and the last checkpoint was asked for (audit_commit): problems from here on are about the end
    # and the update made of it, which the committee's audit (audit_trace) does not read.
    past_trace: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def trace_overdue(market: Market, task: Task, timeout_s: int) -> bool:
    """A commit's trace may be missing for a while (still uploading); after `timeout_s` it counts as never
    uploaded. Chain time, so every verifier reaches the same decision."""
    return market.now() >= task.deadline + timeout_s


def same_attempt(current: Task, judged: Task) -> bool:
    """Whether the task still holds the commit that was judged. `attest` and `dispute` act on the task's
    current attempt, so a verdict reached on an attempt that was settled and re-committed meanwhile (a replay
    takes seconds) must not be sent: it would land on another, possibly honest, volunteer's commit."""
    return (current.attempt, current.commit_block, current.volunteer) == (
        judged.attempt,
        judged.commit_block,
        judged.volunteer,
    )


def audit_commit(view: ChainView, task_id: int, task: Task | None = None) -> CommitAudit:
    """The full cheap audit of a commit, for whoever makes the next round of it (the coordinator) or rules on it
    (the referee): audit_trace, then the last checkpoint read from the volunteer and the update checked to be made
    of it (check_derivation). Costs a download of the last checkpoint and hashing, no training."""
    return audit_recorded(view, view.commit(task_id, task))


def audit_trace(view: ChainView, task_id: int, task: Task | None = None) -> CommitAudit:
    """The committee's cheap audit: the trace manifest alone, bound to the commitment and starting where the
    round starts the shard. No checkpoint is downloaded: whether the update is made of the trace's end is checked
    with the last segment, whose replay yields that end (replay_segments), like any other sampled step of the
    work; the coordinator, which reads the end anyway to carry the shard on, disputes the commit when it is not
    (coordinator.rounds), and a disputed commit is audited in full (verifier.worker)."""
    return _audit_trace(view, view.commit(task_id, task))


def audit_recorded(view: ChainView, commit: Commit) -> CommitAudit:
    """audit_commit of a commit as the chain recorded it, current or past (the auditor re-checks history)."""
    audit = _audit_trace(view, commit)
    if not audit.ok:
        return audit
    assert audit.trace is not None
    audit.past_trace = True
    ctx = view.round_of_task(commit.task_id)
    last_ref = audit.trace.checkpoints[-1]
    try:
        # Larger content is refused unread; the limit follows from the spec's model, never a fixed cap.
        last_data = view.store.get_buffer(last_ref.cid, checkpoint_limit(ctx.spec, ctx.workload))
        last = parse_checkpoint(last_data, ctx.spec, ctx.workload, last_ref.step, view.carried_steps(commit.task_id))
        if "0x" + hash_as_read(last_data, last, last_ref.cid).hex() != last_ref.hash:
            audit.problems.append("the last checkpoint does not match its committed hash")
        else:
            check_derivation(view, audit, last)
    except ContentMissing as exc:
        audit.missing = True
        audit.problems.append(f"trace unavailable: {exc}")
    except ContentError as exc:
        audit.problems.append(f"trace malformed: {exc}")
    return audit


def _audit_trace(view: ChainView, commit: Commit) -> CommitAudit:
    task_id = commit.task_id
    audit = CommitAudit(task_id, commit=commit)
    try:
        ctx = view.round_of_task(task_id)
        trace_max = trace_manifest_limit(ctx.spec.steps_per_task, ctx.spec.segments)
        trace = TraceManifest.parse(view.store.get(commit.trace_cid, max_bytes=trace_max), trace_max)
        audit.trace = trace
        spec = ctx.spec
        if trace.task_id != task_id or trace.volunteer.lower() != commit.volunteer.lower():
            audit.problems.append("trace manifest names another task or volunteer")
        if trace.trace_root() != commit.trace_root:
            audit.problems.append("trace manifest does not hash to the committed trace root")
        if [c.step for c in trace.checkpoints] != [i * spec.checkpoint_interval for i in range(spec.segments + 1)]:
            audit.problems.append("checkpoint steps do not follow the spec")
        if audit.problems:
            return audit
        # Checkpoint 0 is known to everyone who holds the round: the round's model and the shard's carried
        # optimizer state. Its committed hash is compared with theirs; the checkpoint is never downloaded.
        if trace.checkpoints[0].hash != "0x" + view.start_hash(task_id).hex():
            # A planted optimizer state would steer the whole task while every segment's replay from it agrees.
            audit.problems.append(
                "checkpoint 0 is not the round's model with its shard's carried optimizer state "
                "(a stale, foreign or planted start)"
            )
    except ContentMissing as exc:
        audit.missing = True
        audit.problems.append(f"trace unavailable: {exc}")
    except ContentError as exc:
        audit.problems.append(f"trace malformed: {exc}")
    return audit


def check_derivation(view: ChainView, audit: CommitAudit, last: Tensors) -> None:
    """Whether the committed update is made of the trace's end `last` (tensors already checked to be the committed
    last checkpoint): its weights − the round's model, sent under the spec's compression with the shard's carried
    error. The update is a pure function of those, so it is recomputed here and only its hash compared: the
    volunteer's copy is never downloaded. On success the audit keeps what the next round is made of."""
    assert audit.commit is not None
    task_id = audit.task_id
    ctx = view.round_of_task(task_id)
    compression = ctx.spec.compression
    weights = view.round_weights(ctx)
    delta = {n: last[MODEL_PREFIX + n] - w for n, w in weights.items()}
    sent = send(delta, view.update_error(task_id), compression)
    if canonical_hash(sent.content) != audit.commit.update_hash:
        audit.problems.append(
            "update is not the last checkpoint − the round's model"
            + (", compressed with its shard's carried error" if compression.method != "none" else "")
        )
        return
    # Kept as sent: a round's close holds every shard's update at once (CompressedUpdate says why).
    audit.update, audit.error = CompressedUpdate(sent.content, weights, compression), sent.error
    if ctx.spec.optimizer.carry_state:
        audit.end_state = inner_state(last) or None


def replay_segments(view: ChainView, audit: CommitAudit, segments: list[int] | tuple[int, ...]) -> list[SegmentVerdict]:
    """Replays the sampled segments of an audited commit (the expensive part of a spot-check). Verifiers and
    the auditor both call this: an outage of our own store raises (StoreUnavailable), never a verdict."""
    commit, trace = audit.commit, audit.trace
    if commit is None or trace is None:
        return [SegmentVerdict(s, False, "no trace to replay") for s in segments]
    task_id = audit.task_id
    ctx = view.round_of_task(task_id)
    verdicts = []
    # Exact mode in the volunteer's own numeric class compares the replay's hash with the committed one.
    end_needed = needs_end(ctx.spec, trace)
    limit = checkpoint_limit(ctx.spec, ctx.workload)
    for segment in segments:
        refs = trace.checkpoints
        try:
            # Checkpoint 0 is the round's start, built here (its committed hash was audited against it); every
            # other start is the volunteer's to serve.
            start = bytearray(to_bytes(view.start_state(task_id))) if segment == 0 else None
            start = start or view.store.get_buffer(refs[segment].cid, limit)
            end = view.store.get_buffer(refs[segment + 1].cid, limit) if end_needed else None
        except (ContentError, IndexError) as exc:
            missing = isinstance(exc, ContentMissing)
            reason = f"checkpoint {'unavailable' if missing else 'unusable'}: {exc}"
            verdicts.append(SegmentVerdict(segment, False, reason, unavailable=missing))
            continue
        verdict = verify_segment(
            ctx.spec,
            ctx.workload,
            view.shard(task_id),
            view.seed(task_id),
            trace,
            commit.trace_root,
            segment,
            start,
            end,
            cross_class_tolerance=ctx.manifest.cross_class_tolerance,
            carried=view.carried_steps(task_id),
            read_by_cid=segment > 0,  # a built start is hashed, not taken for its CID
        )
        if verdict.passed and segment == len(refs) - 2 and verdict.end is not None:
            # The last segment's check includes what the work was for: the update made of the end it reached.
            derived = CommitAudit(task_id, commit=commit)
            check_derivation(view, derived, verdict.end)
            if derived.problems:
                verdict = SegmentVerdict(segment, False, "; ".join(derived.problems))
        verdicts.append(verdict)
    return verdicts
