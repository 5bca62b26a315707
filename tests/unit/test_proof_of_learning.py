"""Train a task into a trace, then spot-check it the way a verifier does (real MNIST, real torch)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from content.store import LocalStore
from node.trainer import TaskInput, TraceResult, TrainingInterrupted, checkpoint_data, read_journal, train_task
from protocol import datasets
from protocol.cid import cid_of
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import canonical_hash, to_bytes
from protocol.training import initial_weights
from protocol.verify import SegmentVerdict, parse_checkpoint, verify_segment
from protocol.workloads import resolve
from tests.support.tasks import ROUND_CID, VOLUNTEER, mnist_task

Honest = tuple[TaskInput, LocalStore, TraceResult]  # a task, its store and its honestly trained trace


def check(
    task: TaskInput, store: LocalStore, result: TraceResult, segment: int, seed: bytes | None = None
) -> SegmentVerdict:
    m = result.manifest
    start, end = checkpoint_data(task, store, m.checkpoints[segment]), store.get(m.checkpoints[segment + 1].cid)
    return verify_segment(
        task.spec, task.workload, task.shard, seed or task.seed, m, result.trace_root, segment, start, end
    )


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Honest:
    task = mnist_task()
    store = LocalStore(tmp_path_factory.mktemp("store"))
    return task, store, train_task(task, store, tmp_path_factory.mktemp("work"))


def test_every_honest_segment_replays_bit_for_bit(honest: Honest) -> None:
    task, store, result = honest
    verdicts = [check(task, store, result, s) for s in range(task.spec.segments)]
    assert all(v.passed for v in verdicts), verdicts
    assert result.manifest.losses[-1] < result.manifest.losses[0]


def test_trace_starts_at_the_round_model_and_update_is_last_minus_first(honest: Honest) -> None:
    task, store, result = honest
    m = result.manifest
    first = parse_checkpoint(checkpoint_data(task, store, m.checkpoints[0]), task.spec, task.workload, 0)
    last = parse_checkpoint(store.get(m.checkpoints[-1].cid), task.spec, task.workload, task.spec.steps_per_task)
    assert all(torch.equal(first["model." + n], w) for n, w in task.round_weights.items())
    update = {n: last["model." + n] - first["model." + n] for n in task.round_weights}
    assert canonical_hash(update) == result.update_hash


def test_checkpoint_0_is_named_and_committed_but_never_stored(honest: Honest) -> None:
    """Everyone who checks a task builds its start (the round's model and the shard's carried state): the trainer
    names it by the CID its canonical bytes would have and commits to their hash, without writing them."""
    task, store, result = honest
    ref = result.manifest.checkpoints[0]
    start = task.start()
    assert ref.cid == cid_of(to_bytes(start)) and ref.hash == "0x" + canonical_hash(start).hex()
    assert not store.has(ref.cid) and ref.cid not in result.cids
    assert all(store.has(c.cid) for c in result.manifest.checkpoints[1:])


def test_replay_with_another_data_order_fails(honest: Honest) -> None:
    task, store, result = honest
    verdict = check(task, store, result, 1, seed=task_seed(1, 0, 3, b"\x5a" * 32))
    assert not verdict.passed and "diverged" in verdict.reason


def test_a_start_checkpoint_other_than_the_committed_one_is_refused(honest: Honest) -> None:
    task, store, result = honest
    m = result.manifest
    tensors = parse_checkpoint(store.get(m.checkpoints[2].cid), task.spec, task.workload, 10)
    tensors["model.0.weight"] = tensors["model.0.weight"] * 1.001
    verdict = verify_segment(
        task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 2, to_bytes(tensors)
    )
    assert not verdict.passed and "checkpoint 2 does not match its committed hash" in verdict.reason


def test_exact_mode_decides_on_the_committed_end_hash_not_on_downloaded_end_bytes(honest: Honest) -> None:
    task, store, result = honest
    m = result.manifest
    start = store.get(m.checkpoints[1].cid)
    assert verify_segment(task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, start).passed
    # Bytes that are not the committed end cannot make an honest segment fail, nor a dishonest one pass:
    # the replay is compared with the hash in the committed trace.
    wrong_end = store.get(m.checkpoints[3].cid)
    assert verify_segment(
        task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, start, wrong_end
    ).passed


def test_tolerance_mode_refuses_an_end_checkpoint_other_than_the_committed_one(tmp_path: Path) -> None:
    task = mnist_task(replay={"mode": "tolerance", "tolerance": 1e-4})
    store = LocalStore(tmp_path / "store")
    result = train_task(task, store, tmp_path / "work")
    m = result.manifest
    start = store.get(m.checkpoints[1].cid)
    wrong = parse_checkpoint(store.get(m.checkpoints[2].cid), task.spec, task.workload, 10)
    wrong["model.0.weight"] = wrong["model.0.weight"] * 1.001
    verdict = verify_segment(
        task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, start, to_bytes(wrong)
    )
    assert not verdict.passed and "checkpoint 2 does not match its committed hash" in verdict.reason
    with pytest.raises(ValueError, match="end checkpoint"):
        verify_segment(task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, start)


def test_a_trace_of_skipped_work_fails_replay(tmp_path: Path) -> None:
    """A volunteer who skips training in one segment (copies the checkpoint forward) is caught there."""
    task = mnist_task()
    store = LocalStore(tmp_path / "store")
    honest = train_task(task, store, tmp_path / "honest")
    refs = list(honest.manifest.checkpoints)
    refs[2] = refs[2].model_copy(update={"cid": refs[1].cid, "hash": refs[1].hash, "step": 10})
    lazy = honest.manifest.model_copy(update={"checkpoints": refs})
    faked = replace(honest, manifest=lazy, trace_root=lazy.trace_root())
    assert not check(task, store, faked, 1).passed
    assert check(task, store, faked, 0).passed  # untouched segments still replay: the sample must hit the fake


def test_interrupted_training_resumes_to_the_identical_trace(honest: Honest, tmp_path: Path) -> None:
    task, _, result = honest
    store = LocalStore(tmp_path / "store")
    calls = iter(range(100))
    with pytest.raises(TrainingInterrupted):
        train_task(task, store, tmp_path / "work", should_stop=lambda: next(calls) == 2)
    resumed = train_task(task, store, tmp_path / "work")
    assert resumed.trace_root == result.trace_root and resumed.update_hash == result.update_hash


def test_a_journal_torn_by_a_crash_resumes_at_its_last_whole_line_and_a_resumed_trace_is_the_same(
    honest: Honest, tmp_path: Path
) -> None:
    task, _, result = honest
    store = LocalStore(tmp_path / "store")
    calls = iter(range(100))
    with pytest.raises(TrainingInterrupted):
        train_task(task, store, tmp_path / "work", should_stop=lambda: next(calls) == 3)
    journal = tmp_path / "work" / f"task-{task.task_id}.journal.json"
    whole = read_journal(journal)
    assert [ref.step for ref in whole] == [5, 10, 15]  # checkpoint 0 is never stored (node.trainer.start_ref)
    with journal.open("a") as f:
        f.write('{"step": 20, "cid": "Qm')  # killed mid-line
    assert read_journal(journal) == whole
    resumed = train_task(task, store, tmp_path / "work")
    assert resumed.trace_root == result.trace_root and resumed.update_hash == result.update_hash
    assert read_journal(journal) == resumed.manifest.checkpoints[1:]  # appended after whole lines only
    # A journal an earlier version wrote (one JSON object) is read too: a node upgraded mid-task resumes.
    journal.write_text(json.dumps({"checkpoints": [ref.model_dump() for ref in whole]}))
    assert read_journal(journal) == whole


def test_tolerance_mode_accepts_honest_and_rejects_faked_segments(tmp_path: Path) -> None:
    task = mnist_task(replay={"mode": "tolerance", "tolerance": 1e-4})
    store = LocalStore(tmp_path / "store")
    result = train_task(task, store, tmp_path / "work")
    good = check(task, store, result, 2)
    assert good.passed and good.distance is not None and good.distance <= 1e-4
    assert not check(task, store, result, 2, seed=task_seed(9, 9, 9, b"\x00" * 32)).passed


@pytest.mark.parametrize(
    "model",
    [
        {"family": "mnist-cnn", "params": {"channels": 4, "hidden": 16}},
        {"family": "char-transformer", "params": {"context": 32, "dim": 32, "layers": 1, "dropout": 0.1}},
        {"family": "gpt", "params": {"context": 32, "dim": 32, "layers": 1, "vocab": 512, "dropout": 0.1}},
    ],
    ids=["mnist-cnn", "char-transformer", "gpt"],
)
def test_every_family_replays_bit_for_bit(tmp_path: Path, model: dict[str, Any]) -> None:
    spec = TrainingSpec.model_validate(
        {"model": model, "steps_per_task": 10, "checkpoint_interval": 5, "batch_size": 8}
    )
    workload = resolve(spec.model)
    shards, _ = workload.split(datasets.load(workload.dataset), spec.data)  # the GPT's text becomes token ids
    task = TaskInput(
        spec, workload, 3, VOLUNTEER, task_seed(2, 0, 1, b"\x01" * 32), ROUND_CID, initial_weights(spec), shards[1]
    )
    store = LocalStore(tmp_path / "store")
    result = train_task(task, store, tmp_path / "work")
    assert [check(task, store, result, s).passed for s in range(spec.segments)] == [True, True]
