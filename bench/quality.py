"""The marketplace's model against training without it, at equal compute (issue 16's quality bench).

The marketplace is simulated with its own code, without a chain: each round every shard's task trains the
round's model for `steps` inner steps (protocol.training.run_steps, the volunteers' step) from a fresh
optimizer or, "carried", from the optimizer state its shard's task ended the previous round with; the
updates are combined by the spec's aggregation and applied by the outer optimizer (protocol.aggregate).
"churn": a quarter of the tasks are first committed by a cheater (trained on another seed), slashed and
redone. "int8" and "topk_1/64": every update is sent compressed (protocol.compression) with per-shard error
feedback ("no_feedback": without), and `update_bytes_per_param` says how small. "poisoned": halfway through, shard 0's update is scaled 100× and accepted unchecked; proof of
improvement (aggregation.exclude_worse_by 0.05, judge/improvement.py's rule) is on, and `left_out` counts
the updates it left out. Compared, on the held-out split, with
  - synchronous data-parallel training: one optimizer step per combined batch of every shard's batch
    (DiLoCo's own comparison), as many steps as the inner steps of one task per round;
  - sequential training: one worker, the shards' data pooled, as many steps as all tasks together (the demo's
    baseline).
Equal samples throughout (a cheater's thrown-away attempts aside). `gap_pct` (loss; lower is better) and
`gap_points` (accuracy) are the marketplace's distance to data-parallel, `gap_pct_to_sequential` and
`gap_points_to_sequential` to sequential training: positive means worse.

  ./scripts/bench quality [--json] [--rounds 12] [--shards 4] [--workload lm|mnist|both] [--settings NAME ...]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import torch

from devtools.scenario import WORKLOADS
from judge.improvement import worse
from protocol import datasets
from protocol.aggregate import aggregate
from protocol.compression import CompressionSpec, decompress, encoded_bytes, with_feedback
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors
from protocol.training import (
    deterministic,
    held_out_score,
    initial_weights,
    inner_state,
    load_state,
    run_steps,
    task_start,
)
from protocol.workloads import Workload, resolve


@dataclass(frozen=True)
class Setting:
    outer_lr: float
    outer_momentum: float
    carry: bool  # each shard's inner optimizer state goes on into its next round's task (optimizer.carry_state)
    churn: float = 0.0  # share of tasks first committed by a cheater (slashed) and redone by an honest volunteer
    poison: bool = False  # one update, mid-run, scaled 100× and accepted unchecked; proof of improvement on
    compression: CompressionSpec | None = None  # each update sent compressed, with per-shard error feedback
    feedback: bool = True  # without: what compression dropped is lost


# FedAvg is (1, 0), the spec's default; then DiLoCo-style Nesterov settings; then the best of them under churn and
# with a poisoned update that escaped its check.
SETTINGS = {
    "fedavg": Setting(1.0, 0.0, False),
    "nesterov_1.0_0.5": Setting(1.0, 0.5, False),
    "nesterov_1.0_0.5_carried": Setting(1.0, 0.5, True),
    "nesterov_0.7_0.9_carried": Setting(0.7, 0.9, True),
    "nesterov_1.0_0.5_carried_churn": Setting(1.0, 0.5, True, churn=0.25),
    "nesterov_1.0_0.5_carried_poisoned": Setting(1.0, 0.5, True, poison=True),
    "nesterov_1.0_0.5_carried_int8": Setting(1.0, 0.5, True, compression=CompressionSpec(method="int8")),
    "nesterov_1.0_0.5_carried_topk_1/64": Setting(1.0, 0.5, True, compression=CompressionSpec(method="topk")),
    "nesterov_1.0_0.5_carried_topk_1/16": Setting(
        1.0, 0.5, True, compression=CompressionSpec(method="topk", fraction=1 / 16)
    ),
    "nesterov_1.0_0.5_carried_topk_1/64_no_feedback": Setting(
        1.0, 0.5, True, compression=CompressionSpec(method="topk"), feedback=False
    ),
}
EXCLUDE_WORSE_BY = 0.05  # the poisoned run's aggregation.exclude_worse_by


def _spec(workload: str, shards: int, rounds: int, steps: int) -> TrainingSpec:
    base = WORKLOADS["shakespeare" if workload == "lm" else "mnist"]
    return TrainingSpec.model_validate(
        {**base, "rounds": rounds, "steps_per_task": steps, "data": {**base["data"], "shards": shards}}
    )


def marketplace(
    spec: TrainingSpec, workload: Workload, shards: list[Tensors], holdout: Tensors, setting: Setting
) -> tuple[Tensors, int, float]:
    """The final model, how many updates proof of improvement left out, and the bytes per parameter each update
    was sent in (4: uncompressed float32)."""
    aggregation = spec.aggregation.model_copy(
        update={
            "outer_lr": setting.outer_lr,
            "outer_momentum": setting.outer_momentum,
            "exclude_worse_by": EXCLUDE_WORSE_BY if setting.poison else None,
        }
    )
    weights = initial_weights(spec)
    velocity: Tensors | None = None
    carried: list[Tensors | None] = [None] * len(shards)
    errors: list[Tensors | None] = [None] * len(shards)  # per shard, what compression has not sent yet
    churn = random.Random(7)
    left_out = 0
    sent_bytes = sent_params = 0

    def score(w: Tensors) -> float:
        return held_out_score(spec, workload, load_state(spec, w, workload).model, holdout)

    for round_ in range(spec.rounds):
        updates, ends = [], []
        for shard_index, shard in enumerate(shards):
            seed = task_seed(0, round_, shard_index, round_.to_bytes(32, "big"))
            attempts = [b"cheater" + seed[7:], seed] if churn.random() < setting.churn else [seed]
            for attempt_seed in attempts:  # a cheater's attempt is slashed and thrown away; the redo is kept
                state = load_state(spec, task_start(weights, carried[shard_index]), workload)
                run_steps(state, workload, shard, attempt_seed, 0, spec.steps_per_task, spec.batch_size)
            update = {n: p.detach() - weights[n] for n, p in state.model.named_parameters()}
            if setting.poison and round_ == spec.rounds // 2 and shard_index == 0:
                update = {n: 100 * u for n, u in update.items()}
            if setting.compression is not None:
                encoded, error = with_feedback(update, errors[shard_index], setting.compression)
                errors[shard_index] = error if setting.feedback else None
                update = decompress(encoded, update, setting.compression)
                sent_bytes += encoded_bytes(encoded)
                sent_params += sum(t.numel() for t in update.values())
            updates.append(update)
            ends.append(inner_state(state.tensors()) if setting.carry else None)
        used = [True] * len(updates)
        if aggregation.exclude_worse_by is not None:  # judge/improvement.py's rule on each update alone
            base = score(weights)
            for index, update in enumerate(updates):
                alone = score({n: w + update[n] for n, w in weights.items()})
                used[index] = not worse(alone, base, workload.higher_is_better, aggregation)
        left_out += used.count(False)
        combined = aggregate(weights, [u for u, keep in zip(updates, used, strict=True) if keep], aggregation, velocity)
        weights, velocity = combined.weights, combined.velocity
        carried = [end if keep else None for end, keep in zip(ends, used, strict=True)]
    return weights, left_out, sent_bytes / sent_params if sent_params else 4.0


def data_parallel(spec: TrainingSpec, workload: Workload, shards: list[Tensors]) -> Tensors:
    state = load_state(spec, initial_weights(spec), workload)
    generator = torch.Generator().manual_seed(1)
    for _ in range(spec.steps_per_task * spec.rounds):
        batches = []
        for shard in shards:
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            batches.append(workload.sample_batch(shard, spec.batch_size))
        batch = (torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
        state.optimizer.zero_grad()
        workload.loss(state.model, batch).backward()
        state.optimizer.step()
    return {n: p.detach().clone() for n, p in state.model.named_parameters()}


def sequential(spec: TrainingSpec, workload: Workload, shards: list[Tensors]) -> Tensors:
    union = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
    state = load_state(spec, initial_weights(spec), workload)
    run_steps(
        state, workload, union, b"sequential", 0, spec.steps_per_task * spec.rounds * len(shards), spec.batch_size
    )
    return {n: p.detach().clone() for n, p in state.model.named_parameters()}


def compare(name: str, shards_n: int, rounds: int, steps: int, only: list[str] | None = None) -> dict[str, Any]:
    spec = _spec(name, shards_n, rounds, steps)
    workload = resolve(spec.model)
    shards, holdout = datasets.split(workload.dataset, spec.data)

    def score(weights: Tensors) -> float:
        return held_out_score(spec, workload, load_state(spec, weights, workload).model, holdout)

    started = time.monotonic()
    with deterministic(spec.replay):
        result: dict[str, Any] = {
            "workload": name,
            "metric": workload.metric_name,
            "shards": shards_n,
            "rounds": rounds,
            "inner_steps": steps,
            "data_parallel": score(data_parallel(spec, workload, shards)),
            "sequential": score(sequential(spec, workload, shards)),
        }
        runs = {
            label: marketplace(spec, workload, shards, holdout, setting)
            for label, setting in SETTINGS.items()
            if only is None or label in only
        }
        result["marketplace"] = {label: score(weights) for label, (weights, _, _) in runs.items()}
        result["left_out"] = {label: n for label, (_, n, _) in runs.items() if SETTINGS[label].poison}
        result["update_bytes_per_param"] = {
            label: round(sent, 4) for label, (_, _, sent) in runs.items() if SETTINGS[label].compression
        }
    for baseline, suffix in (("data_parallel", ""), ("sequential", "_to_sequential")):
        reference = result[baseline]
        for label, value in result["marketplace"].items():
            if workload.higher_is_better:
                result.setdefault("gap_points" + suffix, {})[label] = round(100 * (reference - value), 3)
            else:
                result.setdefault("gap_pct" + suffix, {})[label] = round(100 * (value - reference) / reference, 3)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="inner steps per task")
    parser.add_argument("--workload", choices=["lm", "mnist", "both"], default="both")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="run only these (default: all)")
    args = parser.parse_args()
    names = ["lm", "mnist"] if args.workload == "both" else [args.workload]
    results = [compare(name, args.shards, args.rounds, args.steps, args.settings) for name in names]
    for r in results:
        if not args.json:
            print(json.dumps(r, indent=2))
    print(json.dumps({"bench": "quality", "results": results}))


if __name__ == "__main__":
    main()
