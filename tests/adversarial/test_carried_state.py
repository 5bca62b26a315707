"""A bounty that carries each shard's optimizer state across rounds, on a real EVM with the real coordinator and
verifiers: the state goes into the next round's manifest, honest work from it is paid, a volunteer who starts
from any other state is slashed, and anyone's audit recomputes the states."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from judge.audit import carried_problems
from judge.context import ChainView
from judge.improvement import round_updates
from node.trainer import TaskInput, TraceResult, train_task
from tests.support.arena import Arena, post, spec


def fresh_start(task: TaskInput, *rest: Any) -> TraceResult:
    """Trains honestly, but from a fresh optimizer instead of the state its shard carried."""
    return train_task(replace(task, carried=None, carried_steps=None), *rest)


def planted_state(task: TaskInput, *rest: Any) -> TraceResult:
    """Starts from a state of its own making (the carried moments doubled, counters kept): every segment's
    replay from it agrees, so only the start can tell."""
    assert task.carried is not None
    planted = {n: t if n.endswith(".step") else 2 * t for n, t in task.carried.items()}
    return train_task(replace(task, carried=planted), *rest)


@pytest.mark.parametrize("cheat", [fresh_start, planted_state], ids=["fresh-start", "planted-state"])
def test_only_the_carried_optimizer_state_starts_a_paid_task(arena: Arena, cheat: Any, tmp_path: Path) -> None:
    s = spec(rounds=2, optimizer={"carry_state": True})
    bounty_id = post(arena, s)
    manifest = arena.newcomers_close(bounty_id, shards=2)
    assert [None if st is None else st.steps for st in manifest.inner_states] == [20, 20]

    cheater = arena.account()
    cheated = arena.work_once(cheater, cheat)
    assert cheated is not None
    verdicts = arena.verify(cheated)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(cheated, cheater.address)
    # Newcomers (always checked) train both shards from the states carried to them, and pass.
    final = arena.newcomers_finish(bounty_id, 1, shards=2)
    assert final.inner_states == []  # nothing trains on
    report = arena.audit(bounty_id, tmp_path)
    assert report.data_problems == []
    # A coordinator that hands shard 0's state to shard 1 (and back) is caught by the same recomputation.
    view = ChainView(arena.m.poster, arena.m.store)
    first = view.round(bounty_id, 0)
    swapped = manifest.model_copy(update={"inner_states": manifest.inner_states[::-1]})
    assert carried_problems(first, round_updates(view, first), manifest) == []
    assert carried_problems(first, round_updates(view, first), swapped) != []
