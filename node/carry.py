"""A returning volunteer keeps its shard: what the shard carries into its next task is rebuilt, not downloaded.

With optimizer.carry_state each shard's task starts from the optimizer state its previous task ended with, and
with compression it adds the error that task's update left unsent (RoundManifest.inner_states, update_errors).
The coordinator publishes exactly those bytes (coordinator.intake: the last checkpoint's optimizer part, and the
error recomputed from the last checkpoint), so the volunteer that trained the shard's previous task can rebuild
them from its own trace: 12 bytes per parameter it would otherwise fetch from the coordinator's node (8 for
Adam's moments, 4 for the error). Rebuilt bytes are used only under the CID the manifest names: the content
store names them by their hash, so nothing unchecked is ever trained from.
"""

from __future__ import annotations

from pathlib import Path

from content.store import ContentStore
from judge.context import ChainView, RoundContext
from ledger.market import split_task_id, task_id_of
from node.trainer import read_journal
from protocol.cid import cid_of
from protocol.compression import send
from protocol.errors import ContentError
from protocol.manifests import CheckpointRef
from protocol.tensors import from_bytes, to_bytes
from protocol.training import MODEL_PREFIX, inner_state


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
