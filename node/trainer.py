"""Trains one task into a proof-of-learning trace.

Checkpoints 1…S are hashed, serialized and stored on a background thread while training goes on (checkpoint 0,
the round's start, is only named: start_ref): the
training thread only pays for a copy of the tensors (torch runs the step on its pinned intra-op threads;
sha256 and file writes release the GIL). Progress is journaled per checkpoint, so a killed node resumes at
its last checkpoint and, because every step is seeded by its step number, ends with the same trace.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from content.store import ContentStore
from protocol.cid import b58decode
from protocol.compression import send
from protocol.manifests import CheckpointRef, TraceManifest
from protocol.numerics import environment
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, tensors_cid, to_bytes
from protocol.training import (
    MODEL_PREFIX,
    TrainState,
    deterministic,
    inner_state,
    load_state,
    run_steps,
    task_start,
)
from protocol.workloads import Workload


class TrainingInterrupted(Exception):
    """Stopped on request between steps; the journal holds every finished checkpoint."""


@dataclass(frozen=True)
class TaskInput:
    spec: TrainingSpec
    workload: Workload
    task_id: int
    volunteer: str
    seed: bytes
    round_cid: str
    round_weights: Tensors
    shard: Tensors
    # The optimizer state the shard carried from its previous round (RoundManifest.inner_states), with the inner
    # steps it has counted; None: a fresh optimizer.
    carried: Tensors | None = None
    carried_steps: int | None = None
    # What compression has not sent of the shard's earlier updates (RoundManifest.update_errors); None: nothing.
    error: Tensors | None = None
    # Started without what the round carries for the shard (it could not be fetched): carried and error are None
    # and the trace says so (TraceManifest.fresh_start).
    fresh_start: bool = False

    def start(self) -> Tensors:
        """The task's state at step 0: checkpoint 0 of its trace."""
        return task_start(self.round_weights, self.carried)


@dataclass(frozen=True)
class TraceResult:
    manifest: TraceManifest
    manifest_cid: str
    trace_root: bytes
    update_hash: bytes

    @property
    def cids(self) -> list[str]:
        """Everything a verifier may fetch: kept (pinned) until the challenge window closes. Not checkpoint 0:
        nobody fetches it (train_task.start_ref). What the shard carries on (carry_cid, error_cid) is listed too:
        the next round's task starts from it."""
        m = self.manifest
        carried = [cid for cid in (m.carry_cid, m.error_cid) if cid is not None]
        return [self.manifest_cid, m.update_cid, *(c.cid for c in m.checkpoints[1:]), *carried]


class CheckpointWriter:
    """Hashes and stores checkpoints on its own thread; `close` waits for all and re-raises any failure."""

    def __init__(self, store: ContentStore, journal: Path) -> None:
        self.store, self.journal = store, journal
        self.refs = {ref.step: ref for ref in read_journal(journal)}
        if journal.exists():  # rewritten whole once, so lines appended from now on follow whole lines
            tmp = journal.with_suffix(".tmp")
            tmp.write_text("".join(ref.model_dump_json() + "\n" for _, ref in sorted(self.refs.items())))
            os.replace(tmp, journal)
        # One checkpoint waits while one is stored and training serializes the next: three in memory at most,
        # as protocol.footprint counts them. A slower store holds training back instead of growing the queue.
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, step: int, tensors: Tensors) -> None:
        """Serializes on the caller's thread (that copy is the snapshot training needs anyway), so the
        writer thread is left with work that runs outside the GIL: hashing and the file write."""
        if self._error is not None:
            raise self._error
        self._queue.put((step, to_bytes(tensors)))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            step, data = item
            try:
                cid = self.store.put(data)  # canonical bytes: the CID carries H
                digest = b58decode(cid)[2:]
                self.refs[step] = ref = CheckpointRef(step=step, cid=cid, hash="0x" + digest.hex())
                self._save_journal(ref)
            except BaseException as exc:  # surfaced to the training thread by submit/close
                self._error = exc

    def _save_journal(self, ref: CheckpointRef) -> None:
        # One line appended per checkpoint (a rewrite of the whole list and a rename cost more than hashing a
        # small model's checkpoint); a line torn by a crash is dropped on reading, and that checkpoint redone.
        with self.journal.open("a") as f:
            f.write(ref.model_dump_json() + "\n")

    def close(self) -> list[CheckpointRef]:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return [r for _, r in sorted(self.refs.items())]


def read_journal(journal: Path) -> list[CheckpointRef]:
    """The checkpoints a task's journal records: one JSON line each (or, written by an earlier version, one JSON
    object listing them)."""
    if not journal.exists():
        return []
    text = journal.read_text()
    with contextlib.suppress(ValueError):
        earlier = json.loads(text)
        if isinstance(earlier, dict) and "checkpoints" in earlier:
            return [CheckpointRef.model_validate(ref) for ref in earlier["checkpoints"]]
    refs = []
    for line in text.splitlines():
        try:
            refs.append(CheckpointRef.model_validate_json(line))
        except ValueError:
            break  # torn by a crash mid-write: that checkpoint and any after it are trained again
    return refs


def _resume_point(task: TaskInput, store: ContentStore, refs: dict[int, CheckpointRef]) -> tuple[TrainState, int]:
    # parse_checkpoint checks the layout: our own journal is not trusted blindly.
    from protocol.verify import checkpoint_limit, parse_checkpoint

    if refs:
        last = max(refs)
        data = store.get(refs[last].cid, checkpoint_limit(task.spec, task.workload))  # a large model's own journal
        tensors = parse_checkpoint(data, task.spec, task.workload, last, task.carried_steps)
        return load_state(task.spec, tensors, task.workload), last
    return load_state(task.spec, task.start(), task.workload), 0


Trainer = Callable[..., TraceResult]  # train_task's signature; adversaries in tests and the demo swap it


def train_task(
    task: TaskInput,
    store: ContentStore,
    workdir: Path,
    on_step: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TraceResult:
    """Trains the task (resuming from `workdir` if a journal is there) and stores its whole trace."""
    spec = task.spec
    workdir.mkdir(parents=True, exist_ok=True)
    journal = workdir / f"task-{task.task_id}.journal.json"
    writer = CheckpointWriter(store, journal)
    losses_path = workdir / f"task-{task.task_id}.losses.json"
    losses: list[float] = json.loads(losses_path.read_text()) if losses_path.exists() else []
    # The trace's own tensor work (checkpoint 0's hash, the update's delta and compression) runs on the spec's
    # threads too: outside, torch would take every core for a few elementwise passes, and on a busy machine its
    # waiting threads cost more CPU than the work (an int8 update of 4.2M parameters, measured: 38 ms of CPU on
    # one thread, 257–825 ms on two cores beside other work). Its results do not depend on the thread count.
    with deterministic(spec.replay):
        try:
            state, step = _resume_point(task, store, writer.refs)
            del losses[step:]
            while step < spec.steps_per_task:
                if should_stop():
                    raise TrainingInterrupted(f"stopped at step {step} of task {task.task_id}")
                losses += run_steps(
                    state,
                    task.workload,
                    task.shard,
                    task.seed,
                    step,
                    spec.checkpoint_interval,
                    spec.batch_size,
                    on_step,
                )
                step += spec.checkpoint_interval
                writer.submit(step, state.tensors(copy=False))
        finally:
            refs = [start_ref(task), *(ref for ref in writer.close() if ref.step > 0)]
            losses_path.write_text(json.dumps(losses))
        return publish_trace(task, store, refs, state.tensors(copy=False), losses)


def checkpoint_data(task: TaskInput, store: ContentStore, ref: CheckpointRef) -> bytes:
    """The bytes of a checkpoint of the task's own trace: checkpoint 0 built (start_ref), any other read."""
    return to_bytes(task.start()) if ref.step == 0 else store.get(ref.cid)


def start_ref(task: TaskInput) -> CheckpointRef:
    """Checkpoint 0, named and committed to but never stored: it is the round's model with the shard's carried
    state, which every checker builds itself (judge.context.ChainView.start_state), so nobody fetches it from
    the volunteer and the trainer neither serializes nor writes it."""
    cid = tensors_cid(task.start())
    return CheckpointRef(step=0, cid=cid, hash="0x" + b58decode(cid)[2:].hex())  # a CID carries its hash


def publish_trace(
    task: TaskInput, store: ContentStore, refs: list[CheckpointRef], final: Tensors, losses: list[float]
) -> TraceResult:
    """Stores the update (final weights − the round's, sent as the spec compresses it), what the shard carries into
    its next task (the end optimizer state, the update's error), and the trace manifest over the stored checkpoints.
    The carried content stays on this node: the next round names it by CID, and whoever trains the shard next
    fetches it (this node, returning, already has it)."""
    delta = {name: final[MODEL_PREFIX + name] - task.round_weights[name] for name in task.round_weights}
    sent = send(delta, task.error, task.spec.compression)
    update_cid = store.put(to_bytes(sent.content))
    update_hash = b58decode(update_cid)[2:]  # the CID's digest is the canonical hash: the update is hashed once
    carried = inner_state(final) if task.spec.optimizer.carry_state else {}  # empty: an optimizer without state
    carry_cid = store.put(to_bytes(carried)) if carried else None
    error_cid = store.put(to_bytes(sent.error)) if sent.error is not None else None
    manifest = TraceManifest(
        task_id=task.task_id,
        volunteer=task.volunteer,
        round_cid=task.round_cid,
        checkpoints=refs,
        update_cid=update_cid,
        update_hash="0x" + update_hash.hex(),
        numerics=environment(task.spec),
        losses=losses,
        carry_cid=carry_cid,
        error_cid=error_cid,
        fresh_start=task.fresh_start,
    )
    manifest_cid = store.put(manifest.canonical_bytes())
    return TraceResult(manifest, manifest_cid, manifest.trace_root(), update_hash)
