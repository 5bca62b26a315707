"""Every cheating strategy we know of, against the real contracts, coordinator and verifiers: each is
slashed, rejected, penalized or kept out of the model, asserted on-chain. And the other side: honest
volunteers are never slashed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from web3.types import RPCEndpoint

from content.store import ContentStore
from coordinator.rounds import Coordinator
from devtools.adversaries import lazy_trainer, partial_faker
from judge.audit import audit
from judge.context import ChainView
from ledger.errors import error_class
from ledger.index import EventIndex
from ledger.market import TaskStatus, task_id_of
from node.defense import Defender
from node.trainer import TaskInput, TraceResult, train_task
from protocol.aggregate import aggregate
from protocol.cid import cid_of
from protocol.errors import ContentMissing
from protocol.manifests import RoundManifest, TraceManifest
from protocol.spec import AggregationSpec
from protocol.tensors import Tensors, canonical_hash, to_bytes
from protocol.training import MODEL_PREFIX, initial_weights
from tests.support.arena import QUIET, UNIT, Arena, post, spec
from verifier.worker import VerifierWorker


def rewrite_last(modify: Callable[[Tensors], None]) -> Callable[..., TraceResult]:
    """Trains honestly, then replaces the final checkpoint with `modify`'s version and re-commits to it."""

    def trainer(task: TaskInput, store: ContentStore, workdir: Path, *rest: Any) -> TraceResult:
        honest = train_task(task, store, workdir, *rest)
        from protocol.verify import parse_checkpoint

        last = honest.manifest.checkpoints[-1]
        tensors = parse_checkpoint(store.get(last.cid), task.spec, task.workload, last.step)
        modify(tensors)
        data = to_bytes(tensors)
        forged = last.model_copy(update={"cid": store.put(data), "hash": "0x" + canonical_hash(tensors).hex()})
        update = {n: tensors[MODEL_PREFIX + n] - task.round_weights[n] for n in task.round_weights}
        manifest = honest.manifest.model_copy(
            update={
                "checkpoints": [*honest.manifest.checkpoints[:-1], forged],
                "update_cid": store.put(to_bytes(update)),
                "update_hash": "0x" + canonical_hash(update).hex(),
            }
        )
        return TraceResult(
            manifest, store.put(manifest.canonical_bytes()), manifest.trace_root(), canonical_hash(update)
        )

    return trainer


def nan_weights(t: Tensors) -> None:
    t[MODEL_PREFIX + "0.weight"][0, 0] = float("nan")


def scaled_weights(t: Tensors) -> None:
    for name in [n for n in t if n.startswith(MODEL_PREFIX)]:
        t[name] *= 1000.0


class NoUpload:
    """A volunteer's view of the store when it never publishes: reads work, writes go nowhere."""

    def __init__(self, shared: ContentStore) -> None:
        self.shared = shared

    def get(self, cid: str, max_bytes: int = 1 << 29) -> bytes:
        return self.shared.get(cid, max_bytes)

    def get_buffer(self, cid: str, max_bytes: int = 1 << 29) -> bytearray:
        return self.shared.get_buffer(cid, max_bytes)

    def put(self, data: bytes) -> str:
        return cid_of(data)

    def has(self, cid: str) -> bool:
        return self.shared.has(cid)

    def pin(self, cid: str) -> None:
        pass


CHEATS: dict[str, Callable[..., TraceResult]] = {
    "lazy-random-hashes": lazy_trainer,
    "partial-faker-0.1": partial_faker(0.1),
    "partial-faker-0.5": partial_faker(0.5),
    "partial-faker-0.9": partial_faker(0.9),
    "nan-weights": rewrite_last(nan_weights),
    "hugely-scaled-update": rewrite_last(scaled_weights),
    "stale-model": lambda task, *a: train_task(
        replace(task, round_weights=initial_weights(task.spec.model_copy(update={"init_seed": 99}))), *a
    ),
    "other-data-order": lambda task, *a: train_task(replace(task, seed=b"\x07" * 32), *a),
}


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_cheater_is_slashed_and_the_task_reopens(arena: Arena, cheat: str) -> None:
    bounty_id = post(arena)
    cheater = arena.account()
    stake_before = cheater.stake_of(cheater.address).bonded
    task_id = arena.work_once(cheater, CHEATS[cheat])
    assert task_id is not None
    assert task_id >> 64 == bounty_id  # a task of this test's bounty, not one an earlier test left open
    cheated_attempt = arena.m.poster.task(task_id).attempt
    verdicts = arena.verify(task_id)  # FAIL votes, or a diverged replay contested and proven in a game
    assert False in verdicts and True not in verdicts
    assert arena.slashed(task_id, cheater.address)
    assert arena.status(task_id) == TaskStatus.OPEN  # reopened for an honest volunteer
    assert stake_before - cheater.stake_of(cheater.address).bonded == 100 * UNIT
    assert arena.work_once(cheater, CHEATS[cheat]) is None  # barred from the poster's tasks: its node moves on
    honest = arena.account()
    assert arena.work_once(honest) == task_id
    assert arena.verify(task_id) == [True, True]
    assert arena.status(task_id) == TaskStatus.ACCEPTED
    # On-chain: one slash of the cheater's whole task stake, then the same task reopened as a fresh attempt,
    # redone by the honest volunteer and paid to it alone; nothing of it reaches the cheater.
    slashes = [(e["bountyId"], e["volunteer"], e["amount"]) for e in arena.events("TaskSlashed", taskId=task_id)]
    assert slashes == [(bounty_id, cheater.address, 100 * UNIT)]
    redone = arena.m.poster.task(task_id)
    assert redone.volunteer == honest.address and redone.attempt == cheated_attempt + 1
    committers = [e["volunteer"] for e in arena.events("TaskCommitted", taskId=task_id)]
    assert committers == [cheater.address, honest.address]
    accepted = [(e["bountyId"], e["volunteer"], e["reward"]) for e in arena.events("TaskAccepted", taskId=task_id)]
    assert accepted == [(bounty_id, honest.address, 10 * UNIT)]
    assert honest.claimable(honest.address) == 10 * UNIT and cheater.claimable(cheater.address) == 0
    assert not arena.slashed(task_id, honest.address) and honest.stake_of(honest.address).locked == 0


def test_a_copied_commitment_is_worthless_to_the_copier(arena: Arena) -> None:
    post(arena)
    victim, copier = arena.account(), arena.account()
    results: list[TraceResult] = []

    def record(task: TaskInput, *rest: Any) -> TraceResult:
        results.append(train_task(task, *rest))
        return results[-1]

    victim_task = arena.work_once(victim, record)
    copier_task = arena.work_once(copier, lambda *_: results[0])  # commits the victim's root, hash and CIDs
    assert victim_task != copier_task and copier_task is not None and victim_task is not None
    assert arena.verify(copier_task) == [False, False] and arena.slashed(copier_task, copier.address)
    assert arena.verify(victim_task) == [True, True] and not arena.slashed(victim_task, victim.address)


def test_a_trace_never_uploaded_fails_once_overdue(arena: Arena) -> None:
    post(arena)
    cheater = arena.account()
    task_id = arena.work_once(cheater, train_task, store=NoUpload(arena.m.store))
    assert task_id is not None
    workers: list[Coordinator | VerifierWorker] = [arena.coordinator, *arena.verifiers]
    for worker in workers:
        worker.trace_timeout_s = 300
    try:
        assert arena.verify(task_id) == [None, None]  # it may still be uploading: no verdict yet
        arena.settle(task_id >> 64, seconds=301)
        for _ in range(2):  # the draw block, and one after it for a view at the head
            arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        assert [v.verify(task_id) for v in arena.verifiers] == [False, False]
        arena.play_games(task_id)  # the referee's review of the FAIL quorum
    finally:
        for worker in workers:
            worker.trace_timeout_s = 0
    assert arena.slashed(task_id, cheater.address)


class Unserved:
    """A verifier's view of the store while some CIDs are not served (the volunteer's node blips or is slow)."""

    def __init__(self, shared: ContentStore) -> None:
        self.shared, self.hidden = shared, set[str]()

    def get(self, cid: str, max_bytes: int = 1 << 29) -> bytes:
        return bytes(self.get_buffer(cid, max_bytes))

    def get_buffer(self, cid: str, max_bytes: int = 1 << 29) -> bytearray:
        if cid in self.hidden:
            raise ContentMissing(f"{cid} is not available from IPFS (504): no provider answered")
        return self.shared.get_buffer(cid, max_bytes)

    def put(self, data: bytes) -> str:
        return self.shared.put(data)

    def has(self, cid: str) -> bool:
        return cid not in self.hidden and self.shared.has(cid)

    def pin(self, cid: str) -> None:
        self.shared.pin(cid)


def test_a_checkpoint_not_served_yet_is_waited_for_and_an_honest_volunteer_is_paid(arena: Arena) -> None:
    """The checked segments' checkpoints are unreachable when the drawn verifiers first look (the volunteer's node
    blipped): they vote nothing, look again, and pass the work once it is served. Never served, it fails once
    the volunteer's time to serve is up, as a trace never uploaded does."""
    post(arena)
    volunteer = arena.account()
    task_id = arena.work_once(volunteer)
    assert task_id is not None
    arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    arena.coordinator.audit_and_dispute(task_id)
    trace = ChainView(arena.m.poster, arena.m.store).commit(task_id).trace_cid
    checkpoints = TraceManifest.parse(arena.m.store.get(trace)).checkpoints[1:-1]  # the audit reads first and last
    blipped = Unserved(arena.m.store)
    blipped.hidden = {c.cid for c in checkpoints}
    verifiers = [VerifierWorker(v.market, blipped, QUIET, trace_timeout_s=300) for v in arena.verifiers]
    assert [v.verify(task_id) for v in verifiers] == [None, None]  # nothing decided on a blip
    assert arena.status(task_id) in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED)
    blipped.hidden.clear()
    assert [v.verify(task_id) for v in verifiers] == [True, True]
    assert arena.status(task_id) == TaskStatus.ACCEPTED and volunteer.claimable(volunteer.address) == 10 * UNIT

    other = arena.account()  # the bounty's other shard: its checkpoints are never served to the verifiers
    task_id = arena.work_once(other)
    assert task_id is not None
    arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    trace = ChainView(arena.m.poster, arena.m.store).commit(task_id).trace_cid
    blipped.hidden = {c.cid for c in TraceManifest.parse(arena.m.store.get(trace)).checkpoints[1:-1]}
    assert [v.verify(task_id) for v in verifiers] == [None, None]
    arena.settle(task_id >> 64, seconds=301)
    for _ in range(2):  # the draw block, and one after it for a view at the head
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert [v.verify(task_id) for v in verifiers] == [False, False]  # its time to serve is up
    arena.play_games(task_id)  # the FAIL quorum's review: the referee's own node can fetch it, and it is honest
    assert not arena.slashed(task_id, other.address)


def test_a_lying_committee_cannot_slash_an_honest_volunteer_the_referee_reviews_and_pays_it(arena: Arena) -> None:
    """Both drawn verifiers vote FAIL on honest work (colluding, or of another class and wrong): a vote carries
    no proof, so the FAIL quorum only opens the referee's review, which replays the commit and accepts it."""
    post(arena, checkBps=10_000, minCheckBps=10_000)
    volunteer = arena.account()
    task_id = arena.work_once(volunteer)
    assert task_id is not None
    arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    for verifier in arena.verifiers:
        verifier.market.attest(task_id, False)
    assert arena.status(task_id) == TaskStatus.CONTESTED and arena.m.poster.game(task_id).is_review
    arena.play_games(task_id)
    assert arena.status(task_id) == TaskStatus.ACCEPTED and not arena.slashed(task_id, volunteer.address)
    assert volunteer.claimable(volunteer.address) == 10 * UNIT
    fees = [
        e for v in arena.verifiers for e in arena.events("RewardCredited", account=v.market.address, taskId=task_id)
    ]
    assert fees == []  # the liars earn nothing
    assert volunteer.stake_of(volunteer.address).locked == 0


def test_the_referee_waits_its_patience_for_content_before_missing_counts_against_the_volunteer(
    arena: Arena,
) -> None:
    post(arena)
    cheater = arena.account()
    task_id = arena.work_once(cheater, train_task, store=NoUpload(arena.m.store))
    assert task_id is not None
    for _ in range(2):  # the draw block, and one after it for a view at the head
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert [v.verify(task_id) for v in arena.verifiers] == [False, False]  # trace timeout 0: missing is a FAIL
    referee = arena.coordinator.referee
    referee.patience_s = 300
    try:
        assert referee.tend(task_id) is None  # asked again later: a blip of either node must not decide
        arena.settle(task_id >> 64, seconds=301)
        assert referee.tend(task_id) == "ruled"
    finally:
        referee.patience_s = 0
    assert arena.slashed(task_id, cheater.address)


def test_a_watcher_contests_an_unchecked_fake_the_committee_never_replays(arena: Arena) -> None:
    """A commit the chain leaves unchecked is never replayed by a committee; a verifier run with --watch-all
    replays its sampled segments anyway, contests the diverged one and wins the game before the task settles."""
    bounty_id = post(arena, s=spec(), checkBps=1, minCheckBps=1, rewardPerTask=UNIT // 10, stakePerTask=1_000 * UNIT)
    faker, watcher_account = arena.account(stake=2_000 * UNIT), arena.account(stake=2_000 * UNIT)
    task_id = arena.work_once(faker, partial_faker(0.5, keep_counters=True))
    assert task_id is not None and task_id >> 64 == bounty_id
    for _ in range(2):  # a view reads at the head: the draw block must be behind it
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert arena.m.poster.challenge(task_id)[0] is False  # unchecked: the committee replays nothing
    assert [v.verify(task_id) for v in arena.verifiers] == [None, None]
    watcher = VerifierWorker(watcher_account, arena.m.store, QUIET, watch_all=True)
    assert watcher.verify(task_id) is None  # no vote: it is on no committee
    assert arena.status(task_id) == TaskStatus.CONTESTED and watcher.done_with(arena.m.poster.task(task_id))
    defender = Defender(faker, ChainView(faker, arena.m.store), QUIET)
    for _ in range(16):  # the faker's node defends, the watcher answers, the coordinator referees
        if arena.status(task_id) != TaskStatus.CONTESTED:
            break
        defender.play()
        watcher.challenger.play()
        arena.coordinator.referee.tend(task_id)
    assert arena.slashed(task_id, faker.address) and watcher_account.claimable(watcher_account.address) > 0
    assert watcher.replayed_segments == arena.m.poster.bounty(bounty_id).raw["segmentsPerCheck"]


def test_claim_and_abandon_pays_the_lease_penalty_and_frees_the_task(arena: Arena) -> None:
    bounty_id = post(arena)
    griefer = arena.account()
    task_id = next(t for t in arena.coordinator.current_tasks(bounty_id) if arena.status(t) == TaskStatus.OPEN)
    griefer.claim(task_id)
    assert arena.coordinator.expire_leases(bounty_id) == 0  # the lease is still running
    arena.settle(bounty_id, seconds=3_601)
    assert arena.coordinator.expire_leases(bounty_id) == 1
    s = griefer.stake_of(griefer.address)
    assert arena.status(task_id) == TaskStatus.OPEN and s.locked == 0 and s.bonded == 1_000 * UNIT - 5 * UNIT


def test_sybil_accounts_with_small_stakes_cannot_claim(arena: Arena) -> None:
    bounty_id = post(arena)
    task_id = next(t for t in arena.coordinator.current_tasks(bounty_id) if arena.status(t) == TaskStatus.OPEN)
    for _ in range(3):
        sybil = arena.account(stake=99 * UNIT)  # just under the per-task stake
        with pytest.raises(error_class("StakingInsufficientFreeStake")):
            sybil.claim(task_id)
    assert arena.status(task_id) == TaskStatus.OPEN


def test_a_false_challenge_costs_the_challenger_its_bond_and_pays_the_volunteer(arena: Arena) -> None:
    bounty_id = post(arena, checkBps=5_000, minCheckBps=5_000)
    volunteer, challenger = arena.account(), arena.account()
    task_id = arena.work_once(volunteer)
    assert task_id is not None
    assert task_id >> 64 == bounty_id  # a task of this test's bounty, not one an earlier test left open
    challenger.ensure_allowance(20 * UNIT)
    balance = challenger.balance(challenger.address)
    challenger.dispute(task_id, 1)
    assert arena.status(task_id) == TaskStatus.CHALLENGED
    assert [v.verify(task_id) for v in arena.verifiers] == [True, True]
    assert arena.status(task_id) == TaskStatus.ACCEPTED and not arena.slashed(task_id, volunteer.address)
    assert (
        challenger.balance(challenger.address) == balance - 20 * UNIT and challenger.claimable(challenger.address) == 0
    )
    assert volunteer.claimable(volunteer.address) == 10 * UNIT + 20 * UNIT  # reward + the forfeited bond
    # On-chain: the challenger's one dispute posted the bond; the acceptance credited it, with the reward, to
    # the volunteer; nothing of this task was credited back to the challenger.
    disputes = [(e["challenger"], e["bond"]) for e in arena.events("TaskDisputed", taskId=task_id)]
    assert disputes == [(challenger.address, 20 * UNIT)]
    accepted = [(e["bountyId"], e["volunteer"], e["reward"]) for e in arena.events("TaskAccepted", taskId=task_id)]
    assert accepted == [(bounty_id, volunteer.address, 10 * UNIT + 20 * UNIT)]
    assert arena.events("RewardCredited", account=challenger.address) == []
    assert volunteer.stake_of(volunteer.address).locked == 0


@pytest.mark.parametrize("method", ["trimmed_mean", "centered_clip"])
@pytest.mark.parametrize("shards", [3, 4, 8])
def test_robust_aggregation_at_its_defaults_bounds_a_poisoned_update_that_went_unchecked(
    method: str, shards: int
) -> None:
    weights = {"w": torch.zeros(1000)}
    generator = torch.Generator().manual_seed(shards)
    honest = [
        {"w": torch.full((1000,), 0.01) + 0.001 * torch.randn(1000, generator=generator)} for _ in range(shards - 1)
    ]
    poisoned = {"w": torch.full((1000,), 1e6)}
    robust = aggregate(weights, [*honest, poisoned], AggregationSpec(method=method)).weights
    naive = aggregate(weights, [*honest, poisoned], AggregationSpec(method="mean")).weights
    honest_step = float(aggregate(weights, honest, AggregationSpec(method="mean")).weights["w"].norm())
    assert float(naive["w"].norm()) > 1e6 * honest_step
    # One poisoned update among the bounty's few moves the model about as far as an honest round does.
    assert float(robust["w"].norm()) < 1.5 * honest_step and math.isfinite(float(robust["w"].sum()))


def reckless(task: TaskInput, *rest: Any) -> TraceResult:
    """Trains with a learning rate 1,000× the spec's: a complete, self-consistent trace whose update wrecks the
    model. Only a replay would tell, and the test's bounty checks almost nothing."""
    optimizer = task.spec.optimizer.model_copy(update={"lr": 3.0})
    return train_task(replace(task, spec=task.spec.model_copy(update={"optimizer": optimizer})), *rest)


def test_an_unchecked_update_that_makes_the_model_worse_is_left_out_with_its_score_published(
    arena: Arena, tmp_path: Path
) -> None:
    s = spec(rounds=2, data={"shards": 3}, aggregation={"exclude_worse_by": 0.05}, optimizer={"lr": 0.003})
    # One check in 10,000 (stake × that still covers the tiny reward): nobody's commit is replayed.
    bounty_id = post(arena, s, checkBps=1, minCheckBps=1, rewardPerTask=UNIT // 100)
    volunteers = [arena.account() for _ in range(3)]
    for volunteer in volunteers:
        task_id = arena.work_once(volunteer)
        assert task_id is not None and arena.verify(task_id) == [None, None]  # unchecked: nobody votes
    arena.settle(bounty_id)
    first = arena.coordinator.try_close_round(bounty_id)
    assert first is not None, [arena.status(t) for t in arena.coordinator.current_tasks(bounty_id)]
    for volunteer in volunteers[:2]:
        task_id = arena.work_once(volunteer)
        assert task_id is not None and arena.verify(task_id) == [None, None]
    wrecked = arena.work_once(volunteers[2], reckless)
    assert wrecked is not None and arena.verify(wrecked) == [None, None]
    arena.settle(bounty_id)
    closed = arena.coordinator.try_close_round(bounty_id)
    assert closed is not None and closed.finalized
    final = RoundManifest.parse(arena.m.store.get(closed.manifest_cid))
    scores = {score.task_id: score for score in final.update_scores}
    assert set(scores) == {task_id_of(bounty_id, 1, shard) for shard in range(3)}
    assert not scores[wrecked].used and scores[wrecked].score < 0.95 * first.metric
    assert all(score.used for task, score in scores.items() if task != wrecked)
    assert closed.accepted_updates == 2
    assert arena.status(wrecked) == TaskStatus.ACCEPTED and not arena.slashed(wrecked, volunteers[2].address)
    # Anyone recomputes the scores, the selection and the aggregate from the chain and the content store.
    report = audit(
        EventIndex(tmp_path / "index.sqlite", arena.m.poster),
        ChainView(arena.m.poster, arena.m.store),
        bounty_id=bounty_id,
    )
    assert report.data_problems == []


@pytest.mark.slow
def test_no_honest_volunteer_is_slashed_over_200_tasks(arena: Arena) -> None:
    s = spec(rounds=20, data={"shards": 10}, steps_per_task=10)
    bounty_id = post(arena, s, segmentsPerCheck=2)
    volunteers = [arena.account(stake=5_000 * UNIT) for _ in range(3)]
    tasks = slashes = 0
    for _round in range(s.rounds):
        for shard in range(s.data.shards):
            task_id = arena.work_once(volunteers[shard % 3])
            assert task_id is not None
            verdicts = arena.verify(task_id)
            assert False not in verdicts, (task_id, verdicts)
            tasks += 1
        arena.settle(bounty_id)
        assert arena.coordinator.try_close_round(bounty_id) is not None
    for v in volunteers:
        logs = v.market.events.TaskSlashed().get_logs(from_block=0, argument_filters={"volunteer": v.address})
        slashes += len(logs)
    assert tasks == 200 and slashes == 0
    assert arena.m.poster.bounty(bounty_id).status.name == "FINALIZED"
