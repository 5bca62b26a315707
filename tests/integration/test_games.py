"""Bisection games with real training on anvil: the volunteer's node daemon posts midpoints it recomputes, the
challenger answers from its own replay, the coordinator referees the last step. A lying verifier who contests
honest work loses its stake to the volunteer; a faker whose replay diverged is proven wrong at one step and
slashed, and the verifier who contested it is paid from the slash."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordinator.referee import Referee
from devtools.adversaries import partial_faker
from devtools.anvil import Anvil
from judge.commit import audit_commit
from judge.context import ChainView
from judge.game import segment_claim
from ledger.earnings import earnings
from ledger.index import EventIndex
from ledger.market import GameTurn, TaskStatus, task_id_of
from node.daemon import NodeDaemon, NodeOptions
from node.trainer import Trainer, train_task
from telemetry.logs import json_logger
from tests.support.chain import TOKEN
from tests.support.marketplace import Marketplace, start
from tests.support.specs import small_spec
from verifier.worker import VerifierWorker

LOG = json_logger("test.games")
STAKE = 100 * TOKEN  # DEFAULT_TERMS


@pytest.fixture
def market_place(tmp_path: Path) -> Iterator[Marketplace]:
    node = Anvil()
    yield start(node.url, tmp_path)
    node.stop()


def _committed(m: Marketplace, trainer: Trainer, tmp_path: Path) -> tuple[int, NodeDaemon]:
    spec = small_spec(data={"shards": 1}, steps_per_task=20)  # 4 segments of 5 steps
    bounty_id = m.post_and_open(spec, checkBps=10_000, minCheckBps=10_000, segmentsPerCheck=4)
    volunteer, _ = m.volunteer(0)
    daemon = NodeDaemon(volunteer, m.store, NodeOptions(work_dir=tmp_path / "node", once=True), LOG, trainer=trainer)
    daemon.run()
    task_id = task_id_of(bounty_id, 0, 0)
    assert volunteer.task(task_id).status == TaskStatus.COMMITTED
    m.w3.provider.make_request("anvil_mine", [2])  # type: ignore[arg-type]
    return task_id, daemon


def _play(m: Marketplace, task_id: int, daemon: NodeDaemon, answer: object) -> int:
    """Runs the game to its end: the daemon defends, `answer()` moves for the challenger, the referee rules."""
    referee = Referee(m.coordinator, ChainView(m.coordinator, m.store), LOG)
    rounds = 0
    while m.coordinator.task(task_id).status == TaskStatus.CONTESTED:
        daemon.defender.play()
        if m.coordinator.game(task_id).turn == GameTurn.CHALLENGER:
            answer()  # type: ignore[operator]
            rounds += 1
        referee.tend(task_id)
        assert rounds <= 3, "a 5-step stretch takes at most ⌈log2 5⌉ = 3 rounds"
    return rounds


def test_a_verifier_who_contests_honest_work_loses_its_stake_to_the_volunteer(
    market_place: Marketplace, tmp_path: Path
) -> None:
    m = market_place
    task_id, daemon = _committed(m, train_task, tmp_path)
    liar, _ = m.volunteer(1)
    audit = audit_commit(ChainView(liar, m.store), task_id)
    assert audit.ok and audit.commit is not None and audit.trace is not None
    lo, hi = segment_claim(audit.trace, 2)
    liar.contest(task_id, audit.commit.trace_root, audit.commit.update_hash, lo, hi)
    rounds = _play(m, task_id, daemon, lambda: liar.respond(task_id, False))  # it disagrees with everything
    assert rounds == 2  # [10,15] → [10,12] → [10,11]: always disagreeing halves towards the start
    slashed = m.coordinator.market.events.ChallengerSlashed().get_logs(from_block=0)
    assert [(e["args"]["challenger"], e["args"]["amount"]) for e in slashed] == [(liar.address, STAKE)]
    assert m.coordinator.task(task_id).status == TaskStatus.COMMITTED  # the honest work goes on to be accepted
    assert m.coordinator.claimable(daemon.market.address) == STAKE // 2
    assert liar.stake_of(liar.address).bonded == 1_000 * TOKEN - STAKE
    assert _kinds(m, tmp_path, daemon.market.address) == {"compensation": STAKE // 2}  # not a task reward


def _kinds(m: Marketplace, tmp_path: Path, account: str) -> dict[str, int]:
    """`account`'s earnings by kind, as `shardwork rewards` reads them from the event index."""
    index = EventIndex(tmp_path / "index.sqlite", m.coordinator)
    index.sync()
    return {row.kind: row.amount for row in earnings(index, account).rows}


def test_a_faker_is_proven_wrong_at_one_step_and_its_challenger_is_paid(
    market_place: Marketplace, tmp_path: Path
) -> None:
    m = market_place
    verifier_market, _ = m.volunteer(1)
    verifier = VerifierWorker(verifier_market, m.store, LOG)
    verifier.join()  # seated before the commit it is to judge
    task_id, daemon = _committed(m, partial_faker(0.5, random.Random(3), keep_counters=True), tmp_path)
    assert verifier.verify(task_id) is False  # its replay diverged: it contested instead of voting
    game = m.coordinator.game(task_id)
    assert game.challenger == verifier_market.address and game.hi_step - game.lo_step == 5
    _play(m, task_id, daemon, verifier.challenger.play)
    slashes = m.coordinator.market.events.TaskSlashed().get_logs(from_block=0)
    assert [e["args"]["volunteer"] for e in slashes] == [daemon.market.address]
    assert m.coordinator.task(task_id).status == TaskStatus.OPEN
    assert verifier_market.stake_of(verifier_market.address).locked == 0
    assert m.coordinator.claimable(verifier_market.address) == STAKE // 2
    assert _kinds(m, tmp_path, verifier_market.address) == {"challenge": STAKE // 2}
    ruled = m.coordinator.market.events.GameRuled().get_logs(from_block=0)
    assert [e["args"]["stepCorrect"] for e in ruled] == [False]


def test_a_volunteer_answers_a_game_while_it_trains_its_next_task(market_place: Marketplace, tmp_path: Path) -> None:
    """A contest can arrive while the volunteer trains another task, which may take longer than a move's time:
    training pauses between two steps to post the midpoint, and the task it trains still commits."""
    m = market_place
    spec = small_spec(data={"shards": 2}, steps_per_task=20)
    m.post_and_open(spec, checkBps=10_000, minCheckBps=10_000, segmentsPerCheck=4)
    volunteer, _ = m.volunteer(0)
    liar, _ = m.volunteer(1)
    moved_while_training: list[bool] = []

    def contested_mid_training(task: Any, store: Any, workdir: Path, on_step: Any, *rest: Any) -> Any:
        first = [int(e["args"]["taskId"]) for e in volunteer.logs("TaskCommitted", 0)][0]
        audit = audit_commit(ChainView(liar, m.store), first)
        assert audit.commit is not None and audit.trace is not None
        lo, hi = segment_claim(audit.trace, 1)
        liar.contest(first, audit.commit.trace_root, audit.commit.update_hash, lo, hi)
        on_step(0, 1.0)  # the daemon's between-steps check answers the game
        moved_while_training.append(bool(volunteer.logs("GameBisected", 0, filters={"taskId": first})))
        return train_task(task, store, workdir, on_step, *rest)

    options = NodeOptions(work_dir=tmp_path / "node", once=True, max_tasks=1, game_poll_s=0)
    NodeDaemon(volunteer, m.store, options, LOG).run()
    options.max_tasks = 2
    daemon = NodeDaemon(volunteer, m.store, options, LOG, trainer=contested_mid_training)
    daemon.run()
    assert moved_while_training == [True]
    assert len(daemon.status.committed) == 1  # the task trained meanwhile was committed all the same
