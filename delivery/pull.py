"""`shardwork model pull`: a bounty's model out of the content store into a directory people and programs can
use, and back in (`load_pulled`) for `model eval` and `model generate`.

The directory holds model.safetensors (the weights exactly as published: its CID is the card's model_cid),
spec.json (the spec as posted), model-card.json and README.md (the card, for programs and for people)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from delivery.card import ModelCard, RoundModel, audit_summary, contributors_of, render_markdown, slashes_of
from judge.audit import audit
from judge.context import MAX_MANIFEST_READ, ChainView
from ledger.index import EventIndex
from ledger.market import BountyStatus
from protocol.cid import cid_of
from protocol.errors import ContentInvalid, ShardworkError
from protocol.manifests import RoundManifest
from protocol.spec import TrainingSpec
from protocol.tensors import from_bytes
from protocol.training import load_state
from protocol.verify import update_limit, weights_layout
from protocol.workloads import Workload, resolve

WEIGHTS, SPEC, CARD, README = "model.safetensors", "spec.json", "model-card.json", "README.md"


class PullError(ShardworkError):
    """The model cannot be pulled as asked (no such bounty or round, or the directory holds another model)."""


@dataclass(frozen=True)
class Pulled:
    card: ModelCard
    weights: bytes
    spec: bytes


def pull(index: EventIndex, view: ChainView, bounty_id: int, round_: int | None = None, replay: int = 0) -> Pulled:
    """The model that opened `round_` (default: the latest; the bounty's round count: the final model), its
    weights checked against the spec's model, and its card. `replay` segments are replayed by the audit."""
    market, store = view.market, view.store
    index.sync()
    events = index.events(bounty_id=bounty_id)
    posted = next((e for e in events if e.name == "BountyPosted"), None)
    if posted is None:
        raise PullError(f"bounty {bounty_id} does not exist: see `shardwork bounty list`")
    bounty = market.bounty(bounty_id)
    models = {int(e.args["round"]): e.args["modelCid"] for e in events if e.name == "RoundOpened"}
    for e in events:
        if e.name == "BountyFinalized":
            models[bounty.rounds] = e.args["finalModelCid"]
    if not models:
        raise PullError(f"bounty {bounty_id} has no model yet: its first round opens once the coordinator takes it")
    if round_ is None:
        round_ = max(models)
    if round_ not in models:
        have = ", ".join(str(r) for r in sorted(models))
        raise PullError(
            f"bounty {bounty_id} has no model for round {round_}; it has rounds {have} ({bounty.rounds} = final)"
        )

    manifests = {r: _manifest(view, bounty_id, cid) for r, cid in sorted(models.items())}
    manifest = manifests[round_]
    spec_bytes = store.get(manifest.spec_cid, max_bytes=MAX_MANIFEST_READ)
    spec = TrainingSpec.from_bytes(spec_bytes)
    workload = resolve(spec.model)
    weights = store.get(manifest.model_cid, max_bytes=update_limit(spec, workload))
    from_bytes(weights, weights_layout(spec, workload))  # the spec's model, every element finite, or refused
    report = audit(index, view, bounty_id=bounty_id, replay=replay)
    card = ModelCard(
        bounty_id=bounty_id,
        name=spec.name,
        family=spec.model.family,
        params=dict(spec.model.params),
        chain_id=market.w3.eth.chain_id,
        market=market.deployment.market,
        poster=bounty.poster,
        round=round_,
        rounds=bounty.rounds,
        final=round_ == bounty.rounds and bounty.status == BountyStatus.FINALIZED,
        metric_name=workload.metric_name,
        higher_is_better=workload.higher_is_better,
        metric=manifest.metric,
        spec_cid=manifest.spec_cid,
        manifest_cid=models[round_],
        model_cid=manifest.model_cid,
        holdout_cid=manifest.holdout_cid,
        shard_cids=list(manifest.shard_cids),
        history=[
            RoundModel(
                round=r, manifest_cid=models[r], model_cid=m.model_cid, metric=m.metric, update_scores=m.update_scores
            )
            for r, m in manifests.items()
            if r <= round_
        ],
        contributors=contributors_of(events, before_round=round_),
        slashes=slashes_of(events),
        audit=audit_summary(report, index.synced_to),
    )
    return Pulled(card, weights, spec_bytes)


def _manifest(view: ChainView, bounty_id: int, cid: str) -> RoundManifest:
    manifest = RoundManifest.parse(view.store.get(cid, max_bytes=MAX_MANIFEST_READ))
    if manifest.spec_cid != view.market.spec_cid(bounty_id):
        raise ContentInvalid(f"round manifest {cid} names spec {manifest.spec_cid}, the bounty posted another")
    return manifest


def write(pulled: Pulled, out: Path, force: bool = False) -> list[Path]:
    """Writes the directory; each file atomically (a crash leaves the old file or the new, never a torn one).
    A directory holding another model is refused unless `force`: a pull never silently replaces one."""
    out.mkdir(parents=True, exist_ok=True)
    existing = out / CARD
    if existing.exists() and not force:
        try:
            other = ModelCard.model_validate_json(existing.read_bytes())
        except ValueError:
            raise PullError(
                f"{out} holds a {CARD} that is not a model card: choose another --out or pass --force"
            ) from None
        if (other.chain_id, other.market, other.bounty_id, other.model_cid) != (
            pulled.card.chain_id,
            pulled.card.market,
            pulled.card.bounty_id,
            pulled.card.model_cid,
        ):
            raise PullError(
                f"{out} holds another model ({other.summary()}): choose another --out or pass --force to replace it"
            )
    files = {
        WEIGHTS: pulled.weights,
        SPEC: pulled.spec,
        CARD: pulled.card.model_dump_json(indent=2).encode() + b"\n",
        README: render_markdown(pulled.card).encode(),
    }
    written = []
    for name, data in files.items():
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out / name)
        written.append(out / name)
    return written


@dataclass(frozen=True)
class LoadedModel:
    card: ModelCard
    spec: TrainingSpec
    workload: Workload
    model: nn.Module


def load_pulled(directory: Path) -> LoadedModel:
    """A pulled directory back as a ready module; the weights must still be the ones the card names."""
    missing = [name for name in (WEIGHTS, SPEC, CARD) if not (directory / name).is_file()]
    if missing:
        raise PullError(
            f"{directory} is not a pulled model (no {', '.join(missing)}): see `shardwork model pull --help`"
        )
    try:
        card = ModelCard.model_validate_json((directory / CARD).read_bytes())
    except ValueError:
        raise PullError(f"{directory / CARD} is not a model card") from None
    weights = (directory / WEIGHTS).read_bytes()
    if cid_of(weights) != card.model_cid:
        raise PullError(f"{directory / WEIGHTS} is not the model its card names ({card.model_cid}): pull it again")
    spec_bytes = (directory / SPEC).read_bytes()
    if cid_of(spec_bytes) != card.spec_cid:
        raise PullError(f"{directory / SPEC} is not the spec its card names ({card.spec_cid}): pull it again")
    spec = TrainingSpec.from_bytes(spec_bytes)
    workload = resolve(spec.model)
    tensors = from_bytes(weights, weights_layout(spec, workload))
    return LoadedModel(card, spec, workload, load_state(spec, tensors, workload).model)
