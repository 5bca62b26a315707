"""Aggregation of accepted updates into the next round's model (pure tensor code, recomputed by auditors).

Two steps. First the round's updates (pseudo-gradients) are combined per coordinate:
mean: FedAvg. trimmed_mean: drop the ⌈n · trim_fraction⌉ largest and smallest values first (at least one
from each end once three updates or more are there and trim_fraction > 0, so the default trims at the sizes
bounties use; never more than leaves one). centered_clip: start at the coordinate-wise median and average
the updates' offsets from it, each clipped to τ = clip_radius × the median offset's norm (Karimireddy et
al., 2021; relative, so one hugely scaled update moves the model by about one honest offset, whatever the
model's scale). The robust options bound what an accepted but poisoned update (a lucky unchecked cheater)
can do.

Then the outer optimizer applies the combined update Δ (DiLoCo): with momentum μ, the velocity
v ← μ·v + Δ and the model moves by outer_lr · (Δ + μ·v) (Nesterov); μ = 0 and outer_lr = 1 is FedAvg's
w + Δ, exactly. The velocity is published with the next round's model (RoundManifest.outer_velocity_cid) in
the weights' dtype, and each round starts from the published one, so anyone recomputes every round.

Memory: mean and trimmed mean are per coordinate, so each tensor is combined a slice of coordinates at a time
(CHUNK_BYTES of float64 working set for all updates together): the working set no longer grows with the largest
tensor times the number of updates (a language model's embedding, stacked, sorted, in float64, weighed several
times its updates). The result is bit for bit the same whatever the slice (tests/unit/test_aggregation.py).
Centered clip's clipping radius is a norm over the whole tensor, so it still works a tensor at a time.
The updates may be held as sent (protocol.compression's CompressedUpdate): each slice of coordinates is then
decoded from them as it is combined, so the round's inputs hold about a byte per parameter per int8 update
instead of four, and no update is ever decompressed whole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from protocol.compression import CompressedUpdate
from protocol.spec import AggregationSpec
from protocol.tensors import Tensors


@dataclass(frozen=True)
class Aggregate:
    weights: Tensors  # the next round's model
    velocity: Tensors | None  # the outer momentum after this round; None without momentum


# The float64 working set of one slice of coordinates, all updates together (then sorted, for trimmed mean).
CHUNK_BYTES = 32 * 2**20


def aggregate(
    round_weights: Tensors,
    updates: Sequence[Mapping[str, torch.Tensor]],
    spec: AggregationSpec,
    velocity: Tensors | None = None,
    *,
    chunk_bytes: int | None = CHUNK_BYTES,
) -> Aggregate:
    """The next round's model from this round's and its accepted updates, with the outer optimizer's state
    `velocity` as the round's manifest published it (None at round 0, or without momentum). `chunk_bytes` bounds
    the working set of the per-coordinate methods (None: whole tensors at a time; the result is the same)."""
    momentum = spec.outer_momentum
    weights: Tensors = {}
    velocities: Tensors = {}
    for name, current in round_weights.items():
        numel = current.numel()
        per_slice = max(numel, 1)
        if chunk_bytes is not None and updates and spec.method != "centered_clip":
            per_slice = max(1, chunk_bytes // (8 * len(updates)))
        flat_weights = torch.empty(numel, dtype=current.dtype)
        flat_velocity = torch.empty(numel, dtype=current.dtype) if momentum else None
        for start in range(0, numel, per_slice):
            stop = min(start + per_slice, numel)
            if updates:
                stacked = torch.stack([_slice(u, name, start, stop, current.shape, per_slice) for u in updates])
                delta = _combine(stacked, spec).reshape(-1)
            else:
                delta = torch.zeros(stop - start, dtype=torch.float64)
            step = delta
            if flat_velocity is not None:
                v = delta
                if velocity is not None:
                    v = momentum * velocity[name].reshape(-1)[start:stop].to(torch.float64) + delta
                flat_velocity[start:stop] = v.to(current.dtype)
                step = delta + momentum * v
            flat_weights[start:stop] = (current.reshape(-1)[start:stop].to(torch.float64) + spec.outer_lr * step).to(
                current.dtype
            )
        weights[name] = flat_weights.reshape(current.shape)
        if flat_velocity is not None:
            velocities[name] = flat_velocity.reshape(current.shape)
    return Aggregate(weights, velocities if momentum else None)


def _slice(
    update: Mapping[str, torch.Tensor], name: str, start: int, stop: int, shape: torch.Size, per_slice: int
) -> torch.Tensor:
    """Coordinates start..stop of one update's tensor `name` in float64: the whole tensor in its shape when it is
    not sliced (centered clip's norms are per tensor), else a flat slice (the per-coordinate methods ignore the
    shape). An update held as sent decodes only that slice."""
    if per_slice >= shape.numel():
        return update[name].to(torch.float64).reshape(shape)
    if isinstance(update, CompressedUpdate):
        return update.flat(name, start, stop).to(torch.float64)
    return update[name].reshape(-1)[start:stop].to(torch.float64)


def _combine(stacked: torch.Tensor, spec: AggregationSpec) -> torch.Tensor:
    n = stacked.shape[0]
    if spec.method == "mean":
        return stacked.mean(dim=0)
    if spec.method == "trimmed_mean":
        k = min(math.ceil(n * spec.trim_fraction), (n - 1) // 2)
        ordered, _ = stacked.sort(dim=0)
        return ordered[k : n - k].mean(dim=0)
    return _centered_clip(stacked, spec.clip_radius)


def _centered_clip(stacked: torch.Tensor, radius: float, iterations: int = 3) -> torch.Tensor:
    n = stacked.shape[0]
    center = stacked.median(dim=0).values
    # reshape(n, -1), not flatten(1): the same rows for every tensor, and a scalar parameter has one too.
    norms = (stacked - center).reshape(n, -1).norm(dim=1)
    tau = radius * float(norms.median())
    for _ in range(iterations):
        offsets = stacked - center
        norms = offsets.reshape(n, -1).norm(dim=1).clamp_min(1e-12)
        scale = (tau / norms).clamp(max=1.0).view(-1, *([1] * (stacked.dim() - 1)))
        center = center + (offsets * scale).mean(dim=0)
    return center
