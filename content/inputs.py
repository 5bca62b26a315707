"""A spec's inputs in the content store: its dataset and its base model.

A poster publishes its files and a DatasetManifest naming them (`shardwork dataset add`); the coordinator's
intake, the poster's pre-flight (`bounty post`) and the auditor read them back by the CIDs a spec names and
split them the same way (`load_inputs`), so the shard CIDs intake publishes can be recomputed by anyone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from content.store import ContentStore
from protocol import datasets
from protocol.cid import cid_of
from protocol.errors import ContentInvalid, ContentMissing
from protocol.manifests import MAX_MANIFEST_BYTES, DatasetFile, DatasetManifest
from protocol.spec import SpecError, TrainingSpec
from protocol.tensors import Tensors, from_bytes
from protocol.training import initial_weights
from protocol.verify import update_limit, weights_layout
from protocol.workloads import resolve


def fetch_dataset(store: ContentStore, cid: str) -> Tensors:
    """The examples of the dataset `cid` names; ContentError when it is absent or not a dataset manifest,
    SpecError when its files do not decode."""
    try:
        manifest = DatasetManifest.parse(store.get(cid, max_bytes=MAX_MANIFEST_BYTES))
    except ContentMissing as exc:
        raise ContentMissing(f"data.dataset: {exc} (publish it there with `shardwork dataset add`)") from None
    total = sum(f.bytes for f in manifest.files)
    if total > datasets.MAX_DATASET_BYTES:
        raise SpecError(f"dataset {cid} is {total} bytes, over the protocol's {datasets.MAX_DATASET_BYTES}-byte limit")
    blobs = [store.get_buffer(f.cid, max_bytes=min(f.bytes, datasets.MAX_FILE_BYTES)) for f in manifest.files]
    return datasets.decode(manifest, blobs)


def spec_data(spec: TrainingSpec, store: ContentStore) -> Tensors:
    """The examples a spec trains on: its published dataset, or its family's built-in one."""
    if spec.data.dataset is not None:
        return fetch_dataset(store, spec.data.dataset)
    return datasets.load(resolve(spec.model).dataset)


def publish_dataset(store: ContentStore, paths: Sequence[Path]) -> tuple[str, DatasetManifest, Tensors]:
    """Adds the files and their manifest; returns the manifest's CID, the manifest and the decoded examples.
    All files are text, or all are .safetensors; every check runs before anything is stored."""
    if not paths:
        raise SpecError("name at least one file")
    kinds = {"tensors" if p.suffix == ".safetensors" else "text" for p in paths}
    if len(kinds) > 1:
        raise SpecError("a dataset is all text files or all .safetensors files, not both")
    kind: Literal["text", "tensors"] = "tensors" if kinds == {"tensors"} else "text"
    files, total = [], 0
    for path in paths:
        if not path.is_file():
            raise SpecError(f"no file at {path}")
        size = path.stat().st_size
        if size == 0:
            raise SpecError(f"{path} is empty")
        if size > datasets.MAX_FILE_BYTES:
            raise SpecError(
                f"{path} is {size} bytes, over the {datasets.MAX_FILE_BYTES}-byte limit of one file: split it"
            )
        total += size
        if total > datasets.MAX_DATASET_BYTES:
            raise SpecError(f"the files add up to over the {datasets.MAX_DATASET_BYTES}-byte limit of a dataset")
        files.append((path.name, path.read_bytes()))
    return _publish(store, kind, files)


def publish_builtin(store: ContentStore, name: str) -> tuple[str, DatasetManifest, Tensors]:
    """A family's built-in dataset published as an ordinary dataset (protocol.datasets.builtin_files): a spec
    naming it gets the same shards as one naming none."""
    return _publish(store, *datasets.builtin_files(name))


def _publish(
    store: ContentStore, kind: Literal["text", "tensors"], files: list[tuple[str, bytes]]
) -> tuple[str, DatasetManifest, Tensors]:
    manifest = DatasetManifest(
        kind=kind,
        files=[DatasetFile(name=name[:255], cid=cid_of(blob), bytes=len(blob)) for name, blob in files],
    )
    blobs = [blob for _, blob in files]
    examples = datasets.decode(manifest, blobs)  # refuses non-UTF-8 text, malformed or mismatched tensors
    for blob in blobs:
        store.put(blob)
    return store.put(manifest.canonical_bytes()), manifest, examples


@dataclass(frozen=True)
class Inputs:
    """What a spec names beyond itself, read and checked: its data split into shards and holdout, and the
    round-0 model."""

    shards: list[Tensors]
    holdout: Tensors
    weights: Tensors


def load_inputs(spec: TrainingSpec, store: ContentStore) -> Inputs:
    """The spec's data (a published dataset or the family's built-in one) split as the spec says, every shard
    checked usable, and its round-0 weights (the base model, checked against the family's shapes, or fresh
    from init_seed). SpecError or ContentError when a spec names something unusable: `bounty post` asks this
    before escrowing anything, intake before opening round 0."""
    workload = resolve(spec.model)
    shards, holdout = workload.split(spec_data(spec, store), spec.data)
    if spec.base_model is None:
        return Inputs(shards, holdout, initial_weights(spec))
    try:
        raw = store.get(spec.base_model, max_bytes=update_limit(spec, workload))
        weights = from_bytes(raw, weights_layout(spec, workload))
    except ContentMissing as exc:
        raise ContentMissing(f"base_model: {exc} (a pulled model's card names its model_cid)") from None
    except ContentInvalid as exc:
        raise SpecError(
            f"base_model {spec.base_model} is not a {spec.model.family} model of these params: {exc}"
        ) from None
    return Inputs(shards, holdout, {name: t.clone() for name, t in weights.items()})
