"""Numeric classes: pinned kernel dispatch, the fingerprint every trace records, and verifiers that judge bit
for bit only within a class (another class on this machine: the same CPU with native, unpinned kernels)."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from content.store import LocalStore
from node.trainer import TaskInput, TraceResult, checkpoint_data, train_task
from protocol.manifests import CheckpointRef, NumericEnvironment, TraceManifest
from protocol.numerics import environment
from protocol.pins import NATIVE, PINNED_ENV, PROFILE, profile, vendor_shim_image
from protocol.seeds import task_seed
from protocol.tensors import canonical_hash, to_bytes
from protocol.verify import CROSS_CLASS_FAIL_DISTANCE, SegmentVerdict, parse_checkpoint, verify_segment
from tests.support.machines import ROOT, task_of

x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="the pins are for x86-64 AVX2 machines")


@x86_only
def test_kernel_dispatch_is_pinned_before_torch_loads_in_every_room() -> None:
    # A fresh interpreter importing a room that trains (torch comes first in its import block).
    code = (
        "import node.trainer, os, torch; from protocol.pins import profile;"
        "print(torch.backends.cpu.get_cpu_capability(), profile(), os.environ['MKL_CBWR'])"
    )
    env = {"PATH": "/usr/bin:/bin", "MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}  # a user's shell
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AVX2", PROFILE, PINNED_ENV["MKL_CBWR"]]


@x86_only
def test_this_test_process_runs_pinned() -> None:
    assert profile() == PROFILE
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"


@x86_only
def test_the_vendor_shim_is_a_shared_object_whose_symbol_answers_intel(tmp_path: Path) -> None:
    path = tmp_path / "shim.so"
    path.write_bytes(vendor_shim_image())
    assert ctypes.CDLL(str(path)).mkl_serv_intel_cpu_true() == 1


def _task(family: str = "mnist-mlp", **params: object) -> TaskInput:
    task: TaskInput = task_of(family, **params)
    return task


def test_a_trace_records_the_numeric_environment_it_was_trained_in(tmp_path: Path) -> None:
    task = _task()
    result = train_task(task, LocalStore(tmp_path / "store"), tmp_path / "work")
    numerics = result.manifest.numerics
    assert numerics == environment(task.spec)
    assert (numerics.torch, numerics.threads) == (torch.__version__, task.spec.replay.threads)
    assert numerics.profile == profile()


def test_the_fingerprint_is_the_specs_own_model_not_the_machine_alone() -> None:
    small, wider = _task(hidden=32), _task(hidden=48)
    assert environment(small.spec).fingerprint != environment(wider.spec).fingerprint
    assert environment(small.spec).fingerprint == environment(_task(hidden=32).spec).fingerprint


def _verify_all(task: TaskInput, store: LocalStore, trace: TraceManifest, root: bytes) -> list[SegmentVerdict]:
    refs = trace.checkpoints
    return [
        verify_segment(
            task.spec,
            task.workload,
            task.shard,
            task.seed,
            trace,
            root,
            s,
            checkpoint_data(task, store, refs[s]),
            store.get(refs[s + 1].cid),
        )
        for s in range(task.spec.segments)
    ]


def _in_another_class(result: TraceResult) -> TraceManifest:
    """The same trace, claimed from a machine whose fingerprint differs (the CIDs still bind the bytes)."""
    foreign = result.manifest.numerics.model_copy(update={"fingerprint": "0x" + "0e" * 32, "profile": NATIVE})
    return result.manifest.model_copy(update={"numerics": foreign})


def test_a_replay_far_beyond_any_kernel_difference_fails_even_across_classes(tmp_path: Path) -> None:
    task = _task()
    store = LocalStore(tmp_path / "store")
    other_order = replace(task, seed=task_seed(1, 0, 3, b"\x5a" * 32))
    result = train_task(other_order, store, tmp_path / "work")  # trained on another shard's data order
    verdicts = _verify_all(task, store, _in_another_class(result), result.trace_root)
    assert all(v.failed for v in verdicts), verdicts
    assert all(v.distance is not None and v.distance > CROSS_CLASS_FAIL_DISTANCE for v in verdicts)
    assert "beyond any kernel difference" in verdicts[0].reason


def test_bits_that_replay_exactly_pass_whatever_class_the_trace_claims(tmp_path: Path) -> None:
    task = _task()
    store = LocalStore(tmp_path / "store")
    result = train_task(task, store, tmp_path / "work")
    assert all(v.passed for v in _verify_all(task, store, result.manifest, result.trace_root))
    # The same bits pass wherever they were made: a replay that matches the committed hash is proof enough.
    verdicts = _verify_all(task, store, _in_another_class(result), result.trace_root)
    assert all(v.passed for v in verdicts), verdicts


def test_numeric_environment_fields_are_bounded() -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        NumericEnvironment(torch="2", machine="x", kernels="AVX2", profile=PROFILE, threads=1, fingerprint="0x12")


def test_across_classes_the_published_tolerance_decides_pass_and_fail(tmp_path: Path) -> None:
    task = _task()
    store = LocalStore(tmp_path / "store")
    honest = train_task(task, store, tmp_path / "work")
    claimed = _in_another_class(honest)
    # The same bits pass whatever the claim; perturb the end of segment 1 by a known fraction of its movement.
    refs = claimed.checkpoints
    start = parse_checkpoint(store.get(refs[1].cid), task.spec, task.workload, refs[1].step)
    end = parse_checkpoint(store.get(refs[2].cid), task.spec, task.workload, refs[2].step)
    nudged = {n: t + 1e-3 * (t - start.get(n, torch.zeros_like(t))) if ".step" not in n else t for n, t in end.items()}
    trace, root = _with_checkpoint(claimed, 2, nudged, store)

    def judge(tolerance: float | None) -> SegmentVerdict:
        return verify_segment(
            task.spec, task.workload, task.shard, task.seed, trace, root, 1,
            store.get(refs[1].cid), store.get(trace.checkpoints[2].cid), cross_class_tolerance=tolerance,
        )  # fmt: skip

    assert judge(1e-2).passed
    failed = judge(1e-4)
    assert failed.failed and failed.distance == pytest.approx(1e-3, rel=0.05)
    abstained = judge(None)  # a round without δ×: not attributable to cheating, so no verdict at all
    assert abstained.abstained and not abstained.passed and not abstained.failed


def test_across_classes_a_cheat_planted_in_the_optimizer_state_is_measured(tmp_path: Path) -> None:
    task = _task()
    store = LocalStore(tmp_path / "store")
    claimed = _in_another_class(train_task(task, store, tmp_path / "work"))
    refs = claimed.checkpoints
    end = parse_checkpoint(store.get(refs[2].cid), task.spec, task.workload, refs[2].step)
    planted = {n: t * 3 if n.endswith(".exp_avg") else t for n, t in end.items()}  # weights untouched
    trace, root = _with_checkpoint(claimed, 2, planted, store)
    verdict = verify_segment(
        task.spec, task.workload, task.shard, task.seed, trace, root, 1,
        store.get(refs[1].cid), store.get(trace.checkpoints[2].cid), cross_class_tolerance=1e-2,
    )  # fmt: skip
    assert verdict.failed and verdict.distance is not None and verdict.distance > 0.1  # 0.75 measured


def _with_checkpoint(
    trace: TraceManifest, index: int, tensors: dict[str, torch.Tensor], store: LocalStore
) -> tuple[TraceManifest, bytes]:
    ref = CheckpointRef(
        step=trace.checkpoints[index].step, cid=store.put(to_bytes(tensors)), hash="0x" + canonical_hash(tensors).hex()
    )
    checkpoints = [*trace.checkpoints[:index], ref, *trace.checkpoints[index + 1 :]]
    changed = trace.model_copy(update={"checkpoints": checkpoints})
    return changed, changed.trace_root()
