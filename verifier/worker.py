"""One staked verifier's judgement of one task: replay the segments the chain sampled and attest what it found.

Used alike by `shardwork verify run` (verifier.daemon) and the coordinator's Celery workers. Each call takes a
task id, reads the truth from the chain, and is safe to repeat: a task already attested, settled or abstained
from is left alone.
"""

from __future__ import annotations

import logging

from content.store import ContentStore
from judge.commit import CommitAudit, audit_commit, audit_trace, replay_segments, same_attempt, trace_overdue
from judge.context import ChainView
from judge.draw import record_draws
from ledger.errors import error_class
from ledger.market import Market, Task, TaskStatus
from protocol.challenge import BLOCKHASH_HORIZON
from protocol.numerics import environment, same_class
from telemetry.logs import log
from verifier.game import Challenger


class VerifierWorker:
    """One staked verifier: replays the segments the chain sampled and attests what it found."""

    def __init__(
        self,
        market: Market,
        store: ContentStore,
        logger: logging.Logger,
        trace_timeout_s: int = 0,
        watch_all: bool = False,
    ) -> None:
        self.market, self.logger = market, logger
        # Also replay commits the chain did not draw it for (unchecked ones included) and contest what diverged:
        # the committee is not the only line of defence, and this is how an operator adds one.
        self.watch_all = watch_all
        self.watched: set[tuple[int, int]] = set()  # (task, attempt) replayed as a watcher: not replayed again
        self.view = ChainView(market, store)
        self.replayed_segments = 0
        self.trace_timeout_s = trace_timeout_s
        self.abstained: set[tuple[int, int]] = set()  # (task, attempt): judged not ours to judge; not replayed again
        self.not_drawn: set[tuple[int, int]] = set()  # (task, attempt) it was not drawn for when last asked (logs)
        self.challenger = Challenger(market, self.view, logger)
        self._joined = False
        self._warned_unstaked = False

    def join(self) -> bool:
        """Takes a seat in the market's verifier registry unless this verifier holds one; True when it just did.
        A seat is drawn only for commits after it, so a verifier joins when it starts, before it waits for work.
        Another process of the same operator may take the seat meanwhile: that is a seat all the same."""
        if self._joined or self.market.seat_of(self.market.address) is not None:
            self._joined = True
            return False
        if self.market.stake_of(self.market.address).bonded == 0:
            if not self._warned_unstaked:  # it may stake later: asked again on the next pass, said once
                self._warned_unstaked = True
                log(self.logger, "no bonded stake: cannot join the verifier registry yet", level=logging.WARNING)
            return False
        try:
            self.market.register_verifier()
        except error_class("RegistryAlreadyRegistered"):
            self._joined = True
            return False
        self._joined = True
        log(self.logger, "joined the verifier registry", verifier=self.market.address)
        return True

    def verify(self, task_id: int) -> bool | None:
        """Attests PASS/FAIL on a checked task; None when there is nothing for this verifier to do."""
        task = self.market.task(task_id)
        if task.status not in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED):
            return None
        try:
            # The coordinator records a round's draws together; past half the horizon without it, this verifier
            # does, so that the segments replayed here are the ones every auditor sees.
            record_draws(self.market, [task], min_age_blocks=BLOCKHASH_HORIZON // 2)
            checked, segments = self.market.challenge(task_id)
        except error_class("MarketChallengeNotDrawnYet"):
            return None
        if (task_id, task.attempt) in self.abstained:
            return None
        if not checked or not self._on_committee(task):
            if self.watch_all and (task_id, task.attempt) not in self.watched:
                self._watch(task, segments)
            return None
        if self.attested(task):  # a log query: asked only where a vote could be ours
            return None
        # A disputed commit is audited in full, last checkpoint and update included: the dispute may be about what
        # the committee's audit of the trace does not read (coordinator.rounds disputes exactly that).
        disputed = task.status == TaskStatus.CHALLENGED
        audit = (audit_commit if disputed else audit_trace)(self.view, task_id, task)
        if audit.missing and not trace_overdue(self.market, task, self.trace_timeout_s):
            return None  # not yet: the volunteer may still be uploading
        reasons = list(audit.problems)
        contestable: list[int] = []  # segments whose replay diverged: a game can prove it step by step
        if audit.ok:
            verdicts = replay_segments(self.view, audit, segments)
            self.replayed_segments += len(verdicts)
            if any(v.unavailable for v in verdicts) and not trace_overdue(self.market, task, self.trace_timeout_s):
                # A checkpoint the volunteer's node did not serve (a blip, a slow peer): asked again next pass,
                # and only once its time to serve is up does it count as never published.
                log(self.logger, "checkpoint not served yet", task_id=task_id, segments=segments)
                return None
            reasons = [f"segment {v.segment}: {v.reason}" for v in verdicts if v.failed]
            # A game proves a divergence step by step; a checkpoint refused as malformed needs no game: the FAIL
            # vote sends it to the referee, whose review refuses it too.
            if self._judges_bit_for_bit(task_id, audit) and all(v.diverged for v in verdicts if v.failed):
                contestable = [v.segment for v in verdicts if v.diverged]
            abstained = [v for v in verdicts if v.abstained]
            if abstained and not reasons:
                # Another numeric class, and nothing this verifier can attribute to cheating: it says nothing.
                log(self.logger, "verdict abstained", task_id=task_id, reasons=[v.reason for v in abstained][:3])
                self.abstained.add((task_id, task.attempt))
                return None
        passed = not reasons
        if not same_attempt(self.market.task(task_id), task):
            return None  # the attempt replayed here was settled meanwhile: never attest it against the next one
        if contestable:
            # A diverged replay is not a vote: the verifier stakes its claim in a bisection game the referee ends.
            opened = self.challenger.contest(task, audit, contestable[0])
            if opened is None:
                return None  # another challenger's game is being played: judged again when it ends
            if opened:
                return False
        try:
            self.market.attest(task_id, passed)
        except (
            error_class("MarketAlreadyAttested"),
            error_class("MarketTaskNotInStatus"),
            error_class("MarketNotOnCommittee"),  # its seat was given up since it was asked
        ):
            return None
        log(
            self.logger,
            "verdict attested",
            task_id=task_id,
            verifier=self.market.address,
            passed=passed,
            segments=segments,
            reasons=reasons[:3],
        )
        return passed

    def _watch(self, task: Task, segments: list[int]) -> None:
        """A watcher's look at a commit it may not vote on: the sampled segments replayed, and a game opened over
        the first that diverged bit for bit in its own class (the contest is open to anyone staked; its own stake
        is at risk in it, and half the volunteer's slashed stake is its prize). Anything else it leaves to the
        committee and the coordinator's audit: a vote it cannot send, a game it could lose."""
        key = (task.task_id, task.attempt)
        audit = audit_trace(self.view, task.task_id, task)
        if audit.missing and not trace_overdue(self.market, task, self.trace_timeout_s):
            return  # the volunteer may still be uploading: looked at again next pass
        if audit.ok and self._judges_bit_for_bit(task.task_id, audit):
            verdicts = replay_segments(self.view, audit, segments)
            self.replayed_segments += len(verdicts)
            if any(v.unavailable for v in verdicts) and not trace_overdue(self.market, task, self.trace_timeout_s):
                return  # looked at again next pass
            diverged = [v.segment for v in verdicts if v.diverged]
            if diverged and same_attempt(self.market.task(task.task_id), task):
                opened = self.challenger.contest(task, audit, diverged[0])
                if opened is None:
                    return  # another challenger's game is being played: looked at again when it ends
                if opened:
                    log(self.logger, "watched commit contested", task_id=task.task_id, segment=diverged[0])
        self.watched.add(key)

    def _on_committee(self, task: Task) -> bool:
        """Whether the chain drew this verifier to check the task's attempt: nobody else's vote is taken, so
        nobody else replays it (the permissionless contest stays open to all). Asked anew on every pass, not
        remembered: a draw nobody recorded within 256 blocks is lost, and then every serving seat sits."""
        self.join()
        if self.market.on_committee(task.task_id, self.market.address):
            return True
        key = (task.task_id, task.attempt)
        if key not in self.not_drawn:
            self.not_drawn.add(key)
            log(self.logger, "not drawn for this check", level=logging.DEBUG, task_id=task.task_id)
        return False

    def _judges_bit_for_bit(self, task_id: int, audit: CommitAudit) -> bool:
        """Whether this verifier compares the volunteer's states exactly: exact replay in its numeric class. Only
        then does it contest: across classes a midpoint is judged by a tolerance measured over whole segments,
        not over the few steps a game narrows to, so it votes FAIL and leaves the game to a verifier of the
        volunteer's class (an honest challenger must not lose its stake to an unmeasured tolerance)."""
        spec = self.view.round_of_task(task_id).spec
        trace = audit.trace
        return trace is not None and spec.replay.mode == "exact" and same_class(trace.numerics, environment(spec))

    def attested(self, task: Task) -> bool:
        """Whether this verifier already attested the task's current attempt (before a restart, say): its
        replay would only be refused by the contract. Every attestation since the commit is about this attempt."""
        latest = self.market.w3.eth.block_number
        if latest < task.commit_block:
            return False
        logs = self.market.logs(
            "VerdictAttested", task.commit_block, latest, {"taskId": task.task_id, "verifier": self.market.address}
        )
        return bool(logs)

    def done_with(self, task: Task) -> bool:
        """Whether nothing is left for this verifier on the task's current attempt."""
        key = (task.task_id, task.attempt)
        if key in self.challenger.opened:
            return True  # its game decides; Challenger.play answers the midpoints
        if task.status == TaskStatus.CONTESTED:
            return False  # another challenger's game: if the volunteer wins it, this verifier still judges
        if task.status not in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED):
            return True
        # Not `watched`: a commit watched while unchecked may be disputed later, and then its committee votes.
        return key in self.abstained or self.attested(task)
