"""Proof-of-learning costs, measured side by side in one run (issue 4).

pol-overhead  wall time of a trace-producing training run ÷ a plain PyTorch loop (same model, data,
              steps, threads), per model family; `ratio` is the worst family; `cpu_ratio` the same in
              process CPU time (the checkpoint writer's thread included).
hashing       canonical checkpoint hashing throughput next to a plain memory copy of the same tensors,
              on one core.
replay        over ≥ 100 honest segments in exact mode: the fraction replayed bit for bit, and the
              replay cost of a segment ÷ the training cost of that segment.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from content.store import LocalStore
from node.trainer import TaskInput, checkpoint_data, train_task
from protocol import datasets
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import canonical_hash
from protocol.training import deterministic, initial_weights, load_state, replay_segment, run_steps
from protocol.verify import parse_checkpoint
from protocol.workloads import resolve

VOLUNTEER = "0x" + "11" * 20
ROUND_CID = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"
FAMILIES = {"mnist-mlp": 64, "mnist-cnn": 64, "char-transformer": 32}


def _spec(family: str, steps: int, interval: int) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"family": family},
            "batch_size": FAMILIES[family],
            "steps_per_task": steps,
            "checkpoint_interval": interval,
        }
    )


def _task(spec: TrainingSpec, shard_index: int = 0) -> TaskInput:
    workload = resolve(spec.model)
    shards, _ = datasets.split(workload.dataset, spec.data)
    seed = task_seed(1, 0, shard_index, b"\x42" * 32)
    return TaskInput(
        spec, workload, shard_index, VOLUNTEER, seed, ROUND_CID, initial_weights(spec), shards[shard_index]
    )


def _plain_loop(task: TaskInput) -> tuple[float, float]:
    """What a trainer without proof-of-learning does: seed once, sample, step. (wall s, process CPU s)"""
    spec = task.spec
    start, cpu = time.perf_counter(), time.process_time()
    with deterministic(spec.replay):
        state = load_state(spec, task.round_weights, task.workload)
        torch.manual_seed(0)
        for _ in range(spec.steps_per_task):
            batch = task.workload.sample_batch(task.shard, spec.batch_size)
            state.optimizer.zero_grad(set_to_none=True)
            task.workload.loss(state.model, batch).backward()
            state.optimizer.step()
    return time.perf_counter() - start, time.process_time() - cpu


def _traced(task: TaskInput) -> tuple[float, float]:
    """The volunteer's trainer, trace and all: (wall s, process CPU s, the checkpoint writer's thread included)."""
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        train_task(task, LocalStore(Path(tmp) / "store"), Path(tmp) / "work")
        return time.perf_counter() - start, time.process_time() - cpu


def pol_overhead(repeats: int) -> dict[str, object]:
    per_family = {}
    for family, steps in (("mnist-mlp", 400), ("mnist-cnn", 100), ("char-transformer", 40)):
        task = _task(_spec(family, steps, 10 if family == "mnist-mlp" else 5))
        _plain_loop(task), _traced(task)  # warm caches and allocator
        plain, traced = [], []
        for _ in range(repeats):  # interleaved, so drift hits both sides alike
            plain.append(_plain_loop(task))
            traced.append(_traced(task))
        pairs = list(zip(traced, plain, strict=True))
        per_family[family] = {
            "steps": steps,
            "checkpoint_interval": task.spec.checkpoint_interval,
            "plain_s": round(statistics.median(p[0] for p in plain), 4),
            "traced_s": round(statistics.median(t[0] for t in traced), 4),
            # Median of side-by-side pairs: this VM's speed drifts by ±10% over seconds, pairs cancel it.
            "ratio": round(statistics.median(t[0] / p[0] for t, p in pairs), 4),
            "ratio_of_best": round(min(t[0] for t in traced) / min(p[0] for p in plain), 4),
            # Process CPU, every thread: the writer's hashing and storing run beside training, unseen by wall time.
            "cpu_ratio": round(statistics.median(t[1] / p[1] for t, p in pairs), 4),
        }
    return {
        "ratio": max(f["ratio"] for f in per_family.values()),
        "cpu_ratio": max(f["cpu_ratio"] for f in per_family.values()),
        "families": per_family,
        "repeats": repeats,
    }


def hashing(repeats: int) -> dict[str, object]:
    # A real checkpoint (weights + Adam state) of a transformer large enough to leave caches: ~130 MB.
    spec = TrainingSpec.model_validate({"model": {"family": "char-transformer", "params": {"dim": 384, "layers": 6}}})
    task = _task(spec)
    torch.set_num_threads(1)
    state = load_state(spec, task.round_weights, task.workload)
    run_steps(state, task.workload, task.shard, task.seed, 0, 1, 2)
    tensors = state.tensors()
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    hash_s, copy_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        canonical_hash(tensors)
        hash_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for t in tensors.values():
            t.clone()
        copy_s.append(time.perf_counter() - start)
    return {
        "bytes": total,
        "gb_per_s": round(total / statistics.median(hash_s) / 1e9, 3),
        "memcpy_gb_per_s": round(total / statistics.median(copy_s) / 1e9, 3),
        "threads": 1,
    }


def _record_step_end(ends: dict[int, float], step: int, _loss: float) -> None:
    ends[step] = time.perf_counter()


def replay(tasks: int) -> dict[str, object]:
    spec = _spec("mnist-cnn", 100, 5)
    segments = exact = 0
    train_s: list[float] = []
    replay_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store")
        for index in range(tasks):
            task = _task(spec, index % spec.data.shards)
            step_ends: dict[int, float] = {}
            start = time.perf_counter()
            result = train_task(
                task,
                store,
                Path(tmp) / f"work{index}",
                on_step=functools.partial(_record_step_end, step_ends),
            )
            refs = result.manifest.checkpoints
            for segment in range(spec.segments):
                last = (segment + 1) * spec.checkpoint_interval - 1
                began = step_ends.get(segment * spec.checkpoint_interval - 1, start)
                train_s.append(step_ends[last] - began)
                checkpoint = parse_checkpoint(
                    checkpoint_data(task, store, refs[segment]), spec, task.workload, refs[segment].step
                )
                t0 = time.perf_counter()
                replayed = replay_segment(spec, task.shard, task.seed, checkpoint, segment, task.workload)
                digest = canonical_hash(replayed)
                replay_s.append(time.perf_counter() - t0)
                segments += 1
                exact += "0x" + digest.hex() == refs[segment + 1].hash
    return {
        "segments": segments,
        "exact_fraction": exact / segments,
        "cost_ratio": round(statistics.median(replay_s) / statistics.median(train_s), 4),
        "train_segment_ms": round(statistics.median(train_s) * 1e3, 2),
        "replay_segment_ms": round(statistics.median(replay_s) * 1e3, 2),
        "family": "mnist-cnn",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["pol-overhead", "hashing", "replay"])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=6, help="replay: tasks of 20 segments each")
    args = parser.parse_args()
    if args.name == "pol-overhead":
        result = pol_overhead(args.repeats)
    elif args.name == "hashing":
        result = hashing(args.repeats)
    else:
        result = replay(args.tasks)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
