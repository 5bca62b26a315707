"""Canonical tensor hashing and safe (de)serialization of tensors from untrusted volunteers.

Canonical bytes of a named tensor set are its canonical safetensors serialization (`to_bytes`): a u64
little-endian header length; a compact JSON header listing, in sorted name order, each tensor's dtype code,
shape and byte offsets, padded with spaces to a multiple of 8; then each tensor's elements in C order,
little-endian, in the same order. H = the sha256 digest of those bytes' content address (the root of their
UnixFS DAG, protocol.cid), well over 1 GB/s with the CPU's SHA extensions. An honest checkpoint file *is*
its canonical bytes, so its CID carries H and writing, naming and hashing share one serialization and one
hashing pass; a verifier re-serializes what it parsed, so a file's own formatting cannot matter.
Files are safetensors: a JSON header plus raw bytes, nothing executable, never pickle.
"""

from __future__ import annotations

import json
import struct
import sys

import torch
from safetensors.torch import load as _st_load

from protocol.cid import root_block
from protocol.store import ContentError

DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}
MAX_HEADER_BYTES = 1 << 20

Tensors = dict[str, torch.Tensor]


def _raw_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    array = t.numpy()
    if sys.byteorder != "little":
        array = array.byteswap()
    return memoryview(array).cast("B")


def canonical_hash(tensors: Tensors) -> bytes:
    """H: the sha2-256 digest inside the CID of the canonical bytes, hashed straight from the tensors'
    memory. One hashing pass both names a checkpoint in the content store and commits to it in the trace;
    it is as collision-resistant as sha256 itself."""
    return root_block(*_canonical_parts(tensors)).multihash[2:]


def to_bytes(tensors: Tensors) -> bytes:
    """Canonical safetensors bytes (written here: safetensors.torch.save's layout is not specified)."""
    return b"".join(_canonical_parts(tensors))


def _canonical_parts(tensors: Tensors) -> list[bytes | memoryview]:
    header: dict[str, object] = {}
    views = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        code = DTYPE_CODES.get(t.dtype)
        if code is None:
            raise ValueError(f"tensor {name!r} has unsupported dtype {t.dtype}")
        view = _raw_bytes(t)
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(view)]}
        views.append(view)
        offset += len(view)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
    return [struct.pack("<Q", len(encoded)), encoded, *views]


def from_bytes(data: bytes, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]] | None = None) -> Tensors:
    """Parses safetensors bytes from an untrusted party; checks the header before touching the data.

    With `expected`, the names, dtypes and shapes must match exactly (a checkpoint of the spec's model);
    every element must be finite.
    """
    if len(data) < 8:
        raise ContentError("not a safetensors file: shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise ContentError(f"safetensors header length {header_len} is out of bounds for a {len(data)}-byte file")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ContentError("safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise ContentError("safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    if expected is not None:
        _check_layout(header, expected)
    try:
        tensors = _st_load(data)
    except Exception as exc:  # the parser's own error types vary by version; all mean "malformed"
        raise ContentError(f"malformed safetensors: {exc}") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ContentError(f"tensor {name!r} contains NaN or Inf")
    return tensors


def _check_layout(header: dict[str, object], expected: dict[str, tuple[torch.dtype, tuple[int, ...]]]) -> None:
    names = set(header)
    if names != set(expected):
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        raise ContentError(f"tensor names differ from the model's: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, (dtype, shape) in expected.items():
        info = header[name]
        if not isinstance(info, dict):
            raise ContentError(f"tensor {name!r}: malformed header entry")
        if info.get("dtype") != DTYPE_CODES[dtype] or tuple(info.get("shape", ())) != tuple(shape):
            raise ContentError(
                f"tensor {name!r} is {info.get('dtype')}{list(info.get('shape', []))}, "
                f"expected {DTYPE_CODES[dtype]}{list(shape)}"
            )


def layout_of(tensors: Tensors) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    return {name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}
