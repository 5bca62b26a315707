"""Honest volunteers on other CPUs: the replay matrix across CPU models and numeric classes (issue 13).

Machines: this CPU (pinned), Intel Haswell and AMD EPYC-Rome under qemu-user (pinned), and this CPU with
native kernels (another numeric class). Every machine trains an honest task of every model family; every
other machine verifies every segment of it with the verifier's own code, using the cross-class tolerance δ×
the coordinator measures at intake. Then each named segment cheat is trained on an emulated AMD CPU and on
the native class, and verified on this machine: the faked segment must fail. Pin cost: CPU time of
bench-sized training, pinned vs native, on this machine.

  ./scripts/bench honest-matrix [--json] [--segments 6]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from devtools.adversaries import SEGMENT_CHEATS
from judge.calibration import calibrate
from tests.support.machines import EPYC_ROME, FAMILIES, HASWELL, HOST, HOST_NATIVE, Machine, spec_of, train, verify

MACHINES = (HOST, HASWELL, EPYC_ROME, HOST_NATIVE)
CHEATED_SEGMENT = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--segments", type=int, default=6, help="segments per task (3 steps each)")
    args = parser.parse_args()
    os.environ["SHARDWORK_MACHINES_SEGMENTS"] = str(args.segments)
    families = sorted(FAMILIES)
    tolerances = {f: calibrate(spec_of(f)).tolerance for f in families}
    with tempfile.TemporaryDirectory(prefix="honest-matrix-") as scratch:
        store = Path(scratch)
        honest = _honest(store, families, tolerances)
        cheats = _cheats(store, families, tolerances)
    speed = {m.name: m.run("speed", ",".join(families), "20") for m in (HOST, HOST_NATIVE)}
    slowdown = {f: speed["host"][f]["cpu_s"] / speed["host-native"][f]["cpu_s"] for f in families}
    result = {
        "cpu_models": ["this machine", HASWELL.name, EPYC_ROME.name],
        "machines": [m.name for m in MACHINES],
        "pairs": honest["pairs"],
        "honest_replays": honest["replays"],
        "exact_replays": honest["exact"],
        "false_fail": honest["false_fail"],
        "abstained": honest["abstained"],
        "max_honest_distance": honest["max_distance"],
        "tolerance": tolerances,
        "class_matrix": honest["matrix"],
        "cheats_tried": cheats["tried"],
        "cheats_missed_when_sampled": cheats["missed"],
        "min_cheat_distance": cheats["min_distance"],
        "pin_slowdown": slowdown,
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:28} {value}")
    print(json.dumps(result))


def _honest(store: Path, families: list[str], tolerances: dict[str, float]) -> dict[str, Any]:
    traces = {m.name: train(m, store, families) for m in MACHINES}
    pairs, replays, exact, false_fail, abstained, max_distance = 0, 0, 0, 0, 0, 0.0
    matrix: dict[str, str] = {}
    for verifier in MACHINES:
        for trainer in MACHINES:
            if trainer is verifier:
                continue
            judged = verify(verifier, store, traces[trainer.name], tolerances)
            pairs += 1
            kinds = set()
            for family in families:
                same = (
                    judged[family]["numerics"]["fingerprint"] == traces[trainer.name][family]["numerics"]["fingerprint"]
                )
                kinds.add("exact" if same else "tolerance")
                for v in judged[family]["verdicts"]:
                    replays += 1
                    exact += v["passed"] and v["distance"] is None
                    false_fail += not v["passed"] and not v["abstained"]
                    abstained += v["abstained"]
                    max_distance = max(max_distance, v["distance"] or 0.0)
            matrix[f"{trainer.name}→{verifier.name}"] = "/".join(sorted(kinds))
    return {
        "pairs": pairs,
        "replays": replays,
        "exact": exact,
        "false_fail": false_fail,
        "abstained": abstained,
        "max_distance": max_distance,
        "matrix": matrix,
    }


def _cheats(store: Path, families: list[str], tolerances: dict[str, float]) -> dict[str, Any]:
    tried, missed, min_distance = 0, 0, float("inf")
    cheaters: tuple[Machine, ...] = (EPYC_ROME, HOST_NATIVE)  # the pinned class on another CPU; another class
    for cheat in SEGMENT_CHEATS:
        for cheater in cheaters:
            judged = verify(HOST, store, train(cheater, store, families, cheat=cheat), tolerances)
            for family in families:
                faked = judged[family]["verdicts"][CHEATED_SEGMENT]
                tried += 1
                missed += faked["passed"] or faked["abstained"]
                if faked["distance"] is not None:
                    min_distance = min(min_distance, faked["distance"])
    return {"tried": tried, "missed": missed, "min_distance": min_distance}


if __name__ == "__main__":
    main()
