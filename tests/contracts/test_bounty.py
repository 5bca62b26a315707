import pytest

from tests.support.chain import ACCEPTED, RARE_CHECKS, TOKEN, Chain, default_params, reverts

ZERO = "0x" + "00" * 20


def test_post_bounty_escrows_rewards_and_verifier_fees(chain: Chain) -> None:
    before = chain.balance("poster")
    bounty = chain.post()
    escrow = 2 * 2 * (10 * TOKEN + 2 * 1 * TOKEN)
    assert before - chain.balance("poster") == escrow
    b = chain.bounty(bounty)
    assert b["escrow"] == escrow and b["poster"] == chain.addr("poster") and b["status"] == 1
    assert chain.view("specCidOf", bounty) == default_params()["specCid"]


@pytest.mark.parametrize(
    ("field", "override"),
    [
        ("coordinator", {"coordinator": ZERO}),
        ("specCid", {"specCid": ""}),
        ("shards", {"shards": 0}),
        ("shards", {"shards": 257}),
        ("rounds", {"rounds": 0}),
        ("segmentsPerTask", {"segmentsPerTask": 0}),
        ("segmentsPerTask", {"segmentsPerTask": 257}),
        ("segmentsPerCheck", {"segmentsPerCheck": 0}),
        ("segmentsPerCheck", {"segmentsPerCheck": 9}),
        ("checkBps", {"checkBps": 10_001}),
        ("checkBps", {"checkBps": 1000, "minCheckBps": 2000}),
        ("reputationHalfLife", {"reputationHalfLife": 0}),
        ("quorum", {"quorum": 0}),
        ("quorum", {"quorum": 16}),
        ("rewardPerTask", {"rewardPerTask": 0}),
        ("verifierFee", {"verifierFee": 51 * TOKEN}),
        ("leasePenalty", {"leasePenalty": 101 * TOKEN}),
        ("leaseDuration", {"leaseDuration": 0}),
        ("deadline", {"deadline": 1}),
    ],
)
def test_post_bounty_reverts_on_invalid_params(chain: Chain, field: str, override: dict) -> None:
    with reverts("MarketInvalidParams", field=field):
        chain.post(**override)


def test_post_bounty_reverts_when_cheating_pays(chain: Chain) -> None:
    # 100 stake × 5% floor = 5 < 10 reward: a lazy volunteer would profit on average.
    with reverts("MarketEconomicallyUnsound", stakePerTask=100 * TOKEN, minCheckBps=500, rewardPerTask=10 * TOKEN):
        chain.post(minCheckBps=500)
    chain.post(minCheckBps=1000)  # 100 × 10% = 10: break-even is accepted


def test_post_bounty_reverts_when_escrow_exceeds_uint128(chain: Chain) -> None:
    with reverts("MarketInvalidParams", field="escrow"):
        chain.post(shards=256, rounds=2**32 - 1, rewardPerTask=2**90, stakePerTask=2**95, verifierFee=0)


def test_open_round_only_by_coordinator_and_once(chain: Chain) -> None:
    bounty = chain.post()
    with reverts("MarketNotCoordinator", bountyId=bounty, caller=chain.addr("mallory")):
        chain.tx("mallory", "openRound", bounty, "bafyx")
    receipt = chain.tx("coordinator", "openRound", bounty, "bafymodel0")
    assert chain.events(receipt, "RoundOpened")[0] == {"bountyId": bounty, "round": 0, "modelCid": "bafymodel0"}
    with reverts("MarketRoundAlreadyOpen", bountyId=bounty, round=0):
        chain.tx("coordinator", "openRound", bounty, "bafymodel0")


def test_unknown_bounty_reverts(chain: Chain) -> None:
    with reverts("MarketUnknownBounty", bountyId=99):
        chain.tx("coordinator", "openRound", 99, "bafyx")
    with reverts("MarketUnknownBounty", bountyId=99):
        chain.view("bountyOf", 99)


def _accept_round(chain: Chain, bounty: int, round_: int, shards: int) -> None:
    for shard in range(shards):
        chain.claim_and_commit("alice", chain.task_id(bounty, round_, shard))
    chain.advance(601)
    for shard in range(shards):
        chain.tx("bob", "settle", chain.task_id(bounty, round_, shard))


def test_close_round_requires_every_task_accepted_then_opens_next_and_finalizes(chain: Chain) -> None:
    bounty = chain.post_and_open(**RARE_CHECKS)
    chain.stake("alice", 5_000 * TOKEN)
    with reverts("MarketNotCoordinator"):
        chain.tx("poster", "closeRound", bounty, "bafyagg0")
    with reverts("MarketRoundIncomplete", bountyId=bounty, round=0, shard=0):
        chain.tx("coordinator", "closeRound", bounty, "bafyagg0")
    _accept_round(chain, bounty, 0, 2)
    receipt = chain.tx("coordinator", "closeRound", bounty, "bafyagg0")
    assert chain.events(receipt, "RoundClosed")[0]["aggregateCid"] == "bafyagg0"
    assert chain.events(receipt, "RoundOpened")[0] == {"bountyId": bounty, "round": 1, "modelCid": "bafyagg0"}
    _accept_round(chain, bounty, 1, 2)
    receipt = chain.tx("coordinator", "closeRound", bounty, "bafyfinal")
    assert chain.events(receipt, "BountyFinalized")[0] == {"bountyId": bounty, "finalModelCid": "bafyfinal"}
    assert chain.bounty(bounty)["status"] == 2
    with reverts("MarketBountyNotActive", bountyId=bounty):
        chain.tx("coordinator", "closeRound", bounty, "bafyagain")
    with reverts("MarketBountyNotActive", bountyId=bounty):
        chain.tx("alice", "claim", chain.task_id(bounty, 1, 0))


def test_close_round_reverts_before_open(chain: Chain) -> None:
    bounty = chain.post()
    with reverts("MarketRoundNotOpen", bountyId=bounty):
        chain.tx("coordinator", "closeRound", bounty, "bafyx")


def test_refund_after_finalize_returns_all_unspent_escrow(chain: Chain) -> None:
    bounty = chain.post_and_open(**RARE_CHECKS, rounds=1)
    chain.stake("alice", 5_000 * TOKEN)
    _accept_round(chain, bounty, 0, 2)
    with reverts("MarketRefundNotYetAllowed"):
        chain.tx("poster", "refund", bounty)
    chain.tx("coordinator", "closeRound", bounty, "bafyfinal")
    with reverts("MarketNotPoster", bountyId=bounty, caller=chain.addr("mallory")):
        chain.tx("mallory", "refund", bounty)
    escrow = chain.bounty(bounty)["escrow"]
    assert escrow == 2 * 2 * 1 * TOKEN  # unused verifier fees: nothing was checked
    receipt = chain.tx("poster", "refund", bounty)
    assert chain.events(receipt, "EscrowRefunded")[0]["amount"] == escrow
    with reverts("MarketNothingToRefund", bountyId=bounty):
        chain.tx("poster", "refund", bounty)


def test_refund_after_deadline_keeps_pending_tasks_payable(chain: Chain) -> None:
    bounty = chain.post_and_open(**RARE_CHECKS, deadline=chain.now() + 5000)
    chain.stake("alice", 5_000 * TOKEN)
    task = chain.task_id(bounty, 0, 0)
    chain.claim_and_commit("alice", task)
    chain.advance(5001)
    with reverts("MarketBountyExpired"):
        chain.tx("bob", "claim", chain.task_id(bounty, 0, 1))
    escrow = chain.bounty(bounty)["escrow"]
    per_task = TOKEN // 10 + 2 * TOKEN
    receipt = chain.tx("poster", "refund", bounty)
    assert chain.events(receipt, "EscrowRefunded")[0]["amount"] == escrow - per_task
    chain.tx("bob", "settle", task)  # the committed task is still paid after the refund
    assert chain.task(task)["status"] == ACCEPTED
    chain.tx("poster", "refund", bounty)  # and its unused verifier fees come back afterwards
    assert chain.bounty(bounty)["escrow"] == 0
