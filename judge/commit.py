"""Checks of committed work: the cheap audit every commit gets, and the spot-check replay.

Untrusted volunteer content never raises out of here: every problem becomes a reason in the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from judge.context import ChainView, Commit, RoundContext
from ledger.market import Market, Task
from protocol.cid import b58decode
from protocol.compression import CompressedUpdate, send
from protocol.errors import ContentError, ContentMissing
from protocol.manifests import TraceManifest, trace_manifest_limit
from protocol.tensors import Tensors, canonical_hash, hash_as_read, tensors_cid, to_bytes
from protocol.training import MODEL_PREFIX, deterministic, inner_state
from protocol.verify import (
    SegmentVerdict,
    checkpoint_limit,
    needs_end,
    parse_checkpoint,
    parse_update,
    update_limit,
    verify_segment,
)


@dataclass
class CommitAudit:
    task_id: int
    problems: list[str] = field(default_factory=list)
    trace: TraceManifest | None = None
    commit: Commit | None = None  # the attempt this audit is about (replays check against its root)
    update: CompressedUpdate | None = None  # what the update stands for, each tensor decompressed when read
    missing: bool = False  # some content was not (yet) retrievable, as opposed to wrong
    # The trace held and the update (audit_update) or the last checkpoint (audit_commit) was asked for: problems
    # from here on are about content the committee's audit (audit_trace) does not read.
    past_trace: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def fresh(self) -> bool:
        """The trace says its task started without what its round carries for the shard (TraceManifest.fresh_start)."""
        return self.trace is not None and self.trace.fresh_start


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
    """The full audit of a commit, for whoever rules on a dispute of it (the referee, a disputed committee):
    audit_trace, then the last checkpoint read from the volunteer and the update and what the shard carries on
    checked to be made of it (check_derivation). Costs a download of the last checkpoint and hashing, no
    training."""
    return audit_recorded(view, view.commit(task_id, task))


def audit_update(view: ChainView, task_id: int, task: Task | None = None) -> CommitAudit:
    """The coordinator's audit of a commit it makes the next round of: audit_trace, then the update as sent (about
    one byte per parameter with int8), never the last checkpoint. Whether the update and what the shard carries
    on (named by the trace) are made of the trace's end is checked with the last segment's replay, sampled like
    every other step of the work (replay_segments)."""
    audit = _audit_trace(view, view.commit(task_id, task))
    if not audit.ok:
        return audit
    assert audit.commit is not None
    audit.past_trace = True
    ctx = view.round_of_task(task_id)
    with _content_problems(audit, "update"):
        data = view.store.get_buffer(audit.commit.update_cid, update_limit(ctx.spec, ctx.workload))
        audit.update = parse_update(data, ctx.spec, ctx.workload, view.round_weights(ctx))
    return audit


@contextlib.contextmanager
def _content_problems(audit: CommitAudit, what: str) -> Iterator[None]:
    """Untrusted content never raises out of an audit: what is not (yet) served, or is wrong, becomes a problem."""
    try:
        yield
    except ContentMissing as exc:
        audit.missing = True
        audit.problems.append(f"{what} unavailable: {exc}")
    except ContentError as exc:
        audit.problems.append(f"{what} malformed: {exc}")


def audit_trace(view: ChainView, task_id: int, task: Task | None = None) -> CommitAudit:
    """The committee's cheap audit: the trace manifest alone, bound to the commitment and starting where the
    round starts the shard. No checkpoint is downloaded: whether the update is made of the trace's end is checked
    with the last segment, whose replay yields that end (replay_segments), like any other sampled step of the
    work; the coordinator reads the update it aggregates (audit_update) and disputes one it cannot use, and a
    disputed commit is audited in full (verifier.worker)."""
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
    with _content_problems(audit, "trace"):
        # Larger content is refused unread; the limit follows from the spec's model, never a fixed cap.
        last_data = view.store.get_buffer(last_ref.cid, checkpoint_limit(ctx.spec, ctx.workload))
        carried = view.carried_steps(commit.task_id, audit.fresh)
        last = parse_checkpoint(last_data, ctx.spec, ctx.workload, last_ref.step, carried)
        if "0x" + hash_as_read(last_data, last, last_ref.cid).hex() != last_ref.hash:
            audit.problems.append("the last checkpoint does not match its committed hash")
        else:
            check_derivation(view, audit, last)
        if audit.ok:  # made of the end, and served: the round is made of the volunteer's copy (audit_update)
            view.store.get_buffer(commit.update_cid, update_limit(ctx.spec, ctx.workload))
    return audit


def _audit_trace(view: ChainView, commit: Commit) -> CommitAudit:
    task_id = commit.task_id
    audit = CommitAudit(task_id, commit=commit)
    with _content_problems(audit, "trace"):
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
        if trace.update_cid != commit.update_cid or b58decode(commit.update_cid)[2:] != commit.update_hash:
            audit.problems.append("the update's CID is not the committed update's")
        audit.problems += _carried_named(trace, ctx)
        if audit.problems:
            return audit
        # Checkpoint 0 with nothing carried is the round's model, known to everyone who holds the round: its
        # committed hash is compared with theirs and the checkpoint is never downloaded. With a carried optimizer
        # state (8 bytes per parameter, held by whoever trained the shard before) the start is checked by segment
        # 0's replay instead, which builds it from the round (a planted start is one faked segment).
        if view.carried(task_id, trace.fresh_start) is not None:
            return audit
        if trace.checkpoints[0].hash != "0x" + view.start_hash(task_id, trace.fresh_start).hex():
            # A planted optimizer state would steer the whole task while every segment's replay from it agrees.
            audit.problems.append("checkpoint 0 is not the round's model (a stale, foreign or planted start)")
    return audit


def _carried_named(trace: TraceManifest, ctx: RoundContext) -> list[str]:
    """Whether the trace names what its shard carries on exactly where the spec carries something."""
    spec = ctx.spec
    problems = []
    carries_state = spec.optimizer.carry_state  # only with an optimizer that has state (TrainingSpec checks)
    if (trace.carry_cid is not None) != carries_state:
        problems.append(
            "trace manifest names no end optimizer state, which the spec carries"
            if carries_state
            else "trace manifest names an end optimizer state the spec does not carry"
        )
    compressed = spec.compression.method != "none"
    if (trace.error_cid is not None) != compressed:
        problems.append(
            "trace manifest names no compression error, which the spec carries"
            if compressed
            else "trace manifest names a compression error the spec does not carry"
        )
    return problems


def check_derivation(view: ChainView, audit: CommitAudit, last: Tensors) -> None:
    """Whether the committed update and what the shard carries on are made of the trace's end `last` (tensors
    already checked to be the committed last checkpoint): the update is its weights − the round's model, sent
    under the spec's compression with the shard's carried error; the trace's carry_cid names its optimizer part
    and error_cid what the update left unsent. All are pure functions of those, so they are recomputed here and
    only their hashes compared: the volunteer's copies are never downloaded. On success the audit keeps the update."""
    assert audit.commit is not None and audit.trace is not None
    task_id, trace = audit.task_id, audit.trace
    ctx = view.round_of_task(task_id)
    compression = ctx.spec.compression
    weights, error = view.round_weights(ctx), view.update_error(task_id, trace.fresh_start)
    with deterministic(ctx.spec.replay):  # on the spec's threads, as the trainer sends it (node.trainer.train_task)
        delta = {n: last[MODEL_PREFIX + n] - w for n, w in weights.items()}
        sent = send(delta, error, compression)
    if canonical_hash(sent.content) != audit.commit.update_hash:
        audit.problems.append(
            "update is not the last checkpoint − the round's model"
            + (", compressed with its shard's carried error" if compression.method != "none" else "")
        )
        return
    state = inner_state(last) if ctx.spec.optimizer.carry_state else {}
    if (tensors_cid(state) if state else None) != trace.carry_cid:
        audit.problems.append("the trace's carried optimizer state is not the last checkpoint's")
    if (None if sent.error is None else tensors_cid(sent.error)) != trace.error_cid:
        audit.problems.append("the trace's compression error is not what the update left unsent")
    if not audit.problems:  # kept as sent: a round's close holds every shard's update at once (CompressedUpdate)
        audit.update = CompressedUpdate(sent.content, weights, compression)


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
    fresh = trace.fresh_start
    limit = checkpoint_limit(ctx.spec, ctx.workload)
    for segment in segments:
        refs = trace.checkpoints
        try:
            # Checkpoint 0 is the round's start, built here (its committed hash was audited against it); every
            # other start is the volunteer's to serve.
            start = bytearray(to_bytes(view.start_state(task_id, fresh))) if segment == 0 else None
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
            carried=view.carried_steps(task_id, fresh),
            read_by_cid=segment > 0,  # a built start is hashed, not taken for its CID
        )
        if verdict.passed and segment == len(refs) - 2 and verdict.end is not None:
            # The last segment's check includes what the work was for: the update made of the end it reached.
            derived = CommitAudit(task_id, commit=commit, trace=trace)
            check_derivation(view, derived, verdict.end)
            if derived.problems:
                verdict = SegmentVerdict(segment, False, "; ".join(derived.problems))
        verdicts.append(verdict)
    return verdicts
