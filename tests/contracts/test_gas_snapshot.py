"""The full tier's gas guard: a change of more than 1% in any operation fails until bench/gas-snapshot.json is
updated in the same commit (`./scripts/bench gas --update`). Each check measures on its own anvil node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gas


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = gas.main(["--check", *argv])
    return code, capsys.readouterr().out


def test_gas_matches_the_committed_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    before = gas.SNAPSHOT.read_bytes()
    code, out = check(capsys)
    assert code == 0, f"{out}\n(if intended: ./scripts/bench gas --update, and commit the snapshot with the change)"
    assert gas.SNAPSHOT.read_bytes() == before  # a check never rewrites it


def test_a_change_over_one_percent_in_a_copy_of_the_snapshot_fails_the_check_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = json.loads(gas.SNAPSHOT.read_text())
    measured = snapshot["operations"]["commit"]
    snapshot["operations"]["commit"] = recorded = round(measured / 1.02)  # the code now costs 2% more than recorded
    snapshot["operations"]["claim"] = round(snapshot["operations"]["claim"] * 1.009)  # under 1%: no finding
    snapshot["operations"]["retired"] = 1_000  # an operation the bench no longer measures
    del snapshot["operations"]["withdraw"]  # an operation the snapshot never recorded
    copy = tmp_path / "gas-snapshot.json"
    copy.write_text(json.dumps(snapshot))

    code, out = check(capsys, "--snapshot", str(copy), "--json")
    assert code == 1
    result = json.loads(out.strip().splitlines()[-1])["check"]
    assert result["changed"] == [
        {"name": "commit", "old": recorded, "new": measured, "change_pct": round(100 * (measured / recorded - 1), 2)}
    ]
    assert result["removed"] == [{"name": "retired", "old": 1_000}]
    assert [a["name"] for a in result["added"]] == ["withdraw"]

    snapshot = json.loads(gas.SNAPSHOT.read_text())
    snapshot["task_lifecycle"] = round(snapshot["task_lifecycle"] * 0.95)
    copy.write_text(json.dumps(snapshot))
    code, out = check(capsys, "--snapshot", str(copy))  # the report a person reads
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("task_lifecycle ") and "->" in line]
    assert f"{snapshot['task_lifecycle']:,} ->" in line and "(+5.2" in line


@pytest.mark.parametrize(
    ("old", "new", "fails"),
    [(100_000, 101_000, False), (100_000, 99_000, False), (100_000, 101_001, True), (100_000, 98_999, True)],
)
def test_the_limit_is_a_change_of_more_than_one_percent_either_way(old: int, new: int, fails: bool) -> None:
    result = gas.compare({"op": old}, {"op": new})
    assert result["ok"] is not fails and len(result["changed"]) == int(fails)
