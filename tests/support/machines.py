"""Other volunteers' machines, in subprocesses: this CPU, this CPU with native (unpinned) kernels, or another
CPU model emulated by qemu-user (Debian's qemu-x86_64). Each one trains or verifies a small task through a
shared embedded content store, so a trace made on one machine is judged on another exactly as a verifier
would judge it.

    python -m tests.support.machines train STORE FAMILY[,FAMILY…] [--cheat NAME]
        → {FAMILY: {"manifest", "root", "numerics"}}
    python -m tests.support.machines verify STORE FAMILY=MANIFEST:ROOT[:TOLERANCE] …
        → {FAMILY: {"verdicts", "numerics"}}
    python -m tests.support.machines speed FAMILY[,FAMILY…] STEPS → {FAMILY: {"cpu_s", "steps"}}

SHARDWORK_MACHINES_SEGMENTS sets the segments per task (3 steps each; default 4).

One process does several families: under emulation, starting Python and loading torch takes ~15 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.pins import ENV_SWITCH, NATIVE, PINNED_ENV

ROOT = Path(__file__).resolve().parents[2]
# Small enough for emulation (~10–50× slower than native), big enough to use every kernel family a spec does.
FAMILIES: dict[str, dict[str, Any]] = {
    "mnist-mlp": {"hidden": 32, "dropout": 0.1},
    "mnist-cnn": {"channels": 4, "hidden": 32},
    "char-transformer": {"context": 32, "dim": 32, "heads": 4, "layers": 1, "dropout": 0.1},
    "gpt": {"context": 32, "dim": 32, "heads": 4, "layers": 1, "vocab": 512, "dropout": 0.1},
}
VOLUNTEER = "0x" + "ab" * 20
ROUND_CID = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


@dataclass(frozen=True)
class Machine:
    """Where a subprocess runs: `cpu` is a qemu CPU model (None: this CPU); `native` drops the pins."""

    name: str
    cpu: str | None = None
    native: bool = False

    def command(self, *args: str) -> list[str]:
        python = [sys.executable, "-m", "tests.support.machines", *args]
        if self.cpu is None:
            return python
        qemu = shutil.which("qemu-x86_64")
        if qemu is None:
            raise RuntimeError("qemu-x86_64 is not installed (Debian package qemu-user)")
        return [qemu, "-cpu", self.cpu, *python]

    def run(self, *args: str, timeout: float = 900) -> dict[str, Any]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop(ENV_SWITCH, None)
        if self.native:  # this process's pins are in its environment: a native machine must not inherit them
            env = {k: v for k, v in env.items() if k not in PINNED_ENV} | {ENV_SWITCH: NATIVE}
        done = subprocess.run(
            self.command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


HOST = Machine("host")
HOST_NATIVE = Machine("host-native", native=True)
HASWELL = Machine("Haswell", cpu="Haswell")  # Intel, AVX2
EPYC_ROME = Machine("EPYC-Rome", cpu="EPYC-Rome")  # AMD, AVX2


def qemu_available() -> bool:
    return shutil.which("qemu-x86_64") is not None


def task_of(family: str, **params: object) -> Any:
    """The small task every machine trains and verifies (a TaskInput), `params` overriding the family's."""
    import torch

    from node.trainer import TaskInput
    from protocol.seeds import task_seed
    from protocol.spec import TrainingSpec
    from protocol.training import initial_weights
    from protocol.workloads import resolve

    spec = TrainingSpec.model_validate(
        {
            "model": {"family": family, "params": {**FAMILIES[family], **params}},
            "steps_per_task": 3 * int(os.environ.get("SHARDWORK_MACHINES_SEGMENTS", "4")),
            "checkpoint_interval": 3,
            "batch_size": 16,
        }
    )
    workload = resolve(spec.model)
    shard = workload.synthetic_shard(torch.Generator().manual_seed(11))
    seed = task_seed(1, 0, 2, b"\x5a" * 32)
    return TaskInput(spec, workload, 7, VOLUNTEER, seed, ROUND_CID, initial_weights(spec), shard)


def train(machine: Machine, store: Path, families: list[str], cheat: str | None = None) -> dict[str, Any]:
    return machine.run("train", str(store), ",".join(families), *(["--cheat", cheat] if cheat else []))


def verify(
    machine: Machine, store: Path, traces: dict[str, Any], tolerances: dict[str, float] | None = None
) -> dict[str, Any]:
    """Verifies every segment of each family's trace (`train`'s output) on `machine`, with each family's
    cross-class tolerance δ× when given (else a round without one)."""
    jobs = [
        f"{f}={t['manifest']}:{t['root']}" + (f":{tolerances[f]!r}" if tolerances else "") for f, t in traces.items()
    ]
    return machine.run("verify", str(store), *jobs)


def spec_of(family: str) -> Any:
    return task_of(family).spec


def _train(family: str, store_dir: str, cheat: str | None) -> dict[str, Any]:
    from content.store import LocalStore
    from devtools.adversaries import SEGMENT_CHEATS, partial_faker, segment_cheater
    from node.trainer import train_task

    task, store = task_of(family), LocalStore(Path(store_dir))
    cheats = {"partial-faker": partial_faker(0.5)} | {kind: segment_cheater(kind) for kind in SEGMENT_CHEATS}
    trainer = train_task if cheat is None else cheats[cheat]
    with tempfile.TemporaryDirectory() as work:
        result = trainer(task, store, Path(work))
    return {"manifest": result.manifest_cid, "root": result.trace_root.hex(), "numerics": _numerics(task)}


def _verify(family: str, store_dir: str, manifest_cid: str, root: str, tolerance: str | None = None) -> dict[str, Any]:
    from content.store import LocalStore
    from node.trainer import checkpoint_data
    from protocol.manifests import TraceManifest
    from protocol.verify import verify_segment

    task, store = task_of(family), LocalStore(Path(store_dir))
    trace = TraceManifest.parse(store.get(manifest_cid))
    refs = trace.checkpoints
    verdicts = [
        verify_segment(
            task.spec,
            task.workload,
            task.shard,
            task.seed,
            trace,
            bytes.fromhex(root),
            segment,
            checkpoint_data(task, store, refs[segment]),
            store.get(refs[segment + 1].cid),
            cross_class_tolerance=None if tolerance is None else float(tolerance),
        )
        for segment in range(task.spec.segments)
    ]
    return {
        "verdicts": [
            {"segment": v.segment, "passed": v.passed, "abstained": v.abstained, "distance": v.distance}
            | {"reason": v.reason}
            for v in verdicts
        ],
        "numerics": _numerics(task),
    }


def _speed(family: str, steps: int) -> dict[str, Any]:
    """CPU seconds for `steps` training steps of a bench-sized model of `family` (after two warm-up steps)."""
    import time

    import torch

    from protocol.spec import TrainingSpec
    from protocol.training import deterministic, new_state, run_steps
    from protocol.workloads import resolve

    sizes = {
        "mnist-mlp": {},
        "mnist-cnn": {},
        "char-transformer": {"context": 128, "dim": 128, "layers": 4},
        "gpt": {"context": 128, "dim": 128, "layers": 4, "vocab": 4096},
    }
    spec = TrainingSpec.model_validate(
        {"model": {"family": family, "params": sizes[family]}, "steps_per_task": 10, "checkpoint_interval": 5}
    )
    workload = resolve(spec.model)
    shard = workload.synthetic_shard(torch.Generator().manual_seed(1))
    with deterministic(spec.replay):
        state = new_state(spec, workload)
        run_steps(state, workload, shard, b"\0" * 32, 0, 2, spec.batch_size)
        started = time.process_time()
        run_steps(state, workload, shard, b"\0" * 32, 2, steps, spec.batch_size)
        return {"cpu_s": time.process_time() - started, "steps": steps}


def _numerics(task: Any) -> dict[str, Any]:
    from protocol.numerics import environment

    return environment(task.spec).model_dump()


def main(argv: list[str]) -> None:
    command, store_dir, *rest = argv
    if command == "train":
        cheat = rest[2] if rest[1:2] == ["--cheat"] else None
        print(json.dumps({f: _train(f, store_dir, cheat) for f in rest[0].split(",")}))
    elif command == "speed":
        print(json.dumps({f: _speed(f, int(rest[0])) for f in store_dir.split(",")}))
    elif command == "verify":
        jobs = [(arg.partition("=")[0], *arg.partition("=")[2].split(":")) for arg in rest]
        print(json.dumps({family: _verify(family, store_dir, *job) for family, *job in jobs}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
