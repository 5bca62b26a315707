"""The marketplace scenario the demo runs in one process on embedded defaults (py-evm chain, on-disk
content store): a poster, a coordinator, two verifiers, two honest volunteers, a lazy one and a partial
faker, through every round of a bounty. Real contracts, real training, real replays; only the processes
are folded into one.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from content.inputs import load_inputs, publish_builtin
from content.store import LocalStore
from coordinator.rounds import Coordinator, RoundResult
from devtools.adversaries import lazy, partial_faker
from ledger.amounts import UNIT
from ledger.chain import advance_time, connect, dev_accounts
from ledger.deploy import deploy
from ledger.embedded import seeded_chain
from ledger.market import Market, TaskStatus, task_label
from ledger.terms import BountyTerms
from ledger.tx import Transactor
from node.daemon import NodeDaemon, NodeOptions
from node.trainer import Trainer, train_task
from protocol.spec import TrainingSpec
from protocol.training import deterministic, load_state, run_steps
from protocol.workloads import resolve
from verifier.worker import VerifierWorker

TOKEN = UNIT
WORKLOADS: dict[str, dict[str, Any]] = {
    "mnist": {
        "name": "mnist-demo",
        "model": {"family": "mnist-mlp", "params": {"hidden": 64}},
        "optimizer": {"name": "adam", "lr": 0.003, "carry_state": True},
        "batch_size": 32,
        "steps_per_task": 40,
        "checkpoint_interval": 5,
        "rounds": 3,
        "data": {"shards": 4},
        "aggregation": {"outer_momentum": 0.5},  # Nesterov: ./scripts/bench quality
    },
    "shakespeare": {
        "name": "shakespeare-demo",
        "model": {"family": "char-transformer", "params": {"context": 48, "dim": 48, "heads": 4, "layers": 2}},
        "optimizer": {"name": "adam", "lr": 0.003, "carry_state": True},
        "batch_size": 16,
        "steps_per_task": 30,
        "checkpoint_interval": 5,
        "rounds": 3,
        "data": {"shards": 4},
        "aggregation": {"outer_momentum": 0.5},
    },
    "gpt": {
        "name": "gpt-demo",
        "model": {"family": "gpt", "params": {"context": 32, "dim": 48, "heads": 4, "layers": 2, "vocab": 1024}},
        "optimizer": {"name": "adam", "lr": 0.003, "carry_state": True},
        "batch_size": 16,
        "steps_per_task": 30,
        "checkpoint_interval": 5,
        "rounds": 3,
        "data": {"shards": 4},
        "aggregation": {"outer_momentum": 0.5},
        "compression": {"method": "int8"},  # updates sent compressed, with error feedback (protocol.compression)
    },
}
# Newcomers are always checked, 3 of 8 segments; the probability halves per 4 accepted tasks, to 50%.
# Economics: stake 100 × 50% ≥ reward 10 (a cheater expects to lose far more than it could earn).
# The coordinator is filled in per run (BountyTerms needs an address; the zero address is a placeholder).
BOUNTY_TERMS = BountyTerms(
    reward="10",
    stake="100",
    verifier_fee="1",
    challenge_bond="20",
    lease_penalty="5",
    check_probability=1.0,
    min_check_probability=0.5,
    reputation_half_life=4,
    segments_per_check=3,
    quorum=2,
    lease_duration_s=3600,
    challenge_window_s=600,
    verify_window_s=1200,
    coordinator="0x" + "00" * 20,
)


@dataclass
class Actor:
    name: str
    market: Market

    @property
    def address(self) -> str:
        return self.market.address


@dataclass
class Summary:
    seconds: float
    workload: str
    metric_name: str
    final_metric: float
    baseline_metric: float
    slashed: list[str]
    rewards: dict[str, int]
    bounty_id: int
    rounds: list[RoundResult]
    gas_used: int
    names: dict[str, str]
    final_model_cid: str
    replayed_segments: int
    events: list[str] = field(default_factory=list)


def run_scenario(
    workload: str = "mnist",
    say: Callable[[str], None] = lambda _: None,
    seed: int = 0,
    rpc_url: str | None = None,
    home: Path | None = None,
    spec_changes: dict[str, Any] | None = None,
) -> Summary:
    """On the embedded chain by default; with `rpc_url` on a real node, and with `home` the deployment
    manifest and content store are kept there so `shardwork audit` can inspect the run afterwards.
    `spec_changes` replaces spec fields (its `data` table field by field): a poster's own dataset, a base model."""
    started = time.monotonic()
    changes = dict(spec_changes or {})
    base = WORKLOADS[workload]
    spec = TrainingSpec.model_validate({**base, **changes, "data": {**base["data"], **changes.pop("data", {})}})
    quiet = logging.getLogger("shardwork.demo")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    w3 = connect(rpc_url) if rpc_url is not None else seeded_chain(seed)  # embedded: the same seed, the same run
    keys = dev_accounts(w3, 10)
    deployment = deploy(w3, Transactor(w3, keys[0]), unbonding_delay_s=3600)
    home = home or Path(tempfile.mkdtemp(prefix="shardwork-demo-"))
    deployment.save(home / "deployment.json")
    roles = ["poster", "coordinator", "verifier-1", "verifier-2", "honest-1", "honest-2", "lazy", "faker"]
    actors = {
        name: Actor(name, Market(w3, deployment, Transactor(w3, key)))
        for name, key in zip(roles, keys[1:], strict=False)
    }
    for a in actors.values():
        a.market.faucet(a.address, 10_000 * TOKEN)
        if a.name != "poster":
            a.market.stake(1_000 * TOKEN if a.name in ("coordinator", "verifier-1", "verifier-2") else 500 * TOKEN)
    say(
        f"{'embedded chain' if rpc_url is None else rpc_url} (chain {deployment.chain_id}): contracts deployed; "
        "8 accounts funded and staked"
    )

    store = LocalStore(home / "store")
    poster, coord = actors["poster"].market, actors["coordinator"].market
    if spec.data.dataset is None:  # the family's built-in data, published as any poster's own would be
        builtin = resolve(spec.model).dataset
        dataset_cid, _, _ = publish_builtin(store, builtin)
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": dataset_cid})})
        say(f"poster: the built-in {builtin} dataset published as {dataset_cid}")
    spec_cid = store.put(spec.canonical_bytes())
    terms = BOUNTY_TERMS.model_copy(update={"coordinator": coord.address})
    params = terms.posting(spec, spec_cid, poster.now())  # the checks `shardwork bounty post` makes
    poster.ensure_allowance(10_000 * TOKEN)
    escrow_before = poster.balance(poster.address)
    bounty_id = poster.post_bounty(params)
    say(
        f"poster: bounty {bounty_id} posted ({spec.model.family}, {spec.data.shards} shards × {spec.rounds} rounds), "
        f"escrow {(escrow_before - poster.balance(poster.address)) / TOKEN:g} tokens"
    )

    coordinator = Coordinator(coord, store, quiet)
    coordinator.intake(bounty_id)
    verifiers = [VerifierWorker(actors[n].market, store, quiet) for n in ("verifier-1", "verifier-2")]
    for verifier in verifiers:
        verifier.join()  # seated before the first commit: committees are drawn among the seats older than it
    rng = random.Random(seed)
    trainers: dict[str, Trainer] = {
        "honest-1": train_task,
        "honest-2": train_task,
        "lazy": lazy(rng),
        "faker": partial_faker(0.5, rng, keep_counters=True),
    }
    work = home / "nodes"
    daemons = {
        name: NodeDaemon(
            actors[name].market,
            store,
            NodeOptions(work_dir=work / name, once=True, max_tasks=1),
            quiet,
            trainer=trainer,
        )
        for name, trainer in trainers.items()
    }
    names = {a.address: a.name for a in actors.values()}
    rounds: list[RoundResult] = []
    while len(rounds) < spec.rounds:
        _volunteers_take_open_tasks(daemons, coordinator, bounty_id, rng, say, names)
        _verify_and_settle(w3, coordinator, verifiers, daemons, bounty_id, say, names)
        result = coordinator.try_close_round(bounty_id)
        if result is not None:
            rounds.append(result)
            say(
                f"coordinator: round {result.round} closed: {result.accepted_updates} updates aggregated, "
                f"{result.metric_name} {result.metric:.4f}"
            )

    for name in ("honest-1", "honest-2", "verifier-1", "verifier-2", "coordinator", "faker"):
        market = actors[name].market
        if market.claimable(market.address):
            market.claim_rewards()
    rewards, slashed = _payments(poster, bounty_id, names)
    say("volunteers and verifiers pulled their rewards")
    baseline = _centralized_baseline(spec, store)
    gas = sum(a.market.signer.gas_used for a in actors.values() if a.market.signer)
    final_cid = rounds[-1].manifest_cid
    return Summary(
        seconds=round(time.monotonic() - started, 2),
        workload=workload,
        metric_name=rounds[-1].metric_name,
        final_metric=rounds[-1].metric,
        baseline_metric=baseline,
        slashed=slashed,
        rewards=rewards,
        bounty_id=bounty_id,
        rounds=rounds,
        gas_used=gas,
        names=names,
        final_model_cid=final_cid,
        replayed_segments=sum(v.replayed_segments for v in verifiers),
    )


def _volunteers_take_open_tasks(
    daemons: dict[str, NodeDaemon],
    coordinator: Coordinator,
    bounty_id: int,
    rng: random.Random,
    say: Callable[[str], None],
    names: dict[str, str],
) -> None:
    """Volunteers in random turns take one task each until none is open."""
    while any(coordinator.market.task(t).status == TaskStatus.OPEN for t in coordinator.current_tasks(bounty_id)):
        order = list(daemons.items())
        rng.shuffle(order)
        progressed = False
        for name, daemon in order:
            before = len(daemon.status.committed)
            daemon.options.max_tasks = before + 1
            daemon.run()
            if len(daemon.status.committed) > before:
                progressed = True
                say(f"  {name:<9} committed task {task_label(daemon.status.committed[-1])}")
        if not progressed:
            raise RuntimeError("open tasks remain but no volunteer can take them")


def _verify_and_settle(
    w3: Web3,
    coordinator: Coordinator,
    verifiers: list[VerifierWorker],
    daemons: dict[str, NodeDaemon],
    bounty_id: int,
    say: Callable[[str], None],
    names: dict[str, str],
) -> None:
    from ledger.chain import mine

    mine(w3, 2)  # the block after each commit exists: challenges can be drawn
    tasks = coordinator.current_tasks(bounty_id)
    for task_id in tasks:
        if coordinator.audit_and_dispute(task_id):
            say(f"  coordinator disputed task {task_label(task_id)}: its trace does not hold together")
    for task_id in tasks:
        volunteer = names.get(coordinator.market.task(task_id).volunteer, "?")
        verdicts = [v.verify(task_id) for v in verifiers]
        status = coordinator.market.task(task_id).status
        if status == TaskStatus.CONTESTED and coordinator.market.game(task_id).is_review:
            say(
                f"  verifiers replayed task {task_label(task_id)} of {volunteer}: FAIL quorum -> the referee reviews it"
            )
        elif status == TaskStatus.CONTESTED:
            g = coordinator.market.game(task_id)
            say(
                f"  verifiers replayed task {task_label(task_id)} of {volunteer}: diverged -> steps {g.lo_step}-{g.hi_step} "
                "contested in a bisection game"
            )
        elif False in verdicts:
            say(f"  verifiers replayed task {task_label(task_id)} of {volunteer}: FAIL")
        elif True in verdicts:
            say(f"  verifiers replayed task {task_label(task_id)} of {volunteer}: pass")
    _play_games(daemons, verifiers, coordinator, tasks, say, names)
    advance_time(w3, 600 + 1200 + 1)
    coordinator.settle_ready(bounty_id)


def _play_games(
    daemons: dict[str, NodeDaemon],
    verifiers: list[VerifierWorker],
    coordinator: Coordinator,
    tasks: list[int],
    say: Callable[[str], None],
    names: dict[str, str],
) -> None:
    """Volunteers post midpoints, challengers answer, the coordinator referees the last step (or reviews a check a
    FAIL quorum failed), until no game is left. Each move is made at once, so no deadline passes."""
    market = coordinator.market
    for _ in range(64):
        contested = [t for t in tasks if market.task(t).status == TaskStatus.CONTESTED]
        if not contested:
            return
        for daemon in daemons.values():
            daemon.defender.play()
        for verifier in verifiers:
            verifier.challenger.play()
        for task_id in contested:
            game = market.game(task_id)
            volunteer = names.get(market.task(task_id).volunteer, "?")
            if coordinator.referee.tend(task_id) == "ruled":
                slashed = market.task(task_id).status == TaskStatus.OPEN
                if game.is_review:
                    say(
                        f"  referee reviewed task {task_label(task_id)}: "
                        + (
                            f"the check's failure holds -> {volunteer} slashed, task reopened"
                            if slashed
                            else "it holds"
                        )
                    )
                    continue
                say(
                    f"  referee recomputed step {game.lo_step}->{game.hi_step} of task {task_label(task_id)}: "
                    + (f"wrong -> {volunteer} slashed, task reopened" if slashed else "correct -> challenger slashed")
                )
    raise RuntimeError("a bisection game did not end in 64 passes")


def _payments(market: Market, bounty_id: int, names: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    events = market.market.events
    rewards: dict[str, int] = {}
    for log in events.RewardCredited().get_logs(from_block=0):  # every credit: rewards, fees, challengers' shares
        if log["args"]["taskId"] >> 64 == bounty_id:
            rewards[log["args"]["account"]] = rewards.get(log["args"]["account"], 0) + int(log["args"]["amount"])
    slashed = sorted(
        {
            log["args"]["volunteer"]
            for log in events.TaskSlashed().get_logs(from_block=0, argument_filters={"bountyId": bounty_id})
        }
    )
    return rewards, slashed


def _centralized_baseline(spec: TrainingSpec, store: LocalStore) -> float:
    """One trainer on all the shards' data, from the same starting model, for as many steps as the volunteers
    ran in total."""
    import torch

    workload = resolve(spec.model)
    inputs = load_inputs(spec, store)
    shards, holdout = inputs.shards, inputs.holdout
    union = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
    with deterministic(spec.replay):
        state = load_state(spec, inputs.weights, workload)
        steps = spec.steps_per_task * spec.data.shards * spec.rounds
        run_steps(state, workload, union, b"baseline", 0, steps, spec.batch_size)
        return workload.evaluate(state.model, holdout)
