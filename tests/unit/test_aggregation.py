"""The outer optimizer and the robust combinations: FedAvg exactly where the spec asks for it, Nesterov momentum
as documented with its state handed on round to round, and robust defaults that trim at bounty sizes."""

from __future__ import annotations

import torch

from protocol.aggregate import aggregate
from protocol.spec import AggregationSpec, TrainingSpec

W = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([[0.5]])}


def updates(*scales: float) -> list[dict[str, torch.Tensor]]:
    return [{"a": torch.tensor([0.1, -0.2, 0.3]) * s, "b": torch.tensor([[0.01]]) * s} for s in scales]


def test_outer_lr_one_without_momentum_is_fedavg_exactly() -> None:
    combined = aggregate(W, updates(1, 2, 3), AggregationSpec())
    assert combined.velocity is None
    for name, w in W.items():
        expected = (w.double() + torch.stack([u[name].double() for u in updates(1, 2, 3)]).mean(0)).float()
        assert torch.equal(combined.weights[name], expected)


def test_nesterov_momentum_moves_by_lr_times_delta_plus_momentum_times_velocity() -> None:
    spec = AggregationSpec(outer_lr=0.7, outer_momentum=0.9)
    first = aggregate(W, updates(1), spec)
    delta = updates(1)[0]
    assert first.velocity is not None and all(torch.equal(first.velocity[n], delta[n]) for n in W)
    expected = W["a"].double() + 0.7 * (delta["a"].double() + 0.9 * delta["a"].double())
    assert torch.allclose(first.weights["a"].double(), expected, atol=1e-7)
    second = aggregate(first.weights, updates(2), spec, first.velocity)
    v = 0.9 * first.velocity["a"].double() + 2 * delta["a"].double()
    assert second.velocity is not None and torch.allclose(second.velocity["a"].double(), v, atol=1e-7)
    assert second.velocity["a"].dtype == torch.float32  # published as the weights are
    moved = first.weights["a"].double() + 0.7 * (2 * delta["a"].double() + 0.9 * v)
    assert torch.allclose(second.weights["a"].double(), moved, atol=1e-6)
    # A round with no usable update still coasts on the momentum.
    coasting = aggregate(second.weights, [], spec, second.velocity)
    assert not torch.equal(coasting.weights["a"], second.weights["a"])


def test_trimmed_mean_trims_at_the_default_with_four_shards() -> None:
    poisoned = [*updates(1, 1, 1), {"a": torch.full((3,), 1e6), "b": torch.full((1, 1), 1e6)}]
    combined = aggregate(W, poisoned, AggregationSpec(method="trimmed_mean")).weights
    assert float((combined["a"] - W["a"]).abs().max()) < 1  # the 1e6 update was dropped
    two = aggregate(W, updates(1, 3), AggregationSpec(method="trimmed_mean")).weights  # too few to trim
    assert torch.allclose(two["a"], W["a"] + updates(2)[0]["a"])


def test_outer_fields_at_their_defaults_leave_a_specs_cid_unchanged() -> None:
    plain = TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}})
    assert b"outer_" not in plain.canonical_bytes()
    nesterov = plain.model_copy(update={"aggregation": AggregationSpec(outer_lr=1.0, outer_momentum=0.5)})
    assert b'"outer_momentum":0.5' in nesterov.canonical_bytes() and b"outer_lr" not in nesterov.canonical_bytes()
    assert TrainingSpec.from_bytes(nesterov.canonical_bytes()) == nesterov


def test_a_model_aggregated_a_slice_at_a_time_is_bit_for_bit_the_one_aggregated_whole() -> None:
    """The per-coordinate methods bound their working set by slicing each tensor; the slices change no bit of the
    model or of the velocity, so auditors recompute earlier rounds' aggregates exactly, whatever their memory."""
    gen = torch.Generator().manual_seed(7)
    shapes = {"emb": (257, 33), "w": (64, 10), "bias": (10,), "scale": (), "empty": (0, 4), "deep": (3, 5, 7)}
    weights = {name: torch.randn(shape, generator=gen) for name, shape in shapes.items()}
    velocity = {name: torch.randn(shape, generator=gen) * 1e-3 for name, shape in shapes.items()}
    for n in (1, 2, 5):
        ups = [{name: torch.randn(shape, generator=gen) * 10.0**-k for name, shape in shapes.items()} for k in range(n)]
        for method in ("mean", "trimmed_mean", "centered_clip"):
            spec = AggregationSpec(method=method, trim_fraction=0.25, outer_lr=0.7, outer_momentum=0.9)
            whole = aggregate(weights, ups, spec, velocity, chunk_bytes=None)
            assert whole.velocity is not None
            for chunk_bytes in (8, 8 * 3 * n, 4096):
                sliced = aggregate(weights, ups, spec, velocity, chunk_bytes=chunk_bytes)
                assert sliced.velocity is not None
                for name in shapes:
                    assert sliced.weights[name].shape == whole.weights[name].shape
                    assert torch.equal(sliced.weights[name], whole.weights[name]), (method, n, chunk_bytes, name)
                    assert torch.equal(sliced.velocity[name], whole.velocity[name])
