"""Content crosses from one party's IPFS node to another's only through their swarm: two js-ipfs daemons, each
on its own host of a test network (its own network namespace where this machine allows one), the reader
dialing the publisher as its one bootstrap peer. js-ipfs 0.66's identify failed on mismatched multiaddr
copies (the lockfile pins @libp2p/peer-record to one that shares libp2p's), so its bitswap never saw a
peer and every cross-node read timed out; a probe of two nodes found it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from content.ipfs import IpfsStore
from devtools.localstack import ipfs_peer_address, start_ipfs
from devtools.network import Network
from node.caps import UploadMeter
from protocol.errors import ContentMissing
from tests.support.processes import stop_group


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Network, IpfsStore, IpfsStore]]:
    procs: list[subprocess.Popen[bytes]] = []
    with Network(["publisher", "reader"]) as network:
        try:
            apis: list[str] = []
            for name in ("publisher", "reader"):
                home = tmp_path / name
                (home / "logs").mkdir(parents=True)
                bootstrap = [ipfs_peer_address(apis[0])] if apis else []
                proc, api = start_ipfs(home, host=network[name], bootstrap=bootstrap)
                procs.append(proc)
                apis.append(api)
            yield network, IpfsStore(apis[0]), IpfsStore(apis[1])
        finally:
            for proc in procs:
                stop_group(proc)


def _bitswap_blocks_sent(store: IpfsStore) -> int:
    request = urllib.request.Request(f"{store.api_url}/api/v0/bitswap/stat", method="POST")
    return int(json.loads(urllib.request.urlopen(request, timeout=10).read())["BlocksSent"])


def test_content_reaches_another_node_only_through_the_swarm(
    two_nodes: tuple[Network, IpfsStore, IpfsStore],
) -> None:
    network, publisher, reader = two_nodes
    if network.isolated:  # separate hosts: each node listens on its own address
        assert publisher.api_url.split("//")[1].split(":")[0] != reader.api_url.split("//")[1].split(":")[0]
    data = os.urandom(3_000_000)  # a dozen 256 KiB blocks
    cid = publisher.put(data)
    assert not reader.has(cid)
    assert reader.get(cid) == data
    deadline = time.monotonic() + 10  # js-ipfs folds its bitswap counters in about once a second
    while _bitswap_blocks_sent(publisher) < 12:
        assert time.monotonic() < deadline, "the publisher's node sent no blocks: the bytes came another way"
        time.sleep(0.5)


def test_content_nobody_serves_is_missing_not_a_hang(two_nodes: tuple[Network, IpfsStore, IpfsStore]) -> None:
    _, _, reader = two_nodes
    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"  # a block neither node has
    with pytest.raises(ContentMissing):
        reader.get(cid)


def test_what_a_node_sends_counts_toward_its_upload_cap_and_a_released_object_frees_its_disk(
    two_nodes: tuple[Network, IpfsStore, IpfsStore],
) -> None:
    """The counters node.caps keeps a volunteer's caps with: bitswap's DataSent for its uploads, the repository's
    size for its disk, and unpin plus garbage collection to free a closed round's checkpoints."""
    _, publisher, reader = two_nodes
    meter = UploadMeter(publisher.sent_bytes)
    assert meter.last_day() == 0  # a fresh node has sent nothing
    data = os.urandom(3_000_000)
    cid = publisher.put(data)
    held = publisher.repo_bytes()
    assert held >= len(data)
    assert reader.get(cid) == data
    deadline = time.monotonic() + 10  # js-ipfs folds its bitswap counters in about once a second
    while meter.last_day() < len(data):
        assert time.monotonic() < deadline, f"the publisher's node counted {publisher.sent_bytes()} bytes sent"
        time.sleep(0.5)
    publisher.unpin(cid)
    publisher.unpin(cid)  # releasing twice is no error
    publisher.collect_garbage()
    assert not publisher.has(cid) and held - publisher.repo_bytes() >= 0.99 * len(data)  # the datastore keeps a few KB
