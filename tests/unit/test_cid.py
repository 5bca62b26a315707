"""CIDs from protocol.cid equal the reference Kubo CIDs computed by Debian's `ipfs_cid`."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from content.store import LocalStore
from protocol.cid import CHUNK_SIZE, InvalidCid, check_cid, cid_of, cid_of_parts
from protocol.errors import ContentError

IPFS_CID = shutil.which("ipfs_cid")


def reference_cid(path: Path) -> str:
    assert IPFS_CID, "Debian package ipfs-cid is required (scripts/test installs it)"
    out = subprocess.run([IPFS_CID, str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[0])["CIDv0"]


@pytest.mark.parametrize(
    "size",
    [1, 5, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 175 * CHUNK_SIZE + 1],
    ids=lambda s: f"{s}B",
)
def test_cid_matches_kubo_reference(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert cid_of(data) == reference_cid(path)


def test_local_store_round_trips_and_rejects_bytes_that_do_not_match_their_cid(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"shard bytes")
    assert store.get(cid) == b"shard bytes"
    (tmp_path / cid).write_bytes(b"tampered")
    with pytest.raises(ContentError, match="hashes to"):
        store.get(cid)


def test_local_store_refuses_oversized_content_before_reading_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"x" * 1000)
    with pytest.raises(ContentError, match="over the 100-byte limit"):
        store.get(cid, max_bytes=100)


@pytest.mark.parametrize("bad", ["", "Qm", "../etc/passwd", "bafy" + "a" * 42, "Qm" + "0" * 44])
def test_check_cid_rejects_malformed_identifiers(bad: str) -> None:
    with pytest.raises(InvalidCid):
        check_cid(bad)


def test_cid_of_parts_equals_cid_of_the_concatenation_wherever_it_is_cut() -> None:
    data = random.Random(1).randbytes(3 * CHUNK_SIZE + 5)
    cuts = [0, 3, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 7, len(data)]
    parts = [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    assert cid_of_parts(parts) == cid_of(data)
