from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protocol.spec import SpecError, TrainingSpec, load_spec
from protocol.workloads import REGISTRY, resolve


def test_spec_round_trips_through_canonical_bytes() -> None:
    spec = TrainingSpec.model_validate({"model": {"family": "mnist-cnn", "params": {"channels": 4}}})
    assert TrainingSpec.from_bytes(spec.canonical_bytes()) == spec


def test_every_registered_family_builds_with_default_params() -> None:
    assert {"mnist-mlp", "mnist-cnn", "char-transformer", "gpt"} <= set(REGISTRY)
    for family in REGISTRY:
        spec = TrainingSpec.model_validate({"model": {"family": family}})
        assert sum(p.numel() for p in resolve(spec.model).build_model().parameters()) > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'model = { family = "mnist-mlp" }\nsteps_per_task = 7\ncheckpoint_interval = 5',
            "multiple of checkpoint_interval",
        ),
        ('model = { family = "mnist-mlp" }\nsteps_per_task = 600\ncheckpoint_interval = 1', "1 to 256"),
        ('model = { family = "mnist-mlp" }\nbatch_size = 0', "batch_size"),
        ('model = { family = "mnist-mlp" }\nsurprise = 1', "surprise: Extra inputs"),
        ("model = {", "not valid TOML"),
    ],
)
def test_load_spec_reports_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"family": "resnet-9000"}, "is not one of"),
        ({"family": "mnist-mlp", "params": {"hidden": -1}}, "model.params.hidden"),
        ({"family": "char-transformer", "params": {"dim": 30, "heads": 4}}, "multiple of heads"),
    ],
)
def test_resolve_rejects_unknown_families_and_bad_params(model: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        resolve(TrainingSpec.model_validate({"model": model}).model)
