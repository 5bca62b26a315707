"""Judging inside a bisection game: what the state at a step of a contested stretch should be.

Three parties use this. The volunteer computes the midpoint state it posts; the challenger decides whether it
agrees with that state; the referee recomputes the one step left. Each replays from a state both sides
already agree on (the volunteer's own bytes at `loStep`), so differences never accumulate across the stretch:
within the volunteer's numeric class the comparison is bit for bit (hashes), across classes it is the same
distance test a spot-check uses, with the tolerance measured when the round opened.

States are found by their hash: a checkpoint's CID is in the trace manifest, a midpoint's in its
GameBisected event. Untrusted content never raises out of `judge_stretch`; it becomes a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from judge.context import ChainView
from ledger.market import Game, Task
from protocol.errors import ContentError, ContentMissing
from protocol.manifests import TraceManifest, trace_manifest_limit
from protocol.merkle import merkle_proof
from protocol.numerics import environment, same_class
from protocol.tensors import Tensors, canonical_hash, hash_as_read, to_bytes
from protocol.training import replay_stretch
from protocol.verify import (
    CROSS_CLASS_FAIL_DISTANCE,
    checkpoint_limit,
    normalized_distance,
    parse_checkpoint,
    state_distance,
)


@dataclass(frozen=True)
class StretchVerdict:
    """Whether the volunteer's state at `hi_step` follows from its state at `lo_step`."""

    follows: bool
    reason: str
    distance: float | None = None
    unavailable: bool = False  # a state could not be fetched (yet): no ruling should rest on this verdict
    undecided: bool = False  # not bit for bit, and nothing measured tells an honest difference from a cheat


TraceStep = tuple[int, bytes, list[bytes]]  # (step, state hash, Merkle proof): the contract's TraceStep


def hex_hash(value: bytes) -> str:
    return "0x" + value.hex()


def trace_of(view: ChainView, task: Task) -> TraceManifest:
    ctx = view.round_of_task(task.task_id)
    limit = trace_manifest_limit(ctx.spec.steps_per_task, ctx.spec.segments)
    return TraceManifest.parse(view.store.get(view.commit(task.task_id, task).trace_cid, max_bytes=limit), limit)


def segment_claim(trace: TraceManifest, segment: int) -> tuple[TraceStep, TraceStep]:
    """The two committed checkpoints around `segment`, with their proofs: what `contest` takes."""
    leaves = trace.leaves()
    ends = []
    for index in (segment, segment + 1):
        ref = trace.checkpoints[index]
        ends.append((ref.step, bytes.fromhex(ref.hash[2:]), merkle_proof(leaves, index)))
    return ends[0], ends[1]


def state_cids(view: ChainView, task: Task, trace: TraceManifest) -> dict[str, str]:
    """Hash → CID of every state of the current attempt: committed checkpoints and posted midpoints."""
    cids = {ref.hash: ref.cid for ref in trace.checkpoints}
    for event in view.market.logs("GameBisected", task.commit_block, filters={"taskId": task.task_id}):
        cids.setdefault(hex_hash(bytes(event["args"]["midHash"])), str(event["args"]["stateCid"]))
    return cids


def load_state(
    view: ChainView, task_id: int, cids: dict[str, str], state_hash: bytes, step: int, fresh: bool = False
) -> Tensors:
    """The task's state with `state_hash` at `step`, checked against its hash (ContentError when unavailable or
    wrong). The start of the task (step 0) is built, as everyone can (ChainView.start_state), never fetched as a
    checkpoint. `fresh`: the trace's fresh_start."""
    ctx = view.round_of_task(task_id)
    if step == 0 and state_hash == view.start_hash(task_id, fresh):
        return view.start_state(task_id, fresh)
    cid = cids.get(hex_hash(state_hash))
    if cid is None:
        raise ContentError(f"no published state has hash {hex_hash(state_hash)[:18]}…")
    data = view.store.get_buffer(cid, checkpoint_limit(ctx.spec, ctx.workload))
    tensors = parse_checkpoint(data, ctx.spec, ctx.workload, step, view.carried_steps(task_id, fresh))
    if hash_as_read(data, tensors, cid) != state_hash:
        raise ContentError(f"{cid} does not hash to the state it was posted as")
    return tensors


def state_at(view: ChainView, task: Task, start: Tensors, start_step: int, step: int) -> Tensors:
    """The trainer's own steps from `start` (the state at `start_step`) up to `step`."""
    ctx = view.round_of_task(task.task_id)
    return replay_stretch(
        ctx.spec, view.shard(task.task_id), view.seed(task.task_id), start, start_step, step - start_step, ctx.workload
    )


def judge_stretch(
    view: ChainView, task: Task, trace: TraceManifest, lo: tuple[int, bytes], hi: tuple[int, bytes]
) -> StretchVerdict:
    """Replays the volunteer's state at lo[0] (hash lo[1]) up to hi[0] and compares with its claimed hi[1]."""
    ctx = view.round_of_task(task.task_id)
    cids = state_cids(view, task, trace)
    exact = ctx.spec.replay.mode == "exact"
    in_class = same_class(trace.numerics, environment(ctx.spec))
    try:
        start = load_state(view, task.task_id, cids, lo[1], lo[0], trace.fresh_start)
    except ContentError as exc:
        missing = isinstance(exc, ContentMissing)
        return StretchVerdict(False, f"the agreed state at step {lo[0]} is unusable: {exc}", unavailable=missing)
    try:
        replayed = state_at(view, task, start, lo[0], hi[0])
    except (ArithmeticError, RuntimeError, ValueError) as exc:
        return StretchVerdict(False, f"replay failed from the agreed state: {exc.__class__.__name__}: {exc}"[:300])
    if canonical_hash(replayed) == hi[1]:
        # Kept in our own store: the next move starts from this state, whether or not the volunteer serves it.
        view.store.put(to_bytes(replayed))
        return StretchVerdict(True, f"steps {lo[0]}→{hi[0]} reproduced bit for bit")
    if exact and in_class:
        return StretchVerdict(False, f"steps {lo[0]}→{hi[0]} diverged within the volunteer's numeric class")
    try:
        claimed = load_state(view, task.task_id, cids, hi[1], hi[0], trace.fresh_start)
    except ContentError as exc:
        missing = isinstance(exc, ContentMissing)
        return StretchVerdict(False, f"the claimed state at step {hi[0]} is unusable: {exc}", unavailable=missing)
    if exact:  # across classes: weights and optimizer state, as δ× was measured
        return ruling(lo[0], hi[0], state_distance(replayed, claimed, start), ctx.manifest.cross_class_tolerance)
    return ruling(lo[0], hi[0], normalized_distance(replayed, claimed, start), ctx.spec.replay.tolerance)


def ruling(lo_step: int, hi_step: int, distance: float, tolerance: float | None) -> StretchVerdict:
    """A stretch that was not reproduced bit for bit. Within the tolerance it follows; beyond any kernel
    difference (CROSS_CLASS_FAIL_DISTANCE) it does not; in between nothing measured says which: tolerances are
    measured over whole segments and a game's stretch is a few steps (honest one-step distances across classes
    were measured at 3-5x the segment δ× in the multi-host test), so the verdict is undecided and no ruling may
    rest on it."""
    stretch = f"steps {lo_step}→{hi_step}"
    if tolerance is not None and distance <= tolerance:
        return StretchVerdict(True, f"{stretch}: distance {distance:.3g} within tolerance {tolerance:.3g}", distance)
    if distance > CROSS_CLASS_FAIL_DISTANCE:
        return StretchVerdict(
            False,
            f"{stretch}: distance {distance:.3g}, beyond any kernel difference (> {CROSS_CLASS_FAIL_DISTANCE})",
            distance,
        )
    return StretchVerdict(
        False,
        f"{stretch}: distance {distance:.3g}, over the segments' tolerance but within a kernel difference: undecided",
        distance,
        undecided=True,
    )


def midpoint_verdict(view: ChainView, task: Task, trace: TraceManifest, game: Game) -> StretchVerdict:
    """The challenger's question: does the volunteer's posted midpoint follow from the agreed state?"""
    return judge_stretch(view, task, trace, (game.lo_step, game.lo_hash), (game.mid_step, game.mid_hash))


def last_step_verdict(view: ChainView, task: Task, trace: TraceManifest, game: Game) -> StretchVerdict:
    """The referee's question: does the volunteer's state at hiStep follow from the agreed one a step before?"""
    return judge_stretch(view, task, trace, (game.lo_step, game.lo_hash), (game.hi_step, game.hi_hash))
