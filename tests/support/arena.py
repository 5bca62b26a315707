"""An arena for cheaters: a deployed market on anvil, the real coordinator and two verifier workers
in-process, and volunteers that run the node daemon with whatever trainer a test gives them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from web3.types import RPCEndpoint

from content.store import ContentStore
from coordinator.rounds import Coordinator
from judge.audit import AuditReport, audit
from judge.context import ChainView
from ledger.chain import advance_time, mine, mnemonic_accounts
from ledger.index import EventIndex
from ledger.market import Market, TaskStatus, task_id_of
from ledger.tx import Transactor
from node.daemon import NodeDaemon, NodeOptions
from node.defense import Defender
from node.trainer import Trainer, train_task
from protocol.manifests import RoundManifest
from protocol.spec import TrainingSpec
from tests.support.marketplace import Marketplace
from verifier.worker import VerifierWorker

UNIT = 10**18
QUIET = logging.getLogger("arena")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def spec(**overrides: object) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"family": "mnist-mlp", "params": {"hidden": 16}},
            "steps_per_task": 20,
            "checkpoint_interval": 5,
            "batch_size": 16,
            "rounds": 1,
            "data": {"shards": 2},
            **overrides,
        }
    )


@dataclass
class Arena:
    m: Marketplace
    work: Path
    coordinator: Coordinator = field(init=False)
    verifiers: list[VerifierWorker] = field(init=False)
    _next_account: int = 10
    _markets: dict[str, Market] = field(default_factory=dict)  # the arena's own accounts, by address

    def __post_init__(self) -> None:
        coord = self.m.coordinator
        self.coordinator = Coordinator(coord, self.m.store, QUIET)
        self.verifiers = [VerifierWorker(self.m.client(i), self.m.store, QUIET) for i in (3, 4)]
        for market in [coord, *(v.market for v in self.verifiers)]:
            if market.stake_of(market.address).bonded == 0:
                market.faucet(market.address, 10_000 * UNIT)
                market.stake(5_000 * UNIT)
        for verifier in self.verifiers:
            verifier.join()

    def account(self, stake: int = 1_000 * UNIT) -> Market:
        """A fresh funded volunteer (accounts 10, 11, … of the dev mnemonic; anvil funds them with ETH)."""
        index = self._next_account
        self._next_account += 1
        key = mnemonic_accounts(index + 1)[index]
        self.m.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [key.address, hex(10**20)])
        market = Market(self.m.w3, self.m.deployment, Transactor(self.m.w3, key))
        self._markets[market.address] = market
        market.faucet(market.address, 10_000 * UNIT)
        if stake:
            market.stake(stake)
        return market

    def work_once(
        self, volunteer: Market, trainer: Trainer = train_task, store: ContentStore | None = None
    ) -> int | None:
        """The volunteer's daemon takes one open task of the latest bounty with `trainer`; returns the committed
        task id. (Earlier tests leave open tasks in their bounties; those are not this test's business.)"""
        options = NodeOptions(
            work_dir=self.work / volunteer.address,
            once=True,
            max_tasks=1,
            bounties=frozenset({self.m.poster.market.functions.nextBountyId().call() - 1}),
        )
        daemon = NodeDaemon(volunteer, store or self.m.store, options, QUIET, trainer=trainer)
        daemon.run()
        return daemon.status.committed[-1] if daemon.status.committed else None

    def verify(self, task_id: int) -> list[bool | None]:
        """Each verifier's verdict (False also when it contested the task: the game it opened is then played
        to its end here, the volunteer's node defending, the coordinator refereeing)."""
        mine(self.m.w3, 2)  # the draw block exists
        self.coordinator.audit_and_dispute(task_id)
        verdicts = [v.verify(task_id) for v in self.verifiers]
        self.play_games(task_id)
        return verdicts

    def play_games(self, task_id: int) -> None:
        market = self.m.poster
        for _ in range(16):
            task = market.task(task_id)
            if task.status != TaskStatus.CONTESTED:
                return
            volunteer = self._markets.get(task.volunteer)
            if volunteer is not None:  # an account of this arena: its node daemon answers
                Defender(volunteer, ChainView(volunteer, self.m.store), QUIET).play()
            for verifier in self.verifiers:
                verifier.challenger.play()
            self.coordinator.referee.tend(task_id)
        raise AssertionError(f"the game over task {task_id:#x} did not end")

    def settle(self, bounty_id: int, seconds: int = 2_000) -> None:
        advance_time(self.m.w3, seconds)
        self.coordinator.settle_ready(bounty_id)

    def events(self, name: str, **filters: object) -> list[dict[str, object]]:
        """The arguments of every `name` event on the market (all bounties of the module's chain) matching the
        indexed `filters`, oldest first."""
        logs = getattr(self.m.poster.market.events, name)().get_logs(from_block=0, argument_filters=filters)
        return [dict(log["args"]) for log in logs]

    def slashed(self, task_id: int, volunteer: str) -> bool:
        logs = self.m.poster.market.events.TaskSlashed().get_logs(from_block=0, argument_filters={"taskId": task_id})
        return any(log["args"]["volunteer"] == volunteer for log in logs)

    def status(self, task_id: int) -> TaskStatus:
        return self.m.poster.task(task_id).status

    def newcomers_close(self, bounty_id: int, shards: int) -> RoundManifest:
        """Fresh volunteers (always checked) train every open task of the bounty's current round, which is not its
        last, and pass; the round closes. Returns the next round's manifest."""
        for _ in range(shards):
            task_id = self.work_once(self.account())
            assert task_id is not None and self.verify(task_id) == [True, True]
        self.settle(bounty_id)
        closed = self.coordinator.try_close_round(bounty_id)
        assert closed is not None and not closed.finalized
        return RoundManifest.parse(self.m.store.get(closed.manifest_cid))

    def newcomers_finish(self, bounty_id: int, round_: int, shards: int) -> RoundManifest:
        """Fresh volunteers (always checked) train every open task of the bounty's last round and pass; the round
        closes and the bounty is finalized. Returns the final manifest."""
        for _ in range(shards):
            task_id = self.work_once(self.account())
            assert task_id is not None and self.verify(task_id) == [True, True]
        assert {self.status(task_id_of(bounty_id, round_, shard)) for shard in range(shards)} == {TaskStatus.ACCEPTED}
        self.settle(bounty_id)
        closed = self.coordinator.try_close_round(bounty_id)
        assert closed is not None and closed.finalized
        return RoundManifest.parse(self.m.store.get(closed.manifest_cid))

    def audit(self, bounty_id: int, workdir: Path) -> AuditReport:
        """Anyone's audit of the bounty, from the chain and the content store."""
        index = EventIndex(workdir / "index.sqlite", self.m.poster)
        return audit(index, ChainView(self.m.poster, self.m.store), bounty_id=bounty_id)


def post(arena: Arena, s: TrainingSpec | None = None, **terms: object) -> int:
    """A bounty where newcomers are always checked and every segment is replayed, unless overridden."""
    s = s or spec()
    defaults: dict[str, object] = {"checkBps": 10_000, "minCheckBps": 5_000, "segmentsPerCheck": s.segments}
    return arena.m.post_and_open(s, **{**defaults, **terms})


Cheat = Callable[..., object]
