"""A shard's optimizer state carried into its next round's task (optimizer.carry_state): the trainer starts
from it, every segment of the new task replays from it, and nothing but that exact state passes as the start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from content.store import LocalStore
from node.trainer import TaskInput, TraceResult, checkpoint_data, train_task
from protocol.cid import cid_of
from protocol.compression import send
from protocol.errors import ContentInvalid
from protocol.manifests import InnerState, RoundManifest
from protocol.spec import TrainingSpec
from protocol.tensors import Tensors, to_bytes
from protocol.training import MODEL_PREFIX, OPTIM_PREFIX, inner_state
from protocol.verify import parse_checkpoint, parse_inner_state, verify_segment
from tests.support.tasks import ROUND_CID, mnist_task

CID = ROUND_CID

Carried = tuple[TaskInput, LocalStore, TraceResult]  # a second-round task that started from a carried state


def end_state(task: TaskInput, store: LocalStore, result: TraceResult) -> Tensors:
    last = result.manifest.checkpoints[-1]
    return inner_state(parse_checkpoint(store.get(last.cid), task.spec, task.workload, last.step, task.carried_steps))


@pytest.fixture(scope="module")
def carried(tmp_path_factory: pytest.TempPathFactory) -> Carried:
    first = mnist_task(optimizer={"carry_state": True})
    store = LocalStore(tmp_path_factory.mktemp("store"))
    done = train_task(first, store, tmp_path_factory.mktemp("first"))
    last = parse_checkpoint(store.get(done.manifest.checkpoints[-1].cid), first.spec, first.workload, 20)
    weights = {n: last[MODEL_PREFIX + n] for n in first.round_weights}  # the next round's model, as if alone
    second = replace(
        first, task_id=8, round_weights=weights, carried=inner_state(last), carried_steps=first.spec.steps_per_task
    )
    return second, store, train_task(second, store, tmp_path_factory.mktemp("second"))


def test_a_task_starts_from_its_carried_state_and_counts_on_from_it(carried: Carried) -> None:
    task, store, result = carried
    assert task.carried is not None and task.carried_steps == 20
    first = parse_checkpoint(
        checkpoint_data(task, store, result.manifest.checkpoints[0]), task.spec, task.workload, 0, 20
    )
    assert all(torch.equal(first[n], t) for n, t in task.carried.items())
    assert {n for n in first if n.startswith(OPTIM_PREFIX)} == set(task.carried)
    state = end_state(task, store, result)
    assert {float(t) for n, t in state.items() if n.endswith(".step")} == {40.0}  # 20 carried + 20 trained


def test_every_segment_of_a_carried_task_replays_bit_for_bit(carried: Carried) -> None:
    task, store, result = carried
    m = result.manifest
    for segment in range(task.spec.segments):
        start, end = checkpoint_data(task, store, m.checkpoints[segment]), store.get(m.checkpoints[segment + 1].cid)
        verdict = verify_segment(
            task.spec, task.workload, task.shard, task.seed, m, result.trace_root, segment, start, end, carried=20
        )
        assert verdict.passed, verdict


def test_a_carried_task_judged_as_fresh_is_refused_at_parse(carried: Carried) -> None:
    """Its checkpoint 0 holds optimizer state and its counters run from 20: neither is a fresh task's."""
    task, store, result = carried
    m = result.manifest
    start, end = store.get(m.checkpoints[1].cid), store.get(m.checkpoints[2].cid)
    verdict = verify_segment(task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, start, end)
    assert not verdict.passed and "counted" in verdict.reason
    with pytest.raises(ContentInvalid):
        parse_checkpoint(checkpoint_data(task, store, m.checkpoints[0]), task.spec, task.workload, 0)


def test_a_fresh_start_where_a_state_was_carried_cannot_pass_as_the_carried_task(
    carried: Carried, tmp_path: Path
) -> None:
    task, store, _ = carried
    fresh_task = replace(task, carried=None, carried_steps=None)
    fresh = train_task(fresh_task, store, tmp_path)
    with pytest.raises(ContentInvalid):  # checkpoint 0 without the optimizer state the layout now requires
        parse_checkpoint(
            checkpoint_data(fresh_task, store, fresh.manifest.checkpoints[0]), task.spec, task.workload, 0, 20
        )


def test_the_trace_names_what_its_shard_carries_on_and_the_node_keeps_it(carried: Carried) -> None:
    """The next round names the volunteer's own copy (nobody reads the last checkpoint to make it): its CID is the
    last checkpoint's optimizer part's, it is in the volunteer's store, and it is kept with the trace."""
    task, store, result = carried
    m = result.manifest
    assert m.carry_cid == cid_of(to_bytes(end_state(task, store, result)))
    assert store.has(m.carry_cid) and m.carry_cid in result.cids and m.carry_cid in m.cids()
    assert m.error_cid is None and not m.fresh_start  # mnist_task does not compress
    assert b"error_cid" not in m.canonical_bytes() and b"fresh_start" not in m.canonical_bytes()


def test_a_compressed_tasks_trace_names_the_error_its_update_left_unsent(tmp_path: Path) -> None:
    task = mnist_task(compression={"method": "int8"})
    store = LocalStore(tmp_path / "store")
    result = train_task(task, store, tmp_path / "work")
    m = result.manifest
    last = parse_checkpoint(store.get(m.checkpoints[-1].cid), task.spec, task.workload, m.checkpoints[-1].step)
    delta = {n: last[MODEL_PREFIX + n] - w for n, w in task.round_weights.items()}
    error = send(delta, None, task.spec.compression).error
    assert error is not None and m.error_cid == cid_of(to_bytes(error)) and store.has(m.error_cid)
    assert m.carry_cid is None and m.error_cid in result.cids


def test_a_task_started_fresh_says_so_in_its_trace(carried: Carried, tmp_path: Path) -> None:
    task, store, _ = carried
    fresh = train_task(replace(task, carried=None, carried_steps=None, fresh_start=True), store, tmp_path)
    assert fresh.manifest.fresh_start and b'"fresh_start":true' in fresh.manifest.canonical_bytes()


def test_a_carried_state_must_have_counted_the_steps_the_manifest_says(carried: Carried) -> None:
    task, _, _ = carried
    assert task.carried is not None
    data = to_bytes(task.carried)
    assert parse_inner_state(data, task.spec, task.workload, 20).keys() == task.carried.keys()
    with pytest.raises(ContentInvalid, match="counted 21"):
        parse_inner_state(data, task.spec, task.workload, 21)
    with pytest.raises(ContentInvalid):  # a checkpoint (weights too) is not an optimizer state
        parse_inner_state(to_bytes({**task.carried, "model.0.weight": torch.zeros(1)}), task.spec, task.workload, 20)


def test_carry_state_needs_an_optimizer_with_state_and_leaves_earlier_spec_cids_alone() -> None:
    base = {"model": {"family": "mnist-mlp"}}
    with pytest.raises(ValueError, match="carry_state needs an optimizer with state"):
        TrainingSpec.model_validate({**base, "optimizer": {"name": "sgd", "carry_state": True}})
    TrainingSpec.model_validate({**base, "optimizer": {"name": "sgd", "momentum": 0.9, "carry_state": True}})
    off = TrainingSpec.model_validate(base)
    assert b"carry_state" not in off.canonical_bytes()
    on = TrainingSpec.model_validate({**base, "optimizer": {"carry_state": True}})
    assert b'"carry_state":true' in on.canonical_bytes()


def test_a_round_manifest_names_one_state_or_none_per_shard() -> None:
    fields = {"bounty_id": 1, "round": 1, "spec_cid": CID, "model_cid": CID, "shard_cids": [CID, CID]}
    manifest = RoundManifest(**fields, holdout_cid=CID, inner_states=[InnerState(cid=CID, steps=20), None])
    assert manifest.inner_state(0) == InnerState(cid=CID, steps=20) and manifest.inner_state(1) is None
    assert RoundManifest(**fields, holdout_cid=CID).inner_state(1) is None  # not carried: every task starts fresh
    with pytest.raises(ValueError, match="1 inner states for 2 shards"):
        RoundManifest(**fields, holdout_cid=CID, inner_states=[None])
