"""Numeric classes on this machine: honest work trained in one class (the CPU's native, unpinned kernels)
and judged in another (pinned) is never failed, in either direction; with the cross-class tolerance δ× the
coordinator measures at intake it passes, and every named cheat fails on its segment. Subprocesses: a minute
or two, so in the full tier with the emulated CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.adversaries import SEGMENT_CHEATS
from judge.calibration import MARGIN, calibrate
from tests.support.machines import FAMILIES, HOST, HOST_NATIVE, spec_of, train, verify

pytestmark = pytest.mark.crosscpu


def test_honest_work_in_another_numeric_class_is_never_failed_in_either_direction(tmp_path: Path) -> None:
    families = sorted(FAMILIES)
    for trainer, verifier in [(HOST_NATIVE, HOST), (HOST, HOST_NATIVE)]:
        trained = train(trainer, tmp_path, families)
        judged = verify(verifier, tmp_path, trained)
        for family in families:
            verdicts = judged[family]["verdicts"]
            assert not [v for v in verdicts if not v["passed"] and not v["abstained"]], verdicts
            if trained[family]["numerics"]["fingerprint"] != judged[family]["numerics"]["fingerprint"]:
                # This machine's native kernels round differently (AVX-512 or a non-Intel MKL path): exact
                # replay cannot judge, and the verifier says so instead of failing honest work.
                assert all(v["distance"] is None or v["distance"] < 1e-3 for v in verdicts), verdicts
            else:
                assert all(v["passed"] for v in verdicts), verdicts


@pytest.fixture(scope="module")
def tolerances() -> dict[str, float]:
    """δ× per family, measured the way the coordinator does at intake."""
    return {family: calibrate(spec_of(family)).tolerance for family in FAMILIES}


def test_the_cross_class_tolerance_is_measured_on_the_spec_with_a_margin(tolerances: dict[str, float]) -> None:
    calibration = calibrate(spec_of("char-transformer"))
    assert set(calibration.measured) == {"native", "scalar"}
    assert calibration.tolerance == pytest.approx(MARGIN * max(calibration.measured.values()))
    # A transformer's softmax and GELU round more than an MLP's matrix products: δ× follows the model.
    assert tolerances["char-transformer"] > tolerances["mnist-mlp"]


def test_across_classes_honest_work_passes_within_the_measured_tolerance(
    tmp_path: Path, tolerances: dict[str, float]
) -> None:
    families = sorted(FAMILIES)
    trained = train(HOST_NATIVE, tmp_path, families)
    judged = verify(HOST, tmp_path, trained, tolerances)
    for family in families:
        assert all(v["passed"] for v in judged[family]["verdicts"]), judged[family]


@pytest.mark.parametrize("cheat", SEGMENT_CHEATS)
def test_across_classes_every_named_cheat_fails_on_its_segment(
    cheat: str, tmp_path: Path, tolerances: dict[str, float]
) -> None:
    families = sorted(FAMILIES)
    trained = train(HOST_NATIVE, tmp_path, families, cheat=cheat)  # the cheater's own (native) class
    judged = verify(HOST, tmp_path, trained, tolerances)
    for family in families:
        verdicts = judged[family]["verdicts"]
        assert [v["passed"] for v in verdicts] == [True, False, True, True], (family, verdicts)
        assert not verdicts[1]["abstained"]
