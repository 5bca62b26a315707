"""The GPT family: a byte-pair tokenizer trained here that every machine reproduces, text tokenized on the way
in (shards hold int32 ids), a model of real size from the usual knobs, and data outside the vocabulary refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

from protocol import datasets, tokenizer
from protocol.spec import DataSpec, ModelSpec, SpecError, TrainingSpec
from protocol.workloads import resolve

SMALL = {"context": 16, "dim": 16, "heads": 2, "layers": 1, "vocab": 512}
GPT = resolve(ModelSpec(family="gpt", params=SMALL))

_VOCABULARY_DIGEST = (
    "import hashlib, sys; from protocol.tokenizer import bpe; "
    "print(hashlib.sha256(bpe(int(sys.argv[1])).to_str().encode()).hexdigest())"
)


def test_the_tokenizer_is_the_same_in_every_process_whatever_its_thread_count() -> None:
    digests = {
        subprocess.run(
            [sys.executable, "-c", _VOCABULARY_DIGEST, "512"],
            env=os.environ | {"RAYON_NUM_THREADS": threads},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for threads in ("1", "2")
    }
    assert digests == {hashlib.sha256(tokenizer.bpe(512).to_str().encode()).hexdigest()}


def test_any_text_round_trips_through_the_tokenizer() -> None:
    text = "To be, or not to be: that is the question.\n\tÜnïcode ✓, emoji 🙂 and a NUL \x00 byte"
    ids = tokenizer.encode(text, 512)
    assert ids.dtype == torch.int32 and int(ids.max()) < 512
    assert tokenizer.decode(ids, 512) == text
    # Merges learned from the corpus make its words shorter than their bytes.
    assert len(tokenizer.encode("the king and the queen", 4096)) < len("the king and the queen") / 2


@pytest.mark.parametrize("vocab", [256, 70_000])
def test_a_vocabulary_outside_the_tokenizers_range_is_refused(vocab: int) -> None:
    with pytest.raises(SpecError, match="model.params.vocab"):
        resolve(ModelSpec(family="gpt", params={**SMALL, "vocab": vocab}))


def test_a_vocabulary_larger_than_the_corpus_can_fill_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError, match="the corpus gives at most") as info:
        tokenizer.bpe(65_536)
    assert "\n" not in str(info.value)


def test_the_builtin_text_is_split_into_shards_of_token_ids() -> None:
    shards, holdout = GPT.split(datasets.load("shakespeare"), DataSpec(shards=3))
    assert len(shards) == 3
    for part in (*shards, holdout):
        assert part["tokens"].dtype == torch.int32 and int(part["tokens"].max()) < 512
    text = bytes(datasets.load("shakespeare")["tokens"].numpy()).decode("ascii")
    assert tokenizer.decode(torch.cat([*(s["tokens"] for s in shards), holdout["tokens"]]), 512) == text
    # Ids given as ids are split as they are.
    ids = torch.cat([*(s["tokens"] for s in shards), holdout["tokens"]])
    again, held_again = GPT.split({"tokens": ids}, DataSpec(shards=3))
    assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(again, shards, strict=True))
    assert torch.equal(held_again["tokens"], holdout["tokens"])


def test_ids_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(SpecError, match="token ids must be 0–511"):
        GPT.check_data({"tokens": torch.tensor([1, 2, 512] * 10, dtype=torch.int32)})
    char = resolve(ModelSpec(family="char-transformer", params={"context": 8, "dim": 16, "heads": 2, "layers": 1}))
    with pytest.raises(SpecError, match="token ids must be 0–127"):
        char.check_data({"tokens": torch.full((20,), 200, dtype=torch.uint8)})


def test_the_usual_knobs_build_a_25m_parameter_model_with_a_tied_head() -> None:
    spec = TrainingSpec.model_validate(
        {"model": {"family": "gpt", "params": {"dim": 512, "layers": 7, "heads": 8, "vocab": 8192, "context": 256}}}
    )
    with torch.device("meta"):
        model = resolve(spec.model).build_model()
    names = [name for name, _ in model.named_parameters()]
    assert sum(p.numel() for p in model.parameters()) >= 25_000_000
    assert not any(name.startswith("head") for name in names)  # the embedding is the head: one name per tensor
    untied = resolve(ModelSpec(family="gpt", params={**SMALL, "tie_embeddings": False})).build_model()
    assert dict(untied.named_parameters())["head.weight"].shape == (512, 16)


def test_text_is_scored_and_generated_in_tokens() -> None:
    model = GPT.build_model()
    data = GPT.data_from_text(b"Now is the winter of our discontent made glorious summer by this sun of York.")
    GPT.check_data(data)
    assert 0 < GPT.evaluate(model, data) < 10
    first = GPT.generate(model, "ROMEO:", 12, 1.0, seed=5)
    assert first == GPT.generate(model, "ROMEO:", 12, 1.0, seed=5)
    assert len(tokenizer.encode(first, 512)) >= 1
