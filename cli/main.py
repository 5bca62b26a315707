"""Entry point of the `shardwork` console script."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cli.audit import audit_app
from cli.bounty import bounty_app
from cli.node import node_app
from cli.wallet import register_money_commands, wallet_app

app = typer.Typer(
    help="Shardwork: a marketplace for volunteer training of ML models, paid on-chain after spot-checked replay.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
chain_app = typer.Typer(help="Local EVM chains and contract deployment.", no_args_is_help=True)
contracts_app = typer.Typer(help="The marketplace contracts: verify deployed code against sources.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(contracts_app, name="contracts")
app.add_typer(node_app, name="node")
app.add_typer(wallet_app, name="wallet")
app.add_typer(bounty_app, name="bounty")
app.add_typer(audit_app, name="audit")
register_money_commands(app)

DEFAULT_DEPLOYMENT = Path(".shardwork/deployment.json")
F = TypeVar("F", bound=Callable[..., Any])

RpcUrl = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL of an EVM node, e.g. http://127.0.0.1:8545.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


@contextlib.contextmanager
def fail_on_user_errors() -> Iterator[None]:
    """Turns the project's errors into a one-line message and exit code 1 (no traceback)."""
    from ledger.errors import ContractRevert, ShardworkError
    from ledger.messages import explain
    from protocol.spec import SpecError
    from protocol.store import ContentError

    try:
        yield
    except ContractRevert as exc:
        typer.echo(f"error: {explain(exc)}; nothing was sent", err=True)
        raise typer.Exit(1) from None
    except (ShardworkError, SpecError, ContentError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def user_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fail_on_user_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def demo(
    workload: Annotated[str, typer.Option(help="mnist (classifier) or shakespeare (character-level language model).")] = "mnist",
    as_json: JsonFlag = False,
) -> None:
    """Run the whole marketplace in one process on an embedded chain: a bounty, honest and cheating
    volunteers, spot-check replays, slashes, rounds, rewards. No servers, ~1 minute."""
    from cli.demo import run_demo

    if workload not in ("mnist", "shakespeare"):
        raise typer.BadParameter("choose mnist or shakespeare", param_hint="--workload")
    run_demo(workload=workload, as_json=as_json)


@chain_app.command("up")
@user_errors
def chain_up(
    port: Annotated[int, typer.Option(help="Loopback port to listen on.", min=1, max=65535)] = 8545,
    state: Annotated[Path | None, typer.Option(help="Load the chain from this file and save it there on exit.")] = None,
    deploy_to: Annotated[
        Path | None, typer.Option("--deploy", help="Also deploy the contracts and write the manifest here.")
    ] = None,
) -> None:
    """Run a local anvil node (chain id 31337, dev accounts funded) in the foreground until Ctrl-C."""
    import signal as _signal
    import threading

    from ledger.chain import connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.errors import ChainError
    from ledger.localnode import Anvil
    from ledger.tx import Transactor

    node = Anvil(port=port, state_file=state)
    stop = threading.Event()
    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: stop.set())
    try:
        typer.echo(f"anvil listening on {node.url} (chain 31337); Ctrl-C stops it")
        if deploy_to is not None:
            w3 = connect(node.url)
            manifest = deploy(w3, Transactor(w3, dev_accounts(w3, 1)[0]))
            manifest.save(deploy_to)
            typer.echo(f"contracts deployed: Token {manifest.token}, BountyMarket {manifest.market}; manifest {deploy_to}")
        while not stop.wait(0.5):
            if node.proc.poll() is not None:
                raise ChainError(f"anvil exited with {node.proc.returncode}")
    finally:
        node.stop()


@chain_app.command("deploy")
@user_errors
def chain_deploy(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="JSON-RPC URL of a local EVM node (anvil, Hardhat node).")],
    out: Annotated[Path, typer.Option(help="Where to write the deployment manifest.")] = DEFAULT_DEPLOYMENT,
    unbonding_delay: Annotated[int, typer.Option(help="Seconds unstaked tokens stay slashable.", min=0)] = 7 * 24 * 3600,
    as_json: JsonFlag = False,
) -> None:
    """Deploy Token + BountyMarket to a local chain and write the deployment manifest other commands read."""
    from ledger.chain import connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.tx import Transactor

    w3 = connect(rpc_url)
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
    deployment_path: Annotated[Path, typer.Option("--deployment", help="Deployment manifest to check.")] = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrl = None,
    sources: Annotated[Path, typer.Option(help="Repository holding contracts/ and node_modules/.")] = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Recompile contracts/ with py-solc-x (driving solc-js) and check the runtime bytecode at each address."""
    from ledger.chain import connect
    from ledger.deploy import Deployment
    from ledger.errors import ShardworkError
    from ledger.verify import verify_deployment

    if not deployment_path.is_file():
        raise ShardworkError(f"no deployment manifest at {deployment_path}: run `shardwork chain deploy` or pass --deployment")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc_url or "http://127.0.0.1:8545")
    if w3.eth.chain_id != deployment.chain_id:
        raise ShardworkError(f"the node is chain {w3.eth.chain_id} but the manifest is for chain {deployment.chain_id}")
    checks = verify_deployment(w3, deployment, sources)
    if as_json:
        typer.echo(json.dumps({"verified": all(c.matches for c in checks), "contracts": [c.model_dump() for c in checks]}))
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
