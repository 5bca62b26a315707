"""`shardwork-dev`: development tools, not part of the product CLI: the embedded demo and a local anvil node.

Product code never imports this package (scripts/check-structure); it may import the product freely.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import JsonOpt as JsonFlag
from cli.common import user_errors

app = typer.Typer(
    help="Shardwork development tools: the embedded demo and a local chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
chain_app = typer.Typer(help="A local anvil chain for development.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")


@app.command()
@user_errors
def demo(
    workload: Annotated[
        str,
        typer.Option(
            help="mnist (classifier), shakespeare (character-level language model) or gpt (a GPT over byte-pair tokens)."
        ),
    ] = "mnist",
    seed: Annotated[
        int,
        typer.Option(
            help="Fixes the chain's block randomness and the volunteers' turns: the same seed reproduces a run bit "
            "for bit (the same final model CID).",
            min=0,
            max=2**63 - 1,
        ),
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Run the whole marketplace in one process on an embedded chain: a bounty, honest and cheating
    volunteers, spot-check replays, slashes, rounds, rewards. No servers, ~1 minute."""
    from devtools.demo import run_demo

    if workload not in ("mnist", "shakespeare", "gpt"):
        raise typer.BadParameter("choose mnist, shakespeare or gpt", param_hint="--workload")
    run_demo(workload=workload, as_json=as_json, seed=seed)


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

    from devtools.anvil import Anvil
    from ledger.chain import connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.errors import ChainError
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
            typer.echo(
                f"contracts deployed: Token {manifest.token}, BountyMarket {manifest.market}; manifest {deploy_to}"
            )
        while not stop.wait(0.5):
            if node.proc.poll() is not None:
                raise ChainError(f"anvil exited with {node.proc.returncode}")
    finally:
        node.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
