"""The coordinator's Celery tasks, called directly, on the embedded in-process chain: intake, the commit check
(audit, draw recorded, verifiers' replay and attestation), advance (settle, close the round, finalize) and
beat's housekeeping scan, against real node daemons, an honest and a lazy one. Redis is real (the tasks'
queue marks and single-flight guard live there), started on a free loopback port and stopped by PID."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3.types import RPCEndpoint

from config.settings import CoordinatorSettings
from content.store import DEFAULT_MAX_BYTES, ContentStore, LocalStore
from coordinator import service as service_module
from coordinator import worker
from coordinator.rounds import Coordinator
from devtools.adversaries import lazy_trainer
from devtools.localstack import start_redis
from judge.calibration import calibrate
from judge.commit import CommitAudit
from judge.context import ChainView
from ledger.amounts import UNIT
from ledger.chain import connect, dev_accounts
from ledger.deploy import deploy
from ledger.market import BountyStatus, Market, Task, TaskStatus, task_id_of
from ledger.terms import BountyTerms
from ledger.tx import Transactor
from node.caps import Caps, HeldTraces
from node.daemon import NodeDaemon, NodeOptions
from protocol.errors import StoreUnavailable
from protocol.manifests import TraceManifest
from protocol.spec import TrainingSpec
from tests.support.specs import small_spec
from verifier import worker as verifier_worker
from verifier.worker import VerifierWorker

pytestmark = pytest.mark.embedded
Installed = tuple[service_module.Service, list[Market]]
QUIET = logging.getLogger("shardwork.test.coordinator")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "logs").mkdir()
        proc, url = start_redis(Path(home))
        yield url
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def installed(redis_url: str, tmp_path: Path) -> Iterator[Installed]:
    w3 = connect(None)
    keys = dev_accounts(w3, 8)
    deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
    store = LocalStore(tmp_path / "store")
    clients = [Market(w3, deployment, Transactor(w3, k)) for k in keys]
    for m in clients[1:]:
        m.faucet(m.address, 2_000 * UNIT)
    for m in (*clients[3:5], *clients[5:8]):  # verifiers and volunteers bond stake
        m.stake(1_000 * UNIT)
    for m in clients[3:5]:  # the verifiers take seats before any commit
        m.register_verifier()
    settings = CoordinatorSettings(redis_url=redis_url, store=str(tmp_path / "store"), deployment=tmp_path / "d.json")
    svc = service_module.Service(
        settings,
        Coordinator(clients[2], store, QUIET),
        [VerifierWorker(clients[3], store, QUIET), VerifierWorker(clients[4], store, QUIET)],
        store,
        QUIET,
    )
    service_module.install(svc)
    broker = worker.app.conf.broker_url
    worker.app.conf.broker_url = redis_url  # housekeeping's .delay() publishes here; nothing consumes it
    yield svc, clients
    worker.app.conf.broker_url = broker
    service_module.install(None)


def _post(poster: Market, coordinator: str, store: ContentStore) -> int:
    spec = small_spec(data={"shards": 2}, steps_per_task=10, rounds=1)
    terms = BountyTerms(coordinator=coordinator, check_probability=1.0, min_check_probability=1.0, segments_per_check=1)
    poster.ensure_allowance(terms.escrow(spec.data.shards * spec.rounds))
    return poster.post_bounty(terms.posting(spec, store.put(spec.canonical_bytes()), poster.now()))


def test_tasks_called_directly_take_a_bounty_from_post_to_final_model(installed: Installed, tmp_path: Path) -> None:
    svc, clients = installed
    poster, volunteer = clients[1], clients[5]
    bounty_id = _post(poster, clients[2].address, svc.store)

    assert worker.housekeeping() == {
        "intake": 1,
        "check": 0,
        "game": 0,
        "advance": 0,
    }  # beat's scan finds the new bounty
    assert worker.intake(bounty_id) is not None and worker.intake(bounty_id) is None  # idempotent
    assert poster.bounty(bounty_id).round_open

    NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
    tasks = [task_id_of(bounty_id, 0, shard) for shard in range(2)]
    assert [poster.task(t).status for t in tasks] == [TaskStatus.COMMITTED] * 2
    assert worker.housekeeping()["check"] == 2
    for task_id in tasks:
        assert worker.check_commit(task_id) == [True, True]  # both verifiers replayed and attested PASS
        assert poster.task(task_id).status == TaskStatus.ACCEPTED
        assert worker.check_commit(task_id) == [None, None]  # a repeat finds nothing left to do

    result = worker.advance(bounty_id)
    assert result["closed_round"] == 0
    assert poster.bounty(bounty_id).status == BountyStatus.FINALIZED
    assert poster.claimable(volunteer.address) == 2 * 10 * UNIT


def test_the_commit_check_slashes_a_lazy_volunteer_and_records_the_draw(installed: Installed, tmp_path: Path) -> None:
    svc, clients = installed
    poster, lazy = clients[1], clients[6]
    bounty_id = _post(poster, clients[2].address, svc.store)
    worker.intake(bounty_id)
    options = NodeOptions(work_dir=tmp_path / "lazy", once=True, max_tasks=1)
    NodeDaemon(lazy, svc.store, options, QUIET, trainer=lazy_trainer).run()
    task_id = next(
        t for t in (task_id_of(bounty_id, 0, s) for s in range(2)) if poster.task(t).volunteer == lazy.address
    )
    stake_before = poster.stake_of(lazy.address).bonded

    assert worker.check_commit(task_id) == [None, None]  # the draw block is not mined yet: nothing to decide
    lazy.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert worker.check_commit(task_id) == [False, False]
    assert poster.task(task_id).status == TaskStatus.CONTESTED  # votes alone slash nobody: the referee reviews
    assert worker.play_game(task_id)[0] == "ruled"  # the referee's own audit finds the same failure
    assert poster.task(task_id).status == TaskStatus.OPEN  # slashed and reopened for an honest redo
    assert poster.stake_of(lazy.address).bonded == stake_before - 100 * UNIT
    drawn = poster.market.events.ChallengeDrawn().get_logs(from_block=0, argument_filters={"taskId": task_id})
    assert len(drawn) == 1  # recorded once, by the first check, so the sample can never change afterwards


def test_a_rounds_fresh_draws_are_recorded_in_one_transaction_and_only_once(
    installed: Installed, tmp_path: Path
) -> None:
    svc, clients = installed
    poster, volunteer = clients[1], clients[5]
    bounty_id = _post(poster, clients[2].address, svc.store)
    worker.intake(bounty_id)
    NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
    tasks = [task_id_of(bounty_id, 0, shard) for shard in range(2)]
    volunteer.w3.provider.make_request(RPCEndpoint("evm_mine"), [])  # the last commit's draw block

    worker.advance(bounty_id)
    worker.advance(bounty_id)  # a second pass finds them recorded and sends nothing
    drawn = poster.market.events.ChallengeDrawn().get_logs(from_block=0, argument_filters={"taskId": tasks})
    assert sorted(int(e["args"]["taskId"]) for e in drawn) == tasks
    assert len({e["transactionHash"] for e in drawn}) == 1
    assert all(worker.check_commit(task_id) == [True, True] for task_id in tasks)  # replayed from the recorded draw


class FlakyStore:
    """The embedded store behind a switch: while `down`, every read fails as an unreachable daemon's would."""

    def __init__(self, inner: ContentStore) -> None:
        self.inner, self.down = inner, False

    def put(self, data: bytes) -> str:
        return self.inner.put(data)

    def get(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        if self.down:
            raise StoreUnavailable("IPFS daemon unreachable (test switch)")
        return self.inner.get(cid, max_bytes)

    def get_buffer(self, cid: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytearray:
        if self.down:
            raise StoreUnavailable("IPFS daemon unreachable (test switch)")
        return self.inner.get_buffer(cid, max_bytes)

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def pin(self, cid: str) -> None:
        self.inner.pin(cid)


def test_a_commit_whose_audit_met_an_outage_is_audited_again(installed: Installed, tmp_path: Path) -> None:
    """An unchecked lazy commit is disputed by the coordinator's audit; if our own store was down during the
    first audit, the retry must audit it again (it used to be marked as handled before the audit ran)."""
    svc, clients = installed
    poster, coordinator_client, lazy = clients[1], clients[2], clients[7]
    coordinator_client.stake(1_000 * UNIT)  # a dispute needs free stake of the bounty's stakePerTask
    spec = small_spec(data={"shards": 1}, steps_per_task=10, rounds=1)
    rare = BountyTerms(
        coordinator=coordinator_client.address,
        reward="0.1",
        stake="1000",
        check_probability=0.0001,
        min_check_probability=0.0001,
    )
    poster.ensure_allowance(rare.escrow(1))
    bounty_id = poster.post_bounty(rare.posting(spec, svc.store.put(spec.canonical_bytes()), poster.now()))
    worker.intake(bounty_id)
    NodeDaemon(lazy, svc.store, NodeOptions(work_dir=tmp_path / "lazy", once=True), QUIET, trainer=lazy_trainer).run()
    task_id = task_id_of(bounty_id, 0, 0)
    for _ in range(2):  # a view reads the latest block: the draw block must be behind it
        lazy.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert poster.challenge(task_id)[0] is False  # unchecked: only the coordinator's audit can catch it

    flaky = FlakyStore(svc.store)
    coordinator = Coordinator(coordinator_client, flaky, QUIET)
    flaky.down = True
    with pytest.raises(StoreUnavailable):
        coordinator.audit_and_dispute(task_id)  # Celery retries this task
    flaky.down = False
    assert coordinator.audit_and_dispute(task_id) is True
    assert poster.task(task_id).status == TaskStatus.CHALLENGED


def test_an_honest_10m_parameter_model_is_paid_end_to_end(installed: Installed, tmp_path: Path) -> None:
    """10.07M parameters (a CNN) with Adam: 121 MB checkpoints. The verifier's read limits follow from the spec's
    model (a fixed 64 MiB cap used to report a 6.5M-parameter honest trace "malformed … over the limit")."""
    svc, clients = installed
    poster, volunteer = clients[1], clients[5]
    spec = small_spec(
        data={"shards": 1},
        steps_per_task=10,
        rounds=1,
        model={"family": "mnist-cnn", "params": {"channels": 25, "hidden": 4096}},  # 50·49·4096 + … = 10.07M
    )
    terms = BountyTerms(
        coordinator=clients[2].address, check_probability=1.0, min_check_probability=1.0, segments_per_check=1
    )
    poster.ensure_allowance(terms.escrow(1))
    bounty_id = poster.post_bounty(terms.posting(spec, svc.store.put(spec.canonical_bytes()), poster.now()))
    worker.intake(bounty_id)
    NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "big", once=True), QUIET).run()
    task_id = task_id_of(bounty_id, 0, 0)
    trace = TraceManifest.parse(svc.store.get(svc.coordinator.view.commit(task_id).trace_cid))
    assert len(svc.store.get(trace.checkpoints[-1].cid, 1 << 30)) > 120_000_000
    for _ in range(2):
        volunteer.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert worker.check_commit(task_id) == [True, True]
    assert poster.task(task_id).status == TaskStatus.ACCEPTED


def test_a_verdict_on_a_commit_settled_meanwhile_is_not_sent_against_the_next_one(
    installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """attest() acts on the task's current attempt. While one verifier judges a lazy commit, other verifiers
    slash it and an honest volunteer re-commits the task: the stale FAIL must not land on the honest commit."""
    svc, clients = installed
    poster, lazy, honest, other_verifier, third_verifier = clients[1], clients[6], clients[5], clients[4], clients[7]
    spec = small_spec(data={"shards": 1}, steps_per_task=10, rounds=1)
    terms = BountyTerms(coordinator=clients[2].address, check_probability=1.0, min_check_probability=1.0)
    poster.ensure_allowance(terms.escrow(1))
    bounty_id = poster.post_bounty(terms.posting(spec, svc.store.put(spec.canonical_bytes()), poster.now()))
    worker.intake(bounty_id)
    third_verifier.register_verifier()  # seated before the commit, so drawn for it
    NodeDaemon(lazy, svc.store, NodeOptions(work_dir=tmp_path / "lazy", once=True), QUIET, trainer=lazy_trainer).run()
    task_id = task_id_of(bounty_id, 0, 0)
    for _ in range(2):
        lazy.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    judged = verifier_worker.audit_trace

    def audit_while_others_settle(view: ChainView, task: int, at: Task | None = None) -> CommitAudit:
        audit = judged(view, task, at)
        other_verifier.attest(task, False)  # the others reach quorum first and the referee upholds it: reopened
        third_verifier.attest(task, False)
        svc.coordinator.market.rule(task, False)
        NodeDaemon(honest, svc.store, NodeOptions(work_dir=tmp_path / "honest", once=True), QUIET).run()
        return audit

    monkeypatch.setattr(verifier_worker, "audit_trace", audit_while_others_settle)
    verifier = svc.verifiers[0]
    assert verifier.verify(task_id) is None  # its FAIL was about the slashed attempt: not sent
    task = poster.task(task_id)
    assert (task.status, task.attempt, task.volunteer) == (TaskStatus.COMMITTED, 1, honest.address)
    fail_votes = poster.market.events.VerdictAttested().get_logs(from_block=0, argument_filters={"taskId": task_id})
    assert [e["args"]["verifier"] for e in fail_votes] == [other_verifier.address, third_verifier.address]


def test_a_spec_posted_in_another_json_form_opens_a_round_every_node_can_load(
    installed: Installed, tmp_path: Path
) -> None:
    """Valid spec JSON that is not our canonical encoding (indented, keys in another order): the round manifest
    must name the posted CID; re-encoding it named another CID, which every node refuses as a foreign spec."""
    svc, clients = installed
    poster, volunteer = clients[1], clients[5]
    spec = small_spec(data={"shards": 1}, steps_per_task=10, rounds=1)
    posted = json.dumps(dict(reversed(list(json.loads(spec.canonical_bytes()).items()))), indent=2).encode()
    assert posted != spec.canonical_bytes()
    terms = BountyTerms(coordinator=clients[2].address, check_probability=1.0, min_check_probability=1.0)
    poster.ensure_allowance(terms.escrow(1))
    bounty_id = poster.post_bounty(terms.posting(spec, svc.store.put(posted), poster.now()))
    assert worker.intake(bounty_id) is not None
    NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
    assert poster.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.COMMITTED


def _two_checked_rounds(svc: service_module.Service, clients: list[Market]) -> tuple[TrainingSpec, int]:
    """A bounty of two rounds of one always-checked task, posted by clients[1] and taken in: its spec and id."""
    poster = clients[1]
    spec = small_spec(data={"shards": 1}, steps_per_task=10, rounds=2)
    terms = BountyTerms(coordinator=clients[2].address, check_probability=1.0, min_check_probability=1.0)
    poster.ensure_allowance(terms.escrow(2))
    bounty_id = poster.post_bounty(terms.posting(spec, svc.store.put(spec.canonical_bytes()), poster.now()))
    worker.intake(bounty_id)
    return spec, bounty_id


def test_each_round_publishes_a_cross_class_tolerance_measured_from_its_own_model(
    installed: Installed, tmp_path: Path
) -> None:
    """How far rounding carries honest work across numeric classes depends on where training is and on the data,
    so each round's δ× is measured from that round's model on the job's first shard when the previous round closes,
    not once at intake; it never shrinks."""
    svc, clients = installed
    volunteer = clients[5]
    spec, bounty_id = _two_checked_rounds(svc, clients)
    for round_ in (0, 1):
        NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
        volunteer.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        assert worker.check_commit(task_id_of(bounty_id, round_, 0)) == [True, True]
        assert worker.advance(bounty_id)["closed_round"] == round_
    view = svc.coordinator.view
    first, second = (view.round(bounty_id, r) for r in (0, 1))
    shard = view.tensors(first.manifest.shard_cids[0])
    initial = calibrate(spec, None, shard).tolerance
    assert first.manifest.cross_class_tolerance == initial != calibrate(spec).tolerance  # the job's data
    later = calibrate(spec, view.round_weights(second), shard).tolerance
    assert later != initial and second.manifest.cross_class_tolerance == max(initial, later)


def test_the_next_rounds_tolerance_is_measured_while_the_last_commit_waits_and_the_close_reuses_it(
    installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a round measures the next round's δ× (seconds of training and two replaying processes): done
    while the round's last commit waits out its windows, the close that follows finds it measured."""
    import judge.calibration as calibration

    measured: list[tuple[object, ...]] = []
    real_measure = calibration._measure

    def counted(*args: Any) -> calibration.Calibration:
        measured.append(args)
        return real_measure(*args)

    monkeypatch.setattr(calibration, "_measure", counted)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing measured by an earlier test
    monkeypatch.setattr(calibration, "_MEMO", {})
    svc, clients = installed
    volunteer = clients[5]
    spec, bounty_id = _two_checked_rounds(svc, clients)
    coordinator = svc.coordinator
    assert coordinator.close_preparation(bounty_id) is None  # the task waits for a volunteer
    NodeDaemon(volunteer, svc.store, NodeOptions(work_dir=tmp_path / "node", once=True), QUIET).run()
    volunteer.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert coordinator.close_preparation(bounty_id) == f"{bounty_id}:0:0"
    assert worker.advance(bounty_id)["closed_round"] is None  # the beat's advance queues the preparation, once
    assert service_module._redis().exists(f"shardwork:queued:prepare:{bounty_id}:0:0")
    before = len(measured)
    assert coordinator.prepare_close(bounty_id) is True
    assert len(measured) == before + 1  # the aggregate of the waiting commit, calibrated
    assert worker.check_commit(task_id_of(bounty_id, 0, 0)) == [True, True]
    assert worker.advance(bounty_id)["closed_round"] == 0
    assert len(measured) == before + 1  # the close found it
    view = coordinator.view
    second = view.round(bounty_id, 1)
    shard = view.tensors(second.manifest.shard_cids[0])
    assert second.manifest.cross_class_tolerance == max(
        calibration.calibrate(spec, None, shard).tolerance,
        calibration.calibrate(spec, view.round_weights(second), shard).tolerance,
    )
    assert coordinator.close_preparation(bounty_id) is None  # the last round: no next round to measure for


def test_short_steps_have_their_own_queue_and_commit_checks_stay_on_the_default_one() -> None:
    """The moves worker (devtools/localstack.py) takes only the moves queue: the scan, settling and closing, and
    game moves must be routed there, and the replaying work must not be, or a ruling waits behind replays."""
    route = worker.app.amqp.router.route
    for name in ("shardwork.housekeeping", "shardwork.advance", "shardwork.play_game"):
        assert route({}, name)["queue"].name == worker.MOVES_QUEUE
    for name in ("shardwork.check_commit", "shardwork.intake"):
        assert route({}, name)["queue"].name == worker.app.conf.task_default_queue != worker.MOVES_QUEUE
    # The close's preparation is neither behind the replays nor in front of a ruling.
    assert route({}, "shardwork.prepare_close")["queue"].name == worker.PREPARE_QUEUE
    assert worker.PREPARE_QUEUE not in (worker.MOVES_QUEUE, worker.app.conf.task_default_queue)


def test_a_disk_capped_node_frees_a_traces_inner_checkpoints_once_its_round_closed(
    installed: Installed, tmp_path: Path
) -> None:
    svc, clients = installed
    volunteer = clients[5]
    _, bounty_id = _two_checked_rounds(svc, clients)
    options = NodeOptions(work_dir=tmp_path / "node", once=True, caps=Caps(max_disk_bytes=10**12))
    traces = []
    for round_ in (0, 1):
        NodeDaemon(volunteer, svc.store, options, QUIET).run()
        task_id = task_id_of(bounty_id, round_, 0)
        event = svc.coordinator.market.commit_event(task_id)
        assert event is not None
        traces.append(TraceManifest.parse(svc.store.get(event["traceCid"])))
        if round_ == 0:
            held = HeldTraces(tmp_path / "node" / "held-traces.json").tasks()
            assert held == {task_id: [c.cid for c in traces[0].checkpoints[1:-1]]}  # kept while it may be checked
            volunteer.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            assert worker.check_commit(task_id) == [True, True]
            assert worker.advance(bounty_id)["closed_round"] == 0
    # Round 1's pass found round 0 closed: its inner checkpoints are gone; its manifest, update and end state stay.
    assert not any(svc.store.has(c.cid) for c in traces[0].checkpoints[1:-1])
    assert svc.store.has(traces[0].update_cid) and svc.store.has(traces[0].checkpoints[-1].cid)
    assert all(svc.store.has(c.cid) for c in traces[1].checkpoints[1:])  # round 1 is still open
    assert list(HeldTraces(tmp_path / "node" / "held-traces.json").tasks()) == [task_id_of(bounty_id, 1, 0)]
