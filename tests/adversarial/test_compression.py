"""A bounty whose updates are sent compressed (protocol.compression), on a real EVM with the real coordinator
and verifiers: each shard's error feedback goes into the next round's manifest, honest work adding it is paid,
a volunteer who drops it or sends its update uncompressed is slashed, and anyone's audit recomputes the errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from judge.audit import carried_problems
from judge.context import ChainView
from judge.improvement import round_updates
from node.trainer import TaskInput, TraceResult, train_task
from protocol.tensors import from_bytes
from tests.support.arena import Arena, post, spec

COMPRESSION = {"method": "topk", "fraction": 1 / 64, "chunk": 256}


def dropped_feedback(task: TaskInput, *rest: Any) -> TraceResult:
    """Trains honestly but sends its update without the error its shard carried (cheaper to keep no state)."""
    assert task.error is not None
    return train_task(replace(task, error=None), *rest)


def uncompressed(task: TaskInput, *rest: Any) -> TraceResult:
    """Trains honestly and sends its whole float32 update: 64× the bytes the spec asks for."""
    plain = task.spec.model_copy(update={"compression": task.spec.compression.model_copy(update={"method": "none"})})
    return train_task(replace(task, spec=plain), *rest)


@pytest.mark.parametrize("cheat", [dropped_feedback, uncompressed], ids=["dropped-feedback", "uncompressed"])
def test_only_the_update_compressed_with_its_shards_error_is_paid(arena: Arena, cheat: Any, tmp_path: Path) -> None:
    s = spec(rounds=2, compression=COMPRESSION)
    bounty_id = post(arena, s)
    manifest = arena.newcomers_close(bounty_id, shards=2)
    errors = [cid for cid in manifest.update_errors if cid is not None]
    assert len(errors) == 2
    error = from_bytes(arena.m.store.get(errors[0]))
    assert any(bool(t.ne(0).any()) for t in error.values())  # top-k left most of each chunk behind
    assert all(t.dtype == torch.float32 for t in error.values())

    cheater = arena.account()
    cheated = arena.work_once(cheater, cheat)
    assert cheated is not None
    verdicts = arena.verify(cheated)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(cheated, cheater.address)
    # Newcomers (always checked) train both shards adding the errors carried to them, and pass.
    final = arena.newcomers_finish(bounty_id, 1, shards=2)
    assert final.update_errors == []  # nothing trains on
    report = arena.audit(bounty_id, tmp_path)
    assert report.data_problems == [] and report.disagreements == 0
    # A coordinator that hands shard 0's error to shard 1 (and back) is caught by the same recomputation.
    view = ChainView(arena.m.poster, arena.m.store)
    first = view.round(bounty_id, 0)
    swapped = manifest.model_copy(update={"update_errors": manifest.update_errors[::-1]})
    assert carried_problems(first, round_updates(view, first), manifest) == []
    assert carried_problems(first, round_updates(view, first), swapped) != []
