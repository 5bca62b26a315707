"""A spec's memory per training step is measured on the meta device and bounded by the protocol's budget."""

from __future__ import annotations

import time

import pytest

from protocol.footprint import MAX_STEP_MEMORY_MB, check_footprint, step_memory_mb
from protocol.spec import SpecError, TrainingSpec


def spec(model: dict, batch_size: int = 32) -> TrainingSpec:  # type: ignore[type-arg]
    return TrainingSpec.model_validate({"model": model, "batch_size": batch_size})


@pytest.mark.parametrize("family", ["mnist-mlp", "mnist-cnn", "char-transformer"])
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
def test_a_spec_over_the_budget_is_refused_without_building_the_model(model: dict, batch_size: int) -> None:  # type: ignore[type-arg]
    started = time.perf_counter()
    with pytest.raises(SpecError, match=f"over the protocol's {MAX_STEP_MEMORY_MB} MB budget"):
        check_footprint(spec(model, batch_size))
    assert time.perf_counter() - started < 5  # measured on the meta device: nothing of that size was allocated


def test_memory_grows_with_the_batch() -> None:
    model = {"family": "char-transformer", "params": {"context": 256}}
    assert step_memory_mb(spec(model, 256)) > step_memory_mb(spec(model, 16)) + 100
