"""The marketplace on a chain that is not a development chain: deployed from a fresh keystore, verified there,
no faucet, tokens only from the initial supply."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from web3.types import RPCEndpoint

from cli.main import app
from devtools.anvil import Anvil
from ledger.amounts import UNIT
from ledger.chain import connect

PASSWORD = "a-key-nobody-else-has"
CHAIN_ID = 4242  # not in LOCAL_CHAIN_IDS: no development accounts, no faucet
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    chain = Anvil(chain_id=CHAIN_ID)
    yield chain
    chain.stop()


def test_a_fresh_keystore_deploys_verifies_and_uses_the_market_on_any_chain(node: Anvil, tmp_path: Path) -> None:
    env = {"SHARDWORK_HOME": str(tmp_path), "SHARDWORK_PASSWORD": PASSWORD, "SHARDWORK_RPC_URL": node.url}
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env={**env, "COLUMNS": "200"})
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
        return result.output

    w3 = connect(node.url)
    cli("wallet", "new", "deployer")
    address = json.loads(cli("wallet", "show", "deployer", "--json"))["address"]

    assert "deploy from your own keystore with --wallet" in cli("chain", "deploy", "--yes", code=1)
    assert "holds no ETH" in cli("chain", "deploy", "--wallet", "deployer", "--initial-supply", "5", "--yes", code=1)
    w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [address, hex(10**20)])  # the operator's own ETH
    assert "--initial-supply" in cli("chain", "deploy", "--wallet", "deployer", "--yes", code=1)
    assert w3.eth.get_transaction_count(address) == 0  # every refusal came before anything was sent

    out = cli("chain", "deploy", "--wallet", "deployer", "--initial-supply", "1,000,000", "--yes", "--json")
    deployment = json.loads(out.strip().splitlines()[-1])
    assert deployment["chain_id"] == CHAIN_ID and deployment["deployer"] == address
    manifest = json.loads((tmp_path / "deployment.json").read_text())
    assert manifest["market"] == deployment["market"]

    sent = w3.eth.get_transaction_count(address)
    again = cli("chain", "deploy", "--wallet", "deployer", "--initial-supply", "1", code=1)
    assert "already holds a deployment manifest" in again and w3.eth.get_transaction_count(address) == sent

    assert json.loads(cli("balance", "--wallet", "deployer", "--json"))["balance"] == 1_000_000 * UNIT
    assert "not a local development chain" in cli("faucet", "5", "--wallet", "deployer", "--yes", code=1)
    staked = json.loads(cli("stake", "250", "--wallet", "deployer", "--yes", "--json"))
    assert staked["after"]["bonded"] == 250 * UNIT

    verified = json.loads(cli("contracts", "verify", "--sources", str(ROOT), "--json").strip().splitlines()[-1])
    assert verified["verified"] is True and {c["contract"] for c in verified["contracts"]} >= {"Token", "BountyMarket"}
