"""Does cheating pay? Expected profit of each strategy under the default bounty terms, computed in closed
form and confirmed by simulating the contract's own spot-check draw (issue 6).

Profit is in token base units per task attempted, against honest work's reward. Worst case for the
market: the cheater already has the reputation that lowers its check probability to the floor
(min_check_probability). Compute a cheater saves is not counted as profit: only tokens are.

  ./scripts/bench econ [--json] [--trials N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Literal, TypedDict

from ledger.terms import BountyTerms
from protocol.challenge import BPS, draw
from protocol.spec import TrainingSpec


class Strategy(TypedDict):
    caught_by: Literal["audit", "replay", "lease", "verdict"]
    faked_fraction: float


class Outcome(TypedDict):
    expected_profit: int
    simulated_profit: int
    detection: float
    simulated_detection: float
    caught_by: str


def strategies(terms: BountyTerms, segments: int) -> dict[str, Strategy]:
    """name -> how it is caught: 'audit' (the coordinator's audit of every commit disputes it, so it is
    always checked), else the fraction of segments whose replay fails (caught only if checked and sampled)."""
    return {
        "lazy-random-hashes": {"caught_by": "audit", "faked_fraction": 1.0},
        "copied-commitment": {"caught_by": "audit", "faked_fraction": 1.0},
        "stale-model": {"caught_by": "audit", "faked_fraction": 1.0},
        "nan-or-inf-update": {"caught_by": "audit", "faked_fraction": 1.0},
        "never-uploads-trace": {"caught_by": "audit", "faked_fraction": 1.0},
        "other-data-order": {"caught_by": "replay", "faked_fraction": 1.0},
        "partial-faker-0.1": {"caught_by": "replay", "faked_fraction": 0.1},
        "partial-faker-0.5": {"caught_by": "replay", "faked_fraction": 0.5},
        "partial-faker-0.9": {"caught_by": "replay", "faked_fraction": 0.9},
        "claim-and-abandon": {"caught_by": "lease", "faked_fraction": 0.0},
        "false-challenger": {"caught_by": "verdict", "faked_fraction": 0.0},
    }


def expected(terms: BountyTerms, segments: int, how: Strategy) -> tuple[float, float]:
    reward, stake = terms.base("reward"), terms.base("stake")
    p = terms.min_check_probability
    if how["caught_by"] == "lease":
        return 1.0, -terms.base("lease_penalty")
    if how["caught_by"] == "verdict":
        return 1.0, -terms.base("challenge_bond")
    if how["caught_by"] == "audit":
        detection = 1.0
    else:
        faked = max(1, round(how["faked_fraction"] * segments))
        picks = min(terms.segments_per_check, segments)
        detection = p * (1 - math.comb(segments - faked, picks) / math.comb(segments, picks))
    return detection, (1 - detection) * reward - detection * stake


def simulate(terms: BountyTerms, segments: int, how: Strategy, trials: int) -> tuple[float, float]:
    reward, stake = terms.base("reward"), terms.base("stake")
    if how["caught_by"] in ("lease", "verdict"):
        # No draw is involved: the lease penalty and the lost bond are certain (tests/adversarial asserts both).
        return expected(terms, segments, how)
    audited = how["caught_by"] == "audit"  # an unchecked commit that fails the audit is disputed: checked anyway
    check_bps = round(terms.min_check_probability * BPS)
    picks = min(terms.segments_per_check, segments)
    faked_count = max(1, round(how["faked_fraction"] * segments))
    caught = profit = 0
    for _ in range(trials):
        seed = os.urandom(32)
        faked = set(sorted(range(segments), key=lambda _: os.urandom(4))[:faked_count])  # the cheater's choice
        checked, drawn = draw(seed, check_bps, segments, picks)
        sampled = set(drawn)
        if audited and not checked:
            checked, sampled = True, sampled | {0}  # the coordinator disputes segment 0
        if checked and sampled & faked:
            caught += 1
            profit -= stake
        else:
            profit += reward
    return caught / trials, profit / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trials", type=int, default=20_000)
    args = parser.parse_args()
    terms = BountyTerms(coordinator="0x" + "00" * 19 + "01")
    spec = TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}})
    segments = spec.segments
    outcomes: dict[str, Outcome] = {}
    result: dict[str, object] = {
        "terms": {
            "reward": terms.base("reward"),
            "stake": terms.base("stake"),
            "lease_penalty": terms.base("lease_penalty"),
            "challenge_bond": terms.base("challenge_bond"),
            "check_probability_floor": terms.min_check_probability,
            "segments": segments,
            "segments_per_check": terms.segments_per_check,
            "trials": args.trials,
        },
        "strategies": outcomes,
    }
    for name, how in strategies(terms, segments).items():
        detection, profit = expected(terms, segments, how)
        sim_detection, sim_profit = simulate(terms, segments, how, args.trials)
        outcomes[name] = {
            "expected_profit": int(profit),
            "simulated_profit": int(sim_profit),
            "detection": round(detection, 4),
            "simulated_detection": round(sim_detection, 4),
            "caught_by": how["caught_by"],
        }
    result["all_negative"] = all(s["expected_profit"] < 0 and s["simulated_profit"] < 0 for s in outcomes.values())
    result["honest_profit"] = terms.base("reward")
    if args.json:
        print(json.dumps(result))
    else:
        for name, s in outcomes.items():
            print(
                f"{name:<22} detection {s['detection']:.3f} (sim {s['simulated_detection']:.3f})  "
                f"E[profit] {s['expected_profit'] / 1e18:+8.2f}  simulated {s['simulated_profit'] / 1e18:+8.2f} tokens"
            )
        print(f"honest: +{terms.base('reward') / 1e18:g} per task; every strategy negative: {result['all_negative']}")


if __name__ == "__main__":
    main()
