"""The cross-class tolerance δ× of a bounty's round, measured when the round opens and published in its manifest.

Within a numeric class, replay is bit for bit. Across classes a verifier can only measure how far its replay
lands from the volunteer's claimed end (normalized distance). How far honest work lands depends on the spec
(model, optimizer, segment length), so it is measured on the spec itself, not assumed: the coordinator trains
a few segments of the spec's own model on the job's own data (its first shard; synthetic data where there is
none yet, as at `bounty post`) in its pinned class, replays each one in the
other classes it can reach on its own CPU (native kernels; scalar kernels), and publishes the largest
distance times a margin. A verifier outside a volunteer's class passes a segment within δ× and fails one
beyond it (protocol.verify). Each round is measured from its own model: how far rounding carries honest work
depends on where training is and on what it trains on: gradients on data the model has already fit are small,
and rounding weighs more in them. From models trained 200 steps on two real shards, the δ× measured once from
the initial model on synthetic data left a 2.1× margin over honest work (of 10×); measured per round on
synthetic data it failed the CNN's honest work (0.49×); per round on a shard it kept 8.5× or more
(`./scripts/bench calibration-drift`).

Tolerance must not hide saved work: the same segments are also trained with their last step skipped (the
smallest work-saving cheat), and a spec whose tolerance would pass that is refused when posted and at intake.
Results are cached on disk per spec, torch build and CPU, so posting the same spec again is instant.

    python -m judge.calibration replay DIR CLASS   (the child: replays DIR's segments in this process's class)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from protocol.errors import PermanentError
from protocol.pins import ENV_SWITCH, NATIVE, PINNED_ENV
from protocol.spec import SpecError, TrainingSpec
from protocol.tensors import Tensors, canonical_hash, from_bytes, to_bytes
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
VERSION = b"4"  # of what a calibration measures and how: part of the disk cache's key


class CalibrationFailed(PermanentError):
    """The measurement could not be made here (a replay process failed or diverged); a round opened without
    δ× leaves cross-class verifiers to abstain, so nothing honest is failed for it."""


@dataclass(frozen=True)
class Calibration:
    tolerance: float  # δ×
    measured: dict[str, float]  # reference class -> largest normalized distance over the segments
    skipped_step: float  # smallest distance of a segment with its last step skipped: the cheapest saved work


def calibrate(spec: TrainingSpec, weights: Tensors | None = None, data: Tensors | None = None) -> Calibration:
    """Measures honest cross-class divergence for `spec` (a few segments of training plus two subprocesses),
    from `weights` (a later round's model) or, without, from the spec's initial model, training on `data` (a
    shard of the job) or, without, on synthetic data fixed by the spec. The first segment starts from a fresh
    optimizer, as a task's does."""
    spec_bytes = spec.canonical_bytes()
    key = (
        spec_bytes,
        b"" if weights is None else canonical_hash(weights),
        b"" if data is None else canonical_hash(data),
    )
    if key not in _MEMO:
        if len(_MEMO) >= MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _calibrate(key, weights, data)
    return _MEMO[key]


# Per process, by (spec, model, data): a round is calibrated once, however many verdicts and intakes ask.
_MEMO: dict[tuple[bytes, bytes, bytes], Calibration] = {}
MEMO_SIZE = 64


def _calibrate(key: tuple[bytes, bytes, bytes], weights: Tensors | None, data: Tensors | None) -> Calibration:
    cached = _cache_file(key)
    found = _read_cached(cached)
    if found is not None:
        return found
    # One measurement per key and machine at a time: a process asking while another measures (the coordinator's
    # close while its preparation runs) waits for that result instead of measuring again beside it, which on a
    # busy machine made both take twice as long.
    with _measuring(cached):
        found = _read_cached(cached)
        if found is not None:
            return found
        calibration = _measure(TrainingSpec.from_bytes(key[0]), weights, data)
        try:
            partial = cached.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(calibration.__dict__))
            partial.replace(cached)
        except OSError:
            pass  # a read-only home only costs the next process the measurement
    return calibration


def _read_cached(cached: Path) -> Calibration | None:
    try:
        return _parse_cached(cached.read_text())
    except (OSError, ValueError, TypeError):
        return None  # not measured on this machine yet, or an unreadable entry: measure


@contextlib.contextmanager
def _measuring(cached: Path) -> Iterator[None]:
    """An exclusive lock on the entry's lock file while measuring it (released by the kernel if the process dies);
    no lock where none can be taken (a read-only home): then processes only measure side by side, as before."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle = open(cached.with_suffix(".lock"), "a")  # held across the yield
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _parse_cached(text: str) -> Calibration:
    entry = json.loads(text)
    numbers = [entry["tolerance"], entry["skipped_step"], *entry["measured"].values()]
    if not all(isinstance(x, float) and math.isfinite(x) and x >= 0 for x in numbers):
        raise ValueError("a cached calibration holds something other than finite distances")
    return Calibration(entry["tolerance"], dict(entry["measured"]), entry["skipped_step"])


def _cache_file(key: tuple[bytes, bytes, bytes]) -> Path:
    """Where this machine keeps the calibration of a spec: keyed by the spec, the model it starts from, the data
    it trains on, the torch build, the CPU and the calibration's own version, so nothing measured elsewhere or
    by older code is ever reused."""
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "")
    parts = [*key, torch.__version__.encode(), platform.machine().encode(), cpu.encode(), VERSION]
    digest = hashlib.sha256(b"".join(hashlib.sha256(part).digest() for part in parts)).hexdigest()
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no HOME and no passwd entry: measure every time rather than fail
        base = Path(tempfile.gettempdir())
    return base / "shardwork" / "calibration" / f"{digest}.json"


def _measure(spec: TrainingSpec, weights: Tensors | None = None, data: Tensors | None = None) -> Calibration:
    with tempfile.TemporaryDirectory(prefix="shardwork-calibration-") as scratch:
        root = Path(scratch)
        (root / "spec.json").write_bytes(spec.canonical_bytes())
        shard = data if data is not None else resolve(spec.model).synthetic_shard(_generator(spec))
        try:
            checkpoints = _train(spec, root, weights, shard)
        except (RuntimeError, ValueError, IndexError) as exc:  # torch's own errors: data too small to sample from
            raise CalibrationFailed(f"calibration training failed: {exc}") from None
        # The classes replay side by side: each is its own process, and most of its time is loading torch.
        with ThreadPoolExecutor(len(REFERENCE_CLASSES)) as pool:
            list(pool.map(lambda item: _replay_in(root, *item), REFERENCE_CLASSES.items()))
        measured = {}
        for name in REFERENCE_CLASSES:
            distances = [
                state_distance(from_bytes((root / f"replayed-{name}-{i}.st").read_bytes()), checkpoints[i + 1], start)
                for i, start in enumerate(checkpoints[:-1])
            ]
            measured[name] = max(distances)
    worst = max(measured.values())
    if not math.isfinite(worst):
        raise CalibrationFailed(f"honest replays in another class diverged without bound ({measured})")
    tolerance = min(max(MARGIN * worst, FLOOR), CROSS_CLASS_FAIL_DISTANCE)
    return Calibration(tolerance, measured, _skipped_step(spec, checkpoints, shard))


def _generator(spec: TrainingSpec) -> torch.Generator:
    return torch.Generator().manual_seed(spec.init_seed)


def _skipped_step(spec: TrainingSpec, checkpoints: list[dict[str, torch.Tensor]], shard: Tensors) -> float:
    """How close to honest work a segment lands that skipped its last step (step counters put right, as a
    cheater would): the smallest distance over the calibration segments."""
    workload = resolve(spec.model)
    distances = []
    for segment, start in enumerate(checkpoints[:-1]):
        state = load_state(spec, start, workload)
        with deterministic(spec.replay):
            run_steps(
                state, workload, shard, _SEED, segment * spec.checkpoint_interval, spec.checkpoint_interval - 1,
                spec.batch_size,
            )  # fmt: skip
        distances.append(state_distance(checkpoints[segment + 1], state.tensors(), start))
    return min(distances)


def check_replay(spec: TrainingSpec) -> Calibration | None:
    """SpecError for a spec whose replay rule would fail honest volunteers on other CPUs or pass saved work;
    refused when posted and at intake, never found by slashing someone or paying a cheat.

    Tolerance mode: the spec's δ must cover honest divergence across CPUs (δ×) and stay below a skipped step.
    Exact mode: across classes verifiers judge by δ×, which must stay below a skipped step. A measurement that
    cannot be made here (CalibrationFailed) refuses a tolerance-mode spec; in exact mode it is left to intake,
    whose round then opens without δ× (cross-class verifiers abstain)."""
    try:
        calibration = calibrate(spec)
    except CalibrationFailed:
        if spec.replay.mode == "tolerance":
            raise
        return None
    skipped = calibration.skipped_step
    if spec.replay.mode == "tolerance":
        if spec.replay.tolerance < calibration.tolerance:
            raise SpecError(
                f"replay.tolerance {spec.replay.tolerance:g} is tighter than honest training of this model on other "
                f"CPUs lands ({max(calibration.measured.values()):.3g} measured, {MARGIN:g}× margin): honest "
                f"volunteers would be failed; set replay.tolerance ≥ {calibration.tolerance:.3g}, or use "
                'replay.mode = "exact"'
            )
        if spec.replay.tolerance >= skipped:
            raise SpecError(
                f"replay.tolerance {spec.replay.tolerance:g} would pass a segment with a training step skipped (it "
                f"lands {skipped:.3g} from honest work): volunteers could save work unseen; set replay.tolerance "
                f"below {skipped:.3g}"
            )
    elif calibration.tolerance >= skipped:
        raise SpecError(
            f"across CPUs, honest rounding of this model ({calibration.tolerance:.3g} with margin) reaches as far as a "
            f"skipped training step ({skipped:.3g}): a volunteer on another CPU could skip steps unseen; use a "
            "shorter checkpoint_interval"
        )
    return calibration


def _train(spec: TrainingSpec, root: Path, weights: Tensors | None, shard: Tensors) -> list[dict[str, torch.Tensor]]:
    workload = resolve(spec.model)
    (root / "shard.st").write_bytes(to_bytes(shard))
    checkpoints = []
    with deterministic(spec.replay), torch.random.fork_rng():
        torch.manual_seed(spec.init_seed)
        state = new_state(spec, workload) if weights is None else load_state(spec, weights, workload)
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


def _replay_in(root: Path, name: str, overrides: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV} | {ENV_SWITCH: NATIVE} | overrides
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "judge.calibration", "replay", str(root), name],
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


def _replay_all(root: Path, name: str) -> None:
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
        (root / f"replayed-{name}-{segment}.st").write_bytes(to_bytes(state.tensors(copy=False)))


if __name__ == "__main__":
    if sys.argv[1:2] != ["replay"] or len(sys.argv) != 4:
        raise SystemExit("usage: python -m judge.calibration replay DIR CLASS")
    _replay_all(Path(sys.argv[2]), sys.argv[3])
