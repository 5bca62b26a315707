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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from protocol.spec import AggregationSpec
from protocol.tensors import Tensors


@dataclass(frozen=True)
class Aggregate:
    weights: Tensors  # the next round's model
    velocity: Tensors | None  # the outer momentum after this round; None without momentum


def aggregate(
    round_weights: Tensors, updates: list[Tensors], spec: AggregationSpec, velocity: Tensors | None = None
) -> Aggregate:
    """The next round's model from this round's and its accepted updates, with the outer optimizer's state
    `velocity` as the round's manifest published it (None at round 0, or without momentum)."""
    momentum = spec.outer_momentum
    weights: Tensors = {}
    velocities: Tensors = {}
    for name, current in round_weights.items():
        if updates:
            stacked = torch.stack([u[name].to(torch.float64) for u in updates])
            delta = _combine(stacked, spec)
        else:
            delta = torch.zeros_like(current, dtype=torch.float64)
        step = delta
        if momentum:
            v = delta if velocity is None else momentum * velocity[name].to(torch.float64) + delta
            velocities[name] = v.to(current.dtype)
            step = delta + momentum * v
        weights[name] = (current.to(torch.float64) + spec.outer_lr * step).to(current.dtype)
    return Aggregate(weights, velocities if momentum else None)


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
    center = stacked.median(dim=0).values
    norms = (stacked - center).flatten(1).norm(dim=1)
    tau = radius * float(norms.median())
    for _ in range(iterations):
        offsets = stacked - center
        norms = offsets.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (tau / norms).clamp(max=1.0).view(-1, *([1] * (stacked.dim() - 1)))
        center = center + (offsets * scale).mean(dim=0)
    return center
