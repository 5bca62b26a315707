"""A volunteer's side of the bisection games over its commits.

When a challenger contests a stretch of its trace, the volunteer recomputes its own state at the midpoint from
the state both sides agree on (its own training is deterministic in its own numeric class, so this is the very
state it passed through), publishes it to its content store and posts its hash. It never has to guess: an
honest volunteer's midpoint always follows, so it is the challenger's answers that narrow the stretch.
"""

from __future__ import annotations

import logging

from judge.context import ChainView
from judge.game import load_state, state_at, state_cids, trace_of
from ledger.market import GameTurn, Market, TaskStatus
from protocol.tensors import canonical_hash, to_bytes
from telemetry.logs import log


class Defender:
    def __init__(self, market: Market, view: ChainView, logger: logging.Logger) -> None:
        self.market, self.view, self.logger = market, view, logger
        self.games: set[int] = set()  # this volunteer's tasks with a game being played
        self._scan_from = market.deployment.block

    def play(self) -> int:
        """Posts every midpoint a game over one of this volunteer's tasks waits for; returns the moves made."""
        self._scan()
        moves = 0
        for task_id in sorted(self.games):
            moves += self.move(task_id)
        return moves

    @property
    def busy(self) -> bool:
        """Whether a game over one of its tasks is still being played (it answers before training more)."""
        return bool(self.games)

    def move(self, task_id: int) -> int:
        task = self.market.task(task_id)
        game = self.market.game(task_id)
        if task.status != TaskStatus.CONTESTED or task.volunteer != self.market.address:
            self.games.discard(task_id)
            return 0
        if game.turn != GameTurn.VOLUNTEER or self.market.now() > game.deadline:
            return 0
        trace = trace_of(self.view, task)
        cids = state_cids(self.view, task, trace)
        start = load_state(self.view, task_id, cids, game.lo_hash, game.lo_step, trace.fresh_start)
        mid = state_at(self.view, task, start, game.lo_step, game.mid_step)
        cid = self.view.store.put(to_bytes(mid))
        self.market.bisect(task_id, canonical_hash(mid), cid)
        log(self.logger, "midpoint posted", task_id=task_id, step=game.mid_step, cid=cid)
        return 1

    def _scan(self) -> None:
        latest = self.market.w3.eth.block_number
        if latest < self._scan_from:
            return
        for event in self.market.logs("GameOpened", self._scan_from, latest):
            task_id = int(event["args"]["taskId"])
            if self.market.task(task_id).volunteer == self.market.address:
                self.games.add(task_id)
                log(self.logger, "task contested", task_id=task_id, challenger=event["args"]["challenger"])
        for event in self.market.logs("ReviewOpened", self._scan_from, latest):
            task_id = int(event["args"]["taskId"])
            if self.market.task(task_id).volunteer == self.market.address:
                # Nothing to answer: the referee replays the commit itself; only its ruling can slash.
                log(self.logger, "check failed by vote, under the referee's review", task_id=task_id)
        self._scan_from = latest + 1
