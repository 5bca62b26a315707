"""The coordinator's and verifiers' chain-facing steps. Each takes ids, reads the truth from the chain, and
is safe to run again (after a crash, or twice by two workers): a repeat finds nothing left to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from content.inputs import load_inputs
from content.store import ContentStore
from coordinator.intake import PublishedData, publish_data, publish_round
from coordinator.referee import Referee
from judge.calibration import CalibrationFailed, calibrate, check_replay
from judge.commit import audit_update, same_attempt, trace_overdue
from judge.context import MAX_MANIFEST_READ, ChainView, RoundContext
from judge.draw import record_draws
from judge.improvement import round_updates
from ledger.errors import error_class
from ledger.market import BountyStatus, Market, TaskStatus, task_id_of
from protocol.aggregate import aggregate
from protocol.errors import ContentError
from protocol.footprint import check_footprint
from protocol.spec import SpecError, TrainingSpec
from protocol.tensors import Tensors, from_bytes
from protocol.training import held_out_score, load_state
from protocol.workloads import resolve
from telemetry.logs import log


@dataclass(frozen=True)
class RoundResult:
    bounty_id: int
    round: int
    metric_name: str
    metric: float
    accepted_updates: int
    excluded_updates: int
    manifest_cid: str
    finalized: bool


def evaluate(view: ChainView, bounty_id: int, round_: int, weights: Tensors) -> float:
    ctx = view.round(bounty_id, round_)
    model = load_state(ctx.spec, weights, ctx.workload).model
    return held_out_score(ctx.spec, ctx.workload, model, view.tensors(ctx.manifest.holdout_cid))


class Coordinator:
    def __init__(self, market: Market, store: ContentStore, logger: logging.Logger, trace_timeout_s: int = 0) -> None:
        self.market, self.store, self.logger = market, store, logger
        self.trace_timeout_s = trace_timeout_s
        self.view = ChainView(market, store)
        self.referee = Referee(market, self.view, logger, patience_s=trace_timeout_s)
        self.disputed: set[tuple[int, int]] = set()  # (task, attempt) whose audit reached a decision
        self._bounties: list[int] = []
        self._scanned_to = market.deployment.block - 1
        self.rejected: dict[int, str] = {}  # bounty id -> why its spec was refused at intake

    def _cross_class_tolerance(
        self,
        bounty_id: int,
        spec: TrainingSpec,
        data: Tensors,
        round_: int = 0,
        weights: Tensors | None = None,
        previous: float | None = None,
    ) -> float | None:
        """δ× of a round of an exact-mode bounty (tolerance mode has the spec's own δ), measured from the round's
        model (`weights`; the spec's initial model for round 0) training on the job's `data` (its first shard:
        data the model has been trained on, as every task's is, where rounding is magnified most);
        once per round and machine (disk cache). It never shrinks during a bounty (`previous`): a measurement
        is a few segments, and honest work must not be failed because a later one happened to land closer."""
        if spec.replay.mode != "exact":
            return None
        try:
            calibration = calibrate(spec, weights, data)
        except CalibrationFailed as exc:
            log(
                self.logger,
                "cross-class tolerance not measured",
                level=logging.WARNING,
                bounty_id=bounty_id,
                round=round_,
                reason=str(exc),
            )
            return previous
        log(
            self.logger,
            "cross-class tolerance measured",
            bounty_id=bounty_id,
            round=round_,
            tolerance=calibration.tolerance,
            measured=calibration.measured,
            skipped_step=calibration.skipped_step,
        )
        if calibration.tolerance >= calibration.skipped_step:
            # Checked at post and intake from the initial model; if training has moved the model to where
            # rounding reaches as far as a skipped step, honest volunteers keep being paid, and it is said.
            log(
                self.logger,
                "cross-class tolerance reaches a skipped step in this round",
                level=logging.WARNING,
                bounty_id=bounty_id,
                round=round_,
            )
        return max(calibration.tolerance, previous or 0.0)

    def intake(self, bounty_id: int) -> str | None:
        """Publishes the spec's shards and round-0 model and opens round 0; None if already open or unsound."""
        if bounty_id in self.rejected or self.market.opened_rounds(bounty_id=bounty_id):
            return None
        try:
            spec_cid = self.market.spec_cid(bounty_id)
            spec = TrainingSpec.from_bytes(self.store.get(spec_cid, max_bytes=MAX_MANIFEST_READ))
            bounty = self.market.bounty(bounty_id)
            if (bounty.shards, bounty.rounds, bounty.segments_per_task) != (
                spec.data.shards,
                spec.rounds,
                spec.segments,
            ):
                raise SpecError("the bounty's shards/rounds/segments on-chain differ from its spec")
            check_footprint(spec)
            check_replay(spec)
            inputs = load_inputs(spec, self.store)  # the data and base model it names, usable or refused
        except (ContentError, SpecError, CalibrationFailed) as exc:
            log(self.logger, "bounty rejected at intake", level=logging.WARNING, bounty_id=bounty_id, reason=str(exc))
            self.rejected[bounty_id] = str(exc)
            return None
        # The round manifest names the spec by the CID the bounty posted, even when those bytes are valid JSON
        # in another form than ours: re-encoding it would name another CID, which every node refuses.
        data = publish_data(spec, self.store, None, spec_cid, inputs)
        weights = inputs.weights
        workload = resolve(spec.model)
        state = load_state(spec, weights, workload)
        holdout = from_bytes(self.store.get_buffer(data.holdout_cid))
        first_shard = from_bytes(self.store.get_buffer(data.shard_cids[0]))
        tolerance = self._cross_class_tolerance(bounty_id, spec, first_shard, weights=inputs.weights)
        data = replace(data, cross_class_tolerance=tolerance)
        metric = (workload.metric_name, held_out_score(spec, workload, state.model, holdout))
        cid, _ = publish_round(self.store, data, bounty_id, 0, weights, metric)
        self.market.open_round(bounty_id, cid)
        log(self.logger, "round opened", bounty_id=bounty_id, round=0, manifest_cid=cid)
        return cid

    def known_bounties(self) -> list[int]:
        """Bounties that name this account as coordinator (BountyPosted, read incrementally)."""
        latest = self.market.w3.eth.block_number
        if latest <= self._scanned_to:
            return list(self._bounties)
        logs = self.market.logs("BountyPosted", self._scanned_to + 1, latest, {"coordinator": self.market.address})
        self._bounties.extend(int(log["args"]["bountyId"]) for log in logs)
        self._scanned_to = latest
        return list(self._bounties)

    def expire_leases(self, bounty_id: int) -> int:
        """Reopens tasks whose volunteers claimed and never committed in time (they lose the lease penalty)."""
        now, expired = self.market.now(), 0
        for task_id in self.current_tasks(bounty_id):
            task = self.market.task(task_id)
            if task.status == TaskStatus.CLAIMED and now > task.deadline:
                try:
                    self.market.expire_lease(task_id)
                    expired += 1
                    log(self.logger, "lease expired", task_id=task_id, volunteer=task.volunteer)
                except (error_class("MarketLeaseActive"), error_class("MarketTaskNotInStatus")):
                    continue
        return expired

    def current_tasks(self, bounty_id: int) -> list[int]:
        bounty = self.market.bounty(bounty_id)
        return [task_id_of(bounty_id, bounty.current_round, s) for s in range(bounty.shards)]

    def record_draws(self, bounty_id: int) -> int:
        """Records the draws of the current round's fresh commits in one transaction (judge.draw.record_draws), so
        that no honest unchecked task loses its seed to the 256-block horizon; returns how many it recorded."""
        tasks = [self.market.task(task_id) for task_id in self.current_tasks(bounty_id)]
        drawn = record_draws(self.market, tasks)
        if drawn:
            log(self.logger, "draws recorded", bounty_id=bounty_id, tasks=len(drawn))
        return len(drawn)

    def audit_and_dispute(self, task_id: int) -> bool:
        """Audits a fresh commit as its round's close will read it (audit_update: the trace manifest and the update
        as sent, never the last checkpoint). One that fails where its committee will not look is disputed, so
        verifiers must rule on it with the full audit: an unchecked one, or a checked one whose update is
        malformed or not served (the committee reads only the trace). Returns True when a dispute was raised."""
        task = self.market.task(task_id)
        key = (task_id, task.attempt)
        if task.status != TaskStatus.COMMITTED or key in self.disputed:
            return False
        try:
            self.record_draws(task_id >> 64)  # fixed from now on, whenever settle or a verifier reads it
            checked, _ = self.market.challenge(task_id)
        except error_class("MarketChallengeNotDrawnYet"):
            return False
        # An outage of our own store raises out of here before the commit is marked: the retry audits it again.
        audit = audit_update(self.view, task_id, task)
        if audit.missing and not trace_overdue(self.market, task, self.trace_timeout_s):
            return False  # look again later
        self.disputed.add(key)  # decided: this attempt is never audited twice by this process
        if audit.ok or (checked and not audit.past_trace):
            return False
        if not same_attempt(self.market.task(task_id), task):
            return False  # settled and re-claimed while we audited: this audit is about another commit
        self.market.ensure_allowance(self.market.bounty(task_id >> 64).raw["challengeBond"])
        try:
            self.market.dispute(task_id, 0)
        except (error_class("MarketTaskNotInStatus"), error_class("MarketChallengeWindowClosed")):
            return False  # another worker disputed it first, or settlement overtook us
        log(self.logger, "commit disputed", task_id=task_id, reasons=audit.problems)
        return True

    def settle_ready(self, bounty_id: int) -> int:
        """Settles every task of the current round whose windows have passed, in one transaction; returns how
        many. Which are due is asked of the chain first (calls cost nothing), so a pass with none sends nothing."""
        due = [
            task_id
            for task_id in self.current_tasks(bounty_id)
            if self.market.task(task_id).status in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED)
            and self.market.settle_due(task_id)
        ]
        if not due:
            return 0
        # Between the calls and the mining a vote may settle one, or a game open on it: settleMany skips those.
        return len(self.market.settle_many(due))

    def close_preparation(self, bounty_id: int) -> str | None:
        """What prepare_close would prepare now, as a key (bounty, round and each task's attempt: a redo is a new
        key); None while there is nothing to prepare: a task still waits for a volunteer or sits in a game, all
        are accepted already (closing is due), the round is the last (no next round to calibrate), or the spec
        replays by tolerance (no δ× to measure)."""
        bounty = self.market.bounty(bounty_id)
        if bounty.status != BountyStatus.ACTIVE or not bounty.round_open or bounty.current_round + 1 == bounty.rounds:
            return None
        tasks = [self.market.task(task_id) for task_id in self.current_tasks(bounty_id)]
        waiting = (TaskStatus.COMMITTED, TaskStatus.CHALLENGED)
        if not any(t.status in waiting for t in tasks):
            return None
        if any(t.status not in (*waiting, TaskStatus.ACCEPTED) for t in tasks):
            return None
        if self.view.round(bounty_id, bounty.current_round).spec.replay.mode != "exact":
            return None
        return f"{bounty_id}:{bounty.current_round}:" + ",".join(str(t.attempt) for t in tasks)

    def prepare_close(self, bounty_id: int) -> bool:
        """Closing's slowest step done early: while a round's last commits wait out their windows, aggregates
        them as if all will be accepted (the usual end) and measures that model's δ× for the next round. It is
        cached by model, so the close that follows finds it instead of putting seconds of training and two
        replaying processes on every round's critical path. A commit then slashed and redone only means the
        close measures its own model. Returns whether it measured."""
        if self.close_preparation(bounty_id) is None:
            return False
        bounty = self.market.bounty(bounty_id)
        ctx = self.view.round(bounty_id, bounty.current_round)
        selected = round_updates(self.view, ctx)
        combined = aggregate(self.view.round_weights(ctx), selected.used, ctx.spec.aggregation, self.view.velocity(ctx))
        self._next_round_tolerance(ctx, combined.weights)
        return True

    def _next_round_tolerance(self, ctx: RoundContext, weights: Tensors) -> float | None:
        """δ× of the round after `ctx`'s, whose model is `weights`."""
        first_shard = self.view.tensors(ctx.manifest.shard_cids[0])
        return self._cross_class_tolerance(
            ctx.opened.bounty_id,
            ctx.spec,
            first_shard,
            ctx.opened.round + 1,
            weights,
            previous=ctx.manifest.cross_class_tolerance,
        )

    def try_close_round(self, bounty_id: int) -> RoundResult | None:
        bounty = self.market.bounty(bounty_id)
        if bounty.status != BountyStatus.ACTIVE or not bounty.round_open:
            return None
        tasks = self.current_tasks(bounty_id)
        if any(self.market.task(t).status != TaskStatus.ACCEPTED for t in tasks):
            return None
        round_ = bounty.current_round
        ctx = self.view.round(bounty_id, round_)
        selected = round_updates(self.view, ctx)
        for task_id, reasons in selected.unusable.items():  # accepted unchecked, yet its content is unusable
            log(self.logger, "update excluded from aggregation", task_id=task_id, reasons=reasons)
        for score in selected.scores:
            if not score.used:
                log(self.logger, "update left out: it made the model worse", task_id=score.task_id, score=score.score)
        updates, excluded = selected.used, len(tasks) - len(selected.used)
        combined = aggregate(self.view.round_weights(ctx), updates, ctx.spec.aggregation, self.view.velocity(ctx))
        weights = combined.weights
        metric = evaluate(self.view, bounty_id, round_, weights)
        finalized = round_ + 1 == bounty.rounds
        data = _published(ctx)
        if not finalized:  # the next round's δ×, measured from its own model (prepare_close may have done it)
            tolerance = self._next_round_tolerance(ctx, weights)
            data = replace(data, cross_class_tolerance=tolerance)
        metric_of = (ctx.workload.metric_name, metric)
        # No task starts from the final round's optimizer states or adds its errors.
        carried = None if finalized else selected.carried(ctx)
        errors = None if finalized else selected.errors_carried(ctx)
        cid, _ = publish_round(
            self.store,
            data,
            bounty_id,
            round_ + 1,
            weights,
            metric_of,
            combined.velocity,
            selected.scores,
            carried,
            errors,
        )
        try:
            self.market.close_round(bounty_id, cid)
        except (
            error_class("MarketRoundNotOpen"),
            error_class("MarketRoundIncomplete"),
            error_class("MarketBountyNotActive"),
        ):
            return None  # another worker closed this round first: the chain holds its aggregate
        log(
            self.logger,
            "round closed",
            bounty_id=bounty_id,
            round=round_,
            metric=ctx.workload.metric_name,
            value=round(metric, 4),
            updates=len(updates),
            excluded=excluded,
            finalized=finalized,
        )
        return RoundResult(bounty_id, round_, ctx.workload.metric_name, metric, len(updates), excluded, cid, finalized)


def _published(ctx: RoundContext) -> PublishedData:
    m = ctx.manifest
    return PublishedData(
        spec_cid=m.spec_cid,
        shard_cids=list(m.shard_cids),
        holdout_cid=m.holdout_cid,
        cross_class_tolerance=m.cross_class_tolerance,
    )
