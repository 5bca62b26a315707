"""The README's main job, end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger.amounts import UNIT

DEMO = str(Path(__file__).resolve().parents[2] / "scripts" / "demo")


@pytest.mark.embedded  # the README's main job runs on the embedded chain: part of the fast tier
def test_demo_slashes_exactly_the_cheaters_pays_the_honest_and_trains_a_useful_model() -> None:
    run = subprocess.run([DEMO, "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"seconds", "metric_name", "final_metric", "baseline_metric", "slashed", "rewards", "bounty_id"} <= set(
        summary
    )
    by_role = {role: address for address, role in summary["roles"].items()}
    assert sorted(summary["slashed"]) == sorted([by_role["lazy"], by_role["faker"]])
    for honest in ("honest-1", "honest-2", "verifier-1", "verifier-2"):
        assert summary["rewards"][by_role[honest]] > 0
    assert by_role["lazy"] not in summary["rewards"]
    # 12 tasks at 10 tokens each went to volunteers, whoever did them.
    volunteer_pay = sum(summary["rewards"].get(by_role[r], 0) for r in ("honest-1", "honest-2", "faker"))
    assert volunteer_pay == 12 * 10 * UNIT
    assert summary["metric_name"] == "accuracy" and summary["final_metric"] > 0.8
    assert abs(summary["final_metric"] - summary["baseline_metric"]) < 0.1


def _demo(seed: int) -> dict[str, object]:
    run = subprocess.run([DEMO, "--json", "--seed", str(seed)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    summary: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    del summary["seconds"]
    return summary


def test_the_same_seed_reproduces_a_demo_bit_for_bit_and_another_seed_does_not() -> None:
    """The embedded chain's block times and randomness, the volunteers' turns and the cheaters' noise all follow
    the seed: the same seed gives the same final model, payments, slashes, gas and replays."""
    first, again, other = _demo(5), _demo(5), _demo(6)
    assert first == again
    assert first["final_model_cid"] != other["final_model_cid"]
