"""Compressed pseudo-gradients: what a task's update moves instead of 4 bytes per parameter (the spec's
`[compression]`).

Anchors: INTELLECT-1's int8 all-reduce (4×), SparseLoCo's top-k with quantized values and error feedback (over
100×). Each tensor is flattened and cut into chunks of `chunk` values, the last one zero-padded (a tensor smaller
than a chunk is one chunk of its own size):

  int8  every value kept, scaled per chunk by its largest magnitude / 127 and rounded to int8: ~1 byte each;
  topk  per chunk only the `fraction` largest magnitudes (ties: the lower index first) are kept, as int16
        positions and int8 values with the chunk's scale: ~3 × fraction bytes per parameter.

Error feedback: what compression dropped is kept by the shard and added to its next update (`with_feedback`),
so small coordinates accumulate until they are sent instead of being lost every round.

Bit for bit on every CPU: the scale is a maximum (order-free), values are divided, rounded half to even and
multiplied back elementwise (IEEE-exact), positions come from a stable sort. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protocol.spec import CompressionSpec
from protocol.tensors import Tensors

__all__ = [
    "LEVELS",
    "CompressionSpec",
    "SentUpdate",
    "compress",
    "decompress",
    "encoded_bytes",
    "send",
    "with_feedback",
]

LEVELS = 127  # int8 values −127..127: symmetric, so a sign flip is exact


def _chunk(numel: int, spec: CompressionSpec) -> int:
    """A tensor's chunk: the spec's, or the whole tensor when it is smaller (a bias is not padded to 4,096)."""
    return max(1, min(spec.chunk, numel))


def _kept(chunk: int, spec: CompressionSpec) -> int:
    return min(chunk, max(1, round(spec.fraction * chunk)))


def _chunks(t: torch.Tensor, chunk: int) -> torch.Tensor:
    flat = t.detach().reshape(-1).float()
    pad = -len(flat) % chunk
    return torch.cat([flat, flat.new_zeros(pad)]).view(-1, chunk)


def _scales(values: torch.Tensor) -> torch.Tensor:
    """Per row, the largest magnitude / LEVELS; 1 for an all-zero row (its values quantize to 0 either way)."""
    largest = values.abs().amax(dim=1)
    return torch.where(largest > 0, largest / LEVELS, torch.ones_like(largest))


def _quantize(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return torch.round(values / scales[:, None]).clamp_(-LEVELS, LEVELS).to(torch.int8)


def compress(update: Tensors, spec: CompressionSpec) -> Tensors:
    """The encoded update: for each tensor `n`, `n.scale` (float32 per chunk), `n.q` (int8) and, for topk,
    `n.idx` (int16 positions in the chunk)."""
    if spec.method == "none":
        return {n: t.detach().float() for n, t in update.items()}
    encoded: Tensors = {}
    for name, tensor in update.items():
        chunk = _chunk(tensor.numel(), spec)
        rows = _chunks(tensor, chunk)
        if spec.method == "topk":
            order = torch.sort(rows.abs(), dim=1, descending=True, stable=True).indices[:, : _kept(chunk, spec)]
            kept = torch.gather(rows, 1, order)
            scales = _scales(kept)
            encoded[f"{name}.idx"] = order.to(torch.int16)
            encoded[f"{name}.q"] = _quantize(kept, scales)
        else:
            scales = _scales(rows)
            # The last chunk's padding is not sent: its values are zeros the receiver pads back.
            encoded[f"{name}.q"] = _quantize(rows, scales).reshape(-1)[: tensor.numel()].clone()
        encoded[f"{name}.scale"] = scales
    return encoded


def decompress(encoded: Tensors, like: Tensors, spec: CompressionSpec) -> Tensors:
    """The update `encoded` stands for, shaped as the tensors of `like` (float32)."""
    if spec.method == "none":
        return {n: encoded[n] for n in like}
    out: Tensors = {}
    for name, reference in like.items():
        chunk, scales = _chunk(reference.numel(), spec), encoded[f"{name}.scale"]
        if spec.method == "topk":
            rows = torch.zeros(len(scales), chunk)
            rows.scatter_(1, encoded[f"{name}.idx"].long(), encoded[f"{name}.q"].float() * scales[:, None])
        else:
            rows = _chunks(encoded[f"{name}.q"], chunk) * scales[:, None]
        out[name] = rows.reshape(-1)[: reference.numel()].reshape(reference.shape).clone()
    return out


def with_feedback(update: Tensors, error: Tensors | None, spec: CompressionSpec) -> tuple[Tensors, Tensors]:
    """(what is sent, the error left behind): `update` plus the shard's carried `error` is compressed; whatever the
    compression lost is the next round's error."""
    encoded, _, left = _with_feedback(update, error, spec)
    return encoded, left


def _with_feedback(update: Tensors, error: Tensors | None, spec: CompressionSpec) -> tuple[Tensors, Tensors, Tensors]:
    wanted = {n: t.float() + error[n] if error is not None else t.float() for n, t in update.items()}
    encoded = compress(wanted, spec)
    sent = decompress(encoded, wanted, spec)
    return encoded, sent, {n: wanted[n] - sent[n] for n in wanted}


def encoded_bytes(encoded: Tensors) -> int:
    return sum(t.numel() * t.element_size() for t in encoded.values())


@dataclass(frozen=True)
class SentUpdate:
    content: Tensors  # what is published and committed (its canonical hash is the commit's update hash)
    update: Tensors  # what it stands for: the delta the aggregate uses (float32, named and shaped as the weights)
    error: Tensors | None  # what is left for the shard's next update; None without compression


def send(delta: Tensors, error: Tensors | None, spec: CompressionSpec) -> SentUpdate:
    """How a task's `delta` (last checkpoint's weights − the round's) is sent under the spec's compression, with
    the shard's carried `error`: what the volunteer publishes, what anyone recomputing it from the trace gets."""
    if spec.method == "none":
        return SentUpdate(delta, delta, None)
    return SentUpdate(*_with_feedback(delta, error, spec))
