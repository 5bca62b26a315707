"""The content store interface and the embedded on-disk store (same CIDs as Kubo, see protocol.cid).

Errors (protocol.errors): ContentMissing (not here), ContentInvalid (here but wrong), StoreUnavailable
(the store itself unreachable: transient, never a finding about the content)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Protocol, TypeVar

from content.direct_io import write_all
from protocol.cid import check_cid, cid_of
from protocol.errors import ContentError, ContentInvalid, ContentMissing

# Nothing the protocol stores (specs, shards, checkpoints, traces) comes near this; a larger object is
# refused before it is read into memory rather than trusted to be what its CID says.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_Bytes = TypeVar("_Bytes", bytes, bytearray)


class ContentStore(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes: ...

    def get_buffer(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytearray:
        """The same verified bytes in a buffer the caller owns, for large objects: tensors parsed from it
        (protocol.tensors.from_bytes) alias it instead of copying, so a checkpoint is in memory once, not twice."""
        ...

    def has(self, cid: str) -> bool: ...

    def pin(self, cid: str) -> None: ...


def verified(cid: str, data: _Bytes) -> _Bytes:
    """The bytes, if they hash to `cid`; every read from any store goes through this."""
    actual = cid_of(data)
    if actual != cid:
        raise ContentInvalid(f"content for {cid} hashes to {actual}: refusing it")
    return data


class LocalStore:
    """Files named by CID under one directory, written atomically so a crash never leaves a torn object."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, cid: str) -> Path:
        return self.root / check_cid(cid)

    def put(self, data: bytes) -> str:
        cid = cid_of(data)
        path = self._path(cid)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".put-")
            try:
                try:
                    write_all(fd, data)  # a checkpoint goes around the page cache: see content.direct_io
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        return cid

    def _open(self, cid: str, max_bytes: int) -> tuple[io.BufferedReader, int]:
        path = self._path(cid)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ContentMissing(f"{cid} is not in the store at {self.root}") from None
        if size > max_bytes:
            raise ContentInvalid(f"{cid} is {size} bytes, over the {max_bytes}-byte limit")
        return path.open("rb"), size

    def get(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        f, _ = self._open(cid, max_bytes)
        with f:
            data = f.read(max_bytes + 1)  # bounded too: the file may have grown since stat
        if len(data) > max_bytes:
            raise ContentInvalid(f"{cid} is over the {max_bytes}-byte limit")
        return verified(cid, data)

    def get_buffer(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytearray:
        f, size = self._open(cid, max_bytes)
        buffer = bytearray(size)
        with f:
            view, filled = memoryview(buffer), 0
            while filled < size and (n := f.readinto(view[filled:])):
                filled += n
            grown = f.read(1)
        if filled != size or grown:  # objects are written once, atomically: this one was not
            raise ContentInvalid(f"{cid} changed size while it was read")
        return verified(cid, buffer)

    def has(self, cid: str) -> bool:
        return self._path(cid).exists()

    def pin(self, cid: str) -> None:
        # Nothing is ever garbage-collected from the embedded store; pinning only asserts presence.
        if not self.has(cid):
            raise ContentError(f"cannot pin {cid}: not in the store at {self.root}")

    def size(self, cid: str) -> int:
        """Bytes `cid` takes here (0 when absent)."""
        try:
            return self._path(cid).stat().st_size
        except FileNotFoundError:
            return 0

    def remove(self, cid: str) -> None:
        """Deletes `cid` from the directory (a node releasing what nobody can ask it for any more)."""
        self._path(cid).unlink(missing_ok=True)
