"""BountyTerms.posting is the one way a bounty's parameters are made (CLI, demo, benches, test support):
it refuses what the contract or every node would refuse later, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.terms import BountyTerms, load_bounty_file
from protocol.spec import SpecError, TrainingSpec

COORDINATOR = "0x" + "11" * 20


def spec(**overrides: object) -> TrainingSpec:
    base: dict[str, object] = {"model": {"family": "mnist-mlp", "params": {"hidden": 16}}, "data": {"shards": 2}}
    return TrainingSpec.model_validate({**base, **overrides})


def test_posting_gives_the_contract_parameters_of_the_spec_and_terms() -> None:
    terms = BountyTerms(coordinator=COORDINATOR, segments_per_check=3)
    s = spec(steps_per_task=10, checkpoint_interval=5)
    params = terms.posting(s, "bafyspec", now=1_000)
    assert (params["shards"], params["rounds"], params["segmentsPerTask"]) == (2, s.rounds, 2)
    assert params["segmentsPerCheck"] == 2  # never more than the task has
    assert params["rewardPerTask"] == 10 * 10**18 and params["deadline"] == 1_000 + 30 * 86_400


def test_posting_refuses_terms_under_which_cheating_pays() -> None:
    terms = BountyTerms(coordinator=COORDINATOR, stake="15", min_check_probability=0.5)
    assert not terms.sound
    with pytest.raises(SpecError, match="cheating would pay"):
        terms.posting(spec(), "bafyspec", now=0)


def test_posting_refuses_a_spec_no_node_could_train() -> None:
    huge = spec(model={"family": "mnist-cnn", "params": {"channels": 256}}, batch_size=4096)
    with pytest.raises(SpecError, match="over the protocol.s 8192 MB budget"):
        BountyTerms(coordinator=COORDINATOR).posting(huge, "bafyspec", now=0)


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).parents[2] / "examples").glob("*.toml")), ids=lambda p: p.name
)
def test_every_example_bounty_is_one_that_would_be_posted(example: Path) -> None:
    spec, terms = load_bounty_file(example)
    params = terms.posting(spec, "bafyspec", now=0)
    assert params["shards"] == spec.data.shards and params["segmentsPerTask"] == spec.segments
