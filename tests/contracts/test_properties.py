"""Random operation sequences by several actors against the real market on anvil.

Properties checked after every step:
- tokens are conserved: the market's token balance equals open escrow + bonded + unbonding stake +
  claimable rewards + bonds of open disputes, exactly;
- no task is accepted (paid) twice;
- nothing is slashed without a failed verification: verifiers attest the truth and the referee rules it on
  the reviews their FAIL votes open, so only commits the machine made dishonestly may ever be slashed, and
  every honest one that settles is paid; a review the referee lets pass slashes nobody;
- after the deadline the poster recovers every token not owed to volunteers or verifiers.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.errors import ContractRevert, UnknownRevert
from tests.support.chain import CHALLENGED, COMMITTED, CONTESTED, TOKEN, Chain

VOLUNTEERS = ("alice", "bob", "mallory")
VERIFIERS = ("vera", "victor", "dave")
EVERYONE = VOLUNTEERS + VERIFIERS
SHARDS, ROUNDS = 3, 2
CHALLENGE_BOND = 20 * TOKEN


class MarketMachine(RuleBasedStateMachine):
    chain: Chain
    totals = {"accepted": 0, "slashed": 0, "refunded": 0}

    @initialize()
    def setup(self) -> None:
        self.snap = self.chain.snapshot()
        # Newcomers always checked, so that fakes meet verifiers within a short sequence whatever the
        # chain's block hashes (they depend on the timestamps earlier tests left behind).
        self.bounty = self.chain.post_and_open(
            shards=SHARDS, rounds=ROUNDS, checkBps=10_000, minCheckBps=5000, deadline=self.chain.now() + 6 * 3600
        )
        self.steps = 0
        self.honest: dict[tuple[int, int], bool] = {}  # (task id, attempt) -> committed honestly?
        self.accepted: set[int] = set()
        self.disputed: set[tuple[int, int]] = set()  # (task id, attempt) whose dispute bond the market holds
        self.slashed: list[tuple[int, int]] = []
        self.round = 0
        for verifier in VERIFIERS:
            self.chain.stake(verifier, 1_000 * TOKEN)
        for volunteer in VOLUNTEERS:
            self.chain.stake(volunteer, 300 * TOKEN)

    def teardown(self) -> None:
        if hasattr(self, "snap"):
            self.chain.revert_to(self.snap)

    # -- plumbing
    def _try(self, actor: str, fn: str, *args: Any) -> bool:
        self.steps += 1
        try:
            receipt = self.chain.tx(actor, fn, *args)
        except UnknownRevert:
            raise  # a panic (overflow, bad index) is always a bug
        except ContractRevert:
            return False
        for event in self.chain.events(receipt, "TaskAccepted"):
            assert event["taskId"] not in self.accepted, "task paid twice"
            self.accepted.add(event["taskId"])
            self.totals["accepted"] += 1
        for event in self.chain.events(receipt, "TaskSlashed"):
            task = event["taskId"]
            attempt = self._attempt_before_slash(task)
            self.slashed.append((task, attempt))
            assert self.honest.get((task, attempt)) is False, "an honest commit was slashed"
            self.totals["slashed"] += 1
        self.totals["refunded"] += len(self.chain.events(receipt, "EscrowRefunded"))
        if self.chain.events(receipt, "RoundOpened"):
            self.round += 1
        return True

    def _attempt_before_slash(self, task: int) -> int:
        return int(self.chain.task(task)["attempt"]) - 1

    def _task(self, shard: int) -> int:
        return self.chain.task_id(self.bounty, self.round, shard)

    # -- rules
    @rule(actor=st.sampled_from(VOLUNTEERS), amount=st.integers(1, 400))
    def stake(self, actor: str, amount: int) -> None:
        self._try(actor, "stake", amount * TOKEN)

    @rule(actor=st.sampled_from(EVERYONE), amount=st.integers(1, 300))
    def request_unstake(self, actor: str, amount: int) -> None:
        self._try(actor, "requestUnstake", amount * TOKEN)

    @rule(actor=st.sampled_from(EVERYONE))
    def withdraw(self, actor: str) -> None:
        self._try(actor, "withdraw")

    @rule(actor=st.sampled_from(VOLUNTEERS), shard=st.integers(0, SHARDS - 1))
    def claim(self, actor: str, shard: int) -> None:
        self._try(actor, "claim", self._task(shard))

    @rule(actor=st.sampled_from(VOLUNTEERS), shard=st.integers(0, SHARDS - 1), honest=st.booleans())
    def claim_and_commit(self, actor: str, shard: int, honest: bool) -> None:
        if self._try(actor, "claim", self._task(shard)):
            self.commit(shard, honest)

    @rule(actor=st.sampled_from(VOLUNTEERS), shard=st.integers(0, SHARDS - 1))
    def honest_task_lifecycle(self, actor: str, shard: int) -> None:
        self._lifecycle(actor, shard, honest=True)

    @rule(actor=st.sampled_from(VOLUNTEERS), shard=st.integers(0, SHARDS - 1))
    def dishonest_task_lifecycle(self, actor: str, shard: int) -> None:
        self._lifecycle(actor, shard, honest=False)

    def _lifecycle(self, actor: str, shard: int, honest: bool) -> None:
        """Claim, commit, draw, truthful quorum, settle in one rule: random interleavings of the single
        steps reach settlement too rarely for the payment and slashing properties to be exercised."""
        if not self._try(actor, "claim", self._task(shard)):
            return
        self.commit(shard, honest)
        self.chain.mine(2)  # the draw block exists
        self.verifiers_reach_a_truthful_quorum(shard)
        self.referee_rules_truthfully(shard)
        self.chain.advance(2_000)  # past the challenge window of an unchecked task
        self.settle("dave", shard)

    @rule(shard=st.integers(0, SHARDS - 1))
    def verifiers_reach_a_truthful_quorum(self, shard: int) -> None:
        for verifier in ("vera", "victor"):
            self.attest_truthfully(verifier, shard)

    @rule(shard=st.integers(0, SHARDS - 1), honest=st.booleans())
    def commit(self, shard: int, honest: bool) -> None:
        task_id = self._task(shard)
        task = self.chain.task(task_id)
        holder = next((a for a in VOLUNTEERS if self.chain.addr(a) == task["volunteer"]), None)
        if holder is None:
            return
        root = (b"\x01" if honest else b"\xee") * 32
        if self._try(holder, "commit", task_id, root, b"\x02" * 32, "bafytrace", "bafyupdate"):
            self.honest[(task_id, task["attempt"])] = honest

    @rule(verifier=st.sampled_from(VERIFIERS), shard=st.integers(0, SHARDS - 1))
    def attest_truthfully(self, verifier: str, shard: int) -> None:
        task_id = self._task(shard)
        task = self.chain.task(task_id)
        verdict = self.honest.get((task_id, task["attempt"]))
        if verdict is not None:
            self._try(verifier, "attest", task_id, verdict)

    @rule(shard=st.integers(0, SHARDS - 1))
    def referee_rules_truthfully(self, shard: int) -> None:
        """The coordinator rules on a review a FAIL quorum opened (the machine plays no bisection game)."""
        task_id = self._task(shard)
        task = self.chain.task(task_id)
        verdict = self.honest.get((task_id, task["attempt"]))
        if task["status"] == CONTESTED and verdict is not None:
            self._try("coordinator", "rule", task_id, verdict)

    @rule(anyone=st.sampled_from(EVERYONE), shard=st.integers(0, SHARDS - 1))
    def forfeit(self, anyone: str, shard: int) -> None:
        self._try(anyone, "forfeit", self._task(shard))

    @rule(challenger=st.sampled_from(EVERYONE), shard=st.integers(0, SHARDS - 1), segment=st.integers(0, 8))
    def dispute(self, challenger: str, shard: int, segment: int) -> None:
        task_id = self._task(shard)
        if self._try(challenger, "dispute", task_id, segment):
            self.disputed.add((task_id, self.chain.task(task_id)["attempt"]))

    @rule(anyone=st.sampled_from(EVERYONE), shard=st.integers(0, SHARDS - 1))
    def settle(self, anyone: str, shard: int) -> None:
        self._try(anyone, "settle", self._task(shard))

    @rule(anyone=st.sampled_from(EVERYONE), shard=st.integers(0, SHARDS - 1))
    def expire_lease(self, anyone: str, shard: int) -> None:
        self._try(anyone, "expireLease", self._task(shard))

    @rule(actor=st.sampled_from(EVERYONE))
    def claim_rewards(self, actor: str) -> None:
        self._try(actor, "claimRewards")

    @rule()
    def close_round(self) -> None:
        self._try("coordinator", "closeRound", self.bounty, "bafyaggregate")

    @rule()
    def refund(self) -> None:
        self._try("poster", "refund", self.bounty)

    @rule(seconds=st.sampled_from([30, 700, 2_000, 4_000, 4 * 24 * 3600]))
    def advance(self, seconds: int) -> None:
        self.chain.advance(seconds)

    @precondition(lambda self: self.steps >= 30)  # it ends the bounty: let the sequence do work first
    @rule()
    def deadline_passes_and_poster_recovers_unspent_escrow(self) -> None:
        b = self.chain.bounty(self.bounty)
        self.chain.advance(max(0, b["deadline"] - self.chain.now()) + 2_000)
        for shard in range(SHARDS):
            self._try("vera", "settle", self._task(shard))  # every committed task is settleable now
        self._try("poster", "refund", self.bounty)
        assert self.chain.bounty(self.bounty)["escrow"] == 0

    # -- properties
    @invariant()
    def tokens_conserved_and_locks_match_tasks(self) -> None:
        if not hasattr(self, "bounty"):
            return
        c = self.chain
        ids = [self._task(s) for s in range(SHARDS)]
        tasks = [c.task(task_id) for task_id in ids]
        positions = {a: c.stake_of(a) for a in EVERYONE}
        held = c.balance(c.market.address)
        escrow = c.bounty(self.bounty)["escrow"]
        stakes = sum(p[0] + p[2] for p in positions.values())
        claimable = sum(c.view("claimable", c.addr(a)) for a in EVERYONE)
        open_bonds = CHALLENGE_BOND * sum(
            t["status"] in (CHALLENGED, CONTESTED) and (task_id, t["attempt"]) in self.disputed
            for task_id, t in zip(ids, tasks, strict=True)
        )
        assert held == escrow + stakes + claimable + open_bonds

        locked = {a: 0 for a in EVERYONE}
        for t in tasks:
            if t["status"] in (1, COMMITTED, CHALLENGED, CONTESTED):
                holder = next(a for a in VOLUNTEERS if c.addr(a) == t["volunteer"])
                locked[holder] += 100 * TOKEN
        assert {a: p[1] for a, p in positions.items()} == locked


@pytest.mark.slow
def test_market_properties_hold_over_random_operation_sequences(chain: Chain) -> None:
    MarketMachine.chain = chain
    runner = MarketMachine.TestCase
    runner.settings = settings(
        max_examples=25,
        stateful_step_count=35,
        deadline=None,
        derandomize=True,  # the same sequences every run: CI must not depend on a lucky draw
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    runner().runTest()
    print(f"property run reached: {MarketMachine.totals}")
    # The exploration must reach the interesting paths, or the properties above prove little.
    assert MarketMachine.totals["accepted"] > 0 and MarketMachine.totals["slashed"] > 0, MarketMachine.totals
    assert MarketMachine.totals["refunded"] > 0, MarketMachine.totals
