"""Content identifiers exactly as Kubo's `ipfs add` computes them with its defaults.

Defaults reproduced: CIDv0, sha2-256, fixed 256 KiB chunks, UnixFS file nodes in dag-pb (no raw leaves),
balanced layout with at most 174 links per node. The embedded store and a real IPFS daemon must name the
same bytes with the same CID, or a volunteer on one could not serve a verifier on the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from protocol.errors import ContentInvalid

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
_SHA256_MULTIHASH_PREFIX = b"\x12\x20"
_UNIXFS_FILE = 2
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class InvalidCid(ContentInvalid, ValueError):
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
    """One dag-pb node: its multihash (the CIDv0 bytes) and the sizes its parent's link records."""

    multihash: bytes
    filesize: int
    cumulative_size: int  # encoded size of this node and everything below it (a link's Tsize)


def _block(encoded: bytes, filesize: int, cumulative_size: int) -> Block:
    digest = hashlib.sha256(encoded).digest()
    return Block(_SHA256_MULTIHASH_PREFIX + digest, filesize, cumulative_size)


def _leaf(pieces: list[memoryview]) -> Block:
    # Hashed as prefix + chunk + suffix, so the chunk is never copied into an encoded node.
    n = sum(len(p) for p in pieces)
    unixfs_head = _field_varint(1, _UNIXFS_FILE) + (_varint(2 << 3 | 2) + _varint(n) if n else b"")
    unixfs_tail = _field_varint(3, n)
    unixfs_len = len(unixfs_head) + n + len(unixfs_tail)
    head = _varint(1 << 3 | 2) + _varint(unixfs_len) + unixfs_head
    h = hashlib.sha256(head)
    for piece in pieces:
        h.update(piece)
    h.update(unixfs_tail)
    size = len(head) + n + len(unixfs_tail)
    return Block(_SHA256_MULTIHASH_PREFIX + h.digest(), n, size)


def _parent(children: list[Block]) -> Block:
    # dag-pb's canonical form writes Links (field 2) before Data (field 1).
    links = b"".join(
        _field_bytes(2, _field_bytes(1, c.multihash) + _field_bytes(2, b"") + _field_varint(3, c.cumulative_size))
        for c in children
    )
    filesize = sum(c.filesize for c in children)
    encoded = links + _field_bytes(1, _unixfs_file(None, filesize, [c.filesize for c in children]))
    return _block(encoded, filesize, len(encoded) + sum(c.cumulative_size for c in children))


def _chunks(parts: Sequence[bytes | bytearray | memoryview]) -> Iterator[list[memoryview]]:
    """The file cut into CHUNK_SIZE chunks, each as views into `parts` (a chunk may span parts)."""
    pending: list[memoryview] = []
    room = CHUNK_SIZE
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view) >= room:
            pending.append(view[:room])
            yield pending
            view, pending, room = view[room:], [], CHUNK_SIZE
        if len(view):
            pending.append(view)
            room -= len(view)
    if pending:
        yield pending


def root_block(*parts: bytes | bytearray | memoryview) -> Block:
    """The root of the DAG `ipfs add` builds for the concatenation of `parts` (never materialized)."""
    level = [_leaf(chunk) for chunk in _chunks(parts)] or [_leaf([])]
    while len(level) > 1:
        level = [_parent(level[i : i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
    return level[0]


def cid_of(data: bytes | bytearray | memoryview) -> str:
    """The CIDv0 Kubo prints for `ipfs add` of these bytes."""
    return b58encode(root_block(data).multihash)


def cid_of_parts(parts: Sequence[bytes | memoryview]) -> str:
    return b58encode(root_block(*parts).multihash)


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
