"""Why each credit was paid, read from the transaction that paid it (ledger.earnings.credit_kinds). The events
follow the contract's order of emission (contracts/base/MarketState.sol `_accept`, `_slash`, `_payVerifiers`;
contracts/BountyGames.sol `_endGame`); the real chain's order is checked by tests/integration/test_games.py."""

from __future__ import annotations

from typing import Any

from ledger.earnings import credit_kinds
from ledger.index import Event

VOLUNTEER, ALICE, BOB, CAROL = "0xA0", "0xA1", "0xB0", "0xC0"


class Chain:
    """Events of one task, each transaction in its own block."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.block = 0

    def tx(self, *events: tuple[str, dict[str, Any]]) -> None:
        self.block += 1
        for i, (name, args) in enumerate(events):
            self.events.append(Event(self.block, i, f"0x{self.block:x}", name, {"taskId": 7, **args}))


def _credit(account: str, amount: int = 1) -> tuple[str, dict[str, Any]]:
    return ("RewardCredited", {"account": account, "amount": amount})


def _kinds(chain: Chain) -> list[tuple[str, str]]:
    kinds = credit_kinds(chain.events)
    return [(e.args["account"], kinds[(e.tx, e.log_index)]) for e in chain.events if e.name == "RewardCredited"]


def test_an_attester_that_also_won_the_game_is_paid_its_fee_and_its_prize_each_by_its_kind() -> None:
    chain = Chain()
    chain.tx(("TaskCommitted", {"volunteer": VOLUNTEER}))
    chain.tx(("VerdictAttested", {"verifier": ALICE, "passed": False}))
    chain.tx(("VerdictAttested", {"verifier": CAROL, "passed": False}))
    chain.tx(("TaskDisputed", {"challenger": BOB}))
    chain.tx(("GameOpened", {"challenger": ALICE}))
    chain.tx(
        ("GameRuled", {"referee": "0xF0", "stepCorrect": False}),
        ("GameEnded", {"winner": ALICE, "loser": VOLUNTEER}),
        ("TaskSlashed", {"volunteer": VOLUNTEER, "amount": 100}),
        _credit(ALICE),  # _payVerifiers(false)
        _credit(CAROL),
        _credit(ALICE),  # the game winner's prize
        _credit(BOB),  # the disputer's bond and share
    )
    assert _kinds(chain) == [
        (ALICE, "verifier fee"),
        (CAROL, "verifier fee"),
        (ALICE, "challenge"),
        (BOB, "challenge"),
    ]


def test_a_volunteer_lied_about_is_compensated_then_paid_its_reward() -> None:
    chain = Chain()
    chain.tx(("TaskCommitted", {"volunteer": VOLUNTEER}))
    chain.tx(("GameOpened", {"challenger": BOB}))
    chain.tx(
        ("GameRuled", {"referee": "0xF0", "stepCorrect": True}),
        ("GameEnded", {"winner": VOLUNTEER, "loser": BOB}),
        ("ChallengerSlashed", {"challenger": BOB, "amount": 100}),
        _credit(VOLUNTEER, 50),
    )
    chain.tx(("VerdictAttested", {"verifier": ALICE, "passed": True}))
    chain.tx(("TaskAccepted", {"volunteer": VOLUNTEER, "reward": 10}), _credit(VOLUNTEER, 10), _credit(ALICE))
    assert _kinds(chain) == [(VOLUNTEER, "compensation"), (VOLUNTEER, "task reward"), (ALICE, "verifier fee")]


def test_a_disputers_bond_back_is_a_challenge_and_a_new_attempt_has_its_own_attesters() -> None:
    chain = Chain()
    chain.tx(("TaskCommitted", {"volunteer": VOLUNTEER}))
    chain.tx(("VerdictAttested", {"verifier": ALICE, "passed": False}))
    chain.tx(("TaskDisputed", {"challenger": ALICE}))
    chain.tx(("GameForfeited", {"turn": 3}), _credit(ALICE))  # the referee was silent: the bond comes back
    chain.tx(("TaskCommitted", {"volunteer": CAROL}))
    chain.tx(("VerdictAttested", {"verifier": BOB, "passed": True}))
    chain.tx(("TaskAccepted", {"volunteer": CAROL, "reward": 10}), _credit(CAROL), _credit(BOB))
    assert _kinds(chain) == [(ALICE, "challenge"), (CAROL, "task reward"), (BOB, "verifier fee")]
