"""Entry point of the `shardwork` console script."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli.audit import audit_app
from cli.bounty import bounty_app
from cli.chain import chain_app, contracts_app
from cli.common import cli_app
from cli.dataset import dataset_app
from cli.dispute import register_dispute_command
from cli.doctor import register_doctor_command
from cli.model import model_app
from cli.node import node_app
from cli.verify import verify_app
from cli.wallet import register_money_commands, wallet_app

app = cli_app(no_args_is_help=True, pretty_exceptions_enable=False)  # its help is _root's docstring
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


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
