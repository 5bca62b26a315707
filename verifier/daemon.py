"""The verifier daemon anyone staked can run: take a seat in the market's verifier registry, watch the chain for
commits of any coordinator's bounty, and replay and attest those whose committee the chain drew it onto.

State lives on the chain: on start the daemon reads every TaskCommitted since the deployment and keeps the
tasks still awaiting a verdict; what it already attested is read back from its VerdictAttested events, so a
restart replays nothing twice. It judges in its own numeric class: bit for bit within it, by the round's
calibrated tolerance across it, and says nothing where it cannot attribute a difference to cheating.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from content.store import ContentStore
from ledger.errors import CHAIN_TRANSIENT, ContractRevert, TransactionFailed
from ledger.market import Market, TaskStatus, split_task_id
from protocol.errors import TransientError
from telemetry.logs import log
from telemetry.memory import give_back_free_memory
from verifier.worker import VerifierWorker

# The chain node or the content store is down or restarting, or a vote was mined as a revert without a reason
# (out of gas after the state moved): wait, re-read, carry on.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    *CHAIN_TRANSIENT,
    TransactionFailed,
    ConnectionError,
    TimeoutError,
)
MAX_BACKOFF_S = 30.0
AWAITING = (TaskStatus.COMMITTED, TaskStatus.CHALLENGED, TaskStatus.CONTESTED)


@dataclass
class VerifierOptions:
    poll_interval_s: float = 2.0
    once: bool = False  # judge what is judgeable now, then exit
    bounties: frozenset[int] | None = None  # only these bounties (None: any bounty on the market)
    trace_timeout_s: int = 120  # how long a missing trace is waited for before it counts as never uploaded
    watch_all: bool = False  # also replay commits it was not drawn for, and contest what diverged


class VerifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passed = Counter("shardwork_verifier_passed", "PASS verdicts attested", registry=r)
        self.failed = Counter("shardwork_verifier_failed", "FAIL verdicts attested", registry=r)
        self.abstained = Counter("shardwork_verifier_abstained", "Checks left to another numeric class", registry=r)
        self.segments = Counter("shardwork_verifier_segments_replayed", "Segments replayed", registry=r)
        self.pending = Gauge("shardwork_verifier_pending_tasks", "Commits awaiting a verdict", registry=r)


@dataclass
class VerifierStatus:
    address: str
    state: str = "starting"
    pending: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "abstained": 0})

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "state": self.state, "pending": self.pending, "verdicts": dict(self.verdicts)}


class VerifierDaemon:
    def __init__(
        self,
        market: Market,
        store: ContentStore,
        options: VerifierOptions,
        logger: logging.Logger,
        metrics: VerifierMetrics | None = None,
    ) -> None:
        self.market, self.options, self.logger = market, options, logger
        self.worker = VerifierWorker(market, store, logger, options.trace_timeout_s, options.watch_all)
        self.metrics = metrics or VerifierMetrics()
        self.status = VerifierStatus(market.address)
        self.stop_event = threading.Event()
        self.pending: set[int] = set()  # task ids whose current attempt may still need this verifier
        self._scan_from = market.deployment.block
        self._warned: set[str] = set()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> dict[str, int]:
        """Runs until stopped (or, with --once, until nothing judgeable is left now); returns the verdict counts."""
        log(self.logger, "verifier started", address=self.market.address)
        failures = 0
        while not self.stop_event.is_set():
            try:
                self.worker.join()  # a seat in the registry: the chain draws committees among seated verifiers
                self._scan()
                judged = self.judge_pending() + self.worker.challenger.play()
                failures = 0
            except TRANSIENT as exc:
                failures += 1
                delay = min(self.options.poll_interval_s * 2 ** min(failures, 10), MAX_BACKOFF_S)
                self.status.state = "waiting"
                log(
                    self.logger,
                    "chain or content store unreachable; retrying",
                    error=f"{exc.__class__.__name__}: {exc}"[:300],
                    retry_in_s=round(delay, 1),
                )
                self.stop_event.wait(delay)
                continue
            if self.options.once and not judged:
                break
            if not judged:
                self.status.state = "idle"
                self.stop_event.wait(self.options.poll_interval_s)
        self.status.state = "stopped"
        log(self.logger, "verifier stopped", **self.status.verdicts)
        return dict(self.status.verdicts)

    def _scan(self) -> None:
        """Adds every newly committed task (any bounty, any coordinator) to the pending set."""
        latest = self.market.w3.eth.block_number
        if latest < self._scan_from:
            return
        for entry in self.market.logs("TaskCommitted", self._scan_from, latest):
            task_id = int(entry["args"]["taskId"])
            if self.options.bounties is None or split_task_id(task_id)[0] in self.options.bounties:
                self.pending.add(task_id)
        self._scan_from = latest + 1

    def judge_pending(self) -> int:
        """One pass over the pending commits; returns how many verdicts (or abstentions) it reached."""
        judged = 0
        for task_id in sorted(self.pending):
            if self.stop_event.is_set():
                break
            task = self.market.task(task_id)
            if task.status not in AWAITING or task.volunteer == self.market.address or self.worker.done_with(task):
                self.pending.discard(task_id)  # a later attempt's commit adds it again
                continue
            if not self._eligible(task_id):
                continue
            self.status.state = "verifying"
            replayed = self.worker.replayed_segments
            try:
                verdict = self.worker.verify(task_id)
            except ContractRevert as exc:  # the window closed, the stake got locked meanwhile: not ours to judge
                log(
                    self.logger,
                    "verdict refused by the contract",
                    level=logging.WARNING,
                    task_id=task_id,
                    reason=str(exc),
                )
                self.pending.discard(task_id)
                continue
            self.metrics.segments.inc(self.worker.replayed_segments - replayed)
            if self.worker.replayed_segments > replayed:
                give_back_free_memory()  # the replay's checkpoints and states: not held while waiting for the next
            if verdict is not None:
                outcome = "passed" if verdict else "failed"
                (self.metrics.passed if verdict else self.metrics.failed).inc()
            elif (task_id, task.attempt) in self.worker.abstained:
                outcome = "abstained"
                self.metrics.abstained.inc()
            else:
                continue  # not drawn yet, not checked (a dispute may still make it so), or its trace not yet up
            self.status.verdicts[outcome] += 1
            self.pending.discard(task_id)
            judged += 1
        self.status.pending = len(self.pending)
        self.metrics.pending.set(len(self.pending))
        return judged

    def _eligible(self, task_id: int) -> bool:
        """The contract takes a verdict only from a verifier whose free stake covers the bounty's stake per task."""
        bounty = self.market.bounty(split_task_id(task_id)[0])
        free = self.market.stake_of(self.market.address).free
        if free >= bounty.stake_per_task:
            return True
        if f"stake-{bounty.bounty_id}" not in self._warned:
            self._warned.add(f"stake-{bounty.bounty_id}")
            log(
                self.logger,
                "not enough free stake to verify this bounty",
                level=logging.WARNING,
                bounty_id=bounty.bounty_id,
                free=free,
                needed=bounty.stake_per_task,
            )
        return False
