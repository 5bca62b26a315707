"""The honest side of carried state, on a real EVM with the real coordinator and verifiers: a volunteer back for
the next round takes the shard it trained (node.carry), rebuilds what that shard carries from its own trace
instead of fetching it from the coordinator's node, and is paid for the task it trains from it."""

from __future__ import annotations

from content.store import ContentStore
from ledger.market import split_task_id
from protocol.manifests import RoundManifest
from tests.support.arena import Arena, post, spec


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
