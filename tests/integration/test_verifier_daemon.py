"""`shardwork verify run`'s daemon on the embedded chain: independent verifiers, each with its own key and
stake, find the commits of any bounty on the market, replay what the chain sampled and attest; a restart
replays nothing already attested; a verifier without enough free stake, or judging its own commit, stays out."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path

import pytest
from web3.types import RPCEndpoint

from content.store import LocalStore
from coordinator.referee import Referee
from coordinator.rounds import Coordinator
from devtools.adversaries import lazy_trainer
from judge.context import ChainView
from ledger.amounts import UNIT
from ledger.chain import connect, dev_accounts
from ledger.deploy import deploy
from ledger.market import Market, TaskStatus, task_id_of
from ledger.terms import BountyTerms
from ledger.tx import Transactor
from node.daemon import NodeDaemon, NodeOptions
from telemetry.health import HealthServer
from tests.support.specs import small_spec
from verifier.daemon import VerifierDaemon, VerifierOptions

pytestmark = pytest.mark.embedded
QUIET = logging.getLogger("shardwork.test.verifier")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def test_independent_verifier_daemons_pay_the_honest_slash_the_lazy_and_never_replay_twice(tmp_path: Path) -> None:
    w3 = connect(None)
    keys = dev_accounts(w3, 9)
    deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
    store = LocalStore(tmp_path / "store")
    clients = [Market(w3, deployment, Transactor(w3, k)) for k in keys]
    for m in clients[1:]:
        m.faucet(m.address, 2_000 * UNIT)
    for m in clients[3:8]:  # three verifiers and two volunteers bond stake and take seats; #8 bonds none
        m.stake(1_000 * UNIT)
        m.register_verifier()
    poster, coordinator, honest, lazy = clients[1], clients[2], clients[6], clients[7]
    verifiers = clients[3:6]

    spec = small_spec(data={"shards": 2}, steps_per_task=10, rounds=1)
    terms = BountyTerms(
        coordinator=coordinator.address,
        check_probability=1.0,
        min_check_probability=1.0,
        segments_per_check=1,
        quorum=3,  # every verdict needs all three daemons
    )
    poster.ensure_allowance(terms.escrow(spec.data.shards * spec.rounds))
    bounty_id = poster.post_bounty(terms.posting(spec, store.put(spec.canonical_bytes()), poster.now()))
    assert Coordinator(coordinator, store, QUIET).intake(bounty_id) is not None
    NodeDaemon(
        lazy, store, NodeOptions(work_dir=tmp_path / "lazy", once=True, max_tasks=1), QUIET, trainer=lazy_trainer
    ).run()
    NodeDaemon(honest, store, NodeOptions(work_dir=tmp_path / "honest", once=True), QUIET).run()
    tasks = [task_id_of(bounty_id, 0, shard) for shard in range(2)]
    by_volunteer = {poster.task(t).volunteer: t for t in tasks}
    assert set(by_volunteer) == {honest.address, lazy.address}
    time.sleep(1.1)  # past the trace timeout below: the lazy volunteer's trace is then never uploaded
    for _ in range(2):  # the draw block, and one after it for a view at the head
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def daemon(market: Market) -> VerifierDaemon:
        return VerifierDaemon(market, store, VerifierOptions(once=True, poll_interval_s=0.1, trace_timeout_s=1), QUIET)

    # An unstaked account stays out: no verdict, no replay, nothing sent.
    unstaked = daemon(clients[8])
    assert unstaked.run() == {"passed": 0, "failed": 0, "abstained": 0}
    assert unstaked.worker.replayed_segments == 0
    # A volunteer with free stake judges others' commits, never its own.
    assert daemon(honest).run() == {"passed": 0, "failed": 1, "abstained": 0}

    first_two = [daemon(v) for v in verifiers[:2]]
    assert first_two[0].run() == {"passed": 1, "failed": 1, "abstained": 0}
    server = HealthServer(0, first_two[0].metrics.registry, first_two[0].status.as_dict)
    try:  # what an operator's monitoring reads
        base = f"http://127.0.0.1:{server.port}"
        health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=10).read())
        assert health == {
            "address": verifiers[0].address,
            "state": "stopped",
            "pending": 0,
            "verdicts": health["verdicts"],
        }
        assert health["verdicts"] == {"passed": 1, "failed": 1, "abstained": 0}
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        assert (
            "shardwork_verifier_passed_total 1.0" in metrics
            and "shardwork_verifier_segments_replayed_total 1.0" in metrics
        )
    finally:
        server.close()
    assert {poster.task(t).status for t in tasks} == {TaskStatus.COMMITTED}  # quorum 3: both still waiting
    assert first_two[1].run() == {"passed": 1, "failed": 1, "abstained": 0}
    assert poster.task(by_volunteer[lazy.address]).status == TaskStatus.CONTESTED  # three FAILs: a review
    referee = Referee(coordinator, ChainView(coordinator, store), QUIET)
    assert referee.tend(by_volunteer[lazy.address]) == "ruled"
    assert poster.task(by_volunteer[lazy.address]).status == TaskStatus.OPEN  # slashed, reopened
    assert poster.stake_of(lazy.address).bonded == 1_000 * UNIT - 100 * UNIT
    assert poster.task(by_volunteer[honest.address]).status == TaskStatus.COMMITTED  # two PASSes of three

    restarted = daemon(verifiers[0])  # a restart of the first: it attested both, so it replays nothing
    assert restarted.run() == {"passed": 0, "failed": 0, "abstained": 0}
    assert restarted.worker.replayed_segments == 0

    assert daemon(verifiers[2]).run() == {"passed": 1, "failed": 0, "abstained": 0}
    assert poster.task(by_volunteer[honest.address]).status == TaskStatus.ACCEPTED
    # The verifier fee for each verdict on the winning side.
    assert [poster.claimable(v.address) for v in verifiers] == [2 * UNIT, 2 * UNIT, 1 * UNIT]


def test_only_the_verifiers_the_chain_drew_replay_a_commit(tmp_path: Path) -> None:
    """Six seated verifiers, quorum 1: the chain draws a committee of two for the check, and the four others
    neither replay nor vote (the daemon reads the committee before replaying anything)."""
    w3 = connect(None)
    keys = dev_accounts(w3, 10)
    deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
    store = LocalStore(tmp_path / "store")
    clients = [Market(w3, deployment, Transactor(w3, k)) for k in keys]
    for m in clients[1:]:
        m.faucet(m.address, 2_000 * UNIT)
    for m in clients[3:10]:
        m.stake(1_000 * UNIT)
    poster, coordinator, volunteer, verifiers = clients[1], clients[2], clients[9], clients[3:9]
    spec = small_spec(data={"shards": 1}, steps_per_task=10, rounds=1)
    terms = BountyTerms(
        coordinator=coordinator.address,
        check_probability=1.0,
        min_check_probability=1.0,
        segments_per_check=1,
        quorum=1,
    )
    poster.ensure_allowance(terms.escrow(1))
    bounty_id = poster.post_bounty(terms.posting(spec, store.put(spec.canonical_bytes()), poster.now()))
    assert Coordinator(coordinator, store, QUIET).intake(bounty_id) is not None
    daemons = [
        VerifierDaemon(m, store, VerifierOptions(once=True, poll_interval_s=0.1, trace_timeout_s=1), QUIET)
        for m in verifiers
    ]
    for d in daemons:  # each takes its seat on its first pass, before the volunteer commits
        d.run()
    assert [m.seat_of(m.address) for m in verifiers] == list(range(6))
    NodeDaemon(volunteer, store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
    task_id = task_id_of(bounty_id, 0, 0)
    for _ in range(2):  # the draw block, and one after it for a view at the head
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    committee = set(poster.committee(task_id))
    assert len(committee) == 2 and committee <= {m.address for m in verifiers}

    verdicts = [d.run() for d in daemons]
    drawn = [d for d in daemons if d.market.address in committee]
    for d, verdict in zip(daemons, verdicts, strict=True):
        if d not in drawn:
            assert d.worker.replayed_segments == 0 and verdict == {"passed": 0, "failed": 0, "abstained": 0}
    assert sum(v["passed"] for v in verdicts) == 1  # quorum 1: the first drawn verifier's PASS decides
    assert poster.task(task_id).status == TaskStatus.ACCEPTED
    voters = {e["args"]["verifier"] for e in poster.logs("VerdictAttested", 0)}
    assert voters <= committee and len(voters) == 1
