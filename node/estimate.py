"""Before joining: what this machine would earn per hour on a bounty, from a few of its training steps timed here.

The spec's own model, optimizer, batch size and threads run a few steps on synthetic data of the spec's shapes (no
download: the round's model and shard are not needed to time a step). A task is then its steps at that pace plus
the trace's overhead (checkpoints hashed and stored, about 10%: `./scripts/bench scale`), stretched by the node's
duty cycle (a node training half the time takes twice as long), and a task that could not be committed within the
bounty's lease is said so: claiming it would only cost the lease penalty. The daemon weighs each bounty the same way
before its first claim there (`fits_lease`), then by the pace it measured training that bounty's tasks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from protocol.footprint import step_memory_mb
from protocol.spec import TrainingSpec
from protocol.training import deterministic, new_state, run_steps
from protocol.workloads import resolve

TRACE_OVERHEAD = 1.10  # the trainer's CPU with its trace over a plain loop's, at the example terms (bench scale)
WARMUP_STEPS = 1  # the first step allocates and picks kernels: not a fair sample
COMMIT_MARGIN_S = 15  # a commit sent later than this before the lease ends may be mined after it: not sent


@dataclass(frozen=True)
class Estimate:
    bounty_id: int
    family: str
    params: int
    step_seconds: float
    duty_cycle: float
    task_seconds: float  # wall time of one task at the duty cycle, trace included
    lease_seconds: int
    fits_lease: bool
    memory_mb: int
    reward_per_task: int
    earned_per_hour: int  # wei of reward per hour of this machine's training, if every task it commits is paid

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_steps(spec: TrainingSpec, steps: int = 3) -> float:
    """Seconds per training step of `spec` on this machine (wall clock, under the spec's pinned numerics)."""
    workload = resolve(spec.model)
    shard = workload.synthetic_shard(torch.Generator().manual_seed(spec.init_seed))
    with deterministic(spec.replay), torch.random.fork_rng():
        state = new_state(spec, workload)
        run_steps(state, workload, shard, b"estimate".ljust(32, b"\0"), 0, WARMUP_STEPS, spec.batch_size)
        began = time.perf_counter()
        run_steps(state, workload, shard, b"estimate".ljust(32, b"\0"), WARMUP_STEPS, steps, spec.batch_size)
        return (time.perf_counter() - began) / steps


def task_wall_seconds(training_seconds: float, duty_cycle: float = 1.0) -> float:
    """The wall time of a task that trains for `training_seconds` (trace included) at the duty cycle."""
    return training_seconds / duty_cycle


def fits_lease(task_seconds: float, lease_seconds: int) -> bool:
    """Whether a task of that wall time can be committed before its lease ends, with the commit's margin."""
    return task_seconds + COMMIT_MARGIN_S <= lease_seconds


def estimate(
    bounty_id: int,
    spec: TrainingSpec,
    reward_per_task: int,
    lease_seconds: int,
    steps: int = 3,
    duty_cycle: float = 1.0,
) -> Estimate:
    step = time_steps(spec, steps)
    task = task_wall_seconds(step * spec.steps_per_task * TRACE_OVERHEAD, duty_cycle)
    params = sum(p.numel() for p in resolve(spec.model).build_model().parameters())
    return Estimate(
        bounty_id=bounty_id,
        family=spec.model.family,
        params=params,
        step_seconds=step,
        duty_cycle=duty_cycle,
        task_seconds=task,
        lease_seconds=lease_seconds,
        fits_lease=fits_lease(task, lease_seconds),
        memory_mb=step_memory_mb(spec),
        reward_per_task=reward_per_task,
        earned_per_hour=int(reward_per_task * 3600 / task) if task > 0 else 0,
    )
