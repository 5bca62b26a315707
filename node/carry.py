"""What a shard carries from one round's task into the next: kept by whoever trained it, fetched only on a handoff.

With optimizer.carry_state each shard's task starts from the optimizer state its previous task ended with, and
with compression it adds the error that task's update left unsent (RoundManifest.inner_states, update_errors).
The volunteer that trained the shard's previous task put exactly those bytes into its own store when it published
its trace (node.trainer.publish_trace) and named them there; the next round names the same CIDs. A returning
volunteer therefore has them (and rebuilds them from its own trace should its store have lost them: 12 bytes per
parameter it would otherwise fetch, 8 for Adam's moments, 4 for the error); a newcomer to the shard fetches them
from the previous volunteer's node. Rebuilt or fetched bytes are used only under the CID the manifest names: the
content store names them by their hash, so nothing unchecked is ever trained from. When the previous volunteer
has left and nobody serves them, the task starts fresh after a while (may_start_fresh), and its trace says so.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from content.store import ContentStore
from judge.context import ChainView, RoundContext
from ledger.market import split_task_id, task_id_of
from node.trainer import read_journal
from protocol.cid import cid_of
from protocol.compression import send
from protocol.errors import ContentError, ContentMissing
from protocol.manifests import CheckpointRef
from protocol.tensors import from_bytes, to_bytes
from protocol.training import MODEL_PREFIX, inner_state
from telemetry.logs import log


def journal_of(journals: Path, task_id: int) -> Path:
    """Where node.trainer.train_task journals a task's checkpoints (kept after the commit)."""
    return journals / f"task-{task_id}.journal.json"


def _last_checkpoint(journals: Path, task_id: int, steps: int) -> CheckpointRef | None:
    """The last checkpoint of a task this node trained to its end, per its journal; None if it did not."""
    refs = read_journal(journal_of(journals, task_id))
    return refs[-1] if refs and refs[-1].step == steps else None


def shard_order(journals: Path, rnd: RoundContext, shards: int) -> list[int]:
    """The round's shards, those whose previous task this node trained to its end first."""
    bounty_id, round_ = rnd.opened.bounty_id, rnd.opened.round
    if round_ == 0:
        return list(range(shards))
    steps = rnd.spec.steps_per_task
    mine = {s for s in range(shards) if _last_checkpoint(journals, task_id_of(bounty_id, round_ - 1, s), steps)}
    return sorted(range(shards), key=lambda s: s not in mine)


def rebuild_carried(view: ChainView, store: ContentStore, journals: Path, task_id: int) -> list[str]:
    """Puts into `store` what the task's shard carries from the previous round, where this node trained the shard's
    previous task and the store lacks it; returns the CIDs put. Best effort: anything it cannot rebuild (its own
    checkpoint gone, another update used) is left to be fetched as before."""
    bounty_id, round_, shard = split_task_id(task_id)
    if round_ == 0:
        return []
    ctx = view.round_of_task(task_id)
    state, error_cid = ctx.manifest.inner_state(shard), ctx.manifest.update_error(shard)
    wanted = {cid for cid in (state.cid if state else None, error_cid) if cid is not None and not store.has(cid)}
    previous = task_id_of(bounty_id, round_ - 1, shard)
    last_ref = _last_checkpoint(journals, previous, ctx.spec.steps_per_task) if wanted else None
    if last_ref is None:
        return []
    try:
        last = from_bytes(store.get_buffer(last_ref.cid))
        built = [to_bytes(inner_state(last))] if state is not None else []
        if error_cid is not None:
            before = view.round_of_task(previous)
            delta = {n: last[MODEL_PREFIX + n] - w for n, w in view.round_weights(before).items()}
            error = send(delta, view.update_error(previous), before.spec.compression).error
            built += [to_bytes(error)] if error is not None else []
    except (ContentError, KeyError):  # our own checkpoint unreadable, or not the layout the round carries
        return []
    put = []
    for data in built:
        if cid_of(data) in wanted:
            put.append(store.put(data))
    return put


def fresh_marker(journals: Path, task_id: int) -> Path:
    """Where this node records that it started a task fresh (TraceManifest.fresh_start), so a resume does too."""
    return journals / f"task-{task_id}.fresh"


def may_start_fresh(journals: Path, task_id: int, missing_for_s: float, patience_s: float) -> bool:
    """Whether a task whose carried state or error could not be fetched for `missing_for_s` seconds starts without
    them: the shard's previous volunteer, which holds them, may be gone for good, and the round must not wait on
    it forever. Never once the task has a journal: its checkpoints were trained from what was carried, and a
    trace that said otherwise would fail its first segment."""
    return missing_for_s >= patience_s and not journal_of(journals, task_id).exists()


class CarryWaits:
    """Per task, since when what its shard carries has not been served to this node, and whether it starts fresh."""

    def __init__(self, journals: Path, patience_s: float, logger: logging.Logger) -> None:
        self.journals, self.patience_s, self.logger = journals, patience_s, logger
        self._missing_since: dict[int, float] = {}

    def starts_fresh(self, view: ChainView, task_id: int) -> bool:
        """As decided before (a resume), or now: the carried content, held by the shard's previous volunteer, has
        not been served for `patience_s` (may_start_fresh). Raises ContentMissing while it is still waited for."""
        marker = fresh_marker(self.journals, task_id)
        if marker.exists():
            return True
        try:
            view.carried_state(task_id)
            view.update_error(task_id)
            return False
        except ContentMissing:
            now = time.monotonic()
            missing_for_s = now - self._missing_since.setdefault(task_id, now)
            if not may_start_fresh(self.journals, task_id, missing_for_s, self.patience_s):
                raise
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        log(self.logger, "starting fresh: the shard's carried state was not served", task_id=task_id)
        return True


def carried_in(view: ChainView, task_id: int, fresh: bool) -> list[str]:
    """What a task started from that its round carried for its shard (fetched from the shard's previous volunteer,
    unless `fresh`): checkers build segment 0's start from it, and its previous holder may be gone by then, so the
    node that trained from it keeps it with its trace."""
    if fresh:
        return []
    rnd = view.round_of_task(task_id)
    shard = split_task_id(task_id)[2]
    state, error = rnd.manifest.inner_state(shard), rnd.manifest.update_error(shard)
    return [cid for cid in (state.cid if state else None, error) if cid is not None]
