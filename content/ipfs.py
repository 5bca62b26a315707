"""The content store over a real IPFS daemon's Kubo HTTP RPC API (Kubo, or js-ipfs speaking the same API).

Every read is re-hashed against its CID (content.store.verified); every write checks that the daemon named
the bytes exactly as protocol.cid does, so the embedded store and IPFS stay interchangeable.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import httpx

from content.store import DEFAULT_MAX_BYTES, ContentStore, verified
from protocol.cid import check_cid, cid_of
from protocol.errors import ContentError, ContentInvalid, ContentMissing, StoreUnavailable

# How long the daemon may look for content before answering "not found". Only the content's root block is looked
# for that long: once it is found, its provider is online, and the transfer gets time to move the most bytes the
# read accepts at a slow swarm's rate. A js-ipfs daemon whose cat is aborted mid-transfer dies of an unhandled
# rejection, whether its own timeout fires or the client hangs up (the coordinator's and three verifiers' nodes
# died so in the 25M run, after 15 s timeouts and 30 s read timeouts), so neither side may give up on an online
# provider. Blocks fetched before a timeout stay in the daemon's blockstore: a later read resumes from them.
FIND_TIMEOUT = "15s"
SLOW_SWARM_BYTES_PER_S = 256 * 1024


def transfer_seconds(max_bytes: int) -> int:
    return 15 + max_bytes // SLOW_SWARM_BYTES_PER_S


class IpfsStore:
    def __init__(self, api_url: str, timeout: float = 30.0) -> None:
        self.api_url, self.timeout = api_url.rstrip("/"), timeout
        self.client = httpx.Client(base_url=f"{self.api_url}/api/v0", timeout=timeout)

    def _post(
        self, path: str, params: Mapping[str, str | int], files: Mapping[str, tuple[str, bytes]] | None = None
    ) -> httpx.Response:
        try:
            response = self.client.post(path, params=params, files=files)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"IPFS daemon at {self.api_url} unreachable: {exc.__class__.__name__}") from None
        # Kubo and js-ipfs answer 500 for absent content too ("not found", "is not pinned"): an answer, not an outage.
        body = response.content.lower()
        if response.status_code >= 500 and b"not found" not in body and b"not pinned" not in body:
            raise StoreUnavailable(f"IPFS daemon error {response.status_code}: {response.text[:200]}")
        return response

    def put(self, data: bytes) -> str:
        expected = cid_of(data)
        response = self._post(
            "/add", params={"cid-version": 0, "pin": "true", "quieter": "true"}, files={"file": ("blob", data)}
        )
        if response.status_code != 200:
            raise ContentError(f"IPFS add failed ({response.status_code}): {response.text[:200]}")
        cid = response.json()["Hash"]
        if cid != expected:
            raise ContentError(f"IPFS named the bytes {cid}, expected {expected}: the daemon's add defaults differ")
        return cid

    def get(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        # A BytesIO hands its bytes over without a copy: the object is in memory once while it is read.
        sink = io.BytesIO()
        self._read_into(cid, max_bytes, sink.write)
        return verified(cid, sink.getvalue())

    def get_buffer(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytearray:
        buffer = bytearray()
        self._read_into(cid, max_bytes, buffer.extend)
        return verified(cid, buffer)

    def _read_into(self, cid: str, max_bytes: int, write: Callable[[bytes], object]) -> None:
        """Streams the daemon's bytes for `cid` into `write`, refusing them past `max_bytes` as they arrive."""
        check_cid(cid)
        try:
            # Any answer but the block's stats is as a cat's would be: the content is not (yet) to be had. Only the
            # status is read (and 200 bytes of a refusal): a hostile daemon's endless answer is never drained.
            with self.client.stream("POST", "/block/stat", params={"arg": cid, "timeout": FIND_TIMEOUT}) as found:
                if found.status_code != 200:
                    body = _prefix(found, 200)
                    raise ContentMissing(f"{cid} is not available from IPFS ({found.status_code}): {body!r}")
            transfer_s = transfer_seconds(max_bytes)
            params: dict[str, str | int] = {"arg": cid, "length": max_bytes + 1, "timeout": f"{transfer_s}s"}
            # Raw bytes only: a compressed answer would be inflated before it could be counted (a gzip bomb). Our
            # side waits as long as the daemon may take: hanging up mid-transfer aborts its want, as a timeout does.
            with self.client.stream(
                "POST",
                "/cat",
                params=params,
                headers={"Accept-Encoding": "identity"},
                timeout=httpx.Timeout(self.timeout, read=transfer_s + self.timeout),
            ) as response:
                if response.status_code != 200:
                    body = _prefix(response, 200)
                    raise ContentMissing(f"{cid} is not available from IPFS ({response.status_code}): {body!r}")
                encoding = response.headers.get("content-encoding", "identity")
                if encoding.lower() != "identity":
                    raise ContentInvalid(
                        f"IPFS sent {cid} with Content-Encoding {encoding[:20]!r}; only raw bytes are accepted"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ContentInvalid(f"{cid} is {declared} bytes, over the {max_bytes}-byte limit")
                size = 0
                for chunk in response.iter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ContentInvalid(f"{cid} is over the {max_bytes}-byte limit")
                    write(chunk)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"IPFS daemon at {self.api_url} unreachable: {exc.__class__.__name__}") from None

    def has(self, cid: str) -> bool:
        check_cid(cid)
        response = self._post("/pin/ls", params={"arg": cid, "type": "recursive"})
        return response.status_code == 200

    def pin(self, cid: str) -> None:
        check_cid(cid)
        response = self._post("/pin/add", params={"arg": cid})
        if response.status_code != 200:
            raise ContentError(f"cannot pin {cid}: {response.text[:200]}")

    def unpin(self, cid: str) -> None:
        """Lets the daemon's garbage collection free `cid` (content not pinned is no error)."""
        check_cid(cid)
        response = self._post("/pin/rm", params={"arg": cid})
        if response.status_code != 200 and b"not pinned" not in response.content.lower():
            raise ContentError(f"cannot unpin {cid}: {response.text[:200]}")

    def collect_garbage(self) -> None:
        """Frees every block nothing pins (what was unpinned, and content cached from peers)."""
        response = self._post("/repo/gc", params={})
        if response.status_code != 200:
            raise ContentError(f"IPFS garbage collection failed: {response.text[:200]}")

    def repo_bytes(self) -> int:
        """What the daemon's repository takes on disk."""
        response = self._post("/repo/stat", params={})
        if response.status_code != 200:
            raise ContentError(f"IPFS repo/stat failed: {response.text[:200]}")
        return int(response.json()["RepoSize"])

    def sent_bytes(self) -> int:
        """What the daemon has sent its peers since it started (bitswap's DataSent)."""
        response = self._post("/bitswap/stat", params={})
        if response.status_code != 200:
            raise ContentError(f"IPFS bitswap/stat failed: {response.text[:200]}")
        return int(response.json()["DataSent"])


def _prefix(response: httpx.Response, limit: int) -> bytes:
    """The first bytes of a streamed body, for an error message; the rest is never read (it may not end)."""
    out = b""
    for chunk in response.iter_raw():
        out += chunk
        if len(out) >= limit:
            break
    return out[:limit]


def open_store(location: str) -> ContentStore:
    """`ipfs:http://127.0.0.1:5001` for a daemon, anything else is a directory for the embedded store."""
    from pathlib import Path

    from content.store import LocalStore

    if location.startswith("ipfs:"):
        return IpfsStore(location[len("ipfs:") :])
    return LocalStore(Path(location))
