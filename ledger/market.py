"""Typed client of the deployed Token + BountyMarket: what volunteers, posters and coordinators call.

Reads return plain dataclasses; writes go through the one Transactor (nonce, gas, receipt, typed reverts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import filter_abi_by_type
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.deploy import Deployment, contract_at
from ledger.errors import ChainMisconfigured, ContractRevert
from ledger.tx import Transactor, call
from protocol.errors import PermanentError


class TaskStatus(IntEnum):
    OPEN = 0
    CLAIMED = 1
    COMMITTED = 2
    CHALLENGED = 3
    ACCEPTED = 4
    CONTESTED = 5  # a bisection game over its trace is being played


class GameTurn(IntEnum):
    NONE = 0
    VOLUNTEER = 1  # post the midpoint state
    CHALLENGER = 2  # agree or disagree with it
    REFEREE = 3  # recompute the one step left


@dataclass(frozen=True)
class Game:
    """A task's bisection game: the stretch lo_step → hi_step is still disputed (contract `Game`); or, without a
    challenger, the referee's review of a check a FAIL quorum failed."""

    challenger: str
    lo_step: int
    hi_step: int
    deadline: int
    turn: GameTurn
    lo_hash: bytes
    hi_hash: bytes
    mid_hash: bytes

    @property
    def mid_step(self) -> int:
        return (self.lo_step + self.hi_step) // 2

    @property
    def is_review(self) -> bool:
        """A review a FAIL quorum opened: no challenger, the referee rules on the whole commit."""
        return int(self.challenger, 16) == 0 and self.turn != GameTurn.NONE


class BountyStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    FINALIZED = 2


@dataclass(frozen=True)
class Bounty:
    bounty_id: int
    poster: str
    coordinator: str
    status: BountyStatus
    shards: int
    rounds: int
    current_round: int
    round_open: bool
    deadline: int
    reward_per_task: int
    stake_per_task: int
    segments_per_task: int
    escrow: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Task:
    task_id: int
    volunteer: str
    status: TaskStatus
    attempt: int
    deadline: int
    commit_block: int


@dataclass(frozen=True)
class StakeInfo:
    bonded: int
    locked: int
    unbonding: int
    accepted_tasks: int

    @property
    def free(self) -> int:
        return max(self.bonded - self.locked, 0)


@dataclass(frozen=True)
class OpenedRound:
    bounty_id: int
    round: int
    model_cid: str  # the round manifest's CID
    block_hash: bytes  # the round-open randomness in every task seed of the round
    block_number: int


# The most blocks one eth_getLogs asks for (common public RPC limits are 5,000 to 10,000).
LOG_RANGE = 5_000

# Gas for a verifier's vote that turns out to decide its task: it settles the task (accept, or slash and
# reopen) and credits the fee to every voter on the winning side, up to the contract's MAX_QUORUM (15); the
# contract tests measure that worst case against this limit.
# Unused gas is not charged; the limit only has to cover the worst case.
ATTEST_DECIDING_GAS = 1_000_000


def next_deadline(task: Task, bounty: Bounty) -> tuple[str, int] | None:
    """What a task waits for next and the chain time it is due (None when it waits for no one): a claimed task
    must be committed by its lease's end; a committed one can be disputed until the challenge window closes,
    and a checked or disputed one waits for its verdict until the verify window closes (then it settles)."""
    challenge_closes = task.deadline + int(bounty.raw["challengeWindow"])
    verify_closes = challenge_closes + int(bounty.raw["verifyWindow"])
    if task.status == TaskStatus.CLAIMED:
        return "commit", task.deadline
    if task.status == TaskStatus.COMMITTED:
        return "challenge window closes", challenge_closes
    if task.status == TaskStatus.CHALLENGED:
        return "verify window closes", verify_closes
    return None


def next_move(game: Game) -> tuple[str, int] | None:
    """Who a contested task's game waits for and the chain time its move is due."""
    movers = {GameTurn.VOLUNTEER: "volunteer's move", GameTurn.CHALLENGER: "challenger's move"}
    if game.turn == GameTurn.NONE:
        return None
    if game.is_review:
        return "referee's review of the failed check", game.deadline
    return movers.get(game.turn, "referee's ruling"), game.deadline


def task_id_of(bounty_id: int, round_: int, shard: int) -> int:
    return (bounty_id << 64) | (round_ << 32) | shard


def split_task_id(task_id: int) -> tuple[int, int, int]:
    return task_id >> 64, (task_id >> 32) & 0xFFFFFFFF, task_id & 0xFFFFFFFF


def task_label(task_id: int) -> str:
    """The human form of a task id, `bounty.round.shard` (rounds and shards count from 0, as on chain): 1.0.3."""
    return ".".join(map(str, split_task_id(task_id)))


class TaskIdError(PermanentError, ValueError):
    """Text that names no task."""


def parse_task_id(text: str) -> int:
    """A task id in any form people meet it: `bounty.round.shard` (1.0.3), or the on-chain number in decimal
    or 0x-hex (as events and JSON logs carry it)."""
    raw = text.strip()
    parts = raw.split(".")
    try:
        if len(parts) == 3:
            bounty_id, round_, shard = (int(part, 10) for part in parts)
            if min(bounty_id, round_, shard) < 0 or max(round_, shard) > 0xFFFFFFFF or bounty_id >= 2**192:
                raise ValueError
            return task_id_of(bounty_id, round_, shard)
        task_id = int(raw, 0)
    except ValueError:
        raise TaskIdError(
            f"{text!r} is not a task id: write bounty.round.shard (1.0.3), or its number in decimal or 0x-hex"
        ) from None
    if not 0 <= task_id < 2**256:
        raise TaskIdError(f"{text!r} is not a task id: it is outside what the chain numbers tasks with")
    return task_id


class Market:
    def __init__(self, w3: Web3, deployment: Deployment, signer: Transactor | None = None) -> None:
        chain_id = w3.eth.chain_id
        if chain_id != deployment.chain_id:
            raise ChainMisconfigured(
                f"the node is chain {chain_id} but the deployment manifest is for chain {deployment.chain_id}"
            )
        self.w3, self.deployment, self.signer = w3, deployment, signer
        self.token = contract_at(w3, "Token", deployment.token)
        self.market = contract_at(w3, "BountyMarket", deployment.market)
        bounty_of = next(i for i in filter_abi_by_type("function", self.market.abi) if i["name"] == "bountyOf")
        self._bounty_fields = [o["name"] for o in bounty_of["outputs"][0]["components"]]

    @property
    def address(self) -> ChecksumAddress:
        if self.signer is None:
            raise ChainMisconfigured("this client has no wallet: it can only read")
        return self.signer.address

    def _send(self, fn: Any, min_gas: int = 0) -> TxReceipt:
        if self.signer is None:
            raise ChainMisconfigured("this client has no wallet: it can only read")
        return self.signer.send(fn, min_gas=min_gas)

    # ------------------------------------------------------------------ reads

    def escrow_at(self, bounty_id: int, block: int) -> int | None:
        """The bounty's escrow as block `block` left it; None where the node keeps no state that old (a pruned,
        non-archive node)."""
        try:
            raw = call(self.market.functions.bountyOf(bounty_id), block)
        except (ValueError, Web3Exception):  # "missing trie node", "header not found": state the node pruned
            return None
        return int(dict(zip(self._bounty_fields, raw, strict=True))["escrow"])

    def bounty(self, bounty_id: int) -> Bounty:
        raw = dict(zip(self._bounty_fields, call(self.market.functions.bountyOf(bounty_id)), strict=True))
        return Bounty(
            bounty_id=bounty_id,
            poster=raw["poster"],
            coordinator=raw["coordinator"],
            status=BountyStatus(raw["status"]),
            shards=raw["shards"],
            rounds=raw["rounds"],
            current_round=raw["currentRound"],
            round_open=raw["roundOpen"],
            deadline=raw["deadline"],
            reward_per_task=raw["rewardPerTask"],
            stake_per_task=raw["stakePerTask"],
            segments_per_task=raw["segmentsPerTask"],
            escrow=raw["escrow"],
            raw=raw,
        )

    def spec_cid(self, bounty_id: int) -> str:
        return str(call(self.market.functions.specCidOf(bounty_id)))

    def task(self, task_id: int) -> Task:
        volunteer, status, attempt, deadline, commit_block, _ = call(self.market.functions.taskOf(task_id))
        return Task(task_id, volunteer, TaskStatus(status), attempt, deadline, commit_block)

    def stake_of(self, account: str) -> StakeInfo:
        return StakeInfo(*call(self.market.functions.stakeOf(Web3.to_checksum_address(account))))

    def claimable(self, account: str) -> int:
        return int(call(self.market.functions.claimable(Web3.to_checksum_address(account))))

    def balance(self, account: str) -> int:
        return int(call(self.token.functions.balanceOf(Web3.to_checksum_address(account))))

    def commitment(self, task_id: int) -> bytes:
        return bytes(call(self.market.functions.commitmentOf(task_id)))

    def challenge(self, task_id: int) -> tuple[bool, list[int]]:
        checked, mask = call(self.market.functions.challengeOf(task_id))
        return bool(checked), [i for i in range(256) if mask >> i & 1]

    def game(self, task_id: int) -> Game:
        g = call(self.market.functions.gameOf(task_id))
        return Game(str(g[0]), int(g[1]), int(g[2]), int(g[3]), GameTurn(g[4]), bytes(g[5]), bytes(g[6]), bytes(g[7]))

    def committee(self, task_id: int) -> list[str]:
        """The verifiers drawn to check the task's current attempt, in seat order: one call per seat, since the
        contract answers per verifier (reverts MarketChallengeNotDrawnYet until the block after its commit exists)."""
        seats = int(call(self.market.functions.seatCount()))
        holders = [str(call(self.market.functions.seatAt(i))[0]) for i in range(seats)]
        return [h for h in holders if self.on_committee(task_id, h)]

    def on_committee(self, task_id: int, account: str) -> bool:
        """Whether `account` may vote on the task's current attempt: what `attest` checks, read in one call."""
        return bool(call(self.market.functions.onCommitteeOf(task_id, Web3.to_checksum_address(account))))

    def seat_of(self, account: str) -> int | None:
        """The account's seat in the verifier registry, None unless it holds an active one."""
        registered, index = call(self.market.functions.seatOf(Web3.to_checksum_address(account)))
        return int(index) if registered else None

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def logs(
        self, event: str, from_block: int, to_block: int | None = None, filters: dict[str, Any] | None = None
    ) -> list[Any]:
        """The market's `event` logs from `from_block` to `to_block` (default: the head), read LOG_RANGE blocks at a
        time: public RPC nodes refuse an eth_getLogs over a longer range, and a daemon reads the chain's history."""
        end = self.w3.eth.block_number if to_block is None else to_block
        found: list[Any] = []
        for start in range(from_block, end + 1, LOG_RANGE):
            found.extend(
                getattr(self.market.events, event)().get_logs(
                    from_block=start, to_block=min(start + LOG_RANGE - 1, end), argument_filters=filters
                )
            )
        return found

    def opened_rounds(self, from_block: int | None = None, bounty_id: int | None = None) -> list[OpenedRound]:
        filters = {"bountyId": bounty_id} if bounty_id is not None else None
        start = self.deployment.block if from_block is None else from_block
        latest = self.w3.eth.block_number
        if start > latest:  # nodes refuse a range that starts past the chain's head
            return []
        logs = self.logs("RoundOpened", start, latest, filters)
        return [
            OpenedRound(
                log["args"]["bountyId"],
                log["args"]["round"],
                log["args"]["modelCid"],
                bytes(log["blockHash"]),
                log["blockNumber"],
            )
            for log in logs
        ]

    def commit_event(self, task_id: int, task: Task | None = None) -> dict[str, Any] | None:
        """The TaskCommitted event of the task's current attempt (None unless it is committed); pass the task
        when it was just read, to save reading it again."""
        task = task or self.task(task_id)
        if task.status not in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED, TaskStatus.CONTESTED, TaskStatus.ACCEPTED):
            return None
        # The task records its commit block: read that one block, not the chain's history.
        logs = self.market.events.TaskCommitted().get_logs(
            from_block=task.commit_block, to_block=task.commit_block, argument_filters={"taskId": task_id}
        )
        return dict(logs[-1]["args"]) if logs else None

    # ----------------------------------------------------------------- writes

    def ensure_allowance(self, amount: int) -> None:
        owner = self.address
        if int(call(self.token.functions.allowance(owner, self.market.address))) < amount:
            self._send(self.token.functions.approve(self.market.address, amount))

    def stake(self, amount: int) -> TxReceipt:
        self.ensure_allowance(amount)
        return self._send(self.market.functions.stake(amount))

    def register_verifier(self) -> TxReceipt:
        return self._send(self.market.functions.registerVerifier())

    def deregister_verifier(self) -> TxReceipt:
        return self._send(self.market.functions.deregisterVerifier())

    def claim(self, task_id: int) -> TxReceipt:
        return self._send(self.market.functions.claim(task_id))

    def commit(self, task_id: int, trace_root: bytes, update_hash: bytes, trace_cid: str, update_cid: str) -> TxReceipt:
        return self._send(self.market.functions.commit(task_id, trace_root, update_hash, trace_cid, update_cid))

    def claim_rewards(self) -> TxReceipt:
        return self._send(self.market.functions.claimRewards())

    def open_round(self, bounty_id: int, manifest_cid: str) -> TxReceipt:
        return self._send(self.market.functions.openRound(bounty_id, manifest_cid))

    def faucet(self, to: str, amount: int) -> TxReceipt:
        """Test tokens, on local chains only (the token refuses elsewhere)."""
        return self._send(self.token.functions.faucet(Web3.to_checksum_address(to), amount))

    def post_bounty(self, params: dict[str, Any]) -> int:
        """Escrows and posts; `params` are the BountyParams fields by name. Returns the bounty id."""
        receipt = self._send(self.market.functions.postBounty(params))
        (event,) = self.market.events.BountyPosted().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["bountyId"])

    def close_round(self, bounty_id: int, manifest_cid: str) -> TxReceipt:
        return self._send(self.market.functions.closeRound(bounty_id, manifest_cid))

    def dispute(self, task_id: int, segment: int) -> TxReceipt:
        return self._send(self.market.functions.dispute(task_id, segment))

    def attest(self, task_id: int, passed: bool) -> TxReceipt:
        # Estimated before other verifiers' votes land, a vote may be mined as the deciding one, which settles
        # the task and pays every winning verifier: it gets the gas of that path whatever the estimate said.
        return self._send(self.market.functions.attest(task_id, passed), min_gas=ATTEST_DECIDING_GAS)

    def contest(
        self,
        task_id: int,
        trace_root: bytes,
        update_hash: bytes,
        lo: tuple[int, bytes, list[bytes]],
        hi: tuple[int, bytes, list[bytes]],
    ) -> TxReceipt:
        return self._send(self.market.functions.contest(task_id, trace_root, update_hash, lo, hi))

    def bisect(self, task_id: int, mid_hash: bytes, state_cid: str) -> TxReceipt:
        return self._send(self.market.functions.bisect(task_id, mid_hash, state_cid))

    def respond(self, task_id: int, agree: bool) -> TxReceipt:
        return self._send(self.market.functions.respond(task_id, agree))

    def rule(self, task_id: int, step_correct: bool) -> TxReceipt:
        # A ruling against the volunteer slashes it and pays every FAIL voter: the gas of that path.
        return self._send(self.market.functions.rule(task_id, step_correct), min_gas=ATTEST_DECIDING_GAS)

    def forfeit(self, task_id: int) -> TxReceipt:
        return self._send(self.market.functions.forfeit(task_id), min_gas=ATTEST_DECIDING_GAS)

    def settle(self, task_id: int) -> TxReceipt:
        return self._send(self.market.functions.settle(task_id))

    def settle_many(self, task_ids: list[int]) -> list[int]:
        """Settles whichever of `task_ids` are due in one transaction (the rest are skipped); returns the ids
        it accepted."""
        receipt = self._send(self.market.functions.settleMany(task_ids))
        accepted = self.market.events.TaskAccepted().process_receipt(receipt, errors=DISCARD)
        return [int(e["args"]["taskId"]) for e in accepted]

    def settle_due(self, task_id: int) -> bool:
        """Whether `settle` would accept the task now (a call, nothing sent)."""
        try:
            call(self.market.functions.settle(task_id))
        except ContractRevert:
            return False
        return True

    def draw_challenge(self, task_id: int) -> TxReceipt:
        return self._send(self.market.functions.drawChallenge(task_id))

    def draw_many(self, task_ids: list[int]) -> list[int]:
        """Records the seeds of whichever of `task_ids` can be recorded now, in one transaction (the rest are
        skipped); returns the ids it recorded."""
        receipt = self._send(self.market.functions.drawMany(task_ids))
        drawn = self.market.events.ChallengeDrawn().process_receipt(receipt, errors=DISCARD)
        return [int(e["args"]["taskId"]) for e in drawn]

    def refund(self, bounty_id: int) -> TxReceipt:
        return self._send(self.market.functions.refund(bounty_id))

    def request_unstake(self, amount: int) -> TxReceipt:
        return self._send(self.market.functions.requestUnstake(amount))

    def withdraw(self) -> TxReceipt:
        return self._send(self.market.functions.withdraw())

    def expire_lease(self, task_id: int) -> TxReceipt:
        return self._send(self.market.functions.expireLease(task_id))
