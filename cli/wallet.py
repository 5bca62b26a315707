"""`shardwork wallet …` and the money commands: balance, faucet, stake, unstake, withdraw, rewards, claim."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    DeploymentOpt,
    JsonOpt,
    PasswordFileOpt,
    RpcOpt,
    Session,
    WalletOpt,
    YesOpt,
    cli_app,
    emit_json,
    open_session,
    parse_address,
)
from cli.common import fail_on_user_errors as _errors
from cli.money import Transfer, execute, position

wallet_app = cli_app(help="Encrypted keystores (standard V3, scrypt, mode 0600).", no_args_is_help=True)
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FAUCET_GAS_WEI = 10 * 10**18  # test ETH a faucet call tops a wallet up to: thousands of transactions' gas
AmountArg = Annotated[str, typer.Argument(help="Tokens, e.g. 100 or 0.5 (up to 18 decimals).")]


def _check_name(name: str) -> None:
    from ledger.wallet import WalletError

    if not NAME_RE.match(name):
        raise WalletError(f"wallet name {name!r} must be 1-64 letters, digits, '-' or '_'")


def _new_password(password_file: Path | None) -> str:
    import os

    from ledger.wallet import PASSWORD_ENV, WalletError, read_password

    if password_file is not None or PASSWORD_ENV in os.environ:
        return read_password(password_file)
    import getpass

    first = getpass.getpass("new keystore password: ")
    if getpass.getpass("repeat it: ") != first:
        raise WalletError("the two passwords differ; nothing was written")
    return first


# What list and show print for a keystore that records no address (the V3 format makes it optional).
UNRECORDED = "not recorded: read when unlocked (`shardwork wallet export-address NAME`)"


@wallet_app.command("new")
def wallet_new(name: str, password_file: PasswordFileOpt = None, as_json: JsonOpt = False) -> None:
    """Create a wallet: a new random key, encrypted into <wallets>/NAME.json."""
    with _errors(as_json):
        from config.settings import load_settings
        from ledger.wallet import create_keystore

        _check_name(name)
        path = load_settings().wallets / f"{name}.json"
        address = create_keystore(path, _new_password(password_file))
        emit_json({"name": name, "address": address, "path": str(path)}) if as_json else typer.echo(
            f"wallet {name}: {address}\nkeystore {path} (mode 0600). Back it up; the password cannot be recovered."
        )


@wallet_app.command("import")
def wallet_import(
    name: str,
    private_key_file: Annotated[
        Path | None, typer.Option(help="File holding the hex private key (else a prompt).")
    ] = None,
    password_file: PasswordFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an existing private key into an encrypted keystore (never pass a key as a flag)."""
    with _errors(as_json):
        import getpass

        from config.settings import load_settings
        from ledger.wallet import WalletError, create_keystore

        _check_name(name)
        if private_key_file is not None:
            try:
                raw = private_key_file.read_text().strip()
            except OSError as exc:
                raise WalletError(f"cannot read {private_key_file}: {exc.strerror}") from None
        else:
            raw = getpass.getpass("private key (hex): ").strip()
        try:
            key = bytes.fromhex(raw.removeprefix("0x"))
        except ValueError:
            raise WalletError("the private key is not hex") from None
        if len(key) != 32:
            raise WalletError(f"a private key is 32 bytes; this one is {len(key)}")
        path = load_settings().wallets / f"{name}.json"
        address = create_keystore(path, _new_password(password_file), key)
        emit_json({"name": name, "address": address, "path": str(path)}) if as_json else typer.echo(
            f"wallet {name}: {address}"
        )


@wallet_app.command("list")
def wallet_list(as_json: JsonOpt = False) -> None:
    """Wallets in the wallets directory, with their addresses (no password needed)."""
    with _errors(as_json):
        from config.settings import load_settings
        from ledger.wallet import WalletError, recorded_address

        rows = []
        directory = load_settings().wallets
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            try:
                rows.append({"name": path.stem, "address": recorded_address(path), "path": str(path)})
            except WalletError:
                continue  # not a keystore: someone else's file
        if as_json:
            emit_json({"wallets": rows})
            return
        if not rows:
            typer.echo(f"no wallets in {directory}: create one with `shardwork wallet new NAME`")
        for row in rows:
            typer.echo(f"{row['name']:<20} {row['address'] or UNRECORDED}")


@wallet_app.command("show")
def wallet_show(name: str, as_json: JsonOpt = False) -> None:
    """A wallet's address and keystore file (no password needed)."""
    with _errors(as_json):
        import json as _json

        from cli.common import wallet_path
        from config.settings import load_settings
        from ledger.wallet import recorded_address

        path = wallet_path(load_settings().wallets, name)
        kdf = _json.loads(path.read_text()).get("crypto", {}).get("kdf", "?")
        address = recorded_address(path)
        info = {
            "name": name,
            "address": address if address or as_json else UNRECORDED,
            "path": str(path),
            "kdf": kdf,
            "mode": oct(path.stat().st_mode & 0o777),
        }
        if as_json:
            emit_json(info)
        else:
            for k, v in info.items():
                typer.echo(f"{k:<8} {v}")


@wallet_app.command("export-address")
def wallet_export_address(name: str, password_file: PasswordFileOpt = None) -> None:
    """Print only the address (for scripts and for receiving tokens). A keystore that records no address (one
    made by Foundry's `cast wallet new`) is unlocked to read it."""
    with _errors():
        from cli.common import wallet_path
        from config.settings import load_settings
        from ledger.wallet import load_account, read_password, recorded_address

        path = wallet_path(load_settings().wallets, name)
        address = recorded_address(path)
        typer.echo(address or load_account(path, read_password(password_file)).address)


# ----------------------------------------------------------------------------------- money commands


def _subject(who: str | None, wallet: str | None, rpc_url: str | None, deployment: Path | None) -> tuple[Session, str]:
    """The session and the address a read command is about: an ADDRESS argument, else the wallet's."""
    from protocol.errors import ShardworkError

    if who is None and wallet is None:
        raise ShardworkError("give an ADDRESS or --wallet NAME")
    session = open_session(rpc_url, deployment, wallet)
    return session, parse_address(who) if who else session.signer


def register_money_commands(app: typer.Typer) -> None:
    @app.command()
    def balance(
        who: Annotated[str | None, typer.Argument(help="An address; default: the --wallet's address.")] = None,
        wallet: Annotated[str | None, typer.Option("--wallet", "-w", help="Wallet name or keystore path.")] = None,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Token balance, stake (bonded, locked by tasks, free, unbonding) and claimable rewards."""
        with _errors(as_json):
            from ledger.amounts import format_amount

            session, address = _subject(who, wallet, rpc_url, deployment)
            pos = position(session, address)
            if as_json:
                emit_json({"address": address, **pos})
            else:
                typer.echo(address)
                for key, value in pos.items():
                    typer.echo(f"  {key:<11} {format_amount(value):>16}")

    @app.command()
    def faucet(
        amount: AmountArg,
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Mint test tokens to your wallet (local development chains only). A wallet holding less than 10 ETH is
        first topped up to 10 from the development account, so a new wallet can pay for its transactions."""
        with _errors(as_json):
            from ledger.amounts import format_amount, parse_amount
            from ledger.chain import LOCAL_CHAIN_IDS, fund_gas
            from ledger.tx import typed_reverts
            from protocol.errors import ShardworkError

            value = parse_amount(amount)
            session = open_session(rpc_url, deployment, wallet, password_file)
            chain_id = session.market.deployment.chain_id
            if chain_id not in LOCAL_CHAIN_IDS:
                raise ShardworkError(f"chain {chain_id} is not a local development chain: it has no faucet")
            address = session.signer
            # A new wallet has no ETH, and the faucet's own transaction needs gas: on a development chain the
            # development account sends some first (test ETH, worth nothing; sent even if the mint is declined),
            # once the mint is known not to revert (a call needs no gas).
            with typed_reverts():
                session.market.token.functions.faucet(address, value).call({"from": address})
            gas = fund_gas(session.market.w3, address, FAUCET_GAS_WEI)
            if gas and not as_json:
                typer.echo(f"gas: {format_amount(gas)} ETH sent to {address} from the development account")
            transfer = Transfer(
                "faucet",
                [f"faucet: mint {format_amount(value)} tokens to {address}"],
                session.market.token.functions.faucet(address, value),
                lambda signer: signer.faucet(address, value),
                ("balance",),
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)

    @app.command()
    def stake(
        amount: AmountArg,
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Bond tokens as stake; each claimed task locks part of it until the task settles."""
        with _errors(as_json):
            from ledger.amounts import format_amount, parse_amount
            from ledger.tx import call
            from protocol.errors import ShardworkError

            value = parse_amount(amount)
            session = open_session(rpc_url, deployment, wallet, password_file)
            m, address = session.market, session.signer
            before = position(session, address)
            if before["balance"] < value:
                raise ShardworkError(
                    f"balance {format_amount(before['balance'])} is less than {format_amount(value)}: "
                    "get tokens first (`shardwork faucet` on local chains)"
                )
            allowance = int(call(m.token.functions.allowance(address, m.market.address)))
            steps = []
            if allowance < value:  # stake() would revert on the allowance: estimate the approval instead
                fee_call = m.token.functions.approve(m.market.address, value)
                steps.append(f"  approve the market to take {format_amount(value)} first")
            else:
                fee_call = m.market.functions.stake(value)
            lines = [
                f"stake {format_amount(value)} tokens from {address}",
                *steps,
                f"  balance {format_amount(before['balance'])} -> {format_amount(before['balance'] - value)}; "
                f"bonded {format_amount(before['bonded'])} -> {format_amount(before['bonded'] + value)}",
            ]
            transfer = Transfer(
                "stake",
                lines,
                fee_call,
                lambda signer: signer.stake(value),
                ("balance", "bonded", "free_stake"),
                fee_note=" per transaction",
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)

    @app.command()
    def unstake(
        amount: AmountArg,
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Request to unstake: the amount leaves your bonded stake and can be withdrawn after the unbonding
        delay (it stays slashable until then)."""
        with _errors(as_json):
            from ledger.amounts import format_amount, parse_amount
            from protocol.errors import ShardworkError

            value = parse_amount(amount)
            session = open_session(rpc_url, deployment, wallet, password_file)
            m, address = session.market, session.signer
            before = position(session, address)
            if value > before["bonded"]:
                raise ShardworkError(
                    f"cannot unstake {format_amount(value)}: only {format_amount(before['bonded'])} is bonded"
                )
            delay = int(m.market.functions.unbondingDelay().call())
            lines = [
                f"unstake {format_amount(value)} from {address}",
                f"  bonded {format_amount(before['bonded'])} -> {format_amount(before['bonded'] - value)}; "
                f"withdrawable after {dt.timedelta(seconds=delay)}",
            ]

            def matures(receipt: Any) -> tuple[dict[str, Any], list[str]]:
                (requested,) = m.market.events.UnstakeRequested().process_receipt(receipt)
                release_at = int(requested["args"]["releaseAt"])
                when = dt.datetime.fromtimestamp(release_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                wait = dt.timedelta(seconds=max(0, release_at - m.now()))
                return {"withdrawable_at": release_at}, [f"withdrawable at {when} (in {wait}): `shardwork withdraw`"]

            transfer = Transfer(
                "unstake",
                lines,
                m.market.functions.requestUnstake(value),
                lambda signer: signer.request_unstake(value),
                ("bonded", "unbonding"),
                outcome=matures,
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)

    @app.command()
    def withdraw(
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Withdraw unstaked tokens whose unbonding delay has passed."""
        with _errors(as_json):
            from ledger.amounts import format_amount

            session = open_session(rpc_url, deployment, wallet, password_file)
            m, address = session.market, session.signer
            before = position(session, address)
            transfer = Transfer(
                "withdraw",
                [f"withdraw matured unstake requests of {address} (unbonding {format_amount(before['unbonding'])})"],
                m.market.functions.withdraw(),  # a premature withdraw fails in the fee estimate, typed
                lambda signer: signer.withdraw(),
                ("balance", "unbonding"),
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)

    @app.command()
    def rewards(
        who: Annotated[str | None, typer.Argument(help="An address; default: the --wallet's address.")] = None,
        wallet: Annotated[str | None, typer.Option("--wallet", "-w", help="Wallet name or keystore path.")] = None,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Rewards credited to an account and not yet claimed, and everything it earned, per bounty and kind:
        task rewards, verifier fees, referee fees, challenges won, compensation from a challenger who lost its game
        over your work."""
        with _errors(as_json):
            from ledger.amounts import format_amount
            from ledger.earnings import earnings
            from ledger.index import EventIndex

            session, address = _subject(who, wallet, rpc_url, deployment)
            amount = session.market.claimable(address)
            index = EventIndex(session.settings.index, session.market)
            index.sync()
            earned = earnings(index, address)
            if as_json:
                rows = [
                    {"bounty_id": r.bounty_id, "kind": r.kind, "amount": r.amount, "count": r.count}
                    for r in earned.rows
                ]
                emit_json(
                    {
                        "address": address,
                        "claimable": amount,
                        "credited": earned.credited,
                        "claimed": earned.claimed,
                        "earnings": rows,
                    }
                )
                return
            typer.echo(
                f"{address}: {format_amount(amount)} claimable "
                f"(credited {format_amount(earned.credited)}, claimed {format_amount(earned.claimed)})"
            )
            for r in earned.rows:
                times = f"{r.count} task{'s' if r.count != 1 else ''}"
                typer.echo(f"  bounty {r.bounty_id:<4} {r.kind:<13} {format_amount(r.amount):>14}  ({times})")

    @app.command()
    def claim(
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Pull your credited rewards (task rewards, verifier fees, challenge winnings) to your wallet."""
        with _errors(as_json):
            from ledger.amounts import format_amount
            from protocol.errors import ShardworkError

            session = open_session(rpc_url, deployment, wallet, password_file)
            m, address = session.market, session.signer
            before = position(session, address)
            if before["claimable"] == 0:
                raise ShardworkError(f"{address} has no rewards to claim yet")
            lines = [
                f"claim {format_amount(before['claimable'])} tokens to {address}",
                f"  balance {format_amount(before['balance'])} -> {format_amount(before['balance'] + before['claimable'])}",
            ]
            transfer = Transfer(
                "claim",
                lines,
                m.market.functions.claimRewards(),
                lambda signer: signer.claim_rewards(),
                ("balance", "claimable"),
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)
