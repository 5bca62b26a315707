"""A referee's ruling on a step it could not reproduce bit for bit (another numeric class, or tolerance mode):
within the round's tolerance the step follows, beyond any kernel difference it does not, and in between no
ruling may rest on it. Honest one-step distances across classes were measured at 3-5x the segment tolerance,
so ruling "wrong" there would slash honest volunteers."""

from __future__ import annotations

import pytest

from judge.game import ruling
from protocol.verify import CROSS_CLASS_FAIL_DISTANCE

TOLERANCE = 2.4e-6  # the segment δ× of the multi-host test's round


@pytest.mark.parametrize(
    ("distance", "tolerance", "follows", "undecided"),
    [
        (0.0, TOLERANCE, True, False),
        (TOLERANCE, TOLERANCE, True, False),
        (1.12e-5, TOLERANCE, False, True),  # the honest cross-class step the e2e test measured
        (CROSS_CLASS_FAIL_DISTANCE, TOLERANCE, False, True),
        (CROSS_CLASS_FAIL_DISTANCE * 1.01, TOLERANCE, False, False),
        (1e-9, None, False, True),  # no tolerance measured: only a gross divergence is decided
        (3.0, None, False, False),
    ],
)
def test_a_step_not_reproduced_bit_for_bit_is_ruled_only_where_measured(
    distance: float, tolerance: float | None, follows: bool, undecided: bool
) -> None:
    verdict = ruling(4, 5, distance, tolerance)
    assert (verdict.follows, verdict.undecided) == (follows, undecided)
    assert "steps 4→5" in verdict.reason and verdict.distance == distance
