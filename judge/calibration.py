"""The cross-class tolerance δ× of a bounty, measured at intake and published in every round manifest.

Within a numeric class, replay is bit for bit. Across classes a verifier can only measure how far its replay
lands from the volunteer's claimed end (normalized distance). How far honest work lands depends on the spec
(model, optimizer, segment length), so it is measured on the spec itself, not assumed: the coordinator trains
a few segments of the spec's own model on synthetic data in its pinned class, replays each one in the
other classes it can reach on its own CPU (native kernels; scalar kernels), and publishes the largest
distance times a margin. A verifier outside a volunteer's class passes a segment within δ× and fails one
beyond it (protocol.verify).

    python -m judge.calibration replay DIR   (the child: replays DIR's segments in this process's class)
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from protocol.errors import PermanentError
from protocol.pins import ENV_SWITCH, NATIVE, PINNED_ENV
from protocol.spec import SpecError, TrainingSpec
from protocol.tensors import from_bytes, to_bytes
from protocol.training import deterministic, load_state, new_state, run_steps
from protocol.verify import CROSS_CLASS_FAIL_DISTANCE, state_distance
from protocol.workloads import resolve

CALIBRATION_SEGMENTS = 3
MARGIN = 10.0  # δ× = MARGIN × the largest honest cross-class distance measured
FLOOR = 1e-6  # a spec whose classes agreed bit for bit still gets room for rounding on a CPU we could not try
# Classes reachable on any x86-64 machine besides the pinned one: its own fastest kernels, and the scalar ones.
REFERENCE_CLASSES: dict[str, dict[str, str]] = {
    "native": {},
    "scalar": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
_SEED = b"shardwork cross-class calibration".ljust(32, b"\0")
_PROJECT = Path(__file__).resolve().parent.parent
REPLAY_TIMEOUT_S = 600


class CalibrationFailed(PermanentError):
    """The measurement could not be made here (a replay process failed or diverged); a round opened without
    δ× leaves cross-class verifiers to abstain, so nothing honest is failed for it."""


@dataclass(frozen=True)
class Calibration:
    tolerance: float
    measured: dict[str, float]  # reference class -> largest normalized distance over the segments


def calibrate(spec: TrainingSpec) -> Calibration:
    """Measures honest cross-class divergence for `spec` (a few segments of training plus two subprocesses)."""
    return _calibrate(spec.canonical_bytes())


@functools.lru_cache(maxsize=32)
def _calibrate(spec_bytes: bytes) -> Calibration:
    spec = TrainingSpec.from_bytes(spec_bytes)
    with tempfile.TemporaryDirectory(prefix="shardwork-calibration-") as scratch:
        root = Path(scratch)
        (root / "spec.json").write_bytes(spec.canonical_bytes())
        checkpoints = _train(spec, root)
        measured = {}
        for name, overrides in REFERENCE_CLASSES.items():
            _replay_in(root, overrides)
            distances = [
                state_distance(from_bytes((root / f"replayed-{i}.st").read_bytes()), checkpoints[i + 1], start)
                for i, start in enumerate(checkpoints[:-1])
            ]
            measured[name] = max(distances)
    worst = max(measured.values())
    if not math.isfinite(worst):
        raise CalibrationFailed(f"honest replays in another class diverged without bound ({measured})")
    return Calibration(min(max(MARGIN * worst, FLOOR), CROSS_CLASS_FAIL_DISTANCE), measured)


def check_tolerance(spec: TrainingSpec) -> None:
    """SpecError for a tolerance-mode spec whose δ is tighter than honest work on another CPU lands: every
    such volunteer would be failed. Refused when posted and at intake, never found by slashing someone."""
    if spec.replay.mode != "tolerance":
        return
    calibration = calibrate(spec)
    if spec.replay.tolerance < calibration.tolerance:
        raise SpecError(
            f"replay.tolerance {spec.replay.tolerance:g} is tighter than honest training of this model on other "
            f"CPUs lands ({max(calibration.measured.values()):.3g} measured, {MARGIN:g}× margin): honest volunteers "
            f'would be failed; set replay.tolerance ≥ {calibration.tolerance:.3g}, or use replay.mode = "exact"'
        )


def _train(spec: TrainingSpec, root: Path) -> list[dict[str, torch.Tensor]]:
    workload = resolve(spec.model)
    shard = workload.synthetic_shard(torch.Generator().manual_seed(spec.init_seed))
    (root / "shard.st").write_bytes(to_bytes(shard))
    checkpoints = []
    with deterministic(spec.replay), torch.random.fork_rng():
        torch.manual_seed(spec.init_seed)
        state = new_state(spec, workload)
        # Segment 0 starts from a fresh optimizer, as a task's first does: Adam's first steps (m/√v ≈ sign g)
        # magnify rounding in small gradients the most.
        for segment in range(CALIBRATION_SEGMENTS + 1):
            if segment:
                run_steps(
                    state, workload, shard, _SEED, (segment - 1) * spec.checkpoint_interval,
                    spec.checkpoint_interval, spec.batch_size,
                )  # fmt: skip
            tensors = state.tensors()
            (root / f"checkpoint-{segment}.st").write_bytes(to_bytes(tensors))
            checkpoints.append(tensors)
    return checkpoints


def _replay_in(root: Path, overrides: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV} | {ENV_SWITCH: NATIVE} | overrides
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "judge.calibration", "replay", str(root)],
            env=env,
            cwd=_PROJECT,
            capture_output=True,
            text=True,
            timeout=REPLAY_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CalibrationFailed(f"calibration replay took over {REPLAY_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise CalibrationFailed(f"calibration replay failed: {done.stderr.strip()[-500:]}")


def _replay_all(root: Path) -> None:
    spec = TrainingSpec.from_bytes((root / "spec.json").read_bytes())
    workload = resolve(spec.model)
    shard = from_bytes((root / "shard.st").read_bytes())
    for segment in range(CALIBRATION_SEGMENTS):
        start = from_bytes((root / f"checkpoint-{segment}.st").read_bytes())
        state = load_state(spec, start, workload)
        with deterministic(spec.replay):
            run_steps(
                state, workload, shard, _SEED, segment * spec.checkpoint_interval, spec.checkpoint_interval,
                spec.batch_size,
            )  # fmt: skip
        (root / f"replayed-{segment}.st").write_bytes(to_bytes(state.tensors(copy=False)))


if __name__ == "__main__":
    if sys.argv[1:2] != ["replay"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m judge.calibration replay DIR")
    _replay_all(Path(sys.argv[2]))
