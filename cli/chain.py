"""`shardwork chain deploy` (any EVM chain, from a keystore or, on local chains, the development key) and
`shardwork contracts verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    DeploymentOpt,
    JsonOpt,
    PasswordFileOpt,
    RpcOpt,
    YesOpt,
    cli_app,
    confirm,
    emit_json,
    user_errors,
    wallet_path,
)

chain_app = cli_app(help="EVM chains: deploy the marketplace to one.", no_args_is_help=True)
contracts_app = cli_app(help="The marketplace contracts: verify deployed code against sources.", no_args_is_help=True)


@chain_app.command("deploy")
@user_errors
def chain_deploy(
    rpc_url: RpcOpt = None,
    wallet: Annotated[
        str | None,
        typer.Option(
            "--wallet",
            "-w",
            help="Deploy from this keystore (wallet name or path), on any chain. Without it: the public development "
            "key, local chains only.",
        ),
    ] = None,
    password_file: PasswordFileOpt = None,
    initial_supply: Annotated[
        str | None,
        typer.Option(
            help="Tokens minted to the deployer. Required where the chain is not local: only local chains have a "
            "faucet, so these are all the tokens there will be."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the deployment manifest [env SHARDWORK_DEPLOYMENT].")
    ] = None,
    unbonding_delay: Annotated[int, typer.Option(help="Seconds unstaked tokens stay slashable.", min=0)] = 7
    * 24
    * 3600,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy Token + BountyMarket and write the deployment manifest other commands read.

    On a local development chain (31337, 1337, the embedded one) the development key deploys and the token has a
    faucet. On any other chain, pass --wallet (a keystore holding ETH for gas) and --initial-supply; the faucet
    is off there. The manifest is not overwritten unless --yes is given."""
    from config.settings import load_settings
    from ledger.amounts import format_amount, parse_amount
    from ledger.chain import LOCAL_CHAIN_IDS, connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.tx import Transactor
    from ledger.wallet import load_account, read_password
    from protocol.errors import ShardworkError

    settings = load_settings(rpc_url=rpc_url, deployment=out)
    out = settings.deployment
    w3 = connect(settings.rpc_url)
    chain_id = w3.eth.chain_id
    local = chain_id in LOCAL_CHAIN_IDS
    supply = parse_amount(initial_supply, allow_zero=True) if initial_supply is not None else 0
    if not local and wallet is None:
        raise ShardworkError(
            f"chain {chain_id} is not a local development chain: deploy from your own keystore with --wallet NAME"
        )
    if not local and supply == 0:
        raise ShardworkError(
            f"chain {chain_id} has no faucet: pass --initial-supply AMOUNT (tokens minted to the deployer; all "
            "there will be)"
        )
    if out.exists() and not yes:
        raise ShardworkError(f"{out} already holds a deployment manifest: pass --yes to replace it, or --out PATH")
    account: Any = dev_accounts(w3, 1)[0] if wallet is None else None
    if account is None:
        account = load_account(wallet_path(settings.wallets, str(wallet)), read_password(password_file))
    balance = w3.eth.get_balance(account.address)
    if balance == 0:
        raise ShardworkError(f"{account.address} holds no ETH on chain {chain_id}: it cannot pay for the deployment")
    confirm(
        [
            f"deploy Token + BountyMarket to chain {chain_id} at {settings.rpc_url}",
            f"  from {account.address} ({format_amount(balance)} ETH)",
            f"  initial supply {format_amount(supply)} tokens to the deployer; faucet {'on' if local else 'off'}",
            f"  unbonding delay {unbonding_delay} s; manifest to {out}",
        ],
        yes or local,  # a local chain's deployment costs nothing real
        as_json,
    )
    deployment = deploy(w3, Transactor(w3, account), unbonding_delay_s=unbonding_delay, initial_supply=supply)
    deployment.save(out)
    if as_json:
        emit_json(json.loads(deployment.model_dump_json()) | {"manifest": str(out)})
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
