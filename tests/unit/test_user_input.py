"""What people type: token amounts, exact at any magnitude and read back as printed; task ids in every form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.amounts import MAX_BASE_UNITS, UNIT, AmountError, format_amount, parse_amount
from ledger.market import TaskIdError, parse_task_id, task_id_of, task_label


@given(st.integers(min_value=1, max_value=MAX_BASE_UNITS))
def test_every_printed_amount_reads_back_exactly(units: int) -> None:
    assert parse_amount(format_amount(units)) == units


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1,000", 1_000 * UNIT),
        ("12,345.5", 12_345 * UNIT + UNIT // 2),
        ("123456789012345678901234567890.123456789012345678", 123456789012345678901234567890123456789012345678),
        ("0.000000000000000001", 1),
        ("1e3", 1_000 * UNIT),
    ],
)
def test_amounts_are_exact_and_may_group_thousands(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.000000000000000000000000000001", "more than 18 decimal places"),
        ("1,00", "a comma may only group thousands"),
        ("1e1000000000", "larger than any token balance"),  # refused before a billion-digit number is built
        ("1e-1000000000", "more than 18 decimal places"),
        (str(MAX_BASE_UNITS // UNIT + 1), "larger than any token balance"),
        ("9" * 101, "not an amount"),
    ],
)
def test_what_cannot_be_an_amount_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        parse_amount(text)


@pytest.mark.parametrize("text", ["1.0.3", "  1.0.3 ", str(task_id_of(1, 0, 3)), hex(task_id_of(1, 0, 3))])
def test_a_task_id_is_read_in_every_form_and_shown_in_one(text: str) -> None:
    assert parse_task_id(text) == task_id_of(1, 0, 3)
    assert task_label(parse_task_id(text)) == "1.0.3"


@pytest.mark.parametrize("text", ["twelve", "1.0", "1.-1.3", "1.0.4294967296", "1.0.3.4", "-5", hex(2**256)])
def test_text_that_names_no_task_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(TaskIdError, match="is not a task id"):
        parse_task_id(text)
