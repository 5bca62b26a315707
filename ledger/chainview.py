"""What it takes to check a committed task, rebuilt from the chain and the content store alone
(shared by verifier workers, the coordinator and the auditor)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ledger.market import Market, OpenedRound, split_task_id
from protocol.manifests import RoundManifest
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.store import ContentError, ContentStore
from protocol.tensors import Tensors, from_bytes
from protocol.workloads import Workload, resolve


@dataclass(frozen=True)
class RoundContext:
    opened: OpenedRound
    manifest: RoundManifest
    spec: TrainingSpec
    workload: Workload

    def weights_layout(self) -> dict[str, tuple[object, tuple[int, ...]]]:
        return {n: (p.dtype, tuple(p.shape)) for n, p in self.workload.build_model().named_parameters()}


class ChainView:
    """Caches what never changes once published (round manifests, specs, shards) by CID."""

    def __init__(self, market: Market, store: ContentStore) -> None:
        self.market, self.store = market, store
        self._rounds: dict[tuple[int, int], RoundContext] = {}

    def round(self, bounty_id: int, round_: int) -> RoundContext:
        key = (bounty_id, round_)
        if key not in self._rounds:
            opened = next((r for r in self.market.opened_rounds(bounty_id=bounty_id) if r.round == round_), None)
            if opened is None:
                raise ContentError(f"round {round_} of bounty {bounty_id} was never opened")
            manifest = RoundManifest.parse(self.store.get(opened.model_cid))
            spec = TrainingSpec.from_bytes(self.store.get(manifest.spec_cid))
            self._rounds[key] = RoundContext(opened, manifest, spec, resolve(spec.model))
        return self._rounds[key]

    def round_of_task(self, task_id: int) -> RoundContext:
        bounty_id, round_, _ = split_task_id(task_id)
        return self.round(bounty_id, round_)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one ChainView per worker, shards are immutable by CID
    def tensors(self, cid: str) -> Tensors:
        return from_bytes(self.store.get(cid))

    def round_weights(self, ctx: RoundContext) -> Tensors:
        return from_bytes(self.store.get(ctx.manifest.model_cid), ctx.weights_layout())  # type: ignore[arg-type]

    def shard(self, task_id: int) -> Tensors:
        ctx = self.round_of_task(task_id)
        return self.tensors(ctx.manifest.shard_cids[split_task_id(task_id)[2]])

    def seed(self, task_id: int) -> bytes:
        bounty_id, round_, shard = split_task_id(task_id)
        return task_seed(bounty_id, round_, shard, self.round(bounty_id, round_).opened.block_hash)
