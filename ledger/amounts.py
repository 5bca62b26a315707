"""Token amounts: integers in base units everywhere; decimal strings only at the user's edge."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from protocol.errors import PermanentError

DECIMALS = 18
UNIT = 10**DECIMALS


class AmountError(PermanentError):
    """An amount a user typed that is not a non-negative number with at most 18 decimals."""


# "1,000" and "12,345.5": how format_amount prints, so what it printed can be typed back.
_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d*)?$")
MAX_BASE_UNITS = 2**256 - 1  # what a uint256 holds
MAX_TEXT = 100  # characters: the largest amount, 60 whole digits grouped by commas, a point and 18 decimals, fits


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """'1.5' → 1_500_000_000_000_000_000, exact at any magnitude (never a float, never a rounding context);
    thousands may be grouped with commas as format_amount prints them."""
    raw = text.strip()
    if len(raw) > MAX_TEXT:
        raise AmountError(f"{raw[:20]}… is {len(raw)} characters long: not an amount")
    if _GROUPED.match(raw):
        raw = raw.replace(",", "")
    elif "," in raw:
        raise AmountError(f"{text!r} is not an amount: a comma may only group thousands, as in 1,000 or 12,345.5")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise AmountError(f"{text!r} is not an amount: write a number of tokens such as 12 or 0.5") from None
    if not value.is_finite():
        raise AmountError(f"{text!r} is not a finite amount")
    if value < 0:
        raise AmountError(f"amount {text} is negative: amounts are token counts, 0 or more")
    if value.adjusted() > 77 - DECIMALS:  # its leading digit's place, read without building the number
        raise AmountError(f"amount {text} is larger than any token balance can be")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite value's
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if value != 0 and exponent + trailing_zeros < -DECIMALS:  # the place of its last nonzero digit
        raise AmountError(f"amount {text} has more than {DECIMALS} decimal places")
    with localcontext() as exact:
        exact.prec = len(digits) + DECIMALS + 2  # enough digits that nothing is rounded
        units = int(value.scaleb(DECIMALS))
    if units > MAX_BASE_UNITS:
        raise AmountError(f"amount {text} is larger than any token balance can be")
    if units == 0 and not allow_zero:
        raise AmountError("amount must be more than 0")
    return units


def format_amount(base_units: int) -> str:
    """1_500_000_000_000_000_000 → '1.5' (exact; trailing zeros dropped)."""
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), UNIT)
    if not frac:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{str(frac).rjust(DECIMALS, '0').rstrip('0')}"
