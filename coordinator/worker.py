"""The Celery application: idempotent tasks keyed by bounty/task id, plus the beat housekeeping scan.

Every task re-reads the chain before acting, so running one twice, or again after any crash, does nothing
the first run already did: a commit attested twice is refused by the contract (caught here), a round
closed twice is refused, a settled task is skipped. Only transient failures (node, IPFS or Redis
unreachable) are retried, with exponential backoff and jitter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from celery import Celery
from celery.signals import task_postrun

from config.settings import CoordinatorSettings
from ledger.errors import CHAIN_TRANSIENT, TransactionFailed
from ledger.market import BountyStatus, TaskStatus
from protocol.errors import TransientError
from telemetry.logs import log
from telemetry.memory import give_back_free_memory

if TYPE_CHECKING:
    from coordinator.service import Service

# Retried with backoff: the project's transient family (chain node or IPFS daemon unreachable), what the
# libraries underneath raise for the same outages, and a mined revert without a reason (re-read, re-decided).
TRANSIENT = (
    TransientError,
    *CHAIN_TRANSIENT,
    redis.ConnectionError,
    ConnectionError,
    TimeoutError,
    TransactionFailed,
)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}


# The queue of the short steps, and which they are; everything else goes to Celery's default queue ("celery").
MOVES_QUEUE = "moves"
MOVES = ("shardwork.housekeeping", "shardwork.advance", "shardwork.play_game")
# The close's preparation (seconds of calibration) has a queue of its own: behind the round's commit checks on the
# default queue it started only once the round was complete, and the close measured δ× itself (the network bench
# found every preparation too late: ~9 s on each round's critical path). Not on the moves queue: a ruling would
# wait behind it.
PREPARE_QUEUE = "prepare"


def create_celery(settings: CoordinatorSettings | None = None) -> Celery:
    settings = settings or CoordinatorSettings()
    celery = Celery("shardwork", broker=settings.redis_url)
    celery.conf.update(
        task_acks_late=True,  # a task whose worker dies is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 600},
        beat_schedule={
            "housekeeping": {"task": "shardwork.housekeeping", "schedule": settings.housekeeping_interval_s}
        },
        # Short, deadline-bound steps (the scan, settling and closing, the referee's moves) have their own queue,
        # so a worker that takes only it answers them while others replay commits: behind one worker's queue of
        # commit checks (~9 s each in the network bench) a referee's ruling waited 14 s.
        task_routes={
            **{name: {"queue": MOVES_QUEUE} for name in MOVES},
            "shardwork.prepare_close": {"queue": PREPARE_QUEUE},
        },
    )
    return celery


app = create_celery()


@task_postrun.connect
def _give_back_memory(**_: object) -> None:
    """A commit check or a close holds checkpoints and updates of hundreds of MB: a worker waiting for its next
    task gives that memory back to the machine (telemetry.memory)."""
    give_back_free_memory()


def _svc() -> Service:
    from coordinator.service import service

    return service()


# How long a queued-task mark lives: a lost message is queued again after this. A mark that expires while
# its message still waits only lets a duplicate in, which the chain-state checks make harmless.
QUEUED_MARK_S = 120
# How long a round's close preparation is remembered as done (or under way): longer than any round's windows.
PREPARED_MARK_S = 3600


def _unmark(key: str) -> None:
    """Run first by every scheduled task: the next scan may queue another run while this one works."""
    from coordinator.service import unmark_queued

    unmark_queued(key)


@app.task(name="shardwork.intake", **RETRY)
def intake(bounty_id: int) -> str | None:
    """Publish shards + round-0 model and open round 0 (no-op when already open or the spec is unusable)."""
    _unmark(f"intake:{bounty_id}")
    return _svc().coordinator.intake(bounty_id)


@app.task(name="shardwork.check_commit", **RETRY)
def check_commit(task_id: int) -> list[bool | None]:
    """Audit a commit (dispute a broken, unchecked one) and let each verifier rule on it if checked."""
    _unmark(f"check:{task_id}")
    svc = _svc()
    log(svc.logger, "commit check started", task_id=task_id, celery_id=check_commit.request.id)
    svc.coordinator.audit_and_dispute(task_id)
    return [v.verify(task_id) for v in svc.verifiers]


@app.task(name="shardwork.advance", **RETRY)
def advance(bounty_id: int) -> dict[str, object]:
    """Record the fresh commits' draws, expire dead leases, settle what is settleable, and close the round when
    every task is accepted (or, while the last commits wait, prepare the close)."""
    from coordinator.service import mark_queued

    _unmark(f"advance:{bounty_id}")
    coordinator = _svc().coordinator
    coordinator.record_draws(bounty_id)
    expired = coordinator.expire_leases(bounty_id)
    settled = coordinator.settle_ready(bounty_id)
    closed = coordinator.try_close_round(bounty_id)
    if closed is None:
        preparation = coordinator.close_preparation(bounty_id)
        # Once per (round, attempts): a mark that outlives the round, so the beat does not prepare it again.
        if preparation is not None and mark_queued(f"prepare:{preparation}", PREPARED_MARK_S):
            prepare_close.delay(bounty_id)
    return {"expired": expired, "settled": settled, "closed_round": None if closed is None else closed.round}


@app.task(name="shardwork.prepare_close", **RETRY)
def prepare_close(bounty_id: int) -> bool:
    """The next round's δ× measured while the round's last commits wait out their windows (Coordinator.prepare_close)."""
    return _svc().coordinator.prepare_close(bounty_id)


@app.task(name="shardwork.play_game", **RETRY)
def play_game(task_id: int) -> list[object]:
    """A contested task's game: the coordinator referees (or ends a silent side's game), and each of its
    verifiers answers the midpoint if the game is its own."""
    _unmark(f"game:{task_id}")
    svc = _svc()
    return [svc.coordinator.referee.tend(task_id), *(v.challenger.move(task_id) for v in svc.verifiers)]


@app.task(name="shardwork.housekeeping", **RETRY)
def housekeeping() -> dict[str, int]:
    """The beat's scan of chain state: new bounties to take in, commits to check, bounties to advance."""
    from coordinator.service import mark_queued, once

    svc = _svc()
    coordinator = svc.coordinator
    market = coordinator.market
    scheduled = {"intake": 0, "check": 0, "game": 0, "advance": 0}
    with once("housekeeping", seconds=max(5, int(svc.settings.housekeeping_interval_s * 5))) as mine:
        if not mine:
            return scheduled
        for verifier in svc.verifiers:  # a seat before any commit it should be drawn for (cached once taken)
            verifier.join()
        for bounty_id in coordinator.known_bounties():
            bounty = market.bounty(bounty_id)
            if bounty.status != BountyStatus.ACTIVE:
                continue
            if not bounty.round_open:
                if bounty_id in coordinator.rejected or not mark_queued(f"intake:{bounty_id}", QUEUED_MARK_S):
                    continue
                intake.delay(bounty_id)
                scheduled["intake"] += 1
                continue
            for task_id in coordinator.current_tasks(bounty_id):
                task = market.task(task_id)
                if task.status in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED) and mark_queued(
                    f"check:{task_id}", QUEUED_MARK_S
                ):
                    check_commit.apply_async(
                        (task_id,), task_id=f"check-{task_id}-{task.attempt}-{market.w3.eth.block_number}"
                    )
                    scheduled["check"] += 1
                elif task.status == TaskStatus.CONTESTED and mark_queued(f"game:{task_id}", QUEUED_MARK_S):
                    play_game.delay(task_id)
                    scheduled["game"] += 1
            if mark_queued(f"advance:{bounty_id}", QUEUED_MARK_S):
                advance.delay(bounty_id)
                scheduled["advance"] += 1
    return scheduled
