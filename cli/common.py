"""Shared plumbing of the wallet, bounty and audit commands: options, connection, pre-flight, confirm."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer

RpcOpt = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL of the EVM node [env SHARDWORK_RPC_URL].")]
DeploymentOpt = Annotated[
    Path | None, typer.Option("--deployment", help="Deployment manifest [env SHARDWORK_DEPLOYMENT].")
]
StoreOpt = Annotated[
    str | None,
    typer.Option(help="Content store: a directory (embedded), or ipfs:http://HOST:PORT [env SHARDWORK_STORE]."),
]
WalletOpt = Annotated[
    str, typer.Option("--wallet", "-w", help="Wallet name (see `shardwork wallet list`) or keystore path.")
]
PasswordFileOpt = Annotated[
    Path | None, typer.Option(help="File holding the keystore password (else $SHARDWORK_PASSWORD, else a prompt).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts); errors too.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
F = TypeVar("F", bound=Callable[..., Any])


def cli_app(**kwargs: Any) -> typer.Typer:
    """A command group of the CLI. Help text is plain, not Rich markup: `[env SHARDWORK_RPC_URL]` or a spec's
    `[bounty]` table are part of what it says, and markup would drop them."""
    return typer.Typer(rich_markup_mode=None, **kwargs)


@contextlib.contextmanager
def fail_on_user_errors(as_json: bool = False) -> Iterator[None]:
    """Turns the project's errors into a one-line message and exit code 1 (no traceback); with `--json`, also
    one JSON object on stdout ({"error": message, "kind": its class}), so a script reads the failure where it reads
    results."""
    from cli.messages import explain
    from ledger.errors import ContractRevert
    from protocol.errors import ContentError, ShardworkError
    from protocol.spec import SpecError

    try:
        yield
    except ContractRevert as exc:
        _report(f"{explain(exc)}; nothing was sent", type(exc).__name__, as_json)
        raise typer.Exit(1) from None
    except (ShardworkError, SpecError, ContentError) as exc:
        _report(str(exc), type(exc).__name__, as_json)
        raise typer.Exit(1) from None


def _report(message: str, kind: str, as_json: bool) -> None:
    typer.echo(f"error: {message}", err=True)
    if as_json:
        emit_json({"error": message, "kind": kind})


def user_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fail_on_user_errors(as_json=bool(kwargs.get("as_json", False))):
            return fn(*args, **kwargs)

    return cast(F, wrapper)  # functools.wraps keeps fn's signature; the type system cannot see that


def emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, default=str))


def wallet_path(wallets_dir: Path, name: str) -> Path:
    from ledger.wallet import WalletError

    candidate = Path(name)
    if candidate.suffix == ".json" and candidate.exists():
        return candidate
    path = wallets_dir / f"{name}.json"
    if not path.exists():
        raise WalletError(
            f"no wallet named {name!r} in {wallets_dir}: see `shardwork wallet list` or `shardwork wallet new`"
        )
    return path


def parse_address(text: str) -> str:
    from web3 import Web3

    from protocol.errors import ShardworkError

    if not Web3.is_address(text):
        raise ShardworkError(f"{text!r} is not an address: expected 0x followed by 40 hex digits")
    return Web3.to_checksum_address(text)


@dataclass
class Session:
    """A read-only market client; `unlock` adds the signer only after the user has confirmed."""

    market: Any
    settings: Any
    wallet: Path | None = None
    address: str | None = None
    account: Any = None  # unlocked already: a keystore that records no address is opened to learn it

    @property
    def signer(self) -> str:
        """The --wallet's address (a command that signs always opened its session with a wallet)."""
        if self.address is None:
            from protocol.errors import ShardworkError

            raise ShardworkError("this command needs --wallet NAME")
        return self.address

    def unlock(self, password_file: Path | None) -> Any:
        from ledger.market import Market
        from ledger.tx import Transactor
        from ledger.wallet import load_account, read_password

        assert self.wallet is not None
        account = self.account or load_account(self.wallet, read_password(password_file))
        self.market = Market(self.market.w3, self.market.deployment, Transactor(self.market.w3, account))
        return self.market


def open_session(
    rpc_url: str | None, deployment: Path | None, wallet: str | None = None, password_file: Path | None = None
) -> Session:
    """A market client; with `wallet`, its address (from the keystore, or, when it records none, by unlocking it
    with `password_file`, $SHARDWORK_PASSWORD or a prompt)."""
    from config.settings import load_settings
    from ledger.chain import connect
    from ledger.deploy import Deployment
    from ledger.market import Market
    from ledger.wallet import load_account, read_password, recorded_address
    from protocol.errors import ShardworkError

    settings = load_settings(rpc_url=rpc_url, deployment=deployment)
    path = address = account = None
    if wallet is not None:
        path = wallet_path(settings.wallets, wallet)
        address = recorded_address(path)
        if address is None:
            account = load_account(path, read_password(password_file))
            address = account.address
    if not settings.deployment.is_file():
        raise ShardworkError(
            f"no deployment manifest at {settings.deployment}: run `shardwork chain deploy` or pass --deployment"
        )
    try:
        manifest = Deployment.load(settings.deployment)
    except ValueError as exc:
        raise ShardworkError(f"{settings.deployment} is not a deployment manifest ({exc.__class__.__name__})") from None
    market = Market(connect(settings.rpc_url), manifest)
    return Session(market, settings, path, address, account)


def fee_of(session: Session, fn: Any) -> int:
    """Estimated network fee (wei) of calling `fn` from the session's address; a revert raises its typed error
    here, before anything is signed or sent."""
    from web3.exceptions import Web3RPCError

    from ledger.errors import unaffordable
    from ledger.tx import typed_reverts

    w3 = session.market.w3
    try:
        with typed_reverts():
            gas = fn.estimate_gas({"from": session.address})
    except Web3RPCError as exc:
        error = unaffordable(exc, str(session.address), w3.eth.get_balance(str(session.address)))
        if error is None:
            raise
        raise error from None
    return int(gas * w3.eth.gas_price)


def confirm(lines: list[str], yes: bool, as_json: bool) -> None:
    if yes:
        return
    if as_json:
        from protocol.errors import ShardworkError

        raise ShardworkError("--json needs --yes: a script cannot answer the confirmation")
    for line in lines:
        typer.echo(line)
    if not typer.confirm("proceed?", default=False):
        typer.echo("cancelled; nothing was sent", err=True)
        raise typer.Exit(1)
