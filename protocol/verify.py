"""Spot-check verification: the code verifier workers and the auditor CLI both run.

A segment passes when its start checkpoint is the one in the committed trace and replaying the segment
from it reproduces the committed end: bit for bit (the same canonical hash) in exact mode, within the
normalized distance δ in tolerance mode.

Exact mode judges by hash only within a numeric class (protocol.numerics): a verifier whose fingerprint
differs from the one the volunteer recorded cannot tell rounding from cheating by a hash. It still replays;
bits that agree pass. Otherwise the distance decides against the round's cross-class tolerance δ×, which the
coordinator measured on this spec at intake across the classes it can reach, times a margin
(judge/calibration.py): within δ× passes, beyond fails. A round without δ× leaves the verifier only
CROSS_CLASS_FAIL_DISTANCE, far beyond any kernel difference: beyond it fails, below it the verifier abstains
(attests nothing; the contract never punishes a volunteer for verifiers that did not answer).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import torch

from protocol.compression import CompressedUpdate, check_encoded, encoded_layout
from protocol.errors import ContentError, ContentInvalid
from protocol.manifests import CheckpointRef, TraceManifest
from protocol.numerics import environment, same_class
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, canonical_hash, canonical_size, from_bytes, hash_as_read
from protocol.training import MODEL_PREFIX, OPTIM_PREFIX, deterministic, new_state, replay_segment
from protocol.workloads import Workload, resolve

Layout = dict[str, tuple[torch.dtype, tuple[int, ...]]]


# Honest training on another numeric class lands within 1.3e-3 of the claimed end after a segment (the worst
# measured: the MNIST CNN under another oneDNN ISA, 10 steps); half the segment's own movement is ~400× that.
CROSS_CLASS_FAIL_DISTANCE = 0.5


@dataclass(frozen=True)
class SegmentVerdict:
    segment: int
    passed: bool
    reason: str
    distance: float | None = None  # normalized distance, where it was measured
    abstained: bool = False  # the verifier cannot judge this segment (another numeric class): neither pass nor fail
    diverged: bool = False  # failed because the replay landed elsewhere (not unusable content): a game can prove it
    # failed because a checkpoint was not served (yet): judged again until the volunteer's time to serve is up
    unavailable: bool = False
    # On a pass, the segment's end state as committed: the replay where it reproduced the committed hash bit for
    # bit, else the end checkpoint read and checked against its hash. The last segment's end is the trace's end, of
    # which the update must be made (judge.commit.check_derivation): its checker has it without a download.
    end: Tensors | None = field(default=None, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        return not self.passed and not self.abstained


def checkpoint_layout(spec: TrainingSpec, workload: Workload, with_optimizer: bool) -> Layout:
    """Names, dtypes and shapes a checkpoint of this spec must have; anything else is refused unparsed."""
    return dict(_layout(spec.canonical_bytes(), with_optimizer))


def weights_layout(spec: TrainingSpec, workload: Workload) -> Layout:
    """Names, dtypes and shapes of the model's bare weights (a round model, an update): its parameter names."""
    layout = checkpoint_layout(spec, workload, with_optimizer=False)
    return {name[len(MODEL_PREFIX) :]: shape for name, shape in layout.items()}


@functools.lru_cache(maxsize=64)
def _layout(spec_bytes: bytes, with_optimizer: bool) -> tuple[tuple[str, tuple[torch.dtype, tuple[int, ...]]], ...]:
    # Cached by the spec's canonical bytes: building a model to read its shapes costs more than a replay step.
    spec = TrainingSpec.from_bytes(spec_bytes)
    layout: Layout = {}
    workload = resolve(spec.model)
    for name, p in new_state(spec, workload).model.named_parameters():
        shape = tuple(p.shape)
        layout[MODEL_PREFIX + name] = (p.dtype, shape)
        if not with_optimizer:
            continue
        if spec.optimizer.name == "adam":
            layout[f"{OPTIM_PREFIX}{name}.exp_avg"] = (p.dtype, shape)
            layout[f"{OPTIM_PREFIX}{name}.exp_avg_sq"] = (p.dtype, shape)
            layout[f"{OPTIM_PREFIX}{name}.step"] = (torch.float32, ())
        elif spec.optimizer.momentum > 0:
            layout[f"{OPTIM_PREFIX}{name}.momentum_buffer"] = (p.dtype, shape)
    return tuple(layout.items())


# Room for a longer header than ours (another honest encoder); the tensor data itself has an exact size.
HEADER_SLACK_BYTES = 64 * 1024


def checkpoint_limit(spec: TrainingSpec, workload: Workload) -> int:
    """The most bytes a checkpoint of this spec can honestly have (weights and optimizer state): every read
    of one is bounded by the spec's own model, never by a fixed cap an honest large model could exceed."""
    return canonical_size(checkpoint_layout(spec, workload, with_optimizer=True)) + HEADER_SLACK_BYTES


def update_limit(spec: TrainingSpec, workload: Workload) -> int:
    """The most bytes an update (weights only) of this spec can honestly have."""
    return canonical_size(checkpoint_layout(spec, workload, with_optimizer=False)) + HEADER_SLACK_BYTES


def parse_checkpoint(
    data: bytes | bytearray, spec: TrainingSpec, workload: Workload, step: int, carried: int | None = None
) -> Tensors:
    """A checkpoint at a task's `step`, checked against its layout. `carried`: the inner steps the optimizer
    state the task started from had counted (RoundManifest.inner_states), or None for a fresh optimizer, whose
    checkpoint 0 holds weights only."""
    tensors = from_bytes(data, checkpoint_layout(spec, workload, with_optimizer=step > 0 or carried is not None))
    # Adam's step counter enters its bias correction as 1 - beta**step: a forged -1 divides by zero inside
    # torch. An honest checkpoint at step k has counted exactly k steps, after those its state carried.
    counted = step + (carried or 0)
    for name, t in tensors.items():
        if name.endswith(".step") and float(t) != counted:
            raise ContentInvalid(f"{name} is {float(t):.6g}, but the checkpoint has counted {counted} steps")
    return tensors


def parse_update(data: bytes | bytearray, spec: TrainingSpec, workload: Workload, weights: Tensors) -> CompressedUpdate:
    """A sent update (what a commit's update CID names), checked against the layout the spec's compression gives
    its model's weights and held as sent (CompressedUpdate), decoded a tensor or slice at a time."""
    like = weights_layout(spec, workload)
    encoded = from_bytes(data, encoded_layout(like, spec.compression))
    try:
        check_encoded(encoded, like, spec.compression)
    except ValueError as exc:
        raise ContentInvalid(str(exc)) from None
    return CompressedUpdate(encoded, weights, spec.compression)


def inner_state_layout(spec: TrainingSpec, workload: Workload) -> Layout:
    """Names, dtypes and shapes of a carried optimizer state (RoundManifest.inner_states)."""
    layout = checkpoint_layout(spec, workload, with_optimizer=True)
    return {name: shape for name, shape in layout.items() if not name.startswith(MODEL_PREFIX)}


def parse_inner_state(data: bytes | bytearray, spec: TrainingSpec, workload: Workload, steps: int) -> Tensors:
    """A carried optimizer state that has counted `steps` inner steps, checked as a checkpoint's optimizer part."""
    tensors = from_bytes(data, inner_state_layout(spec, workload))
    for name, t in tensors.items():
        if name.endswith(".step") and float(t) != steps:
            raise ContentInvalid(f"{name} is {float(t):.6g}, but the state has counted {steps} steps")
    return tensors


def _weights(tensors: Tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for n, t in sorted(tensors.items()) if n.startswith(MODEL_PREFIX)])


def normalized_distance(replayed: Tensors, claimed: Tensors, start: Tensors) -> float:
    """‖ŵ − w_{i+1}‖ / ‖w_{i+1} − w_i‖ over the weights."""
    moved = float(torch.linalg.vector_norm(_weights(claimed) - _weights(start)))
    error = float(torch.linalg.vector_norm(_weights(replayed) - _weights(claimed)))
    if moved == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return error / moved


def state_distance(replayed: Tensors, claimed: Tensors, start: Tensors) -> float:
    """The largest normalized distance over the weights and over each kind of optimizer state (Adam's exp_avg
    and exp_avg_sq, SGD's momentum), each measured against its own movement over the segment. Across numeric
    classes a cheat must not hide in the optimizer state: a planted state steers the next segment's training
    while a replay of that segment, starting from it, agrees. State absent at the start is zero (fresh)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(claimed):
        if name.startswith(MODEL_PREFIX):
            groups.setdefault("weights", []).append(name)
        elif not name.endswith(".step"):  # counters are checked exactly when a checkpoint is parsed
            groups.setdefault(name.rpartition(".")[2], []).append(name)
    worst = 0.0
    for names in groups.values():

        def flat(tensors: Tensors, names: list[str] = names) -> torch.Tensor:
            return torch.cat([tensors.get(n, torch.zeros_like(claimed[n])).reshape(-1).double() for n in names])

        moved = float(torch.linalg.vector_norm(flat(claimed) - flat(start)))
        error = float(torch.linalg.vector_norm(flat(replayed) - flat(claimed)))
        worst = max(worst, (0.0 if error == 0.0 else float("inf")) if moved == 0.0 else error / moved)
    return worst


def _distance_to(
    end_bytes: bytes | bytearray | None,
    replayed: Tensors,
    start: Tensors,
    spec: TrainingSpec,
    workload: Workload,
    step: int,
    carried: int | None,
) -> float | None:
    """How far a failed exact replay landed from the end checkpoint, when its bytes are at hand and sane."""
    if end_bytes is None:
        return None
    try:
        return normalized_distance(replayed, parse_checkpoint(end_bytes, spec, workload, step, carried), start)
    except ContentError:
        return None


def needs_end(spec: TrainingSpec, trace: TraceManifest) -> bool:
    """Whether verifying a segment of this trace here needs its end checkpoint's bytes."""
    return spec.replay.mode != "exact" or not same_class(trace.numerics, environment(spec))


def verify_segment(
    spec: TrainingSpec,
    workload: Workload,
    shard: Tensors,
    seed: bytes,
    trace: TraceManifest,
    committed_root: bytes,
    segment: int,
    start_bytes: bytes | bytearray,
    end_bytes: bytes | bytearray | None = None,
    *,
    cross_class_tolerance: float | None = None,
    carried: int | None = None,
    read_by_cid: bool = False,
) -> SegmentVerdict:
    """Checks one segment of a committed trace; untrusted bytes never raise past this function.

    The manifest must hash to the committed root, which binds every leaf of it, so no per-leaf Merkle proof
    is needed here (the auditor checks those for auditors who hold only a proof). Exact mode needs only the
    start checkpoint: the replay is hashed and compared with the committed hash of the end checkpoint, so
    the end is never downloaded or parsed (a fifth of a segment's verify cost). Tolerance mode, and exact
    mode across numeric classes (`needs_end`), need `end_bytes` to measure the distance; given in exact mode
    within a class, they only explain a failure. `carried`: as parse_checkpoint's, the task's carried state.
    `read_by_cid`: the bytes were read from a content store under the checkpoints' own CIDs (which checks them),
    so canonical bytes need no second hashing pass (protocol.tensors.hash_as_read).
    """
    if not 0 <= segment < len(trace.checkpoints) - 1:
        return SegmentVerdict(
            segment, False, f"segment {segment} is not in a {len(trace.checkpoints) - 1}-segment trace"
        )
    if trace.trace_root() != committed_root:
        return SegmentVerdict(segment, False, "trace manifest does not hash to the committed trace root")
    start_ref, end_ref = trace.checkpoints[segment], trace.checkpoints[segment + 1]
    if (
        start_ref.step != segment * spec.checkpoint_interval
        or end_ref.step != start_ref.step + spec.checkpoint_interval
    ):
        return SegmentVerdict(
            segment, False, f"checkpoint steps {start_ref.step}→{end_ref.step} do not follow the spec"
        )
    exact = spec.replay.mode == "exact"
    in_class = same_class(trace.numerics, environment(spec))
    if needs_end(spec, trace) and end_bytes is None:
        raise ValueError("tolerance-mode and cross-class verification need the end checkpoint's bytes")
    with deterministic(spec.replay):  # the verifier's parsing runs on the spec's threads too (CPU time is the cost)
        try:
            start = parse_checkpoint(start_bytes, spec, workload, start_ref.step, carried)
            end = (
                None
                if exact and in_class
                else parse_checkpoint(_given(end_bytes), spec, workload, end_ref.step, carried)
            )
        except ContentError as exc:
            return SegmentVerdict(segment, False, f"checkpoint refused: {exc}")

        def committed(data: bytes | bytearray, tensors: Tensors, ref: CheckpointRef) -> bool:
            digest = hash_as_read(data, tensors, ref.cid) if read_by_cid else canonical_hash(tensors)
            return "0x" + digest.hex() == ref.hash

        if not committed(start_bytes, start, start_ref):
            return SegmentVerdict(segment, False, f"checkpoint {segment} does not match its committed hash")
        try:
            replayed = replay_segment(spec, shard, seed, start, segment, workload)
        except (ArithmeticError, RuntimeError, ValueError) as exc:  # hostile values that slipped past parsing
            return SegmentVerdict(
                segment, False, f"replay failed on the committed checkpoint: {exc.__class__.__name__}: {exc}"[:300]
            )
        if exact and "0x" + canonical_hash(replayed).hex() == end_ref.hash:
            return SegmentVerdict(segment, True, "replay reproduced the committed checkpoint bit for bit", end=replayed)
        if exact and in_class:
            return SegmentVerdict(
                segment,
                False,
                "replay diverged from the committed checkpoint",
                _distance_to(end_bytes, replayed, start, spec, workload, end_ref.step, carried),
                diverged=True,
            )
        assert end is not None
        if not committed(_given(end_bytes), end, end_ref):
            return SegmentVerdict(segment, False, f"checkpoint {segment + 1} does not match its committed hash")
        if exact:  # across classes: weights and optimizer state, as the tolerance was measured
            distance = state_distance(replayed, end, start)
            verdict = _across_classes(segment, distance, trace.numerics.fingerprint, cross_class_tolerance)
            return replace(verdict, diverged=verdict.failed, end=end if verdict.passed else None)
        distance = normalized_distance(replayed, end, start)
    passed = distance <= spec.replay.tolerance
    return SegmentVerdict(
        segment,
        passed,
        f"normalized distance {distance:.3g} vs tolerance {spec.replay.tolerance}",
        distance,
        diverged=not passed,
        end=end if passed else None,
    )


def _across_classes(segment: int, distance: float, theirs: str, tolerance: float | None) -> SegmentVerdict:
    if tolerance is not None:
        passed = distance <= tolerance
        return SegmentVerdict(
            segment,
            passed,
            f"normalized distance {distance:.3g} vs the cross-class tolerance {tolerance:.3g} measured at intake "
            f"(the volunteer's numeric class {theirs[:10]}… is not ours)",
            distance,
        )
    if distance > CROSS_CLASS_FAIL_DISTANCE:
        return SegmentVerdict(
            segment,
            False,
            f"replay diverged by {distance:.3g} of the segment's own movement, beyond any kernel difference "
            f"(> {CROSS_CLASS_FAIL_DISTANCE}; the volunteer's numeric class {theirs[:10]}… is not ours)",
            distance,
        )
    return SegmentVerdict(
        segment,
        False,
        f"abstained: the volunteer's numeric class {theirs[:10]}… is not ours, and the replay landed "
        f"{distance:.3g} from its end (bit-for-bit comparison needs the same class)",
        distance,
        abstained=True,
    )


def _given(end_bytes: bytes | bytearray | None) -> bytes | bytearray:
    assert end_bytes is not None  # checked on entry
    return end_bytes
