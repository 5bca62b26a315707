"""The marketplace's model against training without it, at equal compute (issue 16's quality bench).

The marketplace is simulated with its own code, without a chain: each round every shard's task trains the
round's model for `steps` inner steps from a fresh optimizer (protocol.training.run_steps, the volunteers'
step), the updates are combined by the spec's aggregation and applied by the outer optimizer
(protocol.aggregate). It is compared, on the held-out split, with
  - synchronous data-parallel training: one optimizer step per combined batch of every shard's batch
    (DiLoCo's own comparison), as many steps as the inner steps of one task per round;
  - sequential training: one worker, the shards' data pooled, as many steps as all tasks together (the demo's
    baseline).
Equal samples throughout. `gap_pct` (loss; lower is better) and `gap_points` (accuracy) are the marketplace's
distance to data-parallel: positive means worse.

  ./scripts/bench quality [--json] [--rounds 12] [--shards 4] [--workload lm|mnist|both]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from devtools.scenario import WORKLOADS
from protocol import datasets
from protocol.aggregate import aggregate
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors
from protocol.training import deterministic, initial_weights, load_state, run_steps
from protocol.workloads import Workload, resolve

# (outer lr, outer momentum): FedAvg is (1, 0), today's default; then DiLoCo-style Nesterov settings.
OUTER = {"fedavg": (1.0, 0.0), "nesterov_1.0_0.5": (1.0, 0.5), "nesterov_0.7_0.9": (0.7, 0.9)}


def _spec(workload: str, shards: int, rounds: int, steps: int) -> TrainingSpec:
    base = WORKLOADS["shakespeare" if workload == "lm" else "mnist"]
    return TrainingSpec.model_validate(
        {**base, "rounds": rounds, "steps_per_task": steps, "data": {**base["data"], "shards": shards}}
    )


def marketplace(spec: TrainingSpec, workload: Workload, shards: list[Tensors], lr: float, momentum: float) -> Tensors:
    aggregation = spec.aggregation.model_copy(update={"outer_lr": lr, "outer_momentum": momentum})
    weights = initial_weights(spec)
    velocity: Tensors | None = None
    for round_ in range(spec.rounds):
        updates = []
        for shard_index, shard in enumerate(shards):
            state = load_state(spec, weights, workload)
            seed = task_seed(0, round_, shard_index, round_.to_bytes(32, "big"))
            run_steps(state, workload, shard, seed, 0, spec.steps_per_task, spec.batch_size)
            updates.append({n: p.detach() - weights[n] for n, p in state.model.named_parameters()})
        combined = aggregate(weights, updates, aggregation, velocity)
        weights, velocity = combined.weights, combined.velocity
    return weights


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


def compare(name: str, shards_n: int, rounds: int, steps: int) -> dict[str, Any]:
    spec = _spec(name, shards_n, rounds, steps)
    workload = resolve(spec.model)
    shards, holdout = datasets.split(workload.dataset, spec.data)

    def score(weights: Tensors) -> float:
        return workload.evaluate(load_state(spec, weights, workload).model, holdout)

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
            "marketplace": {
                label: score(marketplace(spec, workload, shards, lr, momentum))
                for label, (lr, momentum) in OUTER.items()
            },
        }
    dp = result["data_parallel"]
    for label, value in result["marketplace"].items():
        if workload.higher_is_better:
            result.setdefault("gap_points", {})[label] = round(100 * (dp - value), 3)
        else:
            result.setdefault("gap_pct", {})[label] = round(100 * (value - dp) / dp, 3)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="inner steps per task")
    parser.add_argument("--workload", choices=["lm", "mnist", "both"], default="both")
    args = parser.parse_args()
    names = ["lm", "mnist"] if args.workload == "both" else [args.workload]
    results = [compare(name, args.shards, args.rounds, args.steps) for name in names]
    for r in results:
        if not args.json:
            print(json.dumps(r, indent=2))
    print(json.dumps({"bench": "quality", "results": results}))


if __name__ == "__main__":
    main()
