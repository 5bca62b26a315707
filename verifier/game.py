"""A verifier's side of the bisection games it opens.

A replay that diverged does not end in a FAIL vote: the verifier contests the segment, staking its own stake on
the claim, and answers every midpoint the volunteer posts until one step is left for the referee. A verifier
whose replay was wrong (a bug, a numeric class it misjudged) loses its stake to the volunteer; one whose replay
was right takes half of the volunteer's.
"""

from __future__ import annotations

import logging

from judge.commit import CommitAudit
from judge.context import ChainView
from judge.game import midpoint_verdict, segment_claim, trace_of
from ledger.errors import error_class
from ledger.market import GameTurn, Market, Task, TaskStatus
from telemetry.logs import log

# A midpoint that cannot be fetched is asked for again until the last quarter of the move's time, then
# disagreed with (a volunteer that does not serve its state cannot defend it). A quarter, not a fixed 30 s:
# with the shortest window (30 s) a fixed margin would leave no time to retry a network blip at all.
LAST_CALL_FRACTION = 0.25

# Another challenger's game is being played, or the task moved on: nothing to open now.
NOT_NOW = ("MarketGameInProgress", "MarketTaskNotInStatus", "MarketVerifyWindowClosed")


class Challenger:
    def __init__(self, market: Market, view: ChainView, logger: logging.Logger) -> None:
        self.market, self.view, self.logger = market, view, logger
        self.games: set[int] = set()  # tasks whose current game this verifier opened
        self.opened: set[tuple[int, int]] = set()  # (task, attempt) it contested: never contested twice
        self._resumed = False

    def contest(self, task: Task, audit: CommitAudit, segment: int) -> bool | None:
        """Opens a game over `segment`; True when opened, None when not now (another game runs), False when
        the contract refused the claim for good."""
        assert audit.commit is not None and audit.trace is not None
        lo, hi = segment_claim(audit.trace, segment)
        try:
            self.market.contest(task.task_id, audit.commit.trace_root, audit.commit.update_hash, lo, hi)
        except tuple(error_class(name) for name in NOT_NOW):
            return None
        self.games.add(task.task_id)
        self.opened.add((task.task_id, task.attempt))
        log(self.logger, "segment contested", task_id=task.task_id, segment=segment, steps=[lo[0], hi[0]])
        return True

    def play(self) -> int:
        """Answers every midpoint waiting for this verifier; returns the moves made."""
        if not self._resumed:
            self._resume()
        moves = 0
        for task_id in sorted(self.games):
            moves += self.move(task_id)
        return moves

    def move(self, task_id: int) -> int:
        task = self.market.task(task_id)
        game = self.market.game(task_id)
        if task.status != TaskStatus.CONTESTED or game.challenger != self.market.address:
            self.games.discard(task_id)  # over: won, lost or dissolved; the chain's events say which
            return 0
        if game.turn != GameTurn.CHALLENGER or self.market.now() > game.deadline:
            return 0
        verdict = midpoint_verdict(self.view, task, trace_of(self.view, task), game)
        window = int(self.market.bounty(task_id >> 64).raw["verifyWindow"])
        if verdict.unavailable and game.deadline - self.market.now() > window * LAST_CALL_FRACTION:
            return 0  # fetched again next pass: a network blip must not decide the answer
        self.market.respond(task_id, verdict.follows)
        log(
            self.logger,
            "midpoint answered",
            task_id=task_id,
            step=game.mid_step,
            agreed=verdict.follows,
            reason=verdict.reason,
        )
        return 1

    def _resume(self) -> None:
        """After a restart: the games this verifier opened that are still being played."""
        opened = self.market.logs(
            "GameOpened", self.market.deployment.block, filters={"challenger": self.market.address}
        )
        for event in opened:
            task_id = int(event["args"]["taskId"])
            task = self.market.task(task_id)
            if task.status == TaskStatus.CONTESTED and self.market.game(task_id).challenger == self.market.address:
                self.games.add(task_id)
                self.opened.add((task_id, task.attempt))
        self._resumed = True
