"""The one shape of every command that moves tokens: pre-flight, fee, confirmation, unlock, send, before → after.

The fee is estimated from the exact call before anything is signed, so a revert surfaces here as its typed
error with nothing sent; the key is decrypted only after the user confirmed. Amounts stay integers in base
units (wei for the fee) and are shown through ledger.amounts.format_amount, never through a float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from cli.common import Session, confirm, emit_json, fee_of

POSITION = ("balance", "bonded", "locked", "free_stake", "unbonding", "claimable")


def position(session: Session, address: str) -> dict[str, int]:
    """Everything an account holds in the market, in base units."""
    m = session.market
    stake = m.stake_of(address)
    values = (m.balance(address), stake.bonded, stake.locked, stake.free, stake.unbonding, m.claimable(address))
    return dict(zip(POSITION, values, strict=True))


def network_fee(wei: int) -> str:
    from ledger.amounts import format_amount

    return f"network fee ≈ {format_amount(wei)} ETH"


@dataclass
class Transfer:
    """One token-moving transaction of the signed-in wallet, described before it is sent."""

    action: str  # what the report calls it: "stake", "claim", ...
    lines: list[str]  # the confirmation, before the fee line
    fee_call: Any  # the contract function whose gas is estimated (a bound web3 call)
    send: Callable[[Any], Any]  # given the unlocked Market, sends and returns the receipt
    shows: tuple[str, ...]  # position entries reported before -> after
    fee_note: str = ""  # e.g. " per transaction" when an approval may precede it
    # What the receipt says beyond balances (unstake: when the amount can be withdrawn): JSON fields and text lines.
    outcome: Callable[[Any], tuple[dict[str, Any], list[str]]] | None = None


def execute(
    session: Session, transfer: Transfer, *, password_file: Path | None, yes: bool, as_json: bool
) -> dict[str, int]:
    """Estimates the fee, confirms, unlocks the key, sends, and reports the position before -> after."""
    address = session.signer
    fee = fee_of(session, transfer.fee_call)  # a doomed call reverts here, typed, before any signing
    before = position(session, address)
    confirm([*transfer.lines, f"  {network_fee(fee)}{transfer.fee_note}"], yes, as_json)
    receipt = transfer.send(session.unlock(password_file))
    after = position(session, address)
    extra = transfer.outcome(receipt) if transfer.outcome else ({}, [])
    report(as_json, transfer.action, before, after, transfer.shows, receipt, extra)
    return after


def report(
    as_json: bool,
    action: str,
    before: dict[str, int],
    after: dict[str, int],
    keys: tuple[str, ...],
    tx: Any,
    extra: tuple[dict[str, Any], list[str]] = ({}, []),
) -> None:
    from ledger.amounts import format_amount

    fields, lines = extra
    if as_json:
        tx_hash = "0x" + bytes(tx["transactionHash"]).hex()
        emit_json(
            {"action": action, "tx": tx_hash, "gas_used": tx["gasUsed"], "before": before, "after": after} | fields
        )
        return
    typer.echo(f"{action}: done in block {tx['blockNumber']} (gas {tx['gasUsed']:,})")
    for key in keys:
        typer.echo(f"  {key:<11} {format_amount(before[key]):>16} -> {format_amount(after[key])}")
    for line in lines:
        typer.echo(f"  {line}")
