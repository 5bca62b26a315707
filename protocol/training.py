"""The deterministic training step. The volunteer's trainer and the verifier's replay both run
`run_steps`; nothing else advances a model, so a replay can only disagree if the work was not done.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from protocol.seeds import step_seed
from protocol.spec import OptimizerSpec, ReplaySpec, TrainingSpec
from protocol.tensors import Tensors
from protocol.workloads import Workload, resolve

MODEL_PREFIX = "model."
OPTIM_PREFIX = "optim."


@contextlib.contextmanager
def deterministic(replay: ReplaySpec) -> Iterator[None]:
    """Pins thread count and deterministic kernels for exact mode; restores the caller's settings after."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(replay.threads)
    torch.use_deterministic_algorithms(replay.mode == "exact")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


def make_optimizer(spec: OptimizerSpec, model: nn.Module) -> torch.optim.Optimizer:
    # foreach=False: one kernel per parameter, the same code path on every CPU and torch build option.
    if spec.name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, foreach=False
        )
    # fused=True: one ATen kernel computes the whole update; the unfused path calls torch.sqrt, which MKL's
    # vector math computes differently per CPU vendor (and it is ~3× faster on a small model).
    return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, foreach=False, fused=True)


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer

    def tensors(self, copy: bool = True) -> Tensors:
        """Weights and optimizer state as one named tensor set: what a checkpoint holds."""
        out: Tensors = {}
        for name, p in self.model.named_parameters():
            out[MODEL_PREFIX + name] = p.detach().clone() if copy else p.detach()
            for key, value in self.optimizer.state.get(p, {}).items():
                t = value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)
                out[f"{OPTIM_PREFIX}{name}.{key}"] = t.detach().clone() if copy else t.detach()
        return out

    def weights(self) -> Tensors:
        return {name: p.detach().clone() for name, p in self.model.named_parameters()}


def new_state(spec: TrainingSpec, workload: Workload | None = None) -> TrainState:
    model = (workload or resolve(spec.model)).build_model()
    return TrainState(model, make_optimizer(spec.optimizer, model))


def initial_weights(spec: TrainingSpec) -> Tensors:
    """The round-0 model: fixed by the spec's init seed, so anyone can recompute its CID."""
    with torch.random.fork_rng():
        torch.manual_seed(spec.init_seed)
        return new_state(spec).weights()


def load_state(
    spec: TrainingSpec, tensors: Tensors, workload: Workload | None = None, model: nn.Module | None = None
) -> TrainState:
    """A state from a checkpoint (weights and optimizer state) or from bare weights (a round model).
    With `model`, that module (of this spec's architecture) is reused and every parameter overwritten."""
    if model is None:
        state = new_state(spec, workload)
    else:
        state = TrainState(model, make_optimizer(spec.optimizer, model))
    params = dict(state.model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            source = tensors.get(MODEL_PREFIX + name, tensors.get(name))
            if source is None:
                raise KeyError(f"checkpoint has no weights for {name!r}")
            p.copy_(source)
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            name, _, field = key[len(OPTIM_PREFIX) :].rpartition(".")
            state.optimizer.state[params[name]][field] = value.clone()
    return state


def inner_state(checkpoint: Tensors) -> Tensors:
    """The optimizer's part of a checkpoint: what a shard carries into its next round's task when the spec's
    optimizer.carry_state is on (empty for an optimizer without state, such as SGD without momentum)."""
    return {name: t for name, t in checkpoint.items() if name.startswith(OPTIM_PREFIX)}


def task_start(weights: Tensors, carried: Tensors | None) -> Tensors:
    """A task's state at its step 0: the round's model, with the optimizer state its shard carried (or none:
    a fresh optimizer). Checkpoint 0 of an honest trace is exactly this."""
    return {**{MODEL_PREFIX + name: w for name, w in weights.items()}, **(carried or {})}


def held_out_score(spec: TrainingSpec, workload: Workload, model: nn.Module, data: Tensors) -> float:
    """The family's metric of `model` on `data` under the spec's pinned numerics: the score a round manifest
    publishes, computed the same way by the coordinator and by anyone checking it (`shardwork model eval`)."""
    with deterministic(spec.replay):
        return workload.evaluate(model, data)


def run_steps(
    state: TrainState,
    workload: Workload,
    shard: Tensors,
    seed: bytes,
    first_step: int,
    steps: int,
    batch_size: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Steps first_step … first_step+steps−1. Each step reseeds torch from (task seed, step), so a replay
    can start at any checkpoint: data order and dropout depend only on the step number."""
    losses = []
    model, optimizer = state.model, state.optimizer
    model.train()
    for step in range(first_step, first_step + steps):
        torch.default_generator.manual_seed(
            step_seed(seed, step)
        )  # CPU only: torch.manual_seed also walks lazy CUDA hooks
        batch = workload.sample_batch(shard, batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss = workload.loss(model, batch)
        loss.backward()
        optimizer.step()
        value = loss.item()
        losses.append(value)
        if on_step is not None:
            on_step(step, value)
    return losses


@functools.lru_cache(maxsize=4)
def _replay_model(spec_bytes: bytes, workload: Workload) -> nn.Module:
    # Building a model costs as much as several training steps (27 ms for the MNIST CNN); a verifier replays
    # many segments of one spec, so it builds the module once. Every parameter is overwritten before use.
    # One replay at a time per process (verifier workers and the auditor are single-threaded).
    return workload.build_model()


def replay_segment(
    spec: TrainingSpec, shard: Tensors, seed: bytes, checkpoint: Tensors, segment: int, workload: Workload | None = None
) -> Tensors:
    """Replays segment `segment` (checkpoint_i → checkpoint_{i+1}) with the trainer's own step."""
    start = segment * spec.checkpoint_interval
    return replay_stretch(spec, shard, seed, checkpoint, start, spec.checkpoint_interval, workload)


def replay_stretch(
    spec: TrainingSpec,
    shard: Tensors,
    seed: bytes,
    state: Tensors,
    first_step: int,
    steps: int,
    workload: Workload | None = None,
) -> Tensors:
    """Steps first_step … first_step+steps−1 from `state`, the state after first_step steps: any stretch of a
    task, not only a segment (a bisection game asks for midpoints and single steps)."""
    workload = workload or resolve(spec.model)
    with deterministic(spec.replay):
        train_state = load_state(spec, state, workload, model=_replay_model(spec.canonical_bytes(), workload))
        run_steps(train_state, workload, shard, seed, first_step, steps, spec.batch_size)
        return train_state.tensors(copy=False)
