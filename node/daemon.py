"""The volunteer daemon: find open tasks it can take, claim, fetch, train, publish the trace, commit.

State lives on the chain and in the trainer's per-task journals, never only in memory: on start the daemon
asks the chain which tasks it holds (TaskClaimed by this address, still Claimed) and resumes them, so a
crash or a stop between any two steps loses at most the work since the last checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from content.ipfs import IpfsStore
from content.store import ContentStore, LocalStore
from judge.context import ChainView, RoundContext
from ledger.errors import CHAIN_TRANSIENT, ContractRevert, TransactionFailed, error_class
from ledger.market import Bounty, BountyStatus, Market, OpenedRound, TaskStatus, split_task_id, task_id_of, task_label
from node.busy import BusyProbe
from node.caps import Caps, HeldTraces, UploadMeter, content_bytes, release, trace_bytes_estimate
from node.carry import CarryWaits, carried_in, rebuild_carried, shard_order
from node.controls import Controls, Hours
from node.defense import Defender
from node.estimate import COMMIT_MARGIN_S, TRACE_OVERHEAD, fits_lease, task_wall_seconds, time_steps
from node.observability import NodeMetrics
from node.trainer import TaskInput, Trainer, TrainingInterrupted, train_task
from protocol.errors import ContentError, ContentMissing, TransientError
from protocol.footprint import check_footprint
from protocol.spec import SpecError
from protocol.tensors import from_bytes
from protocol.workloads import REGISTRY
from telemetry.logs import log
from telemetry.memory import give_back_free_memory

# Steps timed (after a warm-up) to judge whether a bounty's task fits its lease before this node's first claim there.
PACE_STEPS = 2
# A hold for a busy machine ends this many times the remaining training before the lease does: training on a machine
# other programs still load runs slower than the pace measured on a quiet one, and an overrun costs the lease penalty.
BUSY_PACE_FACTOR = 2.0
# The chain node or the IPFS daemon is down or restarting: wait and carry on, resuming from the journal.
TRANSIENT: tuple[type[BaseException], ...] = (TransientError, *CHAIN_TRANSIENT, ConnectionError, TimeoutError)
MAX_BACKOFF_S = 30.0


class RoundInputsUnavailable(TransientError):
    """A claimed task's inputs (the round's model, its shard, its carried state) could not be fetched yet."""


@dataclass
class NodeOptions:
    work_dir: Path
    families: frozenset[str] = frozenset(REGISTRY)
    max_tasks: int | None = None  # stop after committing this many (None: run until stopped)
    once: bool = False  # one pass over the open tasks, then exit
    poll_interval_s: float = 2.0
    auto_claim_rewards: bool = False
    max_memory_mb: int | None = None  # skip bounties whose estimated training footprint exceeds this
    bounties: frozenset[int] | None = None  # only these bounties (None: any the node can take)
    # How often training pauses between two steps to answer bisection games over earlier commits: a move is
    # due within the bounty's verify window, and a task can take longer than that to train. A pause with no
    # move due costs three chain calls; each move answered late holds the game's task, and its round, that long.
    game_poll_s: float = 2.0
    duty_cycle: float = 1.0  # the fraction of wall time spent training (node.controls)
    hours: Hours | None = None  # claim new tasks only within these hours of local time
    busy_above_pct: float | None = None  # hold while other programs use more of the machine's CPU (node.busy)
    caps: Caps = field(default_factory=Caps)  # disk and upload (node.caps)
    # How long a task's carried optimizer state and error may go unserved before the node trains it without them
    # (node.carry.may_start_fresh): they are held by the shard's previous volunteer, which may have left.
    carry_patience_s: float = 600.0


@dataclass
class NodeStatus:
    address: str
    state: str = "starting"
    current_task: int | None = None
    committed: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "current_task": self.current_task,
            "committed": len(self.committed),
        }


class NodeDaemon:
    def __init__(
        self,
        market: Market,
        store: ContentStore,
        options: NodeOptions,
        logger: logging.Logger,
        metrics: NodeMetrics | None = None,
        on_progress: Callable[[str, int, int, float], None] | None = None,
        trainer: Trainer = train_task,
    ) -> None:
        self.market, self.store, self.options, self.logger = market, store, options, logger
        self.metrics = metrics or NodeMetrics()
        self.on_progress = on_progress
        self.trainer = trainer
        self.stop_event = threading.Event()
        self.status = NodeStatus(market.address)
        self.view = ChainView(market, store)
        self.defender = Defender(market, self.view, logger)
        self._rounds: dict[tuple[int, int], RoundContext | None] = {}  # None: a round this node cannot take
        self._scan_from = market.deployment.block
        self._warned: set[str] = set()
        self._resumed = False
        busy = None if options.busy_above_pct is None else BusyProbe(options.busy_above_pct)
        self.controls = Controls(options.work_dir, options.duty_cycle, options.hours, busy)
        self._held: str | None = None  # why claiming is held ("paused", "outside hours", "machine busy"), as logged
        # Per bounty, the seconds one of its tasks takes this node to train, trace included, without rests:
        # timed on a few steps before the first claim, then measured on each task trained from its start.
        self._training_s: dict[int, float] = {}
        options.caps.check_store(store)
        self.held = HeldTraces(options.work_dir / "held-traces.json")
        self._trace_bytes: dict[int, int] = {}  # per bounty, what one of its traces takes here
        self.carry_waits = CarryWaits(self._journals, options.carry_patience_s, logger)
        # Caps.check_store let an upload cap through only with an IPFS node, which counts what it sends.
        capped = options.caps.max_upload_bytes_per_day is not None
        self.upload = UploadMeter(store.sent_bytes) if capped and isinstance(store, IpfsStore) else None

    def stop(self) -> None:
        self.stop_event.set()

    # ---------------------------------------------------------------- loop

    def run(self) -> int:
        """Runs until stopped (or --once / --max-tasks is met); returns the number of tasks committed."""
        log(
            self.logger,
            "node started",
            address=self.market.address,
            work_dir=str(self.options.work_dir),
            families=sorted(self.options.families),
        )
        failures = 0
        while not self._done() and not self.stop_event.is_set():
            try:
                if not self._resumed:
                    for task_id in self._held_tasks():
                        if not self._done() and not self.stop_event.is_set():
                            self._train_and_commit(task_id, resumed=True)
                    self._resumed = True
                # Games first: a midpoint is due within the verify window, and training a task takes longer.
                moved = self.defender.play()
                self._release_closed_rounds()
                held = self._claims_held()
                worked = moved > 0 or (not self.defender.busy and held is None and self._work_once())
                if worked:
                    give_back_free_memory()  # an idle node holds none of its last task's peak
                if self.options.auto_claim_rewards:
                    self.claim_rewards()
                failures = 0
            except TrainingInterrupted as exc:
                log(self.logger, "stopped mid-training; the journal resumes it on restart", detail=str(exc))
                break
            except TRANSIENT as exc:
                failures += 1
                delay = min(self.options.poll_interval_s * 2 ** min(failures, 10), MAX_BACKOFF_S)
                self._resumed = False  # a held task may be half trained: resume it from its journal
                self.status.state = "waiting"
                log(
                    self.logger,
                    "chain or content store unreachable; retrying",
                    error=f"{exc.__class__.__name__}: {exc}"[:300],
                    retry_in_s=round(delay, 1),
                    failures=failures,
                )
                self.stop_event.wait(delay)
                continue
            if self.options.once and not worked:
                break
            if not worked:
                self.status.state = held or "idle"
                self.stop_event.wait(self.options.poll_interval_s)
        self.status.state = "stopped"
        log(self.logger, "node stopped", committed=len(self.status.committed))
        return len(self.status.committed)

    def _claims_held(self) -> str | None:
        """Why no new task may be claimed now: the volunteer paused the node, it is outside its hours, or other
        programs keep the machine busy."""
        c = self.controls
        held = (
            "paused" if c.paused() else "outside hours" if c.outside_hours() else "machine busy" if c.busy() else None
        )
        if held != self._held:
            self._held = held
            if held is not None:
                probe = c.busy_probe
                load = None if probe is None or probe.load_pct is None else round(probe.load_pct, 1)
                log(self.logger, f"{held}: claiming no new task", hours=str(c.hours or ""), others_load_pct=load)
            else:
                log(self.logger, "claiming tasks again")
        return held

    def _done(self) -> bool:
        return self.options.max_tasks is not None and len(self.status.committed) >= self.options.max_tasks

    def _work_once(self) -> bool:
        for rnd in self._open_rounds():
            bounty = self.market.bounty(rnd.opened.bounty_id)
            free = self.market.stake_of(self.market.address).free
            if free < bounty.stake_per_task:
                self._warn_once(
                    f"stake-{bounty.bounty_id}",
                    "not enough free stake for this bounty",
                    bounty_id=bounty.bounty_id,
                    free=free,
                    needed=bounty.stake_per_task,
                )
                continue
            if self.market.now() + COMMIT_MARGIN_S >= bounty.deadline:
                continue
            if not self._fits_lease(rnd, bounty) or not self._within_caps(rnd, bounty):
                continue
            # A shard this node trained last round first: what it carries on is rebuilt here, not downloaded.
            for shard in shard_order(self._journals, rnd, bounty.shards):
                task_id = task_id_of(bounty.bounty_id, rnd.opened.round, shard)
                if self.market.task(task_id).status != TaskStatus.OPEN:
                    continue
                try:
                    task = self._task_input(task_id, rnd)  # before claiming: inputs not to be had cost no lease
                except ContentMissing as exc:
                    self._warn_once(
                        f"inputs-{task_id}",
                        "round inputs not served yet; not claiming",
                        task_id=task_id,
                        error=str(exc),
                    )
                    continue
                try:
                    self.market.claim(task_id)
                except error_class("MarketVolunteerBarred") as exc:
                    self._warn_once(
                        f"barred-{bounty.bounty_id}",
                        "barred from this poster's bounties after a slash",
                        bounty_id=bounty.bounty_id,
                        until=exc.fields["until"],
                    )
                    break
                except (ContractRevert, TransactionFailed) as exc:  # another volunteer won the race, the round closed
                    log(self.logger, "claim lost", task_id=task_id, reason=str(exc))
                    continue
                self.metrics.tasks_claimed.inc()
                log(
                    self.logger,
                    "task claimed",
                    task_id=task_id,
                    bounty_id=bounty.bounty_id,
                    round=rnd.opened.round,
                    shard=shard,
                )
                self._train_and_commit(task_id, task=task)
                return True
        return False

    def _fits_lease(self, rnd: RoundContext, bounty: Bounty) -> bool:
        """Whether this node trains one of the bounty's tasks within its lease at its duty cycle. A task it could
        not commit in time would only cost the lease penalty and keep the shard from a faster volunteer."""
        bounty_id = bounty.bounty_id
        training = self._training_s.get(bounty_id)
        if training is None:
            training = time_steps(rnd.spec, PACE_STEPS) * rnd.spec.steps_per_task * TRACE_OVERHEAD
            self._training_s[bounty_id] = training
        task_s = task_wall_seconds(training, self.controls.duty_cycle)
        lease_s = int(bounty.raw["leaseDuration"])
        if fits_lease(task_s, lease_s):
            return True
        self._warn_once(
            f"slow-{bounty_id}",
            "too slow for this bounty's lease; claiming none of its tasks",
            bounty_id=bounty_id,
            task_s=round(task_s, 1),
            lease_s=lease_s,
            duty_cycle=self.controls.duty_cycle,
        )
        return False

    def _within_caps(self, rnd: RoundContext, bounty: Bounty) -> bool:
        """Whether one more of the bounty's traces fits the disk cap, and the day's uploads are under theirs."""
        caps, bounty_id = self.options.caps, bounty.bounty_id
        if caps.max_disk_bytes is not None:
            need = self._trace_bytes.get(bounty_id)
            if need is None:  # estimated once (it builds the model), measured after each commit to a store directory
                need = self._trace_bytes[bounty_id] = trace_bytes_estimate(rnd.spec)
            used = content_bytes(self.store, self.held)
            if used + need > caps.max_disk_bytes and isinstance(self.store, IpfsStore):
                self.store.collect_garbage()  # what its node cached and nobody pinned (earlier rounds' models) first
                used = content_bytes(self.store, self.held)
            if used + need > caps.max_disk_bytes:
                self._warn_once(
                    f"disk-{bounty_id}-{len(self.held.tasks())}",
                    "disk cap: one more of this bounty's traces would not fit; claiming none of its tasks",
                    bounty_id=bounty_id,
                    used_bytes=used,
                    trace_bytes=need,
                    cap_bytes=caps.max_disk_bytes,
                )
                return False
        if self.upload is not None and caps.max_upload_bytes_per_day is not None:
            sent = self.upload.last_day()
            if sent >= caps.max_upload_bytes_per_day:
                self._warn_once(
                    f"upload-{int(time.time() // 3600)}",
                    "upload cap: the last day's uploads reached it; claiming nothing new (committed traces are served)",
                    sent_bytes=sent,
                    cap_bytes=caps.max_upload_bytes_per_day,
                )
                return False
        return True

    def _release_closed_rounds(self) -> None:
        """With a disk cap, frees the checkpoints of kept traces whose rounds have closed (node.caps)."""
        if self.options.caps.max_disk_bytes is None:
            return
        bounties: dict[int, Bounty] = {}
        for task_id, cids in self.held.tasks().items():
            bounty_id, round_, _ = split_task_id(task_id)
            if bounty_id not in bounties:
                bounties[bounty_id] = self.market.bounty(bounty_id)
            b = bounties[bounty_id]
            if b.current_round > round_ or b.status == BountyStatus.FINALIZED:
                release(self.store, cids)
                self.held.remove(task_id)
                log(self.logger, "released a closed round's checkpoints", task_id=task_id, cids=len(cids))

    # ------------------------------------------------------------- discovery

    def _open_rounds(self) -> list[RoundContext]:
        latest = self.market.w3.eth.block_number
        for opened in self.market.opened_rounds(from_block=self._scan_from):
            if self.options.bounties is not None and opened.bounty_id not in self.options.bounties:
                continue
            key = (opened.bounty_id, opened.round)
            if key not in self._rounds:
                self._rounds[key] = self._load_round(opened)
        self._scan_from = latest + 1
        current = []
        for (bounty_id, round_), rnd in self._rounds.items():
            if rnd is None:
                continue
            bounty = self.market.bounty(bounty_id)
            if bounty.round_open and bounty.current_round == round_:
                current.append(rnd)
        return current

    def _load_round(self, opened: OpenedRound) -> RoundContext | None:
        try:
            ctx = self.view.load(opened)  # the verifiers' own loader: manifest, spec, bound to the bounty
            spec = ctx.spec
            if spec.model.family not in self.options.families:
                log(
                    self.logger,
                    "skipping bounty: model family not supported here",
                    bounty_id=opened.bounty_id,
                    family=spec.model.family,
                )
                return None
            needed = check_footprint(spec)  # a spec over the protocol's budget is unusable to anyone
            if self.options.max_memory_mb is not None and needed > self.options.max_memory_mb:
                log(
                    self.logger,
                    "skipping bounty: needs more memory than allowed",
                    bounty_id=opened.bounty_id,
                    estimated_mb=needed,
                    max_memory_mb=self.options.max_memory_mb,
                )
                return None
            return ctx
        except (ContentError, SpecError) as exc:
            log(
                self.logger,
                "skipping round: its published content is unusable",
                level=logging.WARNING,
                bounty_id=opened.bounty_id,
                round=opened.round,
                reason=str(exc),
            )
            return None

    def _round_of(self, task_id: int) -> RoundContext | None:
        bounty_id, round_, _ = split_task_id(task_id)
        if (bounty_id, round_) not in self._rounds:
            for opened in self.market.opened_rounds(bounty_id=bounty_id):
                if opened.round == round_:
                    self._rounds[(bounty_id, round_)] = self._load_round(opened)
        return self._rounds.get((bounty_id, round_))

    def _held_tasks(self) -> list[int]:
        """Tasks the chain says this address has claimed and not yet committed."""
        logs = self.market.logs("TaskClaimed", self.market.deployment.block, filters={"volunteer": self.market.address})
        held = []
        for task_id in dict.fromkeys(int(entry["args"]["taskId"]) for entry in logs):
            task = self.market.task(task_id)
            if task.status == TaskStatus.CLAIMED and task.volunteer == self.market.address:
                held.append(task_id)
        return held

    # --------------------------------------------------------------- work

    def _task_input(self, task_id: int, rnd: RoundContext) -> TaskInput:
        shard = split_task_id(task_id)[2]
        rebuilt = rebuild_carried(self.view, self.store, self._journals, task_id)
        if rebuilt:
            log(self.logger, "carried state rebuilt from this node's own trace", task_id=task_id, cids=rebuilt)
        weights = self.view.round_weights(rnd)
        shard_tensors = from_bytes(self.store.get_buffer(rnd.manifest.shard_cids[shard]))
        seed = rnd.seed(shard)
        fresh = self.carry_waits.starts_fresh(self.view, task_id)
        return TaskInput(
            rnd.spec,
            rnd.workload,
            task_id,
            self.market.address,
            seed,
            rnd.opened.model_cid,
            weights,
            shard_tensors,
            carried=self.view.carried_state(task_id, fresh),
            carried_steps=self.view.carried_steps(task_id, fresh),
            error=self.view.update_error(task_id, fresh),
            fresh_start=fresh,
        )

    def _train_and_commit(self, task_id: int, resumed: bool = False, task: TaskInput | None = None) -> None:
        rnd = self._round_of(task_id)
        if rnd is None:
            log(self.logger, "holding a task whose round is unusable; letting the lease expire", task_id=task_id)
            return
        self.status.state, self.status.current_task = "training", task_id
        try:
            task = task or self._task_input(task_id, rnd)
        except ContentMissing as exc:
            # The round's model, shard and carried state come from the coordinator's node: one not served in
            # time (a large model over a busy swarm) is asked for again on the next pass, the lease kept.
            raise RoundInputsUnavailable(f"task {task_label(task_id)}: {exc}") from None
        total = rnd.spec.steps_per_task
        started = time.monotonic()
        next_game_check = started + self.options.game_poll_s

        step_began = started
        trained_s = 0.0  # time spent training, without rests, pauses and games
        busy_holds = True  # until the lease needs the rest of its time

        def on_step(step: int, loss: float) -> None:
            nonlocal next_game_check, step_began, trained_s, busy_holds
            trained_s += time.monotonic() - step_began
            if time.monotonic() >= next_game_check:
                next_game_check = time.monotonic() + self.options.game_poll_s
                self._defend_between_steps()
            if self.controls.duty_cycle < 1:
                self.stop_event.wait(self.controls.rest_after(time.monotonic() - step_began))
            if self.controls.paused():
                self._hold_while_paused(task_id)
            elif busy_holds and self.controls.busy():
                remaining_s = task_wall_seconds(trained_s / (step + 1) * (total - step - 1), self.controls.duty_cycle)
                busy_holds = self._hold_while_busy(task_id, remaining_s)
            step_began = time.monotonic()
            self.metrics.steps.inc()
            self.metrics.loss.set(loss)
            self.metrics.steps_per_s.set((step + 1) / max(time.monotonic() - started, 1e-9))
            if self.on_progress is not None:
                self.on_progress(f"task {task_id:#x}", step + 1, total, loss)

        log(self.logger, "training", task_id=task_id, resumed=resumed, steps=total, family=rnd.spec.model.family)
        result = self.trainer(task, self.store, self._journals, on_step, self.stop_event.is_set)
        if not resumed:
            self._training_s[split_task_id(task_id)[0]] = trained_s
        lease = self.market.task(task_id)
        if lease.status != TaskStatus.CLAIMED or lease.volunteer != self.market.address:
            self.metrics.tasks_abandoned.inc()
            log(self.logger, "lease lost while training; not committing", task_id=task_id, status=lease.status.name)
            return
        if self.market.now() + COMMIT_MARGIN_S > lease.deadline:
            self.metrics.tasks_abandoned.inc()
            log(self.logger, "lease too close to expiry to commit", task_id=task_id, lease_deadline=lease.deadline)
            return
        for cid in [*result.cids, *carried_in(self.view, task_id, result.manifest.fresh_start)]:
            self.store.pin(cid)  # the trace must stay retrievable until the challenge window closes
        try:
            self.market.commit(
                task_id, result.trace_root, result.update_hash, result.manifest_cid, result.manifest.update_cid
            )
        except (ContractRevert, TransactionFailed) as exc:
            # A commit whose receipt timed out (a chain restart) may have been mined after all: retried, it
            # reverts, and that is no failure. Anything else lost the lease between the check and the send.
            event = self.market.commit_event(task_id)
            mine = event is not None and event["volunteer"] == self.market.address
            if event is None or not mine or bytes(event["traceRoot"]) != result.trace_root:
                self.metrics.tasks_abandoned.inc()
                log(self.logger, "commit refused; task abandoned", task_id=task_id, reason=str(exc))
                return
            log(self.logger, "commit already mined", task_id=task_id)
        self.metrics.tasks_committed.inc()
        self.status.committed.append(task_id)
        # Checkpoint 0 is never stored and the last stays: an audit recomputes the update and its error from it.
        self.held.add(task_id, [c.cid for c in result.manifest.checkpoints[1:-1]])
        if isinstance(self.store, LocalStore):
            self._trace_bytes[split_task_id(task_id)[0]] = sum(self.store.size(cid) for cid in result.cids)
        self.status.state, self.status.current_task = "idle", None
        log(
            self.logger,
            "task committed",
            task_id=task_id,
            trace_cid=result.manifest_cid,
            trace_root="0x" + result.trace_root.hex(),
            final_loss=result.manifest.losses[-1] if result.manifest.losses else None,
            seconds=round(time.monotonic() - started, 2),
        )

    def _hold_while_paused(self, task_id: int) -> None:
        """Holds training between two steps while the node is paused, still answering games; the lease runs on."""
        log(
            self.logger,
            "paused mid-task; the lease keeps running",
            task_id=task_id,
            lease_deadline=self.market.task(task_id).deadline,
        )
        self.status.state = "paused"
        while self.controls.paused() and not self.stop_event.is_set():
            self._defend_between_steps()
            self.stop_event.wait(min(self.options.game_poll_s, 1.0))
        if not self.stop_event.is_set():
            log(self.logger, "resumed", task_id=task_id)
            self.status.state = "training"

    def _hold_while_busy(self, task_id: int, remaining_s: float) -> bool:
        """Holds training between two steps while other programs keep the machine busy, answering games, until
        the lease needs the rest of its time (`remaining_s` of training at the measured pace, doubled). False
        when the lease ended the hold: the task then trains on to its commit, busy or not."""
        lease_deadline = self.market.task(task_id).deadline
        probe = self.controls.busy_probe
        load = None if probe is None or probe.load_pct is None else round(probe.load_pct, 1)
        log(self.logger, "machine busy: holding training", task_id=task_id, others_load_pct=load)
        self.status.state = "busy"
        held = True
        while not self.stop_event.is_set() and self.controls.busy():
            # A quiet chain's last block can be old: the wall clock is the later, safer "now" then.
            now = max(self.market.now(), int(time.time()))
            if now + COMMIT_MARGIN_S + remaining_s * BUSY_PACE_FACTOR >= lease_deadline:
                log(
                    self.logger,
                    "training on although the machine is busy: the lease needs the rest of its time",
                    task_id=task_id,
                    lease_deadline=lease_deadline,
                    remaining_s=round(remaining_s, 1),
                )
                held = False
                break
            self._defend_between_steps()
            self.stop_event.wait(min(self.options.game_poll_s, 1.0))
        if held and not self.stop_event.is_set():
            log(self.logger, "machine no longer busy: training on", task_id=task_id)
        self.status.state = "training"
        return held

    def _defend_between_steps(self) -> None:
        """Answers due game moves from inside training. Safe between two steps: a replay restores the torch
        settings it changes, and every training step reseeds the generator from (task seed, step)."""
        try:
            self.defender.play()
        except TRANSIENT as exc:  # the next check (or the loop after training) tries again
            log(self.logger, "could not answer a game while training; retrying", error=str(exc)[:200])

    def claim_rewards(self) -> int:
        amount = self.market.claimable(self.market.address)
        if amount:
            self.market.claim_rewards()
            self.metrics.rewards_claimed.inc(amount)
            log(self.logger, "rewards claimed", amount=amount)
        return amount

    @property
    def _journals(self) -> Path:
        return self.options.work_dir / "journals"

    def _warn_once(self, key: str, msg: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log(self.logger, msg, level=logging.WARNING, **fields)
