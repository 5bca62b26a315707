"""Spot-check verification: the code verifier workers and the auditor CLI both run.

A segment passes when both of its checkpoints are in the committed trace (Merkle proofs against the
committed root) and replaying the segment from the first reproduces the second: bit for bit in exact mode,
within the normalized distance δ in tolerance mode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from protocol.merkle import merkle_proof, verify_proof
from protocol.spec import TrainingSpec
from protocol.store import ContentError
from protocol.tensors import Tensors, canonical_hash, from_bytes
from protocol.training import MODEL_PREFIX, OPTIM_PREFIX, new_state, replay_segment
from protocol.workloads import Workload, resolve
from protocol.manifests import TraceManifest

Layout = dict[str, tuple[torch.dtype, tuple[int, ...]]]


@dataclass(frozen=True)
class SegmentVerdict:
    segment: int
    passed: bool
    reason: str
    distance: float = 0.0


def checkpoint_layout(spec: TrainingSpec, workload: Workload, with_optimizer: bool) -> Layout:
    """Names, dtypes and shapes a checkpoint of this spec must have; anything else is refused unparsed."""
    return dict(_layout(spec.canonical_bytes(), with_optimizer))


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


def parse_checkpoint(data: bytes, spec: TrainingSpec, workload: Workload, step: int) -> Tensors:
    return from_bytes(data, checkpoint_layout(spec, workload, with_optimizer=step > 0))


def _weights(tensors: Tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for n, t in sorted(tensors.items()) if n.startswith(MODEL_PREFIX)])


def normalized_distance(replayed: Tensors, claimed: Tensors, start: Tensors) -> float:
    """‖ŵ − w_{i+1}‖ / ‖w_{i+1} − w_i‖ over the weights."""
    moved = float(torch.linalg.vector_norm(_weights(claimed) - _weights(start)))
    error = float(torch.linalg.vector_norm(_weights(replayed) - _weights(claimed)))
    if moved == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return error / moved


def verify_segment(
    spec: TrainingSpec,
    workload: Workload,
    shard: Tensors,
    seed: bytes,
    trace: TraceManifest,
    committed_root: bytes,
    segment: int,
    start_bytes: bytes,
    end_bytes: bytes,
) -> SegmentVerdict:
    """Checks one segment of a committed trace; untrusted bytes never raise past this function."""
    if not 0 <= segment < len(trace.checkpoints) - 1:
        return SegmentVerdict(segment, False, f"segment {segment} is not in a {len(trace.checkpoints) - 1}-segment trace")
    if trace.trace_root() != committed_root:
        return SegmentVerdict(segment, False, "trace manifest does not hash to the committed trace root")
    start_ref, end_ref = trace.checkpoints[segment], trace.checkpoints[segment + 1]
    if start_ref.step != segment * spec.checkpoint_interval or end_ref.step != start_ref.step + spec.checkpoint_interval:
        return SegmentVerdict(segment, False, f"checkpoint steps {start_ref.step}→{end_ref.step} do not follow the spec")
    try:
        start = parse_checkpoint(start_bytes, spec, workload, start_ref.step)
        end = parse_checkpoint(end_bytes, spec, workload, end_ref.step)
    except ContentError as exc:
        return SegmentVerdict(segment, False, f"checkpoint refused: {exc}")
    leaves = trace.leaves()
    for index, tensors in ((segment, start), (segment + 1, end)):
        if "0x" + canonical_hash(tensors).hex() != trace.checkpoints[index].hash:
            return SegmentVerdict(segment, False, f"checkpoint {index} does not match its committed hash")
        if not verify_proof(merkle_proof(leaves, index), committed_root, leaves[index]):
            return SegmentVerdict(segment, False, f"checkpoint {index} has no valid Merkle proof")
    replayed = replay_segment(spec, shard, seed, start, segment, workload)
    if spec.replay.mode == "exact":
        if replayed.keys() == end.keys() and all(torch.equal(replayed[n], end[n]) for n in end):
            return SegmentVerdict(segment, True, "replay reproduced the checkpoint bit for bit")
        return SegmentVerdict(segment, False, "replay diverged from the committed checkpoint",
                              normalized_distance(replayed, end, start))  # fmt: skip
    distance = normalized_distance(replayed, end, start)
    passed = distance <= spec.replay.tolerance
    return SegmentVerdict(segment, passed, f"normalized distance {distance:.3g} vs tolerance {spec.replay.tolerance}", distance)
