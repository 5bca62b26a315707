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

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from protocol.spec import CompressionSpec
from protocol.tensors import Tensors

__all__ = [
    "LEVELS",
    "CompressedUpdate",
    "CompressionSpec",
    "SentUpdate",
    "check_encoded",
    "compress",
    "decompress",
    "encoded_bytes",
    "encoded_layout",
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
    return {name: _decompress_tensor(encoded, name, reference.shape, spec) for name, reference in like.items()}


def _decompress_tensor(encoded: Tensors, name: str, shape: torch.Size, spec: CompressionSpec) -> torch.Tensor:
    numel = shape.numel()
    return _decoded_range(encoded, name, numel, 0, numel, spec).reshape(shape)


def _decoded_range(
    encoded: Tensors, name: str, numel: int, start: int, stop: int, spec: CompressionSpec
) -> torch.Tensor:
    """Coordinates start..stop of the flattened tensor `name` (of `numel` values): only the chunks holding them
    are decoded. Each value is its int8 times its chunk's scale, one float32 product, wherever the range falls."""
    if spec.method == "none":
        return encoded[name].reshape(-1)[start:stop]
    chunk = _chunk(numel, spec)
    first, last = start // chunk, -(-stop // chunk)
    scales = encoded[f"{name}.scale"][first:last]
    offset = first * chunk
    if spec.method == "int8":  # q is flat and unpadded: each value's chunk is its position // chunk
        values = encoded[f"{name}.q"][start:stop].float()  # a new tensor (int8 → float32): scaled in place
        return values.mul_(scales.repeat_interleave(chunk)[start - offset : stop - offset])
    rows = torch.zeros(last - first, chunk)
    q = encoded[f"{name}.q"][first:last]
    rows.scatter_(1, encoded[f"{name}.idx"][first:last].long(), q.float() * scales[:, None])
    return rows.reshape(-1)[start - offset : stop - offset]


class CompressedUpdate(Mapping[str, torch.Tensor]):
    """An update held as it was sent, decompressed a tensor, or a range of a tensor's coordinates, at a time (the
    same values as `decompress`).

    Why: a round's close holds every accepted update at once. Decompressed, that is 4 bytes per parameter per
    shard; held as sent, int8 is about 1 and topk about 3 × fraction, and aggregation decompresses only the slice
    of coordinates it combines (protocol.aggregate)."""

    def __init__(self, encoded: Tensors, like: Mapping[str, torch.Tensor], spec: CompressionSpec) -> None:
        self.encoded = encoded
        self._shapes = {name: t.shape for name, t in like.items()}
        self._spec = spec

    def __getitem__(self, name: str) -> torch.Tensor:
        return _decompress_tensor(self.encoded, name, self._shapes[name], self._spec)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Coordinates start..stop of the flattened tensor `name`: only the chunks that hold them are decoded."""
        return _decoded_range(self.encoded, name, self._shapes[name].numel(), start, stop, self._spec)


def encoded_layout(
    like: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], spec: CompressionSpec
) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Names, dtypes and shapes `compress` gives for tensors of the layout `like`: what a sent update must be."""
    layout: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, (_, shape) in like.items():
        numel = math.prod(shape)
        if spec.method == "none":
            layout[name] = (torch.float32, shape)
            continue
        chunk = _chunk(numel, spec)
        rows = -(-numel // chunk)
        if spec.method == "topk":
            kept = _kept(chunk, spec)
            layout[f"{name}.idx"] = (torch.int16, (rows, kept))
            layout[f"{name}.q"] = (torch.int8, (rows, kept))
        else:
            layout[f"{name}.q"] = (torch.int8, (numel,))
        layout[f"{name}.scale"] = (torch.float32, (rows,))
    return layout


def check_encoded(
    encoded: Tensors, like: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], spec: CompressionSpec
) -> None:
    """Raises ValueError where an update laid out as `encoded_layout` says could not have come from `compress`
    in a way that decoding would not survive: a position outside its chunk, or a scale so large that a decoded
    value overflows float32 (decoded, such an update would put infinities into the model)."""
    if spec.method == "none":
        return
    limit = torch.finfo(torch.float32).max / (LEVELS + 1)
    for name, (_, shape) in like.items():
        scales = encoded[f"{name}.scale"]
        if scales.numel() and float(scales.abs().max()) >= limit:
            raise ValueError(f"{name}.scale holds a scale a decoded value would overflow")
        if spec.method == "topk":
            idx = encoded[f"{name}.idx"]
            chunk = _chunk(math.prod(shape), spec)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= chunk):
                raise ValueError(f"{name}.idx holds a position outside its {chunk}-value chunk")


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
