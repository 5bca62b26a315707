"""BountyTerms.posting is the one way a bounty's parameters are made (CLI, demo, benches, test support):
it refuses what the contract or every node would refuse later, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.terms import BPS, BountyTerms, DetectionTarget, load_bounty_file
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


@given(
    fraction=st.floats(0.01, 1.0),
    probability=st.floats(0.5, 0.999),
    within=st.integers(1, 5_000),
)
def test_spot_checks_derived_from_a_detection_target_meet_it_and_no_cheaper_rate_does(
    fraction: float, probability: float, within: int
) -> None:
    target = DetectionTarget(cheat_fraction=fraction, probability=probability, within_tasks=within)
    floor, per_check = target.spot_checks()

    def caught_within(p: float, k: int) -> float:
        return 1 - (1 - p * (1 - (1 - fraction) ** k)) ** within

    assert 0 < floor <= 1 and per_check >= 1
    assert caught_within(floor, per_check) >= probability - 1e-9
    if per_check == 1:  # one basis point less falls short: the floor is the least rate that does it
        assert floor == 1 / BPS or caught_within(floor - 1 / BPS, 1) < probability
    else:  # even every task checked needs k segments, and k − 1 falls short
        assert floor == 1.0 and caught_within(1.0, per_check - 1) < probability
    # The same expected replays (p·k) spent on more segments per check catch less.
    for k in range(per_check + 1, per_check + 4):
        assert caught_within(floor * per_check / k, k) <= caught_within(floor, per_check) + 1e-12


def test_a_detection_target_sets_the_floor_rate_and_one_segment_per_check() -> None:
    terms = BountyTerms(
        coordinator=COORDINATOR, detection={"cheat_fraction": 0.1, "probability": 0.99, "within_tasks": 400}
    )
    assert (terms.min_check_probability, terms.segments_per_check) == (0.1145, 1)
    assert BountyTerms.model_validate(terms.model_dump()) == terms  # a dump of derived terms validates again
    every_task = BountyTerms(coordinator=COORDINATOR, detection={"within_tasks": 1})
    assert (every_task.min_check_probability, every_task.segments_per_check) == (1.0, 44)
    with pytest.raises(SpecError, match="needs 44 segments replayed per check and a task has 2"):
        every_task.posting(spec(steps_per_task=10, checkpoint_interval=5), "bafyspec", now=0)


def test_a_detection_target_with_its_own_rate_or_an_unreachable_newcomer_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="min_check_probability follow from detection"):
        BountyTerms(coordinator=COORDINATOR, min_check_probability=0.3, detection={"within_tasks": 400})
    bounty = tmp_path / "bounty.toml"
    bounty.write_text(
        '[model]\nfamily = "mnist-mlp"\n[bounty]\ncoordinator = "' + COORDINATOR + '"\ncheck_probability = 0.1\n'
        "detection = { within_tasks = 100 }\n"
    )
    with pytest.raises(SpecError, match=r"^spec .*: bounty: detection needs a floor check probability of 0.4501, "):
        load_bounty_file(bounty)
    bounty.write_text(bounty.read_text().replace("within_tasks = 100", "within_tasks = 0"))
    with pytest.raises(SpecError, match=r"bounty.detection.within_tasks: Input should be greater than or equal to 1"):
        load_bounty_file(bounty)
