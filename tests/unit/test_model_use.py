"""Using a family's model outside training: data checked against the family's layout before it is scored,
text read the way the character models were trained on it, and generation that repeats for a seed."""

from __future__ import annotations

import pytest
import torch

from protocol.datasets import ascii_tokens
from protocol.spec import ModelSpec, SpecError
from protocol.workloads import resolve

LM = resolve(ModelSpec(family="char-transformer", params={"context": 8, "dim": 16, "heads": 2, "layers": 1}))
MLP = resolve(ModelSpec(family="mnist-mlp", params={"hidden": 8}))


def test_every_family_accepts_its_own_shard_layout() -> None:
    for workload in (LM, MLP):
        workload.check_data(workload.synthetic_shard(torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": torch.zeros(4, 784)}, "mnist-mlp data holds tensors ['x', 'y']; this holds ['x']"),
        (
            {"x": torch.zeros(4, 784, dtype=torch.float64), "y": torch.zeros(4, dtype=torch.int64)},
            "tensor 'x' is torch.float64 [4, 784]; mnist-mlp wants torch.float32 [N, 784]",
        ),
        (
            {"x": torch.zeros(4, 784), "y": torch.zeros(3, dtype=torch.int64)},
            "disagree on the number of examples",
        ),
        ({"x": torch.zeros(0, 784), "y": torch.zeros(0, dtype=torch.int64)}, "the data holds no examples"),
    ],
)
def test_data_in_another_layout_is_refused_in_one_line(data: dict[str, torch.Tensor], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MLP.check_data(data)


def test_text_becomes_the_tokens_the_character_models_train_on() -> None:
    assert ascii_tokens("Tybalt, é!".encode()).tolist() == [*b"Tybalt, ", ord("?"), ord("?"), ord("!")]
    assert len(ascii_tokens(b"")) == 0
    LM.check_data(LM.data_from_text(b"x" * 10))
    with pytest.raises(SpecError, match="9 tokens is too short: the model reads 8"):
        LM.check_data(LM.data_from_text(b"x" * 9))
    with pytest.raises(SpecError, match="does not read text"):
        MLP.data_from_text(b"digits")


def test_generation_repeats_for_a_seed_and_differs_for_another() -> None:
    torch.manual_seed(0)
    model = LM.build_model()
    first = LM.generate(model, "To be", 40, 1.0, seed=7)
    assert len(first) == 40 and first.isascii()
    assert LM.generate(model, "To be", 40, 1.0, seed=7) == first
    assert LM.generate(model, "To be", 40, 1.0, seed=8) != first
    greedy = LM.generate(model, "", 12, 0.0, seed=0)  # temperature 0: the likeliest, whatever the seed
    assert greedy == LM.generate(model, "", 12, 0.0, seed=99)
    assert len(LM.generate(model, "a prompt far longer than the eight-token context", 5, 0.5, seed=1)) == 5
    assert model.training  # handed back as it came
    with pytest.raises(SpecError, match="not a language model"):
        MLP.generate(MLP.build_model(), "hi", 5, 1.0, seed=0)
