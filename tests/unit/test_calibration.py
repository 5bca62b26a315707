"""The cross-class calibration's guard against tolerance hiding saved work, and its disk cache.

Every spec is measured once per machine: its δ× (honest divergence across classes, with margin) and how far
a segment lands that skipped its last training step. A spec whose tolerance would pass that skipped step is
refused, in exact mode (δ×) and in tolerance mode (the spec's own δ)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from judge import calibration as calibration_module
from judge.calibration import Calibration, calibrate, check_replay
from protocol.spec import SpecError
from protocol.training import initial_weights
from protocol.workloads import resolve
from tests.support.specs import small_spec


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calibration_module._MEMO.clear()


def test_a_skipped_step_lands_far_beyond_honest_rounding_and_the_measurement_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = small_spec()
    measured = calibrate(spec)
    assert 0 < measured.tolerance < measured.skipped_step <= 1  # a 5-step segment: one step is ~20% of its work
    assert measured.skipped_step > 100 * measured.tolerance
    assert check_replay(spec) == measured
    (entry,) = (tmp_path / "cache" / "shardwork" / "calibration").glob("*.json")

    # Another process on this machine reads it back instead of measuring again.
    calibration_module._MEMO.clear()
    monkeypatch.setattr(calibration_module, "_measure", lambda spec, weights, data: pytest.fail("measured again"))
    assert calibrate(spec) == measured
    # An unreadable or ill-typed entry is measured again, not trusted.
    monkeypatch.setattr(
        calibration_module, "_measure", lambda spec, weights, data: Calibration(1e-4, {"native": 1e-5}, 0.2)
    )
    for broken in ("{not json", '{"tolerance": "big", "measured": {}, "skipped_step": 0.2}', "[]"):
        entry.write_text(broken)
        calibration_module._MEMO.clear()
        assert calibrate(spec).tolerance == 1e-4


def test_a_tolerance_that_would_pass_a_skipped_step_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration_module, "calibrate", lambda spec: Calibration(1e-3, {"native": 1e-4}, 0.2))
    with pytest.raises(SpecError, match="would pass a segment with a training step skipped"):
        check_replay(small_spec(replay={"mode": "tolerance", "tolerance": 0.25}))
    with pytest.raises(SpecError, match="tighter than honest training"):
        check_replay(small_spec(replay={"mode": "tolerance", "tolerance": 1e-4}))
    assert check_replay(small_spec(replay={"mode": "tolerance", "tolerance": 1e-2})) is not None


def test_exact_mode_is_refused_where_honest_rounding_across_cpus_reaches_a_skipped_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calibration_module, "calibrate", lambda spec: Calibration(0.3, {"native": 0.03}, 0.2))
    with pytest.raises(SpecError, match="could skip steps unseen"):
        check_replay(small_spec())


def test_a_measurement_that_fails_here_refuses_tolerance_mode_and_leaves_exact_mode_to_intake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fails(spec: object) -> Calibration:
        raise calibration_module.CalibrationFailed("replay process failed")

    monkeypatch.setattr(calibration_module, "calibrate", fails)
    assert check_replay(small_spec()) is None
    with pytest.raises(calibration_module.CalibrationFailed):
        check_replay(small_spec(replay={"mode": "tolerance", "tolerance": 1e-2}))


def test_a_later_rounds_model_is_measured_on_its_own(tmp_path: Path) -> None:
    spec = small_spec()
    initial = calibrate(spec)
    trained = {
        name: w + 0.01 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1))
        for name, w in initial_weights(spec).items()
    }
    later = calibrate(spec, trained)
    assert later != initial and calibrate(spec, trained) is later  # measured once per process
    real = resolve(spec.model).synthetic_shard(torch.Generator().manual_seed(99))  # stands in for a holdout
    assert calibrate(spec, trained, real) not in (initial, later)  # the data it trains on is part of the key
    assert len(list((tmp_path / "cache" / "shardwork" / "calibration").glob("*.json"))) == 3  # and per machine


def test_data_too_small_to_train_on_is_a_calibration_failure_not_a_crash() -> None:
    spec = small_spec(
        model={"family": "char-transformer", "params": {"context": 16, "dim": 16, "heads": 2, "layers": 1}}
    )
    with pytest.raises(calibration_module.CalibrationFailed, match="calibration training failed"):
        calibrate(spec, None, {"tokens": torch.zeros(4, dtype=torch.uint8)})


def test_a_calibration_asked_for_while_another_process_measures_it_waits_for_that_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The coordinator's close and its preparation may ask for the same δ× at once: the second waits for the
    first's measurement (a lock per cache entry) instead of measuring beside it on a busy machine."""
    import threading
    import time

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    measured: list[float] = []

    def slow_measure(*_: object) -> Calibration:
        measured.append(time.monotonic())
        time.sleep(0.5)
        return Calibration(1e-5, {"fp32-avx2": 1e-6}, 1e-2)

    monkeypatch.setattr(calibration_module, "_measure", slow_measure)
    key = (small_spec().canonical_bytes(), b"model", b"data")
    results: list[Calibration] = []
    # Separate threads open the lock file separately: flock serializes them as it does two processes.
    threads = [
        threading.Thread(target=lambda: results.append(calibration_module._calibrate(key, None, None)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(measured) == 1 and len(results) == 2 and results[0] == results[1]
