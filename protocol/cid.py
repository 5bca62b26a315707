"""Content identifiers exactly as Kubo's `ipfs add` computes them with its defaults.

Defaults reproduced: CIDv0, sha2-256, fixed 256 KiB chunks, UnixFS file nodes in dag-pb (no raw leaves),
balanced layout with at most 174 links per node. The embedded store and a real IPFS daemon must name the
same bytes with the same CID, or a volunteer on one could not serve a verifier on the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
_SHA256_MULTIHASH_PREFIX = b"\x12\x20"
_UNIXFS_FILE = 2
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class InvalidCid(ValueError):
    """A string that is not a CIDv0 this store can check."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _field_bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _unixfs_file(data: bytes | None, filesize: int, blocksizes: list[int]) -> bytes:
    out = _field_varint(1, _UNIXFS_FILE)
    if data:
        out += _field_bytes(2, data)
    out += _field_varint(3, filesize)
    for size in blocksizes:
        out += _field_varint(4, size)
    return out


@dataclass(frozen=True)
class Block:
    """One dag-pb node: its multihash (the CIDv0 bytes), encoding, and the file bytes beneath it."""

    multihash: bytes
    encoded: bytes
    filesize: int
    cumulative_size: int  # encoded size of this node and everything below it (a link's Tsize)


def _block(encoded: bytes, filesize: int, cumulative_size: int) -> Block:
    digest = hashlib.sha256(encoded).digest()
    return Block(_SHA256_MULTIHASH_PREFIX + digest, encoded, filesize, cumulative_size)


def _leaf(chunk: bytes) -> Block:
    encoded = _field_bytes(1, _unixfs_file(chunk, len(chunk), []))
    return _block(encoded, len(chunk), len(encoded))


def _parent(children: list[Block]) -> Block:
    # dag-pb's canonical form writes Links (field 2) before Data (field 1).
    links = b"".join(
        _field_bytes(2, _field_bytes(1, c.multihash) + _field_bytes(2, b"") + _field_varint(3, c.cumulative_size))
        for c in children
    )
    filesize = sum(c.filesize for c in children)
    encoded = links + _field_bytes(1, _unixfs_file(None, filesize, [c.filesize for c in children]))
    return _block(encoded, filesize, len(encoded) + sum(c.cumulative_size for c in children))


def build_dag(data: bytes) -> tuple[Block, list[Block]]:
    """The root block and every block of the file's DAG (root last), as `ipfs add` would store them."""
    view = memoryview(data)
    level = [_leaf(bytes(view[i : i + CHUNK_SIZE])) for i in range(0, len(data), CHUNK_SIZE)] or [_leaf(b"")]
    blocks = list(level)
    while len(level) > 1:
        level = [_parent(level[i : i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
        blocks.extend(level)
    return level[0], blocks


def cid_of(data: bytes) -> str:
    """The CIDv0 Kubo prints for `ipfs add` of these bytes."""
    root, _ = build_dag(data)
    return b58encode(root.multihash)


def b58encode(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_BASE58[rem])
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        index = _BASE58.find(ch)
        if index < 0:
            raise InvalidCid(f"{text!r} is not base58")
        n = n * 58 + index
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def check_cid(cid: str) -> str:
    """Returns the CID if it is a well-formed sha2-256 CIDv0, else raises InvalidCid."""
    if not isinstance(cid, str) or len(cid) != 46 or not cid.startswith("Qm"):
        raise InvalidCid(f"{cid!r} is not a CIDv0 (46 characters starting with Qm)")
    raw = b58decode(cid)
    if len(raw) != 34 or not raw.startswith(_SHA256_MULTIHASH_PREFIX):
        raise InvalidCid(f"{cid!r} is not a sha2-256 multihash")
    return cid


def iter_chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK_SIZE):
        yield data[i : i + CHUNK_SIZE]
