"""Why δ× is measured per round, on the job's own shards: honest cross-class divergence in a later round vs the
tolerance each design would have published.

For each model family (the cross-CPU tier's small models, on their real datasets split 4 ways): the model is
trained --steps steps, alternating between shards 0 and 1 (a later round's model, which has seen the shards
its tasks train on). The truth is the honest cross-class distance of training that model on shard 1 (the
calibration's own replay in the native and scalar classes). It is compared with the δ× each design publishes:
  - `once_synthetic`: measured once, from the initial model, on synthetic data (this project before);
  - `per_round_synthetic`: from the round's model, on synthetic data;
  - `per_round_holdout`: from the round's model, on the job's holdout (data the model has not seen);
  - `per_round_shard`: from the round's model, on shard 0 (what the coordinator does; it also never lets δ×
    shrink below an earlier round's).
A margin (δ× ÷ truth) below 1 means honest work in that round would be failed. `margin_carried` takes as the
truth a task that starts from the optimizer state training ended with (optimizer.carry_state), while δ× is
still measured from a fresh optimizer.

  ./scripts/bench calibration-drift [--json] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from judge.calibration import calibrate
from protocol import datasets
from protocol.training import MODEL_PREFIX, deterministic, load_state, run_steps
from tests.support.machines import FAMILIES, task_of

ALTERNATE_EVERY = 10  # steps on one shard before switching to the other


def drift(family: str, steps: int) -> dict[str, Any]:
    task = task_of(family)
    spec = task.spec
    shards, holdout = datasets.split(task.workload.dataset, spec.data)
    state = load_state(spec, task.round_weights, task.workload)
    with deterministic(spec.replay):
        for first in range(0, steps, ALTERNATE_EVERY):
            shard = shards[(first // ALTERNATE_EVERY) % 2]
            run_steps(
                state, task.workload, shard, task.seed, first, min(ALTERNATE_EVERY, steps - first), spec.batch_size
            )
    trained = {n[len(MODEL_PREFIX) :]: t for n, t in state.tensors().items() if n.startswith(MODEL_PREFIX)}
    truth = max(calibrate(spec, trained, shards[1]).measured.values())
    # With optimizer.carry_state the task starts from the state training ended with, not a fresh optimizer.
    carried_truth = max(calibrate(spec, state.tensors(), shards[1]).measured.values())
    designs = {
        "once_synthetic": calibrate(spec).tolerance,
        "per_round_synthetic": calibrate(spec, trained).tolerance,
        "per_round_holdout": calibrate(spec, trained, holdout).tolerance,
        "per_round_shard": max(
            calibrate(spec, trained, shards[0]).tolerance, calibrate(spec, None, shards[0]).tolerance
        ),
    }
    return {
        "honest_distance": truth,
        "honest_distance_carried": carried_truth,
        "tolerance": designs,
        "margin": {name: tolerance / truth if truth else None for name, tolerance in designs.items()},
        "margin_carried": {
            name: tolerance / carried_truth if carried_truth else None for name, tolerance in designs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--steps", type=int, default=200, help="steps of honest training before the round measured")
    args = parser.parse_args()
    started = time.monotonic()
    families = {family: drift(family, args.steps) for family in sorted(FAMILIES)}
    designs = next(iter(families.values()))["margin"].keys()
    result = {
        "trained_steps": args.steps,
        "families": families,
        "min_margin": {d: min(f["margin"][d] for f in families.values() if f["margin"][d]) for d in designs},
        "min_margin_carried": {
            d: min(f["margin_carried"][d] for f in families.values() if f["margin_carried"][d]) for d in designs
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    if not args.json:
        for family, f in families.items():
            margins = ", ".join(f"{d} {m:.3g}×" for d, m in f["margin"].items() if m)
            print(f"{family}: honest distance {f['honest_distance']:.3g}; margins {margins}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
