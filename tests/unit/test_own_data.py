"""A poster's own data and base model: published datasets decode to the same examples everywhere, bad input is
refused in one line before anything is stored, shards nobody could train on are refused at post, and specs
that name neither keep the CIDs they always had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from content.inputs import fetch_dataset, load_inputs, publish_builtin, publish_dataset
from content.store import LocalStore
from protocol.cid import cid_of
from protocol.errors import ContentInvalid
from protocol.manifests import DatasetManifest
from protocol.spec import SpecError, TrainingSpec
from protocol.tensors import to_bytes
from protocol.training import initial_weights
from protocol.verify import weights_layout
from protocol.workloads import resolve

PARAMS = {"context": 16, "dim": 16, "heads": 2, "layers": 1}
LM = {"family": "char-transformer", "params": PARAMS}
CORPUS = "It is a truth universally acknowledged, that a single man in possession of a good fortune,\n" * 40


def lm_spec(**changes: object) -> TrainingSpec:
    return TrainingSpec.model_validate({"model": LM, "data": {"shards": 2}, **changes})


def test_a_text_dataset_round_trips_through_the_store_and_splits_by_the_spec(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "a.txt").write_text(CORPUS)
    (tmp_path / "b.txt").write_text("Tschüss\n")
    cid, manifest, examples = publish_dataset(store, [tmp_path / "a.txt", tmp_path / "b.txt"])
    assert manifest.kind == "text" and [f.name for f in manifest.files] == ["a.txt", "b.txt"]
    assert len(examples["tokens"]) == len(CORPUS) + 1 + len("Tschüss\n".encode())  # joined by a line break
    assert bytes(examples["tokens"][-9:].tolist()) == b"Tsch??ss\n"  # the models' 128 symbols
    assert torch.equal(fetch_dataset(store, cid)["tokens"], examples["tokens"])
    spec = lm_spec(data={"shards": 2, "dataset": cid})
    first, again = load_inputs(spec, store), load_inputs(spec, store)
    assert [cid_of(to_bytes(s)) for s in first.shards] == [cid_of(to_bytes(s)) for s in again.shards]
    assert sum(len(s["tokens"]) for s in first.shards) + len(first.holdout["tokens"]) == len(examples["tokens"])


def test_labelled_tensors_are_a_dataset_for_a_classifier(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for i in range(2):
        x = torch.rand(60, 784, generator=torch.Generator().manual_seed(i))
        save_file({"x": x, "y": torch.arange(60) % 10}, tmp_path / f"part{i}.safetensors")
    cid, manifest, examples = publish_dataset(store, sorted(tmp_path.glob("*.safetensors")))
    assert manifest.kind == "tensors" and examples["x"].shape == (120, 784)
    spec = TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}, "data": {"shards": 3, "dataset": cid}})
    inputs = load_inputs(spec, store)
    assert [len(s["y"]) for s in inputs.shards] == [36, 36, 36] and len(inputs.holdout["y"]) == 12


@pytest.mark.parametrize("family", ["mnist-mlp", "char-transformer"])
def test_a_published_builtin_dataset_splits_into_the_shards_naming_none_gives(family: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    model = {"family": family, "params": PARAMS if family == "char-transformer" else {}}
    cid, manifest, _ = publish_builtin(store, resolve(TrainingSpec.model_validate({"model": model}).model).dataset)
    assert manifest.kind == ("text" if family == "char-transformer" else "tensors")
    none = load_inputs(TrainingSpec.model_validate({"model": model, "data": {"shards": 3}}), store)
    named = load_inputs(TrainingSpec.model_validate({"model": model, "data": {"shards": 3, "dataset": cid}}), store)
    assert [cid_of(to_bytes(s)) for s in named.shards] == [cid_of(to_bytes(s)) for s in none.shards]
    assert cid_of(to_bytes(named.holdout)) == cid_of(to_bytes(none.holdout))
    with pytest.raises(SpecError, match="unknown dataset 'cifar'"):
        publish_builtin(store, "cifar")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.txt": b"caf\xe9 au lait"}, "dataset file 'a.txt' is not UTF-8 text (byte 3)"),
        ({"a.txt": b"  \n\n"}, "the dataset's text is empty"),
        ({"a.txt": b""}, "a.txt is empty"),
        ({"a.txt": b"words", "b.safetensors": b"x"}, "all text files or all .safetensors files"),
        ({"a.safetensors": b"PK\x03\x04 zipped"}, "dataset file 'a.safetensors'"),
    ],
)
def test_unusable_files_are_refused_in_one_line_and_nothing_is_stored(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    store = LocalStore(tmp_path / "store")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        publish_dataset(store, [tmp_path / name for name in files])
    assert not any((tmp_path / "store").iterdir())


def test_tensor_files_that_disagree_or_are_mislabelled_are_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    save_file({"x": torch.rand(20, 784), "y": torch.zeros(20, dtype=torch.int64)}, tmp_path / "a.safetensors")
    save_file({"x": torch.rand(20, 28, 28), "y": torch.zeros(20, dtype=torch.int64)}, tmp_path / "b.safetensors")
    with pytest.raises(SpecError, match="'b.safetensors' holds other tensors than 'a.safetensors'"):
        publish_dataset(store, [tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    save_file({"x": torch.rand(40, 784), "y": torch.arange(40)}, tmp_path / "labels.safetensors")
    cid, _, _ = publish_dataset(store, [tmp_path / "labels.safetensors"])  # a tensor file is not yet a family's data
    spec = TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}, "data": {"shards": 2, "dataset": cid}})
    with pytest.raises(SpecError, match="labels y must be classes 0–9; this data has 0–39"):
        load_inputs(spec, store)


def test_shards_too_short_to_train_on_are_refused_at_post(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "tiny.txt").write_text("To be, or not to be, that is the question:\n")
    cid, _, _ = publish_dataset(store, [tmp_path / "tiny.txt"])
    with pytest.raises(SpecError, match=r"shard 0 of 3: 13 tokens is too short: .* \(fewer shards, more data"):
        load_inputs(lm_spec(data={"shards": 3, "dataset": cid}), store)
    with pytest.raises(SpecError, match=r"the holdout: 4 tokens is too short"):
        load_inputs(lm_spec(data={"shards": 2, "dataset": cid}), store)


def test_a_dataset_cid_that_is_not_a_dataset_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    spec_cid = store.put(lm_spec().canonical_bytes())
    with pytest.raises(ContentInvalid, match="malformed DatasetManifest"):
        load_inputs(lm_spec(data={"shards": 2, "dataset": spec_cid}), store)
    with pytest.raises(SpecError, match="data.dataset: Value error, 'not-a-cid' is not a CIDv0"):
        TrainingSpec.from_bytes(json.dumps({"model": LM, "data": {"dataset": "not-a-cid"}}).encode())


def test_a_base_model_must_have_the_familys_shapes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    spec = lm_spec()
    good = {n: t + 1 for n, t in initial_weights(spec).items()}
    inputs = load_inputs(lm_spec(base_model=store.put(to_bytes(good))), store)
    assert all(torch.equal(inputs.weights[n], good[n]) for n in good)
    wider = initial_weights(lm_spec(model={"family": "char-transformer", "params": {**PARAMS, "dim": 32}}))
    with pytest.raises(SpecError, match="is not a char-transformer model of these params"):
        load_inputs(lm_spec(base_model=store.put(to_bytes(wider))), store)
    assert set(weights_layout(spec, resolve(spec.model))) == set(good)


def test_specs_naming_no_dataset_or_base_model_keep_their_cids() -> None:
    spec = lm_spec()
    assert b"dataset" not in spec.canonical_bytes() and b"base_model" not in spec.canonical_bytes()
    named = lm_spec(base_model=cid_of(b"weights"), data={"shards": 2, "dataset": cid_of(b"data")})
    assert TrainingSpec.from_bytes(named.canonical_bytes()) == named
    manifest = DatasetManifest(kind="text", files=[{"name": "a", "cid": cid_of(b"a"), "bytes": 1}])
    assert DatasetManifest.parse(manifest.canonical_bytes()) == manifest
