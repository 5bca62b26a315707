"""Compressed pseudo-gradients (protocol.compression): what int8 and top-k keep, that they repeat bit for bit,
and that error feedback carries what was dropped into the next update instead of losing it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.aggregate import aggregate
from protocol.compression import (
    LEVELS,
    CompressedUpdate,
    CompressionSpec,
    check_encoded,
    compress,
    decompress,
    encoded_bytes,
    encoded_layout,
    with_feedback,
)
from protocol.spec import AggregationSpec

INT8 = CompressionSpec(method="int8", chunk=64)
TOPK = CompressionSpec(method="topk", fraction=1 / 16, chunk=64)


def update(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(30, 17, generator=g),
        "b": torch.randn(5, generator=g),
        "scalar": torch.tensor(0.25),
        "empty": torch.zeros(0, 3),
        "zeros": torch.zeros(100),
    }


def test_int8_keeps_every_value_within_half_a_step_of_its_chunks_scale() -> None:
    u = update()
    back = decompress(compress(u, INT8), u, INT8)
    for name, t in u.items():
        assert back[name].shape == t.shape and back[name].dtype == torch.float32
        flat, restored = t.reshape(-1), back[name].reshape(-1)
        for start in range(0, len(flat), INT8.chunk):
            piece = flat[start : start + INT8.chunk]
            step = float(piece.abs().max()) / LEVELS
            assert float((restored[start : start + INT8.chunk] - piece).abs().max()) <= step / 2
    assert torch.equal(back["zeros"], u["zeros"])


def test_topk_sends_only_each_chunks_largest_magnitudes() -> None:
    u = {"w": torch.arange(128, dtype=torch.float32) - 64}
    back = decompress(compress(u, TOPK), u, TOPK)["w"]
    kept = back.nonzero().reshape(-1).tolist()
    # Chunk 0 holds -64..-1 (largest: -64..-61), chunk 1 holds 0..63 (largest: 60..63); four of 64 each.
    assert kept == [0, 1, 2, 3, 124, 125, 126, 127]
    assert back[0] == -64 and back[127] == 63


def test_ties_keep_the_lower_position() -> None:
    u = {"w": torch.ones(64)}
    back = decompress(compress(u, TOPK), u, TOPK)["w"]
    assert back.nonzero().reshape(-1).tolist() == [0, 1, 2, 3]


def test_compression_is_small() -> None:
    u = {"w": torch.randn(1 << 16)}
    assert encoded_bytes(compress(u, CompressionSpec(method="int8"))) / (1 << 16) < 1.01
    assert encoded_bytes(compress(u, CompressionSpec(method="topk"))) / (1 << 16) < 0.05  # over 80× under float32


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["int8", "topk"]))
def test_the_same_update_encodes_to_the_same_bytes_and_feedback_accounts_for_every_drop(seed: int, method: str) -> None:
    spec = INT8 if method == "int8" else TOPK
    u, carried = update(seed), update(seed + 1)
    first, error = with_feedback(u, carried, spec)
    again, error_again = with_feedback(u, carried, spec)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert all(torch.equal(error[k], error_again[k]) for k in error)
    sent = decompress(first, u, spec)
    for name in u:
        assert torch.equal(error[name], (u[name] + carried[name]) - sent[name])


def test_with_feedback_a_small_coordinate_is_sent_once_it_has_accumulated() -> None:
    spec = CompressionSpec(method="topk", fraction=1 / 64, chunk=64)  # one value per chunk
    big = torch.zeros(64)
    big[0] = 1.0
    small = torch.zeros(64)
    small[1] = 0.4
    error = None
    sent_at = []
    for round_ in range(4):
        encoded, error = with_feedback({"w": big + small}, error, spec)
        sent = decompress(encoded, {"w": big}, spec)["w"]
        if sent[1] != 0:
            sent_at.append(round_)
    assert sent_at  # without feedback coordinate 1 would never be sent: coordinate 0 wins every round


@pytest.mark.parametrize("method", ["none", "int8", "topk"])
def test_decompress_restores_names_and_shapes(method: str) -> None:
    spec = CompressionSpec(method=method, chunk=64)
    u = update(3)
    back = decompress(compress(u, spec), u, spec)
    assert {n: t.shape for n, t in back.items()} == {n: t.shape for n, t in u.items()}


@pytest.mark.parametrize("method", ["none", "int8", "topk"])
def test_a_compressed_update_reads_each_tensor_as_decompress_gives_it(method: str) -> None:
    spec = CompressionSpec(method=method, fraction=1 / 16, chunk=64)
    u = update(4)
    encoded = compress(u, spec)
    held = CompressedUpdate(encoded, u, spec)
    whole = decompress(encoded, u, spec)
    assert list(held) == list(u) and len(held) == len(u)
    for name in reversed(list(u)):
        assert torch.equal(held[name], whole[name])


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["none", "int8", "topk"]),
    seed=st.integers(0, 2**16),
    bounds=st.tuples(st.integers(0, 510), st.integers(0, 510)),
)
def test_a_range_of_a_compressed_update_is_that_range_of_its_decompressed_tensor(
    method: str, seed: int, bounds: tuple[int, int]
) -> None:
    spec = CompressionSpec(method=method, fraction=1 / 16, chunk=64)
    u = update(seed)
    held = CompressedUpdate(compress(u, spec), u, spec)
    start, stop = min(bounds), max(bounds)
    assert torch.equal(held.flat("w", start, stop), held["w"].reshape(-1)[start:stop])


@pytest.mark.parametrize("compression", [INT8, TOPK], ids=["int8", "topk"])
@pytest.mark.parametrize("method", ["mean", "trimmed_mean", "centered_clip"])
def test_aggregating_updates_held_as_sent_gives_the_model_decompressed_ones_give(
    method: str, compression: CompressionSpec
) -> None:
    weights = {n: torch.randn(t.shape, generator=torch.Generator().manual_seed(9)) for n, t in update().items()}
    sent = [compress(update(seed), compression) for seed in range(5)]
    spec = AggregationSpec(method=method, outer_momentum=0.9, outer_lr=0.7)
    # 256 bytes of float64 for five updates: slices of six coordinates, so every large tensor is cut up.
    held = aggregate(weights, [CompressedUpdate(e, weights, compression) for e in sent], spec, chunk_bytes=256)
    whole = aggregate(weights, [decompress(e, weights, compression) for e in sent], spec, chunk_bytes=256)
    assert held.velocity is not None and whole.velocity is not None
    for name in weights:
        assert torch.equal(held.weights[name], whole.weights[name])
        assert torch.equal(held.velocity[name], whole.velocity[name])


def _layout_of(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    return {name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(["none", "int8", "topk"]), seed=st.integers(0, 2**16), chunk=st.sampled_from([64, 100, 4096])
)
def test_the_layout_a_sent_update_must_have_is_the_one_compress_gives(method: str, seed: int, chunk: int) -> None:
    """The coordinator refuses an update unparsed unless it has exactly this layout (protocol.verify.parse_update):
    every honest update must have it, for every shape (scalars, empty tensors, one chunk, many)."""
    spec = CompressionSpec(method=method, fraction=1 / 4, chunk=chunk)
    u = update(seed)
    encoded = compress(u, spec)
    assert encoded_layout(_layout_of(u), spec) == _layout_of(encoded)
    check_encoded(encoded, _layout_of(u), spec)  # an honest update passes


def test_an_update_whose_positions_leave_their_chunk_or_whose_scale_would_overflow_is_refused() -> None:
    """Either would fail or poison decoding at the close (an index error in scatter, infinities in the model)."""
    u = update(5)
    like = _layout_of(u)
    encoded = compress(u, TOPK)
    encoded["w.idx"] = encoded["w.idx"].clone()
    encoded["w.idx"][0, 0] = 64
    with pytest.raises(ValueError, match="outside"):
        check_encoded(encoded, like, TOPK)
    encoded["w.idx"][0, 0] = -1
    with pytest.raises(ValueError, match="outside"):
        check_encoded(encoded, like, TOPK)
    encoded = compress(u, INT8)
    encoded["b.scale"] = torch.full_like(encoded["b.scale"], torch.finfo(torch.float32).max / 100)
    with pytest.raises(ValueError, match="overflow"):
        check_encoded(encoded, like, INT8)
