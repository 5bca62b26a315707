import json
import math
import subprocess
import sys

TRIALS = 3000
# Every strategy the bench must price: those tests/adversarial plays against the real contracts, and the rest.
# One dropped from the bench would otherwise count as "not profitable" by being absent.
KNOWN_CHEATS = {
    "lazy-random-hashes",
    "copied-commitment",
    "stale-model",
    "nan-or-inf-update",
    "never-uploads-trace",
    "other-data-order",
    "partial-faker-0.1",
    "partial-faker-0.5",
    "partial-faker-0.9",
    "claim-and-abandon",
    "false-challenger",
}


def test_every_cheating_strategy_has_negative_expected_and_simulated_profit_at_the_defaults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.econ", "--json", "--trials", str(TRIALS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    assert result["all_negative"] is True
    for name, s in result["strategies"].items():
        assert s["expected_profit"] < 0 and s["simulated_profit"] < 0, name
        assert abs(s["detection"] - s["simulated_detection"]) < 0.05, name  # the simulation confirms the formula

    # The claim recomputed here from the terms and each strategy's detection, not read off the bench's flag or
    # its profit figures: a bug in either cannot hide a profitable cheat.
    terms = result["terms"]
    reward, stake, trials = terms["reward"], terms["stake"], terms["trials"]
    assert trials == TRIALS
    strategies = result["strategies"]
    assert KNOWN_CHEATS <= set(strategies), KNOWN_CHEATS - set(strategies)
    rounding = 1e-4 * (reward + stake)  # detections are reported to 4 decimal places
    profits = {}
    for name, s in strategies.items():
        detection = s["detection"]
        assert 0 <= detection <= 1, name
        if s["caught_by"] == "lease":  # the abandoned lease's penalty is certain
            profit = -terms["lease_penalty"]
        elif s["caught_by"] == "verdict":  # a false challenge always loses its bond
            profit = -terms["challenge_bond"]
        else:  # the reward when it escapes, the whole stake when caught
            profit = (1 - detection) * reward - detection * stake
        profits[name] = profit
        assert profit < 0, (name, profit)
        assert abs(s["expected_profit"] - profit) <= rounding, (name, s["expected_profit"], profit)
        # The simulation: the mean of `trials` independent outcomes, each +reward or -stake, so its standard
        # error is (reward + stake) * sqrt(d (1 - d) / trials). It must agree with the formula within 5 of them,
        # and its profit with its own detection rate.
        error = (reward + stake) * math.sqrt(detection * (1 - detection) / trials)
        assert abs(s["simulated_profit"] - profit) <= 5 * error + rounding, (name, s["simulated_profit"], profit)
        if s["caught_by"] in ("audit", "replay"):
            simulated = s["simulated_detection"]
            assert abs(s["simulated_profit"] - ((1 - simulated) * reward - simulated * stake)) <= rounding, name
            assert abs(simulated - detection) <= 5 * math.sqrt(detection * (1 - detection) / trials) + 1e-4, name
    assert result["all_negative"] is all(p < 0 for p in profits.values())
