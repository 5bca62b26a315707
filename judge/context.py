"""What it takes to judge a committed task, rebuilt from the chain and the content store alone.

One place for it: the volunteer's daemon (training and resuming), the verifier workers, the coordinator and
the auditor all load a round the same way, with the same checks, and cache what never changes once
published (round manifests, specs, shards: immutable by CID; commits: immutable per attempt).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from content.store import ContentStore
from ledger.errors import ChainError
from ledger.market import Market, OpenedRound, Task, TaskStatus, split_task_id
from protocol.errors import ContentError, ContentInvalid
from protocol.manifests import InnerState, RoundManifest
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, canonical_hash, from_bytes
from protocol.training import task_start
from protocol.verify import Layout, checkpoint_limit, parse_inner_state, update_limit, weights_layout
from protocol.workloads import Workload, resolve

# A round manifest and a spec are a few kilobytes; anything past this is refused before it is read.
MAX_MANIFEST_READ = 1 << 20
CONTENT_CACHE = 8  # velocities and carried optimizer states a ChainView keeps (ChainView._cached)


@dataclass(frozen=True)
class RoundContext:
    opened: OpenedRound
    manifest: RoundManifest
    spec: TrainingSpec
    workload: Workload

    def weights_layout(self) -> Layout:
        """Names, dtypes and shapes of the model's weights (cached per spec: no model is built per call)."""
        return weights_layout(self.spec, self.workload)

    def seed(self, shard: int) -> bytes:
        return task_seed(self.opened.bounty_id, self.opened.round, shard, self.opened.block_hash)


@dataclass(frozen=True)
class Commit:
    """A task's current commit as the chain recorded it (the TaskCommitted event of its attempt)."""

    task_id: int
    attempt: int
    volunteer: str
    block: int
    trace_root: bytes
    update_hash: bytes
    trace_cid: str
    update_cid: str


def load_round(market: Market, store: ContentStore, opened: OpenedRound) -> RoundContext:
    """The round's manifest and spec, bound to what the bounty posted; ContentError when they are unusable."""
    manifest = RoundManifest.parse(store.get(opened.model_cid, max_bytes=MAX_MANIFEST_READ))
    if manifest.spec_cid != market.spec_cid(opened.bounty_id):
        raise ContentInvalid(f"round manifest names spec {manifest.spec_cid}, the bounty posted another")
    spec = TrainingSpec.from_bytes(store.get(manifest.spec_cid, max_bytes=MAX_MANIFEST_READ))
    return RoundContext(opened, manifest, spec, resolve(spec.model))


class ChainView:
    """Round contexts and commits, each read once: one ChainView per worker or daemon."""

    def __init__(self, market: Market, store: ContentStore) -> None:
        self.market, self.store = market, store
        self._rounds: dict[tuple[int, int], RoundContext] = {}
        self._commits: dict[tuple[int, int, int], Commit] = {}
        self._content: dict[tuple[str, str], Tensors] = {}
        self._start_hashes: dict[tuple[int, int, int, bool], bytes] = {}  # by (bounty, round, shard, fresh)

    def load(self, opened: OpenedRound) -> RoundContext:
        key = (opened.bounty_id, opened.round)
        if key not in self._rounds:
            self._rounds[key] = load_round(self.market, self.store, opened)
        return self._rounds[key]

    def round(self, bounty_id: int, round_: int) -> RoundContext:
        key = (bounty_id, round_)
        if key not in self._rounds:
            opened = next((r for r in self.market.opened_rounds(bounty_id=bounty_id) if r.round == round_), None)
            if opened is None:
                raise ContentError(f"round {round_} of bounty {bounty_id} was never opened")
            self._rounds[key] = load_round(self.market, self.store, opened)
        return self._rounds[key]

    def round_of_task(self, task_id: int) -> RoundContext:
        bounty_id, round_, _ = split_task_id(task_id)
        return self.round(bounty_id, round_)

    def commit(self, task_id: int, task: Task | None = None) -> Commit:
        """The current attempt's commit (pass the task if it was just read): its commit block's log is read
        once per attempt."""
        task = task or self.market.task(task_id)
        if task.status not in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED, TaskStatus.CONTESTED, TaskStatus.ACCEPTED):
            raise ContentError(f"task {task_id} has no commit on-chain")
        # Keyed by the commit's block too: a reorg that replaced the commit within the attempt is read anew.
        key = (task_id, task.attempt, task.commit_block)
        cached = self._commits.get(key)
        if cached is None or cached.volunteer.lower() != task.volunteer.lower():
            event = self.market.commit_event(task_id, task)
            if event is None:  # the task says committed: our node has not served the log (lagging, pruned)
                raise ChainError(f"task {task_id} is committed in block {task.commit_block}, but its log is not served")
            cached = self._commits[key] = commit_of(task_id, task.attempt, task.commit_block, event)
        return cached

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one ChainView per worker, content is immutable by CID
    def tensors(self, cid: str) -> Tensors:
        return from_bytes(self.store.get_buffer(cid))

    def round_weights(self, ctx: RoundContext) -> Tensors:
        return self._shaped_as_weights(ctx, ctx.manifest.model_cid)

    def _shaped_as_weights(self, ctx: RoundContext, cid: str) -> Tensors:
        """Tensors named and shaped as the round's weights, bounded by the spec's own model like every read of a
        checkpoint or update (protocol.verify)."""
        limit = update_limit(ctx.spec, ctx.workload)
        return from_bytes(self.store.get_buffer(cid, max_bytes=limit), ctx.weights_layout())

    def velocity(self, ctx: RoundContext) -> Tensors | None:
        """The outer optimizer's momentum the round's manifest publishes (bounded and shaped as the weights)."""
        cid = ctx.manifest.outer_velocity_cid
        if cid is None:
            return None
        return self._cached(("velocity", cid), lambda: self._shaped_as_weights(ctx, cid))

    def _cached(self, key: tuple[str, str], read: Callable[[], Tensors]) -> Tensors:
        """A checked read of immutable content (by CID), kept for the next ask: the few latest only, as each
        is a model's size."""
        if key not in self._content:
            if len(self._content) >= CONTENT_CACHE:
                self._content.pop(next(iter(self._content)))
            self._content[key] = read()
        return self._content[key]

    def carried(self, task_id: int, fresh: bool = False) -> InnerState | None:
        """The optimizer state the task starts from, as its round's manifest names it (None: a fresh optimizer).
        `fresh`: the task's trace says it started without what its round carries (TraceManifest.fresh_start); every
        method here that takes it answers for such a start."""
        if fresh:
            return None
        return self.round_of_task(task_id).manifest.inner_state(split_task_id(task_id)[2])

    def carried_steps(self, task_id: int, fresh: bool = False) -> int | None:
        """parse_checkpoint's `carried` for this task's checkpoints."""
        state = self.carried(task_id, fresh)
        return None if state is None else state.steps

    def carried_state(self, task_id: int, fresh: bool = False) -> Tensors | None:
        """The tensors of `carried`, bounded and checked as a checkpoint's optimizer part."""
        state = self.carried(task_id, fresh)
        if state is None:
            return None
        ctx = self.round_of_task(task_id)

        def read() -> Tensors:
            data = self.store.get_buffer(state.cid, max_bytes=checkpoint_limit(ctx.spec, ctx.workload))
            return parse_inner_state(data, ctx.spec, ctx.workload, state.steps)

        # Keyed by the counted steps too: the same bytes under another count are refused, not reused.
        return self._cached(("inner state", f"{state.cid}:{state.steps}"), read)

    def update_error(self, task_id: int, fresh: bool = False) -> Tensors | None:
        """What compression has not sent yet of the task's shard's earlier updates (RoundManifest.update_errors),
        added to the task's own update: float32 tensors named and shaped as the weights. None: nothing."""
        if fresh:
            return None
        ctx = self.round_of_task(task_id)
        cid = ctx.manifest.update_error(split_task_id(task_id)[2])
        if cid is None:
            return None
        return self._cached(("update error", cid), lambda: self._shaped_as_weights(ctx, cid))

    def start_state(self, task_id: int, fresh: bool = False) -> Tensors:
        """The state the task must start from (protocol.training.task_start: the round's model and its shard's
        carried optimizer state): checkpoint 0 of an honest trace, built here rather than fetched as a checkpoint
        (the carried state is read by its CID from whoever holds it: the shard's previous volunteer, or this one)."""
        return task_start(self.round_weights(self.round_of_task(task_id)), self.carried_state(task_id, fresh))

    def start_hash(self, task_id: int, fresh: bool = False) -> bytes:
        """H of start_state: an honest trace's checkpoint 0 is judged by its committed hash alone."""
        key = (*split_task_id(task_id), fresh)
        if key not in self._start_hashes:
            self._start_hashes[key] = canonical_hash(self.start_state(task_id, fresh))
        return self._start_hashes[key]

    def shard(self, task_id: int) -> Tensors:
        ctx = self.round_of_task(task_id)
        return self.tensors(ctx.manifest.shard_cids[split_task_id(task_id)[2]])

    def seed(self, task_id: int) -> bytes:
        return self.round_of_task(task_id).seed(split_task_id(task_id)[2])


def commit_of(task_id: int, attempt: int, block: int, args: dict[str, Any]) -> Commit:
    return Commit(
        task_id,
        attempt,
        str(args["volunteer"]),
        block,
        bytes(args["traceRoot"]),
        bytes(args["updateHash"]),
        str(args["traceCid"]),
        str(args["updateCid"]),
    )
