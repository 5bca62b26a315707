"""A volunteer's caps on its machine's disk and uplink (BOINC's disk and network preferences).

- **Disk** (`node run --max-disk GB`): what the node's content takes (the files of the traces it keeps in a store
  directory, or its IPFS node's whole repository) plus the next task's trace must stay under the cap, or the node
  claims none of that bounty's tasks. A capped node also releases the inner checkpoints of each trace it keeps once the
  task's round has closed: the task is accepted and aggregated, so nobody can check, dispute or referee it any
  more. The trace manifest, the update and the last checkpoint stay (the explorer's loss chart reads the first,
  an audit recomputes the aggregate and each update's error from the others); an audit of a closed round can no
  longer replay that node's segments.
- **Upload** (`node run --max-upload GB`, per day): while its IPFS node has sent more than the cap to peers in the
  last 24 hours, the node claims nothing new. What it has committed is always served: a cap that withheld a
  checked segment's checkpoint would cost the volunteer its stake. The day is counted from the daemon's own
  counter, sampled while the node runs; a restarted IPFS daemon starts counting afresh.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from content.ipfs import IpfsStore
from content.store import ContentStore, LocalStore
from protocol.errors import ShardworkError
from protocol.spec import TrainingSpec
from protocol.workloads import resolve

GB = 10**9
DAY_S = 86_400.0
SAMPLE_EVERY_S = 60.0  # a day of samples stays a short list
# A checkpoint holds the weights and two optimizer moments (Adam), four bytes each.
CHECKPOINT_BYTES_PER_PARAM = 12


@dataclass(frozen=True)
class Caps:
    max_disk_bytes: int | None = None
    max_upload_bytes_per_day: int | None = None

    def check_store(self, store: ContentStore) -> None:
        """Refuses caps this store cannot keep: only an IPFS node uploads, and only a store the node can
        measure and release from can hold a disk cap."""
        if self.max_upload_bytes_per_day is not None and not isinstance(store, IpfsStore):
            raise ShardworkError(
                "--max-upload needs an IPFS store (--store ipfs:URL): a store directory uploads nothing"
            )
        if self.max_disk_bytes is not None and not isinstance(store, IpfsStore | LocalStore):
            raise ShardworkError("--max-disk needs an IPFS store or a store directory")


def trace_bytes_estimate(spec: TrainingSpec) -> int:
    """What one task's trace takes before its first is measured: a checkpoint per segment, the update, and what
    its shard carries on (the end optimizer state and the compression error, kept for the next round's task)."""
    params = sum(p.numel() for p in resolve(spec.model).build_model().parameters())
    carried = (CHECKPOINT_BYTES_PER_PARAM - 4 if spec.optimizer.carry_state else 0) + (
        4 if spec.compression.method != "none" else 0
    )
    return params * (CHECKPOINT_BYTES_PER_PARAM * spec.segments + 4 + carried)


class HeldTraces:
    """The traces the node keeps for verifiers, in `work_dir/held-traces.json`: task id -> (checkpoint CIDs a
    release frees, the CIDs that stay). A file, so a restarted node still releases what it kept before."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: dict[int, list[str]] = {}
        if path.exists():
            self._held = {int(task): list(cids) for task, cids in json.loads(path.read_text()).items()}

    def add(self, task_id: int, releasable: list[str]) -> None:
        self._held[task_id] = releasable
        self._save()

    def remove(self, task_id: int) -> None:
        self._held.pop(task_id, None)
        self._save()

    def tasks(self) -> dict[int, list[str]]:
        return dict(self._held)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(task): cids for task, cids in self._held.items()}))
        tmp.replace(self.path)


def content_bytes(store: ContentStore, held: HeldTraces) -> int:
    """What the node's content takes on disk: its IPFS node's repository, or its kept traces' files."""
    if isinstance(store, IpfsStore):
        return store.repo_bytes()
    if isinstance(store, LocalStore):
        return sum(store.size(cid) for cids in held.tasks().values() for cid in cids)
    return 0


def release(store: ContentStore, cids: list[str]) -> None:
    if isinstance(store, IpfsStore):
        for cid in cids:
            store.unpin(cid)
        store.collect_garbage()
    elif isinstance(store, LocalStore):
        for cid in cids:
            store.remove(cid)


class UploadMeter:
    """Bytes sent over the last day, from a cumulative counter (IPFS bitswap's DataSent) sampled as the node runs."""

    def __init__(self, read_sent: Callable[[], int], clock: Callable[[], float] = time.time) -> None:
        self._read, self._clock = read_sent, clock
        self._samples: deque[tuple[float, int]] = deque()

    def last_day(self) -> int:
        now, sent = self._clock(), self._read()
        if self._samples and sent < self._samples[-1][1]:
            self._samples.clear()  # the daemon restarted: its counter starts again from zero
        if not self._samples or now - self._samples[-1][0] >= SAMPLE_EVERY_S:
            self._samples.append((now, sent))
        # Keep the newest sample at or before the day's start: what was sent since covers the whole day.
        while len(self._samples) > 1 and self._samples[1][0] <= now - DAY_S:
            self._samples.popleft()
        oldest_at, oldest_sent = self._samples[0]
        # No sample a day old yet: the counter's whole count, which may cover more than a day (the daemon ran
        # before the node did); a count too high only claims less, never more than the cap.
        return sent - oldest_sent if oldest_at <= now - DAY_S else sent
