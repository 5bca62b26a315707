"""Large objects are written around the page cache, byte for byte, and fall back to an ordinary write."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from content import direct_io
from content.store import LocalStore
from protocol.cid import cid_of

ODD_SIZE = direct_io.CHUNK + direct_io.ALIGN + 123  # two chunks, the last neither full nor aligned


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        direct_io.write_all(fd, data)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, direct_io.DIRECT_MIN_BYTES, ODD_SIZE])
def test_written_file_holds_exactly_the_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    _write(tmp_path / "object", data)
    assert (tmp_path / "object").read_bytes() == data


def _direct_allowed(directory: Path) -> bool:
    probe = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        return direct_io._set_direct(probe, True)
    finally:
        os.close(probe)
        os.unlink(directory / "probe")


def test_large_write_goes_around_the_page_cache_where_the_filesystem_allows(tmp_path: Path) -> None:
    if not _direct_allowed(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    fd = os.open(tmp_path / "object", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        direct_io.write_all(fd, os.urandom(ODD_SIZE))
        assert os.fstat(fd).st_size == ODD_SIZE
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT  # still set: the direct write went through
    finally:
        os.close(fd)


def test_a_direct_write_refused_midway_is_redone_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = direct_io._write_direct

    def refuses_after_a_chunk(fd: int, view: memoryview) -> None:
        real(fd, view[: direct_io.CHUNK])  # part of the object is on disk, then the filesystem balks
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(direct_io, "_write_direct", refuses_after_a_chunk)
    data = os.urandom(ODD_SIZE)
    _write(tmp_path / "object", data)
    assert (tmp_path / "object").read_bytes() == data


def test_other_write_errors_propagate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int, view: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if not _direct_allowed(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    monkeypatch.setattr(direct_io, "_write_direct", disk_full)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(OSError) as info:
        store.put(os.urandom(ODD_SIZE))
    assert info.value.errno == errno.ENOSPC
    assert list((tmp_path / "store").iterdir()) == []  # no torn object, no temporary file left


def test_store_round_trips_a_checkpoint_sized_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = os.urandom(ODD_SIZE)
    cid = store.put(data)
    assert cid == cid_of(data) and store.get(cid) == data
