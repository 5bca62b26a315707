"""The committee reads a commit's trace and its sampled segments' checkpoints, never the last checkpoint unless it
samples the last segment (whose replay yields that end and checks the update is made of it) or the commit is
disputed; the coordinator reads the trace manifest and the update as sent, never a checkpoint, and disputes an
update it cannot use. On the real contracts, coordinator and verifiers: an update that is not the trace's end − the
round's model is slashed when its last segment is replayed or the task is disputed, and an honest commit's last
checkpoint is fetched by nobody who did not sample it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3.types import RPCEndpoint

from content.store import ContentStore
from node.trainer import TaskInput, TraceResult, train_task
from protocol.cid import b58decode
from protocol.manifests import TraceManifest
from protocol.tensors import Tensors, from_bytes, to_bytes
from tests.support.arena import UNIT, Arena, post, spec

SEGMENTS = 4  # spec(): 20 steps, a checkpoint every 5


def inflated_update(task: TaskInput, store: ContentStore, workdir: Path, *rest: Any) -> TraceResult:
    """Trains honestly (every segment replays) but commits to three times its update: a self-consistent
    manifest naming an update the trace's end does not make. Only a check of the update's derivation tells."""
    honest = train_task(task, store, workdir, *rest)
    update = from_bytes(store.get(honest.manifest.update_cid))
    inflated: Tensors = {name: 3 * t for name, t in update.items()}
    update_cid = store.put(to_bytes(inflated))
    update_hash = b58decode(update_cid)[2:]  # the CID of canonical bytes carries their canonical hash
    manifest = honest.manifest.model_copy(update={"update_cid": update_cid, "update_hash": "0x" + update_hash.hex()})
    return TraceResult(manifest, store.put(manifest.canonical_bytes()), manifest.trace_root(), update_hash)


class ReadLog:
    """A verifier's view of the shared store that notes every CID it reads."""

    def __init__(self, shared: ContentStore) -> None:
        self.shared, self.read = shared, list[str]()

    def get(self, cid: str, max_bytes: int = 1 << 29) -> bytes:
        self.read.append(cid)
        return self.shared.get(cid, max_bytes)

    def get_buffer(self, cid: str, max_bytes: int = 1 << 29) -> bytearray:
        self.read.append(cid)
        return self.shared.get_buffer(cid, max_bytes)

    def put(self, data: bytes) -> str:
        return self.shared.put(data)

    def has(self, cid: str) -> bool:
        return self.shared.has(cid)

    def pin(self, cid: str) -> None:
        self.shared.pin(cid)


def drawn(arena: Arena, task_id: int) -> list[int]:
    for _ in range(2):  # a view reads at the head: the draw block must be behind it
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    checked, segments = arena.m.poster.challenge(task_id)
    assert checked
    return segments


def disputers(arena: Arena, task_id: int) -> list[str]:
    return [str(e["challenger"]) for e in arena.events("TaskDisputed", taskId=task_id)]


def malformed_update(task: TaskInput, store: ContentStore, workdir: Path, *rest: Any) -> TraceResult:
    """Trains honestly but commits to an update that is not laid out as the spec's weights (one tensor short):
    its CID and hash agree, so only reading it tells."""
    honest = train_task(task, store, workdir, *rest)
    update = from_bytes(store.get(honest.manifest.update_cid))
    update.pop(sorted(update)[0])
    update_cid = store.put(to_bytes(update))
    update_hash = b58decode(update_cid)[2:]
    manifest = honest.manifest.model_copy(update={"update_cid": update_cid, "update_hash": "0x" + update_hash.hex()})
    return TraceResult(manifest, store.put(manifest.canonical_bytes()), manifest.trace_root(), update_hash)


def test_an_update_not_made_of_the_trace_is_slashed_by_the_replay_of_its_last_segment(arena: Arena) -> None:
    """The derivation of the update is checked with the last segment, whose replay yields the end it is made of:
    a committee replaying it slashes the cheater by itself (the coordinator, which reads only the manifest and the
    well-formed update, has nothing to dispute)."""
    post(arena, spec(), segmentsPerCheck=SEGMENTS)
    cheater = arena.account()
    task_id = arena.work_once(cheater, inflated_update)
    assert task_id is not None
    assert SEGMENTS - 1 in drawn(arena, task_id)
    verdicts = arena.verify(task_id)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(task_id, cheater.address)
    assert disputers(arena, task_id) == []


def test_a_challenge_of_an_unchecked_inflated_update_slashes_it(arena: Arena) -> None:
    """Unchecked, the inflated update passes the coordinator's audit (it is well-formed and served); anyone who
    suspects it disputes the task, and a disputed commit is audited in full: the end read, the update recomputed."""
    terms = {"checkBps": 1, "minCheckBps": 1, "rewardPerTask": UNIT // 10, "stakePerTask": 1_000 * UNIT}
    post(arena, spec(), segmentsPerCheck=1, **terms)
    cheater, challenger = arena.account(stake=2_000 * UNIT), arena.account()
    task_id = arena.work_once(cheater, inflated_update)
    assert task_id is not None
    for _ in range(2):
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert arena.m.poster.challenge(task_id)[0] is False
    assert arena.coordinator.audit_and_dispute(task_id) is False
    challenger.ensure_allowance(20 * UNIT)
    challenger.dispute(task_id, SEGMENTS - 1)
    verdicts = arena.verify(task_id)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(task_id, cheater.address)
    assert disputers(arena, task_id) == [challenger.address]


def test_an_unchecked_update_of_the_wrong_layout_is_disputed_by_the_coordinator_and_slashed(arena: Arena) -> None:
    """The coordinator reads every update it would aggregate: one that is not the spec's weights' layout is
    disputed, and the full audit the dispute calls for finds it is not made of the trace's end."""
    terms = {"checkBps": 1, "minCheckBps": 1, "rewardPerTask": UNIT // 10, "stakePerTask": 1_000 * UNIT}
    post(arena, spec(), segmentsPerCheck=1, **terms)
    cheater = arena.account(stake=2_000 * UNIT)
    task_id = arena.work_once(cheater, malformed_update)
    assert task_id is not None
    for _ in range(2):
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert arena.m.poster.challenge(task_id)[0] is False  # unchecked until disputed
    verdicts = arena.verify(task_id)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(task_id, cheater.address)
    assert disputers(arena, task_id) == [arena.coordinator.market.address]


def test_the_coordinator_reads_an_honest_commits_manifest_and_update_never_a_checkpoint(arena: Arena) -> None:
    """What makes the next round: the trace manifest (what the shard carries on is named there) and the update as
    sent. The last checkpoint stays on the volunteer's node."""
    post(arena, spec(), segmentsPerCheck=1)
    task_id = arena.work_once(arena.account())
    assert task_id is not None
    drawn(arena, task_id)  # the draw block exists: the coordinator audits only drawn commits
    log = ReadLog(arena.coordinator.view.store)
    arena.coordinator.view.store = log
    try:
        assert arena.coordinator.audit_and_dispute(task_id) is False
    finally:
        arena.coordinator.view.store = log.shared
    commit = arena.coordinator.view.commit(task_id)
    manifest = TraceManifest.parse(arena.m.store.get(commit.trace_cid))
    volunteers_content = {commit.trace_cid, manifest.update_cid, *(c.cid for c in manifest.checkpoints)}
    assert {cid for cid in log.read if cid in volunteers_content} == {commit.trace_cid, manifest.update_cid}


def test_a_committee_fetches_only_its_sampled_segments_start_checkpoints_of_an_honest_commit(arena: Arena) -> None:
    """Exact replay in the volunteer's class needs each sampled segment's start (but checkpoint 0, which the
    checker builds) and nothing else: not the last
    checkpoint (a segment's replay is hashed against the committed end), not the update (recomputed from the end
    where the last segment is sampled, its hash compared). The honest volunteer is paid."""
    post(arena, spec(), segmentsPerCheck=1)
    volunteer = arena.account()
    task_id = arena.work_once(volunteer)
    assert task_id is not None
    segments = drawn(arena, task_id)
    logs = [ReadLog(v.view.store) for v in arena.verifiers]
    for verifier, log in zip(arena.verifiers, logs, strict=True):
        verifier.view.store = log
    try:
        assert arena.verify(task_id) == [True, True]
    finally:
        for verifier, log in zip(arena.verifiers, logs, strict=True):
            verifier.view.store = log.shared
    task = arena.m.poster.task(task_id)
    assert not arena.slashed(task_id, volunteer.address) and disputers(arena, task_id) == []
    trace = arena.coordinator.view.commit(task_id, task)
    manifest = TraceManifest.parse(arena.m.store.get(trace.trace_cid))
    volunteers_content = {c.cid for c in manifest.checkpoints} | {manifest.update_cid}
    wanted = {manifest.checkpoints[s].cid for s in segments if s > 0}  # checkpoint 0 is built, never fetched
    for log in logs:
        assert {cid for cid in log.read if cid in volunteers_content} == wanted
