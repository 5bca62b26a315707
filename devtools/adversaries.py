"""Cheating volunteers, for the demo, the adversarial tests and the economics benchmark.

Each is a drop-in replacement for node.trainer.train_task. None of this code runs in an honest node.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import torch

from content.store import ContentStore
from node.trainer import TaskInput, TraceResult, publish_trace
from protocol.cid import cid_of
from protocol.manifests import CheckpointRef, TraceManifest
from protocol.numerics import environment
from protocol.tensors import Tensors, canonical_hash, to_bytes
from protocol.training import TrainState, deterministic, load_state, run_steps


def lazy(rng: random.Random | None = None) -> Callable[..., TraceResult]:
    """A volunteer that commits random hashes for work it never did and uploads nothing; its randomness from `rng`
    (a seeded demo replays it), else os.urandom."""

    def noise(n: int) -> bytes:
        return rng.randbytes(n) if rng is not None else os.urandom(n)

    def trainer(task: TaskInput, store: ContentStore, workdir: Path, *_: object) -> TraceResult:
        refs = [
            CheckpointRef(step=i * task.spec.checkpoint_interval, cid=cid_of(noise(8)), hash="0x" + noise(32).hex())
            for i in range(task.spec.segments + 1)
        ]
        manifest = TraceManifest(
            task_id=task.task_id,
            volunteer=task.volunteer,
            round_cid=task.round_cid,
            checkpoints=refs,
            update_cid=cid_of(noise(8)),
            update_hash="0x" + noise(32).hex(),
            numerics=environment(task.spec),
        )
        return _NoPins(manifest, cid_of(manifest.canonical_bytes()), manifest.trace_root(), noise(32))

    return trainer


lazy_trainer = lazy()


class _NoPins(TraceResult):
    @property
    def cids(self) -> list[str]:
        return []


def partial_faker(
    fraction: float, rng: random.Random | None = None, keep_counters: bool = False
) -> Callable[..., TraceResult]:
    """Trains only (1 − fraction) of its segments; in the others it skips the work and nudges the weights
    so the trace still looks like progress. The trace is complete and self-consistent (the update is last −
    first), so only a replay of a faked segment can tell. Its optimizer step counters betray a faked segment
    to anyone who parses the checkpoint, unless `keep_counters`: then only the replay's divergence does,
    and a bisection game has to prove it step by step."""
    rng = rng or random.Random()

    def trainer(task: TaskInput, store: ContentStore, workdir: Path, *_: object) -> TraceResult:
        spec = task.spec
        faked = set(rng.sample(range(spec.segments), max(1, round(fraction * spec.segments))))
        refs: list[CheckpointRef] = []
        losses: list[float] = []
        save = _saver(store, refs)

        with deterministic(spec.replay):
            state = load_state(spec, task.start(), task.workload)
            save(0, state.tensors())
            for segment in range(spec.segments):
                first = segment * spec.checkpoint_interval
                if segment in faked:
                    with torch.no_grad():
                        for p in state.model.parameters():
                            p.add_(torch.randn_like(p) * 1e-3)
                else:
                    losses += run_steps(
                        state, task.workload, task.shard, task.seed, first, spec.checkpoint_interval, spec.batch_size
                    )
                if segment in faked and segment == 0:
                    # A real optimizer state keeps later checkpoints well-formed after a faked first segment.
                    run_steps(state, task.workload, task.shard, task.seed, first, 1, spec.batch_size)
                if segment in faked and keep_counters:
                    _set_step_counters(state, (task.carried_steps or 0) + first + spec.checkpoint_interval)
                save(first + spec.checkpoint_interval, state.tensors())
        return publish_trace(task, store, refs, state.tensors(copy=False), losses)

    return trainer


# Cheats on one segment that keep the trace self-consistent (hashes, optimizer step counts, update = last −
# first): only a replay of that segment can tell. Each saves work or bends the update, and each must fail
# wherever a verifier samples the segment: bit for bit in the volunteer's class, by distance across classes.
SEGMENT_CHEATS = ("skip-steps", "other-data-order", "noise", "scaled")


def segment_cheater(kind: str, segment: int = 1, size: float | None = None) -> Callable[..., TraceResult]:
    """skip-steps: trains half the segment's steps and extrapolates (a sandbagger); other-data-order: trains
    the segment on another task's batches (reused work); noise: honest end plus Gaussian noise of `size` (1e-2)
    times the segment's movement; scaled: the segment's movement times `size` (1.5)."""
    if kind not in SEGMENT_CHEATS:
        raise ValueError(f"unknown segment cheat {kind!r}; known: {', '.join(SEGMENT_CHEATS)}")

    def fake(task: TaskInput, state: TrainState, first: int) -> None:
        spec, interval = task.spec, task.spec.checkpoint_interval
        start = {n: p.detach().clone() for n, p in state.model.named_parameters()}
        factor = size or 1.5  # scaled
        if kind == "skip-steps":
            half = max(1, interval // 2)
            run_steps(state, task.workload, task.shard, task.seed, first, half, spec.batch_size)
            factor = interval / half
        elif kind == "other-data-order":
            other = bytes(b ^ 0xFF for b in task.seed)
            run_steps(state, task.workload, task.shard, other, first, interval, spec.batch_size)
        else:
            run_steps(state, task.workload, task.shard, task.seed, first, interval, spec.batch_size)
        with torch.no_grad():
            params = dict(state.model.named_parameters())
            if kind in ("skip-steps", "scaled"):
                for n, p in params.items():
                    p.copy_(start[n] + factor * (p - start[n]))
            elif kind == "noise":
                moved = torch.linalg.vector_norm(torch.cat([(p - start[n]).reshape(-1) for n, p in params.items()]))
                count = sum(p.numel() for p in params.values())
                for p in params.values():
                    p.add_(torch.randn_like(p) * (size or 1e-2) * moved / count**0.5)
            _set_step_counters(state, (task.carried_steps or 0) + first + interval)

    def trainer(task: TaskInput, store: ContentStore, workdir: Path, *_: object) -> TraceResult:
        spec = task.spec
        refs: list[CheckpointRef] = []
        save = _saver(store, refs)

        with deterministic(spec.replay):
            state = load_state(spec, task.start(), task.workload)
            save(0, state.tensors())
            for s in range(spec.segments):
                first = s * spec.checkpoint_interval
                if s == segment:
                    fake(task, state, first)
                else:
                    run_steps(
                        state, task.workload, task.shard, task.seed, first, spec.checkpoint_interval, spec.batch_size
                    )
                save(first + spec.checkpoint_interval, state.tensors())
        return publish_trace(task, store, refs, state.tensors(copy=False), [])

    return trainer


def _set_step_counters(state: TrainState, step: int) -> None:
    """The optimizer step counters an honest segment would leave (parsing a checkpoint checks them)."""
    for p in state.model.parameters():
        if "step" in state.optimizer.state.get(p, {}):
            state.optimizer.state[p]["step"].fill_(step)


def _saver(store: ContentStore, refs: list[CheckpointRef]) -> Callable[[int, Tensors], None]:
    """Stores a checkpoint and appends its reference, as the honest trainer's writer does."""

    def save(step: int, tensors: Tensors) -> None:
        refs.append(
            CheckpointRef(step=step, cid=store.put(to_bytes(tensors)), hash="0x" + canonical_hash(tensors).hex())
        )

    return save
