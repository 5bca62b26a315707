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
import math
import struct
import sys
from typing import Any

import torch
from safetensors.torch import load as _st_load

from protocol.cid import b58decode, b58encode, root_block
from protocol.errors import ContentInvalid
from protocol.nesting import nesting_depth

DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",  # compressed updates' positions (protocol.compression)
    torch.int8: "I8",  # and their quantized values
    torch.uint8: "U8",
}
_ITEM_SIZES = {code: dtype.itemsize for dtype, code in DTYPE_CODES.items()}
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 8  # a safetensors header nests 3 deep: {name: {shape: [...]}}
MAX_RANK = 32
# Formats sometimes passed off as checkpoints; only named in the refusal, never opened.
_FOREIGN_MAGIC = {b"PK\x03\x04": "a zip archive (torch.save?)", b"\x1f\x8b": "gzip data", b"\x80": "a pickle"}

Tensors = dict[str, torch.Tensor]


def _raw_bytes(t: torch.Tensor) -> memoryview:
    if t.numel() == 0:
        return memoryview(b"")  # a memoryview of an empty array cannot be cast to bytes
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    array = t.numpy()
    if sys.byteorder != "little":
        array = array.byteswap()
    return array.data.cast("B")


def canonical_hash(tensors: Tensors) -> bytes:
    """H: the sha2-256 digest inside the CID of the canonical bytes, hashed straight from the tensors'
    memory. One hashing pass both names a checkpoint in the content store and commits to it in the trace;
    it is as collision-resistant as sha256 itself."""
    return root_block(*_canonical_parts(tensors)).multihash[2:]


def tensors_cid(tensors: Tensors) -> str:
    """The CID `to_bytes(tensors)` would be stored under, hashed straight from the tensors' memory: the name of
    content everyone can build (a task's checkpoint 0) without anyone serializing or storing it."""
    return b58encode(root_block(*_canonical_parts(tensors)).multihash)


def hash_as_read(data: bytes | bytearray, tensors: Tensors, cid: str) -> bytes:
    """H of `tensors` parsed from `data`, which a content store read under `cid` (every read checks the bytes
    hash to their CID): when `data` is exactly the canonical bytes — its header is the canonical header of what
    was parsed from it, so its data section is too — H is the CID's digest, with no second pass over the
    tensors. Bytes in another (honest or not) encoding are hashed canonically."""
    header = _canonical_header(tensors)
    size = len(header) + sum(t.numel() * t.element_size() for t in tensors.values())
    if len(data) == size and data[: len(header)] == header:
        return b58decode(cid)[2:]
    return canonical_hash(tensors)


def _canonical_header(tensors: Tensors) -> bytes:
    return _header([(name, t.dtype, tuple(t.shape), t.numel() * t.element_size()) for name, t in tensors.items()])


def _header(entries: list[tuple[str, torch.dtype, tuple[int, ...], int]]) -> bytes:
    """The length prefix and JSON header of canonical bytes, from each tensor's name, dtype, shape and size."""
    header: dict[str, object] = {}
    offset = 0
    for name, dtype, shape, size in sorted(entries, key=lambda entry: entry[0]):
        code = DTYPE_CODES.get(dtype)
        if code is None:
            raise ValueError(f"tensor {name!r} has unsupported dtype {dtype}")
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(encoded)) + encoded


def to_bytes(tensors: Tensors) -> bytes:
    """Canonical safetensors bytes (written here: safetensors.torch.save's layout is not specified)."""
    return b"".join(_canonical_parts(tensors))


def _canonical_parts(tensors: Tensors) -> list[bytes | memoryview]:
    header = _canonical_header(tensors)  # first: it refuses an unsupported dtype before any byte is viewed
    return [header, *(_raw_bytes(tensors[name]) for name in sorted(tensors))]


def canonical_size(layout: dict[str, tuple[torch.dtype, tuple[int, ...]]]) -> int:
    """The exact length of `to_bytes` of tensors with this layout (names, dtypes, shapes), computed without
    them: what an honest party's checkpoint of a spec weighs, so byte limits can follow from the spec."""
    entries = [(name, dtype, shape, math.prod(shape) * dtype.itemsize) for name, (dtype, shape) in layout.items()]
    return len(_header(entries)) + sum(entry[3] for entry in entries)


def from_bytes(
    data: bytes | bytearray, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]] | None = None
) -> Tensors:
    """Parses safetensors bytes from an untrusted party; checks the header before touching the data.

    With `expected`, the names, dtypes and shapes must match exactly (a checkpoint of the spec's model);
    every element must be finite. From a `bytearray` (a buffer the caller hands over, ContentStore.get_buffer)
    the tensors are views into it, not copies: a large checkpoint is in memory once.
    """
    header = _read_header(data)
    if expected is not None:
        _check_layout(header, expected)
    if isinstance(data, bytearray) and sys.byteorder == "little":
        tensors = _views(data, header)
    else:
        try:
            tensors = _st_load(bytes(data))
        except Exception as exc:  # the parser's own error types vary by version; all mean "malformed"
            raise ContentInvalid(f"malformed safetensors: {exc}") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not all_finite(t):
            raise ContentInvalid(f"tensor {name!r} contains NaN or Inf")
    return tensors


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element is finite. The smallest and largest value are (aminmax propagates NaN, and an
    infinity is one of them) exactly when all are; two reductions in one pass, about 7× faster than
    `isfinite(t).all()`, which writes a mask as large as the tensor (the checkpoint read of every audit)."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def _views(buffer: bytearray, header: dict[str, dict[str, Any]]) -> Tensors:
    """The header's tensors as views into `buffer` (little-endian, as safetensors is). A tensor whose offset is
    not a multiple of its element size is copied out instead: torch's kernels may assume aligned elements."""
    (header_len,) = struct.unpack("<Q", buffer[:8])
    base = 8 + header_len
    codes = {code: dtype for dtype, code in DTYPE_CODES.items()}
    tensors: Tensors = {}
    for name, info in header.items():
        dtype, shape, (begin, stop) = codes[info["dtype"]], tuple(info["shape"]), info["data_offsets"]
        if stop == begin:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(buffer, dtype=torch.uint8, count=stop - begin, offset=base + begin)
        if (base + begin) % dtype.itemsize:
            flat = flat.clone()
        tensors[name] = flat.view(dtype).reshape(shape)
    return tensors


def _read_header(data: bytes | bytearray) -> dict[str, dict[str, Any]]:
    """The header's tensor entries, each checked here rather than left to the Rust parser, so every problem
    gets a reason naming it, nothing but ContentError escapes (not even 10^5-deep JSON), and a declared size
    (a 2**40-element shape) is compared with the bytes actually present before anything is allocated."""
    if len(data) < 8:
        raise ContentInvalid("not a safetensors file: shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    hint = _sniff(data)
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise ContentInvalid(
            f"safetensors header length {header_len} is out of bounds for a {len(data)}-byte file{hint}"
        )
    try:
        text = data[8 : 8 + header_len].decode()  # json.loads of bytes would also take UTF-16 and UTF-32
    except UnicodeDecodeError:
        raise ContentInvalid(f"safetensors header is not UTF-8{hint}") from None
    if nesting_depth(text) > MAX_HEADER_DEPTH:
        raise ContentInvalid("safetensors header is JSON nested too deeply")
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError:  # a JSONDecodeError, or an integer of more than 4,300 digits
        raise ContentInvalid(f"safetensors header is not JSON{hint}") from None
    except RecursionError:
        raise ContentInvalid("safetensors header is JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise ContentInvalid("safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ContentInvalid("safetensors __metadata__ is not a map of strings")
    end = 0
    for name, info in sorted(header.items(), key=lambda item: _span(*item)):  # empty tensors first at a tie
        dtype, shape, (begin, stop) = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ITEM_SIZES:
            raise ContentInvalid(f"tensor {_short(name)} has dtype {_short(dtype)}; accepted: {', '.join(_ITEM_SIZES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ContentInvalid(f"tensor {_short(name)} has a malformed shape {_short(shape)}")
        if len(shape) > MAX_RANK:  # else the product below is a CPU bomb: 50,000 dims of 2**62
            raise ContentInvalid(f"tensor {_short(name)} has {len(shape)} dimensions, more than {MAX_RANK}")
        size = math.prod(shape) * _ITEM_SIZES[dtype]  # a Python int: a shape bomb cannot overflow it
        if stop - begin != size:
            claimed = f"{size} bytes" if size < 2**64 else "over 2**64 bytes"  # str() refuses ints past 4,300 digits
            raise ContentInvalid(
                f"tensor {_short(name)} is {dtype}{_short(shape)} ({claimed}) but its data_offsets span {stop - begin}"
            )
        if begin != end:
            raise ContentInvalid(
                f"tensor {_short(name)} starts at data byte {begin}, expected {end}: tensors overlap or leave a gap"
            )
        end = stop
    if end != len(data) - 8 - header_len:
        raise ContentInvalid(f"tensors cover {end} bytes of data but the file holds {len(data) - 8 - header_len}")
    return header


def _span(name: str, info: object) -> tuple[int, int]:
    """The entry's data_offsets, once the entry is known to be {dtype, shape, [begin, end]}."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ContentInvalid(f"tensor {_short(name)}: header entry is not {{dtype, shape, data_offsets}}")
    offsets = info["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise ContentInvalid(f"tensor {_short(name)} has malformed data_offsets {_short(offsets)}")
    if not 0 <= offsets[0] <= offsets[1]:
        raise ContentInvalid(f"tensor {_short(name)} has data_offsets {_short(offsets)} that run backwards")
    return offsets[0], offsets[1]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json keeps the last of duplicate keys, another parser may keep the first: refuse what has two meanings.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ContentInvalid("safetensors header has a duplicate key")
    return obj


def _short(value: object) -> str:
    # Names and shapes come from the sender; a reason stays one short line whatever they hold.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _sniff(data: bytes | bytearray) -> str:
    # Only ever added to a refusal: a real header length can start with these bytes too.
    kind = next((kind for magic, kind in _FOREIGN_MAGIC.items() if data.startswith(magic)), None)
    return f": it looks like {kind}, not safetensors" if kind else ""


def _check_layout(header: dict[str, dict[str, Any]], expected: dict[str, tuple[torch.dtype, tuple[int, ...]]]) -> None:
    names = set(header)
    if names != set(expected):
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        raise ContentInvalid(
            f"tensor names differ from the model's: missing {_short(missing[:3])}, unexpected {_short(extra[:3])}"
        )
    for name, (dtype, shape) in expected.items():
        info = header[name]
        if info["dtype"] != DTYPE_CODES[dtype] or tuple(info["shape"]) != shape:
            raise ContentInvalid(
                f"tensor {name!r} is {info['dtype']}{_short(info['shape'])}, expected {DTYPE_CODES[dtype]}{list(shape)}"
            )


def layout_of(tensors: Tensors) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    return {name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}
