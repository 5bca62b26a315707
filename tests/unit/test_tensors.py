"""Canonical hashing, and safetensors from untrusted volunteers refused with a reason."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ContentError
from protocol.spec import TrainingSpec
from protocol.tensors import (
    Tensors,
    all_finite,
    canonical_hash,
    canonical_size,
    from_bytes,
    hash_as_read,
    layout_of,
    to_bytes,
)
from protocol.verify import HEADER_SLACK_BYTES, checkpoint_layout, checkpoint_limit, update_limit
from protocol.workloads import REGISTRY, resolve


def tensors() -> dict[str, torch.Tensor]:
    return {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(4, dtype=torch.float64)}


def test_canonical_hash_ignores_insertion_order_and_memory_layout() -> None:
    t = tensors()
    reordered = {"a": t["a"], "b": t["b"].t().contiguous().t()}  # same values, non-contiguous view
    assert canonical_hash(t) == canonical_hash(reordered)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.update(b=t["b"].reshape(3, 2)),  # shape
        lambda t: t.update(a=t["a"].float()),  # dtype
        lambda t: t.update(c=t.pop("a")),  # name
        lambda t: t["b"].view(-1)[4].add_(2**-20),  # one value by one ulp-ish step
    ],
    ids=["shape", "dtype", "name", "value"],
)
def test_canonical_hash_changes_with_any_change(change: Callable[[Tensors], object]) -> None:
    t = tensors()
    before = canonical_hash(t)
    change(t)
    assert canonical_hash(t) != before


def test_from_bytes_round_trips_with_expected_layout() -> None:
    t = tensors()
    back = from_bytes(to_bytes(t), layout_of(t))
    assert canonical_hash(back) == canonical_hash(t)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x02", "shorter than"),
        (struct.pack("<Q", 1 << 40) + b"{}", "out of bounds"),
        (struct.pack("<Q", 4) + b"nope", "not JSON"),
        (pickle.dumps({"w": [1.0, 2.0]}), "out of bounds|not JSON|shorter"),
    ],
    ids=["truncated", "huge-header", "not-json", "pickle"],
)
def test_from_bytes_refuses_malformed_files(data: bytes, reason: str) -> None:
    with pytest.raises(ContentError, match=reason):
        from_bytes(data)


def test_from_bytes_refuses_wrong_shapes_names_and_non_finite_values() -> None:
    t = tensors()
    layout = layout_of(t)
    with pytest.raises(ContentError, match="expected F32\\[2, 3\\]"):
        from_bytes(to_bytes({**t, "b": torch.zeros(3, 2)}), layout)
    with pytest.raises(ContentError, match="missing \\['a'\\]"):
        from_bytes(to_bytes({"b": t["b"]}), layout)
    with pytest.raises(ContentError, match="NaN or Inf"):
        from_bytes(to_bytes({**t, "a": torch.tensor([1.0, float("nan"), 0, 0], dtype=torch.float64)}), layout)


def test_canonical_bytes_are_safetensors_and_their_cid_carries_the_canonical_hash() -> None:
    from safetensors.torch import load

    from protocol.cid import b58decode, cid_of

    t = tensors()
    data = to_bytes(t)
    assert all(torch.equal(load(data)[name], value) for name, value in t.items())
    assert b58decode(cid_of(data))[2:] == canonical_hash(t)


def test_bytes_read_by_cid_give_their_hash_without_a_second_pass_only_when_canonical() -> None:
    from safetensors.torch import save

    from protocol.cid import cid_of

    t = {**tensors(), "big": torch.rand(300_000), "bf": torch.ones(3, dtype=torch.bfloat16)}  # over one chunk
    data = bytearray(to_bytes(t))
    assert hash_as_read(data, from_bytes(data), cid_of(data)) == canonical_hash(t)
    # Another encoder's bytes of the same tensors (safetensors' own header): their CID is not H, so H is computed.
    other = save(t, metadata={"by": "another encoder"})
    assert cid_of(other) != cid_of(bytes(data))
    assert hash_as_read(other, from_bytes(other), cid_of(other)) == canonical_hash(t)


@pytest.mark.parametrize("family", sorted(REGISTRY))
def test_checkpoint_limits_are_the_exact_canonical_size_of_the_specs_model(family: str) -> None:
    """Read limits follow from the spec (no fixed cap an honest large model could exceed): the computed size
    is exactly what to_bytes writes for a checkpoint and an update of the family's model."""
    spec = TrainingSpec.model_validate({"model": {"family": family}})
    workload = resolve(spec.model)
    for with_optimizer, limit in ((True, checkpoint_limit(spec, workload)), (False, update_limit(spec, workload))):
        layout = checkpoint_layout(spec, workload, with_optimizer=with_optimizer)
        written = len(to_bytes({name: torch.zeros(shape, dtype=dtype) for name, (dtype, shape) in layout.items()}))
        assert canonical_size(layout) == written
        assert limit == written + HEADER_SLACK_BYTES


def test_an_owned_buffer_is_parsed_in_place_without_a_second_copy() -> None:
    """From a bytearray (ContentStore.get_buffer) the tensors are views into it: a checkpoint is in memory
    once. They equal what the copying parser returns, dtype for dtype, including empty tensors and a tensor
    whose offset is not a multiple of its element size (copied out: kernels may assume aligned elements)."""
    tensors = {
        "a.odd": torch.arange(3, dtype=torch.float32),  # 12 bytes: what follows is not 8-aligned
        "b.step": torch.tensor([7], dtype=torch.int64),
        "c.empty": torch.zeros(0, 4),
        "d.half": torch.randn(12, dtype=torch.bfloat16),  # 24 bytes: e.weights starts 4-aligned again
        "e.weights": torch.randn(64, 32),
    }
    data = to_bytes(tensors)
    buffer = bytearray(data)
    owned, copied = from_bytes(buffer, layout_of(tensors)), from_bytes(data, layout_of(tensors))
    for name, t in tensors.items():
        assert owned[name].dtype == copied[name].dtype == t.dtype and torch.equal(owned[name], copied[name]), name
    begin = torch.frombuffer(buffer, dtype=torch.uint8).data_ptr()

    def inside(t: torch.Tensor) -> bool:
        return begin <= t.data_ptr() < begin + len(buffer)

    assert inside(owned["e.weights"]) and inside(owned["a.odd"]) and not inside(owned["b.step"])
    assert not inside(copied["e.weights"])
    buffer[-4:] = struct.pack("<f", 1.5)  # the views see the buffer they were parsed from
    assert float(owned["e.weights"][-1, -1]) == 1.5


SPECIAL = [float("nan"), float("inf"), float("-inf")]


@settings(max_examples=80, deadline=None)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    shape=st.lists(st.integers(0, 7), max_size=3),
    specials=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(SPECIAL)), max_size=3),
    extreme=st.booleans(),
)
def test_all_finite_agrees_with_an_elementwise_check(
    dtype: torch.dtype, shape: list[int], specials: list[tuple[int, float]], extreme: bool
) -> None:
    t = torch.randn(shape).to(dtype)
    if extreme and t.numel():  # the largest finite value is still finite
        t.view(-1)[0] = torch.finfo(dtype).max
    for position, value in specials:
        if t.numel():
            t.view(-1)[position % t.numel()] = value
    assert all_finite(t) == bool(torch.isfinite(t).all())
