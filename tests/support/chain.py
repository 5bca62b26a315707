"""A small driver for the market on a real EVM: named actors, typed reverts, time travel, snapshots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_utils import filter_abi_by_type
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD as _DISCARD
from web3.types import RPCEndpoint, TxReceipt

from ledger import errors
from ledger.amounts import UNIT
from ledger.chain import advance_time, dev_accounts, mine
from ledger.deploy import Deployment, contract_at, deploy
from ledger.terms import BountyTerms
from ledger.tx import Transactor, call

TOKEN = UNIT
UNBONDING_DELAY = 3 * 24 * 3600
ACTORS = ("deployer", "poster", "coordinator", "alice", "bob", "carol", "dave", "vera", "victor", "mallory")
STARTING_BALANCE = 100_000 * TOKEN


# The contract tests' sound bounty, made the product's way (BountyTerms.params): 2 shards × 2 rounds of 8
# segments, spot-check p = 50% floor 20%, reward 10, stake 100.
DEFAULT_TERMS = BountyTerms(
    reward="10",
    stake="100",
    verifier_fee="1",
    challenge_bond="20",
    lease_penalty="5",
    check_probability=0.5,
    min_check_probability=0.2,
    reputation_half_life=4,
    segments_per_check=2,
    quorum=2,
    lease_duration_s=3600,
    challenge_window_s=600,
    verify_window_s=1200,
    coordinator="0x" + "00" * 20,
)


def default_params(**overrides: Any) -> dict[str, Any]:
    """DEFAULT_TERMS' BountyParams; `coordinator` and `deadline` stay None for the caller to fill, and any
    field can be overridden raw (the contract tests post invalid parameters on purpose)."""
    params = DEFAULT_TERMS.params("bafkreispecspecspecspecspecspecspecspecspecspecspecspec", 2, 2, 8, now=0)
    params.update(coordinator=None, deadline=None)
    params.update(overrides)
    return params


@dataclass
class Chain:
    w3: Web3
    deployment: Deployment
    token: Contract
    market: Contract
    actors: dict[str, Transactor] = field(default_factory=dict)

    @classmethod
    def deploy_fresh(cls, w3: Web3) -> Chain:
        accounts = dev_accounts(w3, len(ACTORS))
        actors = {name: Transactor(w3, acct) for name, acct in zip(ACTORS, accounts, strict=True)}
        deployment = deploy(w3, actors["deployer"], unbonding_delay_s=UNBONDING_DELAY, initial_supply=10**30)
        chain = cls(
            w3,
            deployment,
            contract_at(w3, "Token", deployment.token),
            contract_at(w3, "BountyMarket", deployment.market),
            actors,
        )
        for name in ACTORS[1:]:
            chain.send("deployer", chain.token.functions.transfer(chain.addr(name), STARTING_BALANCE))
            chain.send(name, chain.token.functions.approve(deployment.market, 2**256 - 1))
        return chain

    # -- plumbing
    def addr(self, name: str) -> str:
        return self.actors[name].address

    def send(self, actor: str, call: Any) -> TxReceipt:
        return self.actors[actor].send(call)

    def tx(self, actor: str, fn: str, *args: Any) -> TxReceipt:
        return self.send(actor, getattr(self.market.functions, fn)(*args))

    def view(self, fn: str, *args: Any) -> Any:
        return call(getattr(self.market.functions, fn)(*args))

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        advance_time(self.w3, seconds)

    def mine(self, blocks: int = 1) -> None:
        mine(self.w3, blocks)

    def snapshot(self) -> Any:
        return self.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]

    def revert_to(self, snap: Any) -> None:
        assert self.w3.provider.make_request(RPCEndpoint("evm_revert"), [snap])["result"] is True

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        event = getattr(self.market.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=_DISCARD)]

    def balance(self, actor_or_address: str) -> int:
        address = self.addr(actor_or_address) if actor_or_address in self.actors else actor_or_address
        return int(self.token.functions.balanceOf(address).call())

    # -- market vocabulary
    def bounty_params(self, **overrides: Any) -> dict[str, Any]:
        """default_params with the coordinator actor and a deadline 30 days from the chain's now."""
        params = default_params(**overrides)
        if params["coordinator"] is None:
            params["coordinator"] = self.addr("coordinator")
        if params["deadline"] is None:
            params["deadline"] = self.now() + 30 * 24 * 3600
        return params

    def post(self, poster: str = "poster", **overrides: Any) -> int:
        receipt = self.tx(poster, "postBounty", self.bounty_params(**overrides))
        return int(self.events(receipt, "BountyPosted")[0]["bountyId"])

    def post_and_open(self, **overrides: Any) -> int:
        bounty_id = self.post(**overrides)
        self.tx("coordinator", "openRound", bounty_id, "bafyround0model")
        return bounty_id

    def task_id(self, bounty_id: int, round_: int = 0, shard: int = 0) -> int:
        return (bounty_id << 64) | (round_ << 32) | shard

    def stake(self, actor: str, amount: int = 500 * TOKEN, verifier: bool = True) -> None:
        """Bonds `amount`; a staked actor also takes a verifier seat (unless `verifier` is False), so that it is
        drawn for commits from the next block on: every committee here is the whole pool unless a test says so."""
        self.tx(actor, "stake", amount)
        if verifier and not self.view("seatOf", self.addr(actor))[0]:
            self.tx(actor, "registerVerifier")

    def commit(self, actor: str, task_id: int, root: bytes = b"\x11" * 32, update: bytes = b"\x22" * 32) -> TxReceipt:
        return self.tx(actor, "commit", task_id, root, update, "bafytrace", "bafyupdate")

    def claim_and_commit(self, actor: str, task_id: int) -> TxReceipt:
        self.tx(actor, "claim", task_id)
        return self.commit(actor, task_id)

    def committee(self, task_id: int) -> list[str]:
        """The holders of the seats on the task's committee, in seat order (the contract answers per verifier)."""
        holders = [self.view("seatAt", i)[0] for i in range(self.view("seatCount"))]
        return [h for h in holders if self.view("onCommitteeOf", task_id, h)]

    def fail_check(self, task_id: int, voters: tuple[str, ...] = ("vera", "victor")) -> TxReceipt:
        """A FAIL quorum by `voters`, then the referee's ruling against the volunteer (what slashes): the
        receipt of the ruling."""
        for voter in voters:
            receipt = self.tx(voter, "attest", task_id, False)
        assert self.events(receipt, "ReviewOpened"), "the votes did not open a review"
        return self.tx("coordinator", "rule", task_id, False)

    def task(self, task_id: int) -> dict[str, Any]:
        t = self.view("taskOf", task_id)
        return {
            "volunteer": t[0],
            "status": t[1],
            "attempt": t[2],
            "deadline": t[3],
            "commitBlock": t[4],
            "checkBps": t[5],
        }

    def bounty(self, bounty_id: int) -> dict[str, Any]:
        names = [o["name"] for o in _abi_outputs(self.market, "bountyOf")]
        return dict(zip(names, self.view("bountyOf", bounty_id), strict=True))

    def stake_of(self, actor: str) -> tuple[int, int, int, int]:
        bonded, locked, unbonding, accepted_tasks = self.view("stakeOf", self.addr(actor))
        return bonded, locked, unbonding, accepted_tasks


# Spot-check probability 0.01%: a commit goes unchecked except once in 10,000 draws.
RARE_CHECKS = {"checkBps": 1, "minCheckBps": 1, "rewardPerTask": TOKEN // 10, "stakePerTask": 1_000 * TOKEN}
ALWAYS_CHECKED = {"checkBps": 10_000, "minCheckBps": 10_000}

# TaskStatus
OPEN, CLAIMED, COMMITTED, CHALLENGED, ACCEPTED, CONTESTED = range(6)


def _abi_outputs(contract: Contract, fn: str) -> list[dict[str, Any]]:
    item = next(i for i in filter_abi_by_type("function", contract.abi) if i["name"] == fn)
    return [dict(c) for c in item["outputs"][0].get("components", ())]


@contextlib.contextmanager
def reverts(error_name: str, **fields: Any) -> Iterator[None]:
    """Asserts the block raises the contract's custom error `error_name` with the given field values."""
    with pytest.raises(errors.error_class(error_name)) as info:
        yield
    for key, want in fields.items():
        assert info.value.fields[key] == want, f"{error_name}.{key}: {info.value.fields[key]!r} != {want!r}"
