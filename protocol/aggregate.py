"""Aggregation of accepted updates into the next round's model (pure tensor code).

mean: FedAvg of the pseudo-gradients. trimmed_mean: per coordinate, drop the `trim_fraction` largest and
smallest values first. centered_clip: start at the coordinate-wise median and average the updates' offsets
from it, each clipped to radius τ (Karimireddy et al., 2021). The robust options bound what an accepted but
poisoned update (a lucky unchecked cheater, a hugely scaled update) can do to the model.
"""

from __future__ import annotations

import math

import torch

from protocol.spec import AggregationSpec
from protocol.tensors import Tensors


def aggregate(round_weights: Tensors, updates: list[Tensors], spec: AggregationSpec) -> Tensors:
    if not updates:
        return {n: w.clone() for n, w in round_weights.items()}
    combined: Tensors = {}
    for name, weights in round_weights.items():
        stacked = torch.stack([u[name].to(torch.float64) for u in updates])
        combined[name] = (weights.to(torch.float64) + _combine(stacked, updates, name, spec)).to(weights.dtype)
    return combined


def _combine(stacked: torch.Tensor, updates: list[Tensors], name: str, spec: AggregationSpec) -> torch.Tensor:
    n = stacked.shape[0]
    if spec.method == "mean":
        return stacked.mean(dim=0)
    if spec.method == "trimmed_mean":
        k = min(int(math.floor(n * spec.trim_fraction)), (n - 1) // 2)
        ordered, _ = stacked.sort(dim=0)
        return ordered[k : n - k].mean(dim=0)
    return _centered_clip(stacked, spec.clip_radius)


def _centered_clip(stacked: torch.Tensor, tau: float, iterations: int = 3) -> torch.Tensor:
    center = stacked.median(dim=0).values
    for _ in range(iterations):
        offsets = stacked - center
        norms = offsets.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (tau / norms).clamp(max=1.0).view(-1, *([1] * (stacked.dim() - 1)))
        center = center + (offsets * scale).mean(dim=0)
    return center
