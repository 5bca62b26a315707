"""What each contract custom error means for the person who hit it, and what to do about it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from ledger.amounts import format_amount
from ledger.errors import ContractRevert
from ledger.market import task_label


def _when(ts: Any) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_STATUS = {0: "open", 1: "claimed", 2: "committed", 3: "challenged", 4: "accepted", 5: "contested"}
_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "StakingZeroAmount": lambda f: "the amount must be more than 0",
    "StakingInsufficientFreeStake": lambda f: (
        f"{f['account']} has {format_amount(f['free'])} free stake but {format_amount(f['needed'])} is needed: "
        "stake more, or wait until your claimed tasks settle"
    ),
    "StakingInsufficientStake": lambda f: (
        f"{f['account']} has {format_amount(f['bonded'])} bonded, less than the {format_amount(f['needed'])} asked for"
    ),
    "StakingNothingToWithdraw": lambda f: (
        "nothing can be withdrawn yet"
        + (f": the next unstake request matures at {_when(f['nextReleaseAt'])}" if f["nextReleaseAt"] else "")
        + (f"; {format_amount(f['encumbered'])} is still locked by tasks" if f["encumbered"] else "")
    ),
    "StakingUnbondingQueueFull": lambda f: f"{f['pending']} unstake requests are pending: withdraw matured ones first",
    "TokenFaucetDisabled": lambda f: "this chain's token has no faucet",
    "TokenFaucetOnPublicChain": lambda f: f"no faucet on chain {f['chainId']}",
    "TokenFaucetLimitExceeded": lambda f: f"the faucet gives at most {format_amount(f['limit'])} per request",
    "MarketUnknownBounty": lambda f: f"bounty {f['bountyId']} does not exist: see `shardwork bounty list`",
    "MarketNotPoster": lambda f: f"only the poster of bounty {f['bountyId']} can do this",
    "MarketRefundNotYetAllowed": lambda f: (
        f"bounty {f['bountyId']} is still running: escrow becomes refundable after {_when(f['deadline'])} "
        "or when the bounty is finalized"
    ),
    "MarketNothingToRefund": lambda f: f"bounty {f['bountyId']} holds nothing refundable",
    "MarketNothingToClaim": lambda f: f"{f['account']} has no rewards to claim yet",
    "MarketEconomicallyUnsound": lambda f: (
        f"stake {format_amount(f['stakePerTask'])} × minimum check probability {f['minCheckBps'] / 100:g}% is "
        f"below the reward {format_amount(f['rewardPerTask'])}: cheating would pay; raise the stake or the check rate"
    ),
    "MarketInvalidParams": lambda f: f"bounty parameter {f['field']} is out of range",
    "MarketNotCurrentTask": lambda f: f"task {task_label(f['taskId'])} is not in an open round",
    "MarketVolunteerBarred": lambda f: (
        f"{f['volunteer']} was slashed on a bounty of this poster: it takes none of the poster's tasks until "
        f"{_when(f['until'])}"
    ),
    "MarketBountyExpired": lambda f: f"bounty {f['bountyId']} passed its deadline {_when(f['deadline'])}",
    "MarketVerifierIneligible": lambda f: (
        f"{f['verifier']} has {format_amount(f['freeStake'])} free stake; judging or disputing task {task_label(f['taskId'])} "
        f"needs {format_amount(f['needed'])} (the bounty's stake per task): stake more first"
    ),
    "MarketSelfDispute": lambda f: (
        f"{f['volunteer']} committed task {task_label(f['taskId'])}: a volunteer cannot dispute its own work"
    ),
    "MarketTaskNotInStatus": lambda f: (
        f"task {task_label(f['taskId'])} is {_STATUS.get(int(f['status']), f['status'])}: this needs it in another state "
        "(see `shardwork bounty show`)"
    ),
    "MarketChallengeWindowClosed": lambda f: (
        f"task {task_label(f['taskId'])}'s challenge window closed at {_when(f['closedAt'])}: it can no longer be disputed"
    ),
    "RegistryNoStake": lambda f: f"{f['verifier']} has no bonded stake: `shardwork stake` before joining the verifiers",
    "RegistryAlreadyRegistered": lambda f: f"{f['verifier']} already holds a verifier seat",
    "RegistryNotRegistered": lambda f: f"{f['verifier']} holds no verifier seat: nothing to leave",
    "RegistryFull": lambda f: "the verifier registry holds its most seats (2^31 - 1): no new verifier can join",
    "MarketNotOnCommittee": lambda f: (
        f"{f['verifier']} was not drawn to check task {task_label(f['taskId'])}: only its committee votes "
        "(anyone staked may still `contest` a commit it can prove wrong)"
    ),
    "MarketSegmentOutOfRange": lambda f: (
        f"task {task_label(f['taskId'])} has segments 0–{int(f['segments']) - 1}; segment {f['segment']} does not exist"
    ),
}


def explain(exc: ContractRevert) -> str:
    render = _MESSAGES.get(exc.error_name)
    if render is None:
        return f"the contract refused: {exc}"
    return f"{render(exc.fields)} ({exc.error_name})"
