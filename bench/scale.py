"""What one task costs at each model size, on the example's terms (issue 15): bytes, verification, trace, memory.

Per GPT size up to examples/gpt-bounty.toml's 26M parameters, a one-task bounty on that example's terms is posted
on a real EVM (anvil) and trained by the volunteer's node daemon; the coordinator's audit and a check by a quorum
of two verifiers run the real code (coordinator.rounds, verifier.worker), each party reading the content store
through a log of what it read. Training is one task of the example (40 steps, 8 segments, batch 8, context 128).

  params                           the model's parameters
  upload_bytes_per_param           what the volunteer's node sends others per task, expected at the terms: what
                                   the coordinator reads of its content (the manifest and the update), plus the
                                   check probability × quorum × what one committee member reads (each sampled
                                   segment's start, segment 0's being the carried optimizer state and the last
                                   segment's derivation adding the carried error as in any round after the first:
                                   the expected sizes over the draw of segments_per_check of the segments)
  upload_bytes_per_param_newcomer  the same at a newcomer's check probability (every task checked)
  download_bytes_per_param         what the volunteer's node fetched for its task (spec, round, model, shard)
  handoff_bytes_per_param          what a shard's carried optimizer state and error weigh: sent once by its
                                   previous volunteer's node when the shard changes hands (a returning volunteer
                                   has them), not per task
  verify_over_train_total          CPU of the coordinator's audit + check probability × every committee member's
                                   check, over the training's CPU (process time, all threads)
  detection_per_task               computed from the terms, not measured: the probability that one task of a
                                   volunteer faking each segment with probability 0.1 is caught, at the floor check
                                   rate (min_check_probability × (1 − 0.9^segments_per_check))
  tasks_to_99pct_detection         how many such tasks make its detection ≥ 99%
  trace_cpu_overhead               the trainer's process CPU (checkpoint writer included) ÷ a plain PyTorch loop's:
                                   the median of --repeats side-by-side pairs (trace_cpu_overhead_range: min, max);
                                   trace_cpu_overhead_accounted: the traced runs' process CPU ÷ their training steps'
                                   thread CPU, an upper bound (setup counts) without a plain loop's noise;
                                   trace_work_over_steps: the trace's own work timed on the threads it runs on
                                   (the snapshot's serialization, checkpoint 0's hash, the update, the writer
                                   thread's hashing and writing) ÷ the training steps' thread CPU
  peak_rss_over_estimate           peak RSS of a fresh process training the task from its shard (read from a file,
                                   as a volunteer reads it) ÷ protocol.footprint's estimate
  aggregate_peak_bytes_per_param   memory a close's aggregation holds beyond the round's model and velocity: the
                                   example's four int8 updates held as sent and the working set (bench.aggregate_memory,
                                   mean, mode held)

  ./scripts/bench scale [--json] [--sizes 0.7M,4M,14M,26M] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from web3.types import RPCEndpoint

import node.trainer as trainer_module
from bench.pol import _plain_loop
from content.store import ContentStore, LocalStore
from devtools.anvil import Anvil
from ledger.terms import BountyTerms
from node.trainer import TaskInput, TraceResult, train_task
from protocol import datasets
from protocol.footprint import step_memory_mb
from protocol.manifests import TraceManifest
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, from_bytes, to_bytes
from protocol.training import initial_weights
from protocol.workloads import resolve
from tests.support.arena import Arena
from tests.support.marketplace import start

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gpt-bounty.toml"
SIZES = {  # GPT knobs per size; the last is the example's model
    "0.7M": {"dim": 128, "heads": 4, "layers": 2, "vocab": 2048},
    "4M": {"dim": 256, "heads": 4, "layers": 4, "vocab": 4096},
    "14M": {"dim": 384, "heads": 6, "layers": 6, "vocab": 8192},
    "26M": {"dim": 512, "heads": 8, "layers": 7, "vocab": 8192},
}


class ReadLog:
    """A party's view of the shared store that counts the bytes it reads, per CID."""

    def __init__(self, shared: ContentStore) -> None:
        self.shared = shared
        self.read: dict[str, int] = {}

    def _count(self, cid: str, data: bytes | bytearray) -> None:
        self.read[cid] = self.read.get(cid, 0) + len(data)

    def get(self, cid: str, max_bytes: int = 1 << 30) -> bytes:
        data = self.shared.get(cid, max_bytes)
        self._count(cid, data)
        return data

    def get_buffer(self, cid: str, max_bytes: int = 1 << 30) -> bytearray:
        data = self.shared.get_buffer(cid, max_bytes)
        self._count(cid, data)
        return data

    def put(self, data: bytes) -> str:
        return self.shared.put(data)

    def has(self, cid: str) -> bool:
        return self.shared.has(cid)

    def pin(self, cid: str) -> None:
        self.shared.pin(cid)

    def bytes_of(self, cids: set[str]) -> int:
        return sum(n for cid, n in self.read.items() if cid in cids)


def example(size: str) -> tuple[TrainingSpec, BountyTerms]:
    raw = tomllib.loads(EXAMPLE.read_text())
    terms = BountyTerms.model_validate(raw.pop("bounty"))
    raw["model"]["params"] |= SIZES[size]
    raw["rounds"], raw["data"]["shards"] = 1, 1
    return TrainingSpec.model_validate(raw), terms


def task_costs(arena: Arena, spec: TrainingSpec, terms: BountyTerms) -> dict[str, Any]:
    """One task on the chain at the example's terms, every check forced (a newcomer's), and what each party read."""
    params = terms.params("", 1, 1, spec.segments, 0)
    onchain = {k: params[k] for k in ("segmentsPerCheck", "quorum", "rewardPerTask", "stakePerTask", "verifierFee")}
    bounty_id = arena.m.post_and_open(spec, **onchain, checkBps=10_000, minCheckBps=10_000)
    train_cpu = 0.0

    def trainer(task: TaskInput, *rest: Any) -> TraceResult:
        nonlocal train_cpu
        began = time.process_time()
        result = train_task(task, *rest)
        train_cpu += time.process_time() - began
        return result

    volunteer_reads = ReadLog(arena.m.store)
    task_id = arena.work_once(arena.account(), trainer, store=volunteer_reads)
    assert task_id is not None and task_id >> 64 == bounty_id
    for _ in range(2):  # the draw block is behind the head
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    checked, segments = arena.m.poster.challenge(task_id)
    assert checked
    logs = {"coordinator": ReadLog(arena.m.store), **{f"v{i}": ReadLog(arena.m.store) for i in range(2)}}
    arena.coordinator.view.store = logs["coordinator"]
    for i, verifier in enumerate(arena.verifiers):
        verifier.view.store = logs[f"v{i}"]
    cpu: dict[str, float] = {}
    try:
        began = time.process_time()
        arena.coordinator.audit_and_dispute(task_id)
        cpu["coordinator"] = time.process_time() - began
        for i, verifier in enumerate(arena.verifiers):
            began = time.process_time()
            assert verifier.verify(task_id) is True
            cpu[f"v{i}"] = time.process_time() - began
    finally:
        arena.coordinator.view.store = arena.m.store
        for verifier in arena.verifiers:
            verifier.view.store = arena.m.store
    commit = arena.coordinator.view.commit(task_id)
    trace = TraceManifest.parse(arena.m.store.get(commit.trace_cid))
    carried = [cid for cid in (trace.carry_cid, trace.error_cid) if cid is not None]
    own = {commit.trace_cid, trace.update_cid, *(c.cid for c in trace.checkpoints), *carried}
    # Checkpoint 0 is built by whoever replays segment 0 (node.trainer.start_ref): nobody fetches it as such.
    sizes = [0, *(len(arena.m.store.get(c.cid)) for c in trace.checkpoints[1:])]
    committee = [logs[f"v{i}"].bytes_of(own) for i in range(2)]
    starts = sum(sizes[s] for s in segments)
    # What a task of a later round adds (this one is round 0, which carries nothing in): building segment 0's start
    # fetches the shard's carried optimizer state, and the last segment's derivation check its carried error, both
    # the size of this task's own (carry_cid, error_cid), from whoever holds them.
    carry_size = len(arena.m.store.get(trace.carry_cid)) if trace.carry_cid else 0
    error_size = len(arena.m.store.get(trace.error_cid)) if trace.error_cid else 0
    # Each member read its manifest and its sample's starts; over the draw each segment is sampled k/S of checks.
    share = len(segments) / spec.segments
    expected_member = committee[0] - starts + (sum(sizes[:-1]) + carry_size + error_size) * share
    return {
        "train_cpu_s": train_cpu,
        "coordinator_bytes": logs["coordinator"].bytes_of(own),
        "handoff_bytes": carry_size + error_size,
        "committee_bytes": committee,
        "expected_member_bytes": expected_member,
        "segments_drawn": segments,
        "download_bytes": sum(n for cid, n in volunteer_reads.read.items() if cid not in own),
        "coordinator_cpu_s": cpu["coordinator"],
        "committee_cpu_s": [cpu["v0"], cpu["v1"]],
    }


def _task(spec: TrainingSpec, shard: Tensors) -> TaskInput:
    seed = task_seed(1, 0, 0, b"\x42" * 32)
    return TaskInput(spec, resolve(spec.model), 0, "0x" + "11" * 20, seed, "", initial_weights(spec), shard)


def trace_overhead(spec: TrainingSpec, shard: Tensors, repeats: int) -> dict[str, float]:
    """The trainer's process CPU over a plain loop's, same model, data and steps: `repeats` side-by-side pairs after
    a warm-up pair, interleaved so this VM's drift hits both sides alike; the median pair's ratio, and the spread.
    Also, from the traced runs alone, the median of their process CPU over the CPU their training thread spent in
    the training steps (`accounted`): everything else counts, the trace's own work (serializing, hashing, writing,
    the update) and the setup a plain loop pays too (model and optimizer), so it is an upper bound without the
    plain loop's run-to-run noise, though blind to any slowdown the trace causes inside the steps. And the trace's
    own work timed where it runs (`work`, over the steps' CPU): the training thread's in `submit` (the snapshot's
    serialization), `start_ref` and `publish_trace`, and the checkpoint writer thread's whole life."""
    task = _task(spec, shard)
    originals: dict[str, Callable[..., Any]] = {
        "run_steps": trainer_module.run_steps,
        "start_ref": trainer_module.start_ref,
        "publish_trace": trainer_module.publish_trace,
    }
    submit, writer_run = trainer_module.CheckpointWriter.submit, trainer_module.CheckpointWriter._run
    spent = {"steps": 0.0, "trace": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()  # this thread only: the writer's work is counted in its own thread
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - began

        return wrapper

    def traced() -> tuple[float, float, float]:
        spent.update(steps=0.0, trace=0.0)
        trainer_module.run_steps = timed("steps", originals["run_steps"])
        trainer_module.start_ref = timed("trace", originals["start_ref"])
        trainer_module.publish_trace = timed("trace", originals["publish_trace"])
        trainer_module.CheckpointWriter.submit = timed("trace", submit)  # type: ignore[method-assign]
        trainer_module.CheckpointWriter._run = timed("trace", writer_run)  # type: ignore[method-assign]
        try:
            with tempfile.TemporaryDirectory() as tmp:
                began = time.process_time()
                train_task(task, LocalStore(Path(tmp) / "store"), Path(tmp) / "work")
                return time.process_time() - began, spent["steps"], spent["trace"]
        finally:
            for name, fn in originals.items():
                setattr(trainer_module, name, fn)
            trainer_module.CheckpointWriter.submit = submit  # type: ignore[method-assign]
            trainer_module.CheckpointWriter._run = writer_run  # type: ignore[method-assign]

    _plain_loop(task), traced()  # warm caches and the allocator
    ratios, accounted, work = [], [], []
    for _ in range(repeats):
        plain = _plain_loop(task)[1]
        total, steps, trace = traced()
        ratios.append(total / plain)
        accounted.append(total / steps)
        work.append(trace / steps)
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "accounted": statistics.median(accounted),
        "work": statistics.median(work),
    }


def peak_rss_mb(size: str, shard: Tensors) -> float:
    """Max RSS of a fresh process that trains the size's task from its shard, read from a file as a volunteer reads
    it from its store (tokenizing the corpus is the coordinator's work, not the volunteer's)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "shard.st").write_bytes(to_bytes(shard))
        command = [sys.executable, "-m", "bench.scale", "--child", size, tmp]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["max_rss_mb"])


def child(size: str, directory: str) -> None:
    spec, _ = example(size)
    task = _task(spec, from_bytes(bytearray((Path(directory) / "shard.st").read_bytes())))
    with tempfile.TemporaryDirectory() as tmp:
        train_task(task, LocalStore(Path(tmp) / "store"), Path(tmp) / "work")
    # VmHWM, not getrusage's ru_maxrss: Linux carries the parent's high-water mark across fork and exec into
    # ru_maxrss, so a child of this bench (by then holding gigabytes) reported the bench's RSS, not its own.
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"max_rss_mb": hwm_kb / 1024}))


def aggregate_peak(spec: TrainingSpec, updates: int) -> float:
    knobs = spec.model.params
    command = [sys.executable, "-m", "bench.aggregate_memory", "--child", "mean", "held", "--updates", str(updates)]
    command += ["--vocab", str(knobs["vocab"]), "--width", str(knobs["dim"]), "--blocks", str(knobs["layers"])]
    out = json.loads(
        subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    )
    return float(out["peak_bytes"]) / int(out["params"])


def measure(arena: Arena, size: str, log: bool, repeats: int) -> dict[str, Any]:
    spec, terms = example(size)
    params = sum(p.numel() for p in resolve(spec.model).build_model().parameters())
    costs = task_costs(arena, spec, terms)
    committee_cpu = sum(costs["committee_cpu_s"])
    row: dict[str, Any] = {"params": params}
    for label, p in (("", terms.min_check_probability), ("_newcomer", terms.check_probability)):
        expected = costs["coordinator_bytes"] + p * terms.quorum * costs["expected_member_bytes"]
        row[f"upload_bytes_per_param{label}"] = round(expected / params, 3)
    row["download_bytes_per_param"] = round(costs["download_bytes"] / params, 3)
    row["handoff_bytes_per_param"] = round(costs["handoff_bytes"] / params, 3)
    row["verify_over_train_total"] = round(
        (costs["coordinator_cpu_s"] + terms.min_check_probability * committee_cpu) / costs["train_cpu_s"], 4
    )
    caught = terms.min_check_probability * (1 - 0.9 ** min(terms.segments_per_check, spec.segments))
    row["detection_per_task"] = round(caught, 4)
    row["tasks_to_99pct_detection"] = math.ceil(math.log(0.01) / math.log(1 - caught))
    shard = datasets.split(resolve(spec.model).dataset, spec.data)[0][0]
    overhead = trace_overhead(spec, shard, repeats)
    row["trace_cpu_overhead"] = round(overhead["median"], 4)
    row["trace_cpu_overhead_range"] = [round(overhead["min"], 4), round(overhead["max"], 4)]
    row["trace_cpu_overhead_accounted"] = round(overhead["accounted"], 4)
    row["trace_work_over_steps"] = round(overhead["work"], 4)
    row["peak_rss_over_estimate"] = round(peak_rss_mb(size, shard) / step_memory_mb(spec), 3)
    row["aggregate_peak_bytes_per_param"] = round(aggregate_peak(spec, 4), 3)
    row["measured"] = {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3) for k, v in costs.items()}
    if log:
        print(f"{size}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--repeats", type=int, default=5, help="side-by-side pairs for trace_cpu_overhead")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; sizes: {', '.join(SIZES)}")
    node = Anvil()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            arena = Arena(start(node.url, Path(tmp)), Path(tmp) / "work")
            rows = {size: measure(arena, size, log=args.json, repeats=args.repeats) for size in sizes}
    finally:
        node.stop()
    result = {"sizes": rows, "terms": "examples/gpt-bounty.toml"}
    if args.json:
        print(json.dumps(result))
    else:
        for size, row in rows.items():
            print(size)
            for key, value in row.items():
                print(f"  {key:>34}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
