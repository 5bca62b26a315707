"""Token amounts: integers in base units everywhere; decimal strings only at the user's edge."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from protocol.errors import PermanentError

DECIMALS = 18
UNIT = 10**DECIMALS


class AmountError(PermanentError):
    """An amount a user typed that is not a non-negative number with at most 18 decimals."""


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """'1.5' → 1_500_000_000_000_000_000. Never goes through a float."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"{text!r} is not an amount: write a number of tokens such as 12 or 0.5") from None
    if not value.is_finite():
        raise AmountError(f"{text!r} is not a finite amount")
    if value < 0:
        raise AmountError(f"amount {text} is negative: amounts are token counts, 0 or more")
    base = value * UNIT
    if base != base.to_integral_value():
        raise AmountError(f"amount {text} has more than {DECIMALS} decimal places")
    if base == 0 and not allow_zero:
        raise AmountError("amount must be more than 0")
    return int(base)


def format_amount(base_units: int) -> str:
    """1_500_000_000_000_000_000 → '1.5' (exact; trailing zeros dropped)."""
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), UNIT)
    if not frac:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{str(frac).rjust(DECIMALS, '0').rstrip('0')}"
