"""Volunteers and verifiers on other CPUs: qemu-user's Intel Haswell and AMD EPYC-Rome (both AVX2) and this
machine. With kernel dispatch pinned (protocol/pins.py) they are one numeric class, so an honest trace made
on any of them replays bit for bit on the others, and a faker is still failed. Emulation is ~10–50× slower
than native: tiny models, few steps; the full matrix is `./scripts/bench honest-matrix`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.machines import EPYC_ROME, FAMILIES, HASWELL, HOST, ROOT, Machine, qemu_available, train, verify

pytestmark = [
    pytest.mark.crosscpu,
    pytest.mark.skipif(not qemu_available(), reason="qemu-user is not installed (./scripts/test installs it)"),
]


def _assert_all_pass(trained: dict, judged: dict, by: Machine) -> None:
    for family, result in judged.items():
        assert result["numerics"]["fingerprint"] == trained[family]["numerics"]["fingerprint"], (family, by.name)
        assert result["numerics"]["kernels"] == "AVX2"
        verdicts = result["verdicts"]
        assert len(verdicts) == 4 and all(v["passed"] for v in verdicts), (family, by.name, verdicts)


def test_honest_traces_from_an_intel_avx2_cpu_replay_exactly_on_amd_cpus(tmp_path: Path) -> None:
    trained = train(HASWELL, tmp_path, sorted(FAMILIES))
    for verifier in (HOST, EPYC_ROME):
        _assert_all_pass(trained, verify(verifier, tmp_path, trained), verifier)


def test_honest_traces_from_this_machine_replay_exactly_on_an_intel_avx2_cpu(tmp_path: Path) -> None:
    trained = train(HOST, tmp_path, ["char-transformer", "mnist-cnn"])
    _assert_all_pass(trained, verify(HASWELL, tmp_path, trained), HASWELL)


def test_a_faker_on_another_cpu_is_still_failed(tmp_path: Path) -> None:
    trained = train(EPYC_ROME, tmp_path, ["mnist-mlp"], cheat="partial-faker")
    verdicts = verify(HOST, tmp_path, trained)["mnist-mlp"]["verdicts"]
    assert [v for v in verdicts if not v["passed"]], verdicts
    assert not [v for v in verdicts if v["abstained"]], verdicts  # same class: nothing to abstain on


def test_a_node_on_a_cpu_without_avx2_says_so_in_one_line() -> None:
    node = [sys.executable, "-m", "cli.main", "node", "run", "--keystore", "/nonexistent.json"]
    done = subprocess.run(
        ["qemu-x86_64", "-cpu", "Nehalem", *node], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("qemu-x86_64: warning")]
    assert len(errors) == 1 and "lacks AVX2" in errors[0], done.stderr[-2000:]
