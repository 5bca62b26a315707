"""The committee reads a commit's trace and its sampled segments' checkpoints, never the last checkpoint unless it
samples the last segment (whose replay yields that end) or the commit is disputed; the coordinator, which reads the
end to make the next round, disputes an update not made of it. On the real contracts, coordinator and verifiers:
an update that is not the trace's end − the round's model is slashed whichever segments the chain draws, and an
honest commit's last checkpoint is never fetched by a committee that did not sample it."""

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


def test_an_update_not_made_of_the_trace_is_slashed_whichever_segments_the_chain_draws(arena: Arena) -> None:
    """One segment checked per commit: where the draw misses the last segment the committee's replays all pass,
    and it is the coordinator's dispute that makes the committee audit the end; where the draw takes it, the
    committee's own replay of it finds the update is not made of the end it reached."""
    bounty_id = post(arena, spec(), segmentsPerCheck=1)
    seen: set[bool] = set()
    for _ in range(12):
        cheater = arena.account()
        task_id = arena.work_once(cheater, inflated_update)
        assert task_id is not None and task_id >> 64 == bounty_id
        last_drawn = SEGMENTS - 1 in drawn(arena, task_id)
        disputes_before = len(disputers(arena, task_id))
        verdicts = arena.verify(task_id)
        assert False in verdicts and True not in verdicts
        assert arena.slashed(task_id, cheater.address)
        # The coordinator disputes what it read wrong in the end whether or not the draw took the last segment.
        assert disputers(arena, task_id)[disputes_before:] == [arena.coordinator.market.address]
        seen.add(last_drawn)
        if False in seen:
            break
    assert False in seen  # the draw missed the last segment at least once (3 in 4 per commit)


def test_an_unchecked_inflated_update_is_disputed_and_slashed(arena: Arena) -> None:
    terms = {"checkBps": 1, "minCheckBps": 1, "rewardPerTask": UNIT // 10, "stakePerTask": 1_000 * UNIT}
    post(arena, spec(), segmentsPerCheck=1, **terms)
    cheater = arena.account(stake=2_000 * UNIT)
    task_id = arena.work_once(cheater, inflated_update)
    assert task_id is not None
    for _ in range(2):
        arena.m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    assert arena.m.poster.challenge(task_id)[0] is False  # unchecked until disputed
    verdicts = arena.verify(task_id)
    assert False in verdicts and True not in verdicts
    assert arena.slashed(task_id, cheater.address)
    assert disputers(arena, task_id) == [arena.coordinator.market.address]


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
