"""The honest side of carried state, on a real EVM with the real coordinator and verifiers: a volunteer back for
the next round takes the shard it trained (node.carry) and already holds what that shard carries (it put it into
its own node with its trace), and is paid for the task it trains from it; a newcomer whose shard's previous
volunteer no longer serves it starts fresh after its patience, says so in its trace, and is paid too."""

from __future__ import annotations

from pathlib import Path

from content.store import ContentStore
from ledger.market import TaskStatus, split_task_id, task_id_of
from node.daemon import NodeDaemon, NodeOptions
from protocol.errors import ContentMissing
from protocol.manifests import RoundManifest, TraceManifest
from tests.support.arena import QUIET, Arena, post, spec


class OwnNode:
    """A volunteer's own content node over the shared store: it holds what was put through it, and every other
    read is noted as a fetch from someone else's node."""

    def __init__(self, shared: ContentStore) -> None:
        self.shared, self.held, self.fetched = shared, set[str](), set[str]()

    def get(self, cid: str, max_bytes: int = 1 << 29) -> bytes:
        if cid not in self.held:
            self.fetched.add(cid)
        return self.shared.get(cid, max_bytes)

    def get_buffer(self, cid: str, max_bytes: int = 1 << 29) -> bytearray:
        if cid not in self.held:
            self.fetched.add(cid)
        return self.shared.get_buffer(cid, max_bytes)

    def put(self, data: bytes) -> str:
        cid = self.shared.put(data)
        self.held.add(cid)
        return cid

    def has(self, cid: str) -> bool:
        return cid in self.held

    def pin(self, cid: str) -> None:
        self.held.add(cid)


def test_a_returning_volunteer_keeps_its_shard_and_fetches_none_of_what_it_carries(arena: Arena) -> None:
    s = spec(rounds=2, optimizer={"carry_state": True}, compression={"method": "int8"})
    bounty_id = post(arena, s, minCheckBps=10_000)  # checked though it returns with a reputation
    other, returning = arena.account(), arena.account()
    node = OwnNode(arena.m.store)
    first = arena.work_once(other)  # shard 0
    second = arena.work_once(returning, store=node)  # shard 1
    assert first is not None and second is not None and split_task_id(second)[2] == 1
    for task_id in (first, second):
        assert arena.verify(task_id) == [True, True]
    arena.settle(bounty_id)
    assert arena.coordinator.try_close_round(bounty_id) is not None
    opened = arena.m.poster.opened_rounds(bounty_id=bounty_id)[-1]
    manifest = RoundManifest.parse(arena.m.store.get(opened.model_cid))
    carried = {manifest.inner_states[1].cid, manifest.update_errors[1]}  # type: ignore[union-attr]
    assert None not in carried

    again = arena.work_once(returning, store=node)
    assert again is not None and split_task_id(again)[2] == 1  # shard 1 again, though shard 0 comes first in order
    assert carried <= node.held and not carried & node.fetched  # rebuilt from its own trace, never fetched
    assert manifest.model_cid in node.fetched  # the new round's model is everyone's to fetch
    assert arena.verify(again) == [True, True]  # and the task it trained from them is paid


class Gone(OwnNode):
    """A volunteer's node whose swarm no longer has some content: whoever held it left."""

    def __init__(self, shared: ContentStore, gone: set[str]) -> None:
        super().__init__(shared)
        self.gone = gone

    def get(self, cid: str, max_bytes: int = 1 << 29) -> bytes:
        if cid in self.gone:
            raise ContentMissing(f"{cid}: no provider found")
        return super().get(cid, max_bytes)

    def get_buffer(self, cid: str, max_bytes: int = 1 << 29) -> bytearray:
        if cid in self.gone:
            raise ContentMissing(f"{cid}: no provider found")
        return super().get_buffer(cid, max_bytes)


def test_a_newcomer_whose_shards_carried_state_is_not_served_starts_fresh_after_its_patience_and_is_paid(
    arena: Arena, tmp_path: Path
) -> None:
    s = spec(rounds=2, optimizer={"carry_state": True}, compression={"method": "int8"})
    bounty_id = post(arena, s, minCheckBps=10_000)
    manifest = arena.newcomers_close(bounty_id, s.data.shards)
    gone = {state.cid for state in manifest.inner_states if state} | {e for e in manifest.update_errors if e}
    assert len(gone) == 2 * s.data.shards

    newcomer = arena.account()
    node = Gone(arena.m.store, gone)

    def daemon(patience_s: float) -> NodeDaemon:
        options = NodeOptions(
            work_dir=tmp_path / "newcomer",
            once=True,
            max_tasks=1,
            bounties=frozenset({bounty_id}),
            carry_patience_s=patience_s,
        )
        return NodeDaemon(newcomer, node, options, QUIET)

    waiting = daemon(patience_s=3_600)
    waiting.run()
    assert waiting.status.committed == []  # still waiting for the carried state: nothing claimed, no lease at stake
    fresh = daemon(patience_s=0)
    fresh.run()
    (task_id,) = fresh.status.committed
    assert task_id in {task_id_of(bounty_id, 1, shard) for shard in range(s.data.shards)}
    trace = TraceManifest.parse(arena.m.store.get(arena.coordinator.view.commit(task_id).trace_cid))
    assert trace.fresh_start and not gone & node.fetched
    assert arena.verify(task_id) == [True, True]  # checkers build its start without what it could not fetch
    assert arena.status(task_id) == TaskStatus.ACCEPTED
