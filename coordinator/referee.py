"""The bounty coordinator's part in bisection games: it referees them.

When a game has narrowed a disagreement to one optimizer step, the coordinator recomputes that step from the
state both sides agree on and rules whether the volunteer's next state follows (judge.game decides how: bit
for bit in the volunteer's numeric class, else within the round's cross-class tolerance). It also ends games
whose mover let the deadline pass, so that a silent side cannot hold a round open. It never rules on content
it could not fetch (it asks again), nor on a step of another numeric class that landed between the round's
tolerance and any kernel difference; a game it cannot rule on in time dissolves without a slash.

It also reviews every check a FAIL quorum failed (judge.review): votes alone slash nobody.
"""

from __future__ import annotations

import logging

from judge.context import ChainView
from judge.game import last_step_verdict, trace_of
from judge.review import review_verdict
from ledger.errors import error_class
from ledger.market import GameTurn, Market, TaskStatus, split_task_id
from telemetry.logs import log

# Moves that can lose a race with another caller (a forfeit someone else sent, a move landing first).
RACES = ("MarketNoGame", "MarketMoveNotOverdue", "MarketNotYourTurn", "MarketMoveTooLate")


class Referee:
    def __init__(self, market: Market, view: ChainView, logger: logging.Logger, patience_s: int = 0) -> None:
        self.market, self.view, self.logger = market, view, logger
        self.patience_s = patience_s  # how long a review waits for content before missing counts as failed
        self.undecided: set[tuple[int, int, int]] = set()  # (task, attempt, step) it cannot rule on

    def tend(self, task_id: int) -> str | None:
        """Rules or forfeits the task's game when it is due; returns what it did."""
        task = self.market.task(task_id)
        if task.status != TaskStatus.CONTESTED:
            return None
        game = self.market.game(task_id)
        try:
            if self.market.now() > game.deadline:
                self.market.forfeit(task_id)
                log(self.logger, "game forfeited", task_id=task_id, silent=game.turn.name.lower())
                return "forfeited"
            if game.turn != GameTurn.REFEREE:
                return None
            key = (task_id, task.attempt, -1 if game.is_review else game.lo_step)
            if key in self.undecided:
                return None  # the same step again: it dissolves when its deadline passes
            if game.is_review:
                window = int(self.market.bounty(split_task_id(task_id)[0]).raw["verifyWindow"])
                verdict = review_verdict(self.view, task, game, self.market.now(), window, self.patience_s)
            else:
                verdict = last_step_verdict(self.view, task, trace_of(self.view, task), game)
            if verdict.undecided:
                # Not the volunteer's numeric class, and the step landed where an honest difference and a cheat
                # both could: no ruling, so the game dissolves at its deadline and nobody is slashed.
                self.undecided.add(key)
                log(self.logger, "cannot rule", task_id=task_id, reason=verdict.reason)
                return None
            if verdict.unavailable:
                log(self.logger, "ruling postponed", task_id=task_id, reason=verdict.reason)
                return None
            self.market.rule(task_id, verdict.follows)
        except tuple(error_class(name) for name in RACES):
            return None
        log(
            self.logger,
            "review ruled" if game.is_review else "game ruled",
            task_id=task_id,
            step=None if game.is_review else game.lo_step,
            step_correct=verdict.follows,
            reason=verdict.reason,
        )
        return "ruled"
