"""A volunteer's disk and upload caps (node.caps): the traces it keeps, the day's uploads, the stores that can cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from content.ipfs import IpfsStore
from content.store import LocalStore
from node.caps import DAY_S, Caps, HeldTraces, UploadMeter, content_bytes, release, trace_bytes_estimate
from protocol.errors import ShardworkError
from tests.support.specs import small_spec


def test_kept_traces_survive_a_restart_and_a_release_forgets_them(tmp_path: Path) -> None:
    held = HeldTraces(tmp_path / "node" / "held-traces.json")
    held.add(7, ["QmA", "QmB"])
    held.add(9, ["QmC"])
    again = HeldTraces(tmp_path / "node" / "held-traces.json")
    assert again.tasks() == {7: ["QmA", "QmB"], 9: ["QmC"]}
    again.remove(7)
    assert HeldTraces(tmp_path / "node" / "held-traces.json").tasks() == {9: ["QmC"]}


def test_a_store_directory_counts_and_frees_the_files_of_the_traces_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    kept, other = store.put(b"x" * 1000), store.put(b"y" * 10)
    held = HeldTraces(tmp_path / "held.json")
    held.add(1, [kept])
    assert content_bytes(store, held) == 1000  # only what this node keeps for verifiers
    release(store, [kept])
    assert not store.has(kept) and store.has(other) and store.size(kept) == 0


def test_the_upload_count_covers_the_counters_whole_count_until_a_day_of_samples_then_the_last_day() -> None:
    clock, sent = [0.0], [0]
    meter = UploadMeter(lambda: sent[0], clock=lambda: clock[0])
    assert meter.last_day() == 0
    for hour in range(1, 30):
        clock[0], sent[0] = hour * 3600.0, hour * 1000
        expected = sent[0] if hour * 3600 < DAY_S else 24_000  # a thousand bytes an hour
        assert meter.last_day() == expected, hour
    clock[0], sent[0] = 30 * 3600.0, 500  # the IPFS daemon restarted: its counter began again
    assert meter.last_day() == 500


def test_an_upload_cap_needs_an_ipfs_node_and_a_disk_cap_a_store_it_can_free(tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "store")
    with pytest.raises(ShardworkError, match="--max-upload needs an IPFS store"):
        Caps(max_upload_bytes_per_day=10**9).check_store(local)
    Caps(max_disk_bytes=10**9).check_store(local)
    Caps(max_disk_bytes=10**9, max_upload_bytes_per_day=10**9).check_store(IpfsStore("http://127.0.0.1:9"))


def test_a_traces_estimated_size_grows_with_its_checkpoints() -> None:
    four, eight = small_spec(checkpoint_interval=5), small_spec(checkpoint_interval=5, steps_per_task=40)
    assert four.segments < eight.segments
    assert 0 < trace_bytes_estimate(four) < trace_bytes_estimate(eight)
