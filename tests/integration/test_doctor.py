"""`shardwork doctor` against real servers, a new wallet's first steps, and `stack env`'s exports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from devtools.anvil import Anvil
from devtools.localstack import StackInfo, start_ipfs
from ledger.chain import connect
from tests.support.processes import stop_group

PASSWORD = "doctor-doctor-give-me-the-news"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Anvil, Path]]:
    node = Anvil()
    home = tmp_path_factory.mktemp("home")
    _cli(home, {"SHARDWORK_RPC_URL": node.url}, "chain", "deploy")
    yield node, home
    node.stop()


def _cli(home: Path, env: dict[str, str], *args: str, code: int = 0) -> str:
    full = {"SHARDWORK_HOME": str(home), "SHARDWORK_PASSWORD": PASSWORD, "COLUMNS": "200", **env}
    result = CliRunner().invoke(app, list(args), env=full)
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    return result.output


def _doctor(home: Path, env: dict[str, str], *args: str, code: int) -> dict[str, Any]:
    report = json.loads(_cli(home, env, "doctor", "--json", *args, code=code).strip().splitlines()[-1])
    report["by_name"] = {c["name"]: c for c in report["checks"]}
    return report


def test_a_new_wallet_gets_gas_from_the_faucet_and_doctor_then_passes_on_the_stacks_exports(
    chain: tuple[Anvil, Path], tmp_path: Path
) -> None:
    node, home = chain
    ipfs_home = tmp_path / "ipfs-home"
    (ipfs_home / "logs").mkdir(parents=True)
    daemon, api = start_ipfs(ipfs_home)
    try:
        # The exports `./scripts/stack env` prints for a stack with this chain, deployment and IPFS daemon.
        stack_home = tmp_path / "stack"
        stack_home.mkdir()
        info = StackInfo(str(stack_home), node.url, "", api, "", str(home / "deployment.json"), {}, "127.0.0.1")
        (stack_home / "stack.json").write_text(json.dumps(dataclasses.asdict(info)))
        out = subprocess.run(
            [sys.executable, "-m", "devtools.localstack", "env", "--home", str(stack_home)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        assert env == {
            "SHARDWORK_RPC_URL": node.url,
            "SHARDWORK_DEPLOYMENT": str((home / "deployment.json").resolve()),
            "SHARDWORK_STORE": f"ipfs:{api}",
        }

        _cli(home, env, "wallet", "new", "newcomer")
        report = _doctor(home, env, "--wallet", "newcomer", code=1)
        wallet = report["by_name"]["wallet"]
        assert wallet["status"] == "fail" and "cannot pay" in wallet["detail"] and "faucet" in wallet["fix"]

        # `wallet new` then `faucet`: the new wallet is topped up with gas first, then mints.
        out = _cli(home, env, "faucet", "600", "--wallet", "newcomer", "--yes")
        assert "ETH sent to" in out and "faucet: done" in out
        report = _doctor(home, env, "--wallet", "newcomer", code=0)
        assert report["by_name"]["wallet"]["status"] == "warn"  # tokens, but no stake yet
        assert "shardwork stake" in report["by_name"]["wallet"]["fix"]

        _cli(home, env, "stake", "500", "--wallet", "newcomer", "--yes")
        report = _doctor(home, env, "--wallet", "newcomer", code=0)
        assert report["ok"] is True
        assert {n: c["status"] for n, c in report["by_name"].items()} == {
            "torch": "ok",
            "cpu": "ok",
            "chain": "ok",
            "deployment": "ok",
            "content store": "ok",
            "disk": "ok",
            "wallet": "ok",
        }
        assert "IPFS daemon" in report["by_name"]["content store"]["detail"]
        assert report["by_name"]["cpu"]["detail"].count("numeric class 0x") == 1
    finally:
        stop_group(daemon)


def test_doctor_names_what_is_missing_and_skips_what_depends_on_it(chain: tuple[Anvil, Path], tmp_path: Path) -> None:
    node, home = chain
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing answers JSON-RPC there
    report = _doctor(home, {"SHARDWORK_RPC_URL": nowhere}, "--wallet", "newcomer", code=1)
    statuses = {n: c["status"] for n, c in report["by_name"].items()}
    assert statuses["chain"] == "fail" and "--rpc-url" in report["by_name"]["chain"]["fix"]
    assert statuses["deployment"] == "skip" and statuses["wallet"] == "skip"
    assert statuses["content store"] == "ok"  # the embedded store under SHARDWORK_HOME
    down = _doctor(home, {"SHARDWORK_RPC_URL": nowhere, "SHARDWORK_STORE": "ipfs:http://127.0.0.1:9"}, code=1)
    store = down["by_name"]["content store"]
    assert store["status"] == "fail" and "start the IPFS daemon" in store["fix"]  # a check's line, not a crash

    # A manifest for another chain, and a store that is a file, not a directory.
    other = tmp_path / "other.json"
    manifest = json.loads((home / "deployment.json").read_text())
    other.write_text(json.dumps({**manifest, "chain_id": 5}))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = {"SHARDWORK_RPC_URL": node.url, "SHARDWORK_DEPLOYMENT": str(other), "SHARDWORK_STORE": str(blocker)}
    report = _doctor(home, env, code=1)
    assert "is for chain 5" in report["by_name"]["deployment"]["detail"]
    assert report["by_name"]["content store"]["status"] == "fail"
    text = _cli(home, env, "doctor", code=1)
    assert "FAIL  deployment" in text and "fix: `shardwork chain deploy`" in text
    assert connect(node.url).eth.chain_id == 31337


def test_stack_env_without_a_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devtools.localstack", "env", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1 and "./scripts/stack up" in result.stderr and result.stdout == ""
