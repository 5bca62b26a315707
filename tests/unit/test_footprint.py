"""A spec's memory per training step is measured on the meta device and bounded by the protocol's budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from protocol.datasets import LOADERS, load
from protocol.footprint import MAX_STEP_MEMORY_MB, _step_memory_mb, check_footprint, step_memory_mb
from protocol.spec import SpecError, TrainingSpec
from protocol.workloads import resolve


def spec(model: dict[str, Any], batch_size: int = 32) -> TrainingSpec:
    return TrainingSpec.model_validate({"model": model, "batch_size": batch_size})


class AllocationWatch(TorchDispatchMode):
    """Sees the output of every torch operation run while it is active (factories such as the `empty` behind
    each parameter included): fails at the first tensor that is not on the meta device, and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.meta_tensors = 0
        self.largest_meta_bytes = 0

    def __torch_dispatch__(
        self,
        func: Callable[..., object],
        types: Sequence[type],
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
    ) -> object:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                assert t.device.type == "meta", f"{func} materialised a {tuple(t.shape)} tensor on {t.device}"
                self.meta_tensors += 1
                self.largest_meta_bytes = max(self.largest_meta_bytes, t.numel() * t.element_size())
        return out


@pytest.mark.parametrize("family", ["mnist-mlp", "mnist-cnn", "char-transformer", "gpt"])
def test_the_default_model_of_every_family_fits_the_budget(family: str) -> None:
    assert check_footprint(spec({"family": family})) < 1024


@pytest.mark.parametrize(
    "model,batch_size",
    [
        ({"family": "char-transformer", "params": {"dim": 64, "layers": 1, "context": 1024}}, 4096),
        ({"family": "mnist-cnn", "params": {"channels": 256}}, 4096),
        ({"family": "char-transformer", "params": {"dim": 1024, "layers": 24, "context": 1024, "heads": 8}}, 64),
    ],
    ids=["long-context-huge-batch", "wide-cnn-huge-batch", "largest-transformer"],
)
def test_a_spec_over_the_budget_is_refused_without_building_the_model(model: dict[str, Any], batch_size: int) -> None:
    for dataset in LOADERS:
        load(dataset)  # the real data is loaded (once per process, and counted) outside the watch
    _step_memory_mb.cache_clear()  # a cached answer would build nothing at all, here or anywhere
    watch = AllocationWatch()
    with watch, pytest.raises(SpecError, match=f"over the protocol's {MAX_STEP_MEMORY_MB} MB budget"):
        check_footprint(spec(model, batch_size))
    # The model, its batch and its loss did run, with tensors of the size that makes the spec too big (the
    # largest over 1 GiB), and only on the meta device.
    assert watch.meta_tensors > 0 and watch.largest_meta_bytes > 2**30


def test_memory_grows_with_the_batch() -> None:
    model = {"family": "char-transformer", "params": {"context": 256}}
    assert step_memory_mb(spec(model, 256)) > step_memory_mb(spec(model, 16)) + 100


def test_a_compressed_update_counts_the_error_its_shard_carries() -> None:
    model = {"family": "char-transformer", "params": {"dim": 256, "layers": 4}}
    plain = TrainingSpec.model_validate({"model": model})
    compressed = TrainingSpec.model_validate({"model": model, "compression": {"method": "int8"}})
    params_mb = sum(p.numel() * 4 for p in resolve(plain.model).build_model().parameters()) / 2**20
    assert step_memory_mb(compressed) - step_memory_mb(plain) >= int(params_mb)
