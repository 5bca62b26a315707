"""Intake: a posted bounty's spec becomes published shards, a round-0 model and a round manifest.

Everything here is a pure function of the spec (plus the store it writes to), so anyone can recompute
the CIDs the coordinator published and check them.
"""

from __future__ import annotations

from dataclasses import dataclass

from content.inputs import Inputs, load_inputs
from content.store import ContentStore
from protocol.manifests import InnerState, RoundManifest, UpdateScore
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, to_bytes


@dataclass(frozen=True)
class PublishedData:
    spec_cid: str
    shard_cids: list[str]
    holdout_cid: str
    cross_class_tolerance: float | None = None


def publish_data(
    spec: TrainingSpec,
    store: ContentStore,
    cross_class_tolerance: float | None = None,
    spec_cid: str | None = None,
    inputs: Inputs | None = None,
) -> PublishedData:
    """Shards and holdout of the spec's data; the spec itself under `spec_cid` (the posted bytes) or, without
    one, its canonical encoding."""
    inputs = inputs or load_inputs(spec, store)
    shards, holdout = inputs.shards, inputs.holdout
    return PublishedData(
        spec_cid=spec_cid or store.put(spec.canonical_bytes()),
        shard_cids=[store.put(to_bytes(shard)) for shard in shards],
        holdout_cid=store.put(to_bytes(holdout)),
        cross_class_tolerance=cross_class_tolerance,
    )


def publish_round(
    store: ContentStore,
    data: PublishedData,
    bounty_id: int,
    round_: int,
    weights: Tensors,
    metric: tuple[str, float] | None = None,
    velocity: Tensors | None = None,
    scores: list[UpdateScore] | None = None,
    carried: list[tuple[str, int] | None] | None = None,
    errors: list[str | None] | None = None,
) -> tuple[str, RoundManifest]:
    """Publishes the round's model (and the outer optimizer's velocity that came with it) and the manifest, which
    names each shard's `carried` optimizer state with the inner steps it has counted and each shard's compression
    `errors` (CIDs the shards' traces name: that content is on the volunteers' nodes, never read here); the
    manifest's CID is what `openRound` records."""
    states = [None if c is None else InnerState(cid=c[0], steps=c[1]) for c in carried or []]
    update_errors = list(errors or [])
    manifest = RoundManifest(
        bounty_id=bounty_id,
        round=round_,
        spec_cid=data.spec_cid,
        model_cid=store.put(to_bytes(weights)),
        shard_cids=data.shard_cids,
        holdout_cid=data.holdout_cid,
        metric_name=metric[0] if metric else None,
        metric=metric[1] if metric else None,
        cross_class_tolerance=data.cross_class_tolerance,
        outer_velocity_cid=None if velocity is None else store.put(to_bytes(velocity)),
        update_scores=scores or [],
        inner_states=states,
        update_errors=update_errors,
    )
    return store.put(manifest.canonical_bytes()), manifest
