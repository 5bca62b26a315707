"""Entry point of the `shardwork` console script."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.audit import audit_app
from cli.bounty import bounty_app
from cli.common import DeploymentOpt, JsonOpt, RpcOpt, cli_app, user_errors
from cli.dataset import dataset_app
from cli.dispute import register_dispute_command
from cli.doctor import register_doctor_command
from cli.model import model_app
from cli.node import node_app
from cli.verify import verify_app
from cli.wallet import register_money_commands, wallet_app

app = cli_app(no_args_is_help=True, pretty_exceptions_enable=False)  # its help is _root's docstring
chain_app = cli_app(help="Local EVM chains and contract deployment.", no_args_is_help=True)
contracts_app = cli_app(help="The marketplace contracts: verify deployed code against sources.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(contracts_app, name="contracts")
app.add_typer(node_app, name="node")
app.add_typer(verify_app, name="verify")
app.add_typer(wallet_app, name="wallet")
app.add_typer(bounty_app, name="bounty")
app.add_typer(dataset_app, name="dataset")
app.add_typer(audit_app, name="audit")
app.add_typer(model_app, name="model")
register_money_commands(app)
register_dispute_command(app)
register_doctor_command(app)


def _print_version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    from ledger.artifacts import load

    def installed(package: str) -> str:  # read from package metadata: importing torch alone takes seconds
        try:
            return version(package)
        except PackageNotFoundError:  # run from a checkout that was never installed
            return "(not installed)"

    digest = load("BountyMarket").source_digest[:12]
    typer.echo(
        f"shardwork {installed('shardwork')} (contracts {digest}, torch {installed('torch')}, "
        f"Python {sys.version.split()[0]})"
    )
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version (and the contracts' source digest) and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Shardwork: a marketplace for volunteer training of ML models, paid on-chain after spot-checked replay."""


@chain_app.command("deploy")
@user_errors
def chain_deploy(
    rpc_url: RpcOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the deployment manifest [env SHARDWORK_DEPLOYMENT].")
    ] = None,
    unbonding_delay: Annotated[int, typer.Option(help="Seconds unstaked tokens stay slashable.", min=0)] = 7
    * 24
    * 3600,
    as_json: JsonOpt = False,
) -> None:
    """Deploy Token + BountyMarket to a local chain and write the deployment manifest other commands read."""
    from config.settings import load_settings
    from ledger.chain import connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.tx import Transactor

    settings = load_settings(rpc_url=rpc_url, deployment=out)
    out = settings.deployment
    w3 = connect(settings.rpc_url)
    deployer = Transactor(w3, dev_accounts(w3, 1)[0])
    deployment = deploy(w3, deployer, unbonding_delay_s=unbonding_delay)
    deployment.save(out)
    if as_json:
        typer.echo(deployment.model_dump_json())
    else:
        typer.echo(f"chain {deployment.chain_id}: Token {deployment.token}, BountyMarket {deployment.market}")
        typer.echo(f"manifest written to {out}")


@contracts_app.command("verify")
@user_errors
def contracts_verify(
    deployment_path: DeploymentOpt = None,
    rpc_url: RpcOpt = None,
    sources: Annotated[Path, typer.Option(help="Repository holding contracts/ and node_modules/.")] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Recompile contracts/ with py-solc-x (driving solc-js) and check the runtime bytecode at each address."""
    from config.settings import load_settings
    from ledger.chain import connect
    from ledger.deploy import Deployment
    from ledger.verify import verify_deployment
    from protocol.errors import ShardworkError

    settings = load_settings(rpc_url=rpc_url, deployment=deployment_path)
    if not settings.deployment.is_file():
        raise ShardworkError(
            f"no deployment manifest at {settings.deployment}: run `shardwork chain deploy` or pass --deployment"
        )
    deployment = Deployment.load(settings.deployment)
    w3 = connect(settings.rpc_url)
    if w3.eth.chain_id != deployment.chain_id:
        raise ShardworkError(f"the node is chain {w3.eth.chain_id} but the manifest is for chain {deployment.chain_id}")
    checks = verify_deployment(w3, deployment, sources)
    if as_json:
        typer.echo(
            json.dumps({"verified": all(c.matches for c in checks), "contracts": [c.model_dump() for c in checks]})
        )
    else:
        for c in checks:
            mark = "OK  " if c.matches else "FAIL"
            typer.echo(f"{mark} {c.contract:<13} {c.address}  {c.detail} ({c.onchain_bytes} bytes)")
    if not all(c.matches for c in checks):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
