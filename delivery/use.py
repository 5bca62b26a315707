"""Using a pulled model: score it on data (the bounty's held-out split, or the user's own file) and, for
language models, generate text."""

from __future__ import annotations

from pathlib import Path

from delivery.pull import LoadedModel, PullError
from protocol.errors import ContentInvalid
from protocol.tensors import Tensors, from_bytes
from protocol.training import deterministic, held_out_score

# A file to score is read whole; past this it is refused before it is read.
MAX_DATA_BYTES = 2 << 30


def read_data(path: Path, loaded: LoadedModel) -> Tensors:
    """A .safetensors file laid out as the family's shards, or (language models) any text file."""
    if not path.is_file():
        raise PullError(f"no data file at {path}")
    size = path.stat().st_size
    if size > MAX_DATA_BYTES:
        raise PullError(f"{path} is {size} bytes, over the {MAX_DATA_BYTES}-byte limit of `model eval`")
    raw = path.read_bytes()
    if path.suffix == ".safetensors":
        try:
            data = from_bytes(raw)
        except ContentInvalid as exc:
            raise PullError(f"{path}: {exc}") from None
    else:
        data = loaded.workload.data_from_text(raw)
    return data  # its layout is checked by `evaluate`, as the held-out split's is


def evaluate(loaded: LoadedModel, data: Tensors) -> float:
    """The family's metric (the one the coordinator publishes per round), under the spec's own numerics."""
    loaded.workload.check_data(data)
    return held_out_score(loaded.spec, loaded.workload, loaded.model, data)


def generate(loaded: LoadedModel, prompt: str, length: int, temperature: float, seed: int) -> str:
    with deterministic(loaded.spec.replay):
        return loaded.workload.generate(loaded.model, prompt, length, temperature, seed)
