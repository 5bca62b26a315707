import json
import subprocess
import sys


def test_every_cheating_strategy_has_negative_expected_and_simulated_profit_at_the_defaults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.econ", "--json", "--trials", "3000"], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["all_negative"] is True
    for name, s in result["strategies"].items():
        assert s["expected_profit"] < 0 and s["simulated_profit"] < 0, name
        assert abs(s["detection"] - s["simulated_detection"]) < 0.05, name  # the simulation confirms the formula
