"""py-solc-x (driving solc-js) reproduces the shipped artifacts and verifies deployed bytecode."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from devtools.anvil import Anvil
from ledger.artifacts import load
from ledger.chain import dev_accounts
from ledger.compiler import compile_sources, layout_mismatch
from ledger.deploy import Deployment, deploy
from ledger.tx import Transactor

ROOT = Path(__file__).resolve().parents[2]
SHARDWORK = [sys.executable, "-m", "cli.main"]

AnvilDeployment = tuple[Anvil, Deployment, Path]  # the node, what was deployed on it, the saved manifest


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, Any]]:
    return compile_sources(ROOT)


@pytest.mark.parametrize("name", ["Token", "BountyMarket"])
def test_shipped_artifacts_match_a_fresh_compile_of_the_sources(compiled: dict[str, dict[str, Any]], name: str) -> None:
    artifact = load(name)
    out = compiled[name]["evm"]
    assert "0x" + out["bytecode"]["object"] == artifact.bytecode, "run ./scripts/build-contracts"
    assert "0x" + out["deployedBytecode"]["object"] == artifact.deployed_bytecode


def test_the_game_module_shares_the_market_storage_layout(compiled: dict[str, dict[str, Any]]) -> None:
    market, games = compiled["BountyMarket"]["storageLayout"], compiled["BountyGames"]["storageLayout"]
    assert layout_mismatch(market, games) is None
    assert len(market["storage"]) > 10
    # A module whose variables sit elsewhere would write the market's slots under the wrong names: refused.
    shifted = {**games, "storage": games["storage"][1:] + games["storage"][:1]}
    assert "differ from variable 0" in (layout_mismatch(market, shifted) or "")


@pytest.fixture(scope="module")
def anvil_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilDeployment]:
    node = Anvil()
    try:
        w3 = Web3(HTTPProvider(node.url))
        deployment = deploy(w3, Transactor(w3, dev_accounts(w3, 1)[0]), unbonding_delay_s=123)
        path = tmp_path_factory.mktemp("deploy") / "deployment.json"
        deployment.save(path)
        yield node, deployment, path
    finally:
        node.stop()


def _verify(path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *SHARDWORK,
            "contracts",
            "verify",
            "--deployment",
            str(path),
            "--rpc-url",
            url,
            "--sources",
            str(ROOT),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_verify_cli_accepts_deployed_contracts(anvil_deployment: AnvilDeployment) -> None:
    node, _, path = anvil_deployment
    result = _verify(path, node.url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verified"] is True
    masked = {c["contract"]: c["immutable_bytes_masked"] for c in report["contracts"]}
    # The game module the market deployed is checked too; it has no immutables to mask.
    assert masked.keys() == {"Token", "BountyMarket", "BountyGames"}
    assert masked["Token"] > 0 and masked["BountyMarket"] > 0 and masked["BountyGames"] == 0


def test_verify_cli_rejects_code_that_is_not_from_the_sources(
    anvil_deployment: AnvilDeployment, tmp_path: Path
) -> None:
    node, deployment, _ = anvil_deployment
    swapped = deployment.model_copy(update={"token": deployment.market})
    path = tmp_path / "swapped.json"
    swapped.save(path)
    result = _verify(path, node.url)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    token = next(c for c in report["contracts"] if c["contract"] == "Token")
    assert token["matches"] is False and "length differs" in token["detail"]


def test_verify_cli_reports_missing_manifest_in_one_line(tmp_path: Path) -> None:
    result = _verify(tmp_path / "nope.json", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no deployment manifest" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_cli_reports_unreachable_node_in_one_line(anvil_deployment: AnvilDeployment) -> None:
    _, _, path = anvil_deployment
    result = _verify(path, "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach an EVM node" in result.stderr
    assert "Traceback" not in result.stderr
