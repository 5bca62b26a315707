from tests.support.chain import (
    ACCEPTED,
    ALWAYS_CHECKED,
    CLAIMED,
    COMMITTED,
    OPEN,
    RARE_CHECKS,
    TOKEN,
    Chain,
    reverts,
)


def _ready(chain: Chain, **overrides: object) -> int:
    bounty = chain.post_and_open(**overrides)
    for actor in ("alice", "bob", "vera", "victor"):
        chain.stake(actor, 5_000 * TOKEN)
    return bounty


def test_claim_locks_stake_and_sets_lease(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty, 0, 1)
    receipt = chain.tx("alice", "claim", task)
    event = chain.events(receipt, "TaskClaimed")[0]
    assert event["volunteer"] == chain.addr("alice") and event["attempt"] == 0
    assert event["leaseDeadline"] == chain.now() + 3600
    assert chain.task(task)["status"] == CLAIMED
    assert chain.stake_of("alice")[1] == 100 * TOKEN


def test_claim_reverts_outside_the_current_round(chain: Chain) -> None:
    bounty = chain.post()
    chain.stake("alice")
    with reverts("MarketNotCurrentTask"):
        chain.tx("alice", "claim", chain.task_id(bounty, 0, 0))  # round not opened yet
    chain.tx("coordinator", "openRound", bounty, "bafym")
    with reverts("MarketNotCurrentTask", taskId=chain.task_id(bounty, 1, 0)):
        chain.tx("alice", "claim", chain.task_id(bounty, 1, 0))
    with reverts("MarketNotCurrentTask", taskId=chain.task_id(bounty, 0, 2)):
        chain.tx("alice", "claim", chain.task_id(bounty, 0, 2))
    with reverts("MarketUnknownBounty", bountyId=bounty + 1):
        chain.tx("alice", "claim", chain.task_id(bounty + 1, 0, 0))


def test_claim_reverts_without_free_stake(chain: Chain) -> None:
    bounty = chain.post_and_open()
    chain.stake("alice", 150 * TOKEN)
    chain.tx("alice", "claim", chain.task_id(bounty, 0, 0))
    with reverts("StakingInsufficientFreeStake", free=50 * TOKEN, needed=100 * TOKEN):
        chain.tx("alice", "claim", chain.task_id(bounty, 0, 1))


def test_claim_reverts_when_task_already_claimed(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    with reverts("MarketTaskNotInStatus", taskId=task, status=CLAIMED):
        chain.tx("bob", "claim", task)


def test_expire_lease_reopens_task_and_penalizes_holder(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    with reverts("MarketTaskNotInStatus", status=OPEN):
        chain.tx("bob", "expireLease", task)
    chain.tx("alice", "claim", task)
    deadline = chain.task(task)["deadline"]
    with reverts("MarketLeaseActive", taskId=task, leaseDeadline=deadline):
        chain.tx("bob", "expireLease", task)
    escrow = chain.bounty(bounty)["escrow"]
    chain.advance(3601)
    receipt = chain.tx("bob", "expireLease", task)
    assert chain.events(receipt, "LeaseExpired")[0]["penalty"] == 5 * TOKEN
    reopened = chain.task(task)
    assert (reopened["status"], reopened["attempt"]) == (OPEN, 1)
    assert chain.stake_of("alice")[:2] == (4_995 * TOKEN, 0)
    assert chain.bounty(bounty)["escrow"] == escrow + 5 * TOKEN


def test_claim_over_an_expired_lease_expires_it_first(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    chain.advance(3601)
    receipt = chain.tx("bob", "claim", task)
    assert chain.events(receipt, "LeaseExpired")[0]["volunteer"] == chain.addr("alice")
    assert chain.task(task)["volunteer"] == chain.addr("bob") and chain.task(task)["attempt"] == 1


def test_lease_never_extends_past_bounty_deadline(chain: Chain) -> None:
    deadline = chain.now() + 1000
    bounty = _ready(chain, deadline=deadline)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    assert chain.task(task)["deadline"] == deadline


def test_commit_records_commitment_and_event(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    receipt = chain.commit("alice", task, b"\x01" * 32, b"\x02" * 32)
    event = chain.events(receipt, "TaskCommitted")[0]
    assert (event["traceRoot"], event["updateHash"]) == (b"\x01" * 32, b"\x02" * 32)
    assert (event["traceCid"], event["updateCid"]) == ("bafytrace", "bafyupdate")
    t = chain.task(task)
    assert t["status"] == COMMITTED and t["commitBlock"] == receipt["blockNumber"] and t["checkBps"] == 5000


def test_commit_reverts_for_anyone_but_the_lease_holder(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    with reverts("MarketTaskNotInStatus", status=OPEN):
        chain.commit("alice", task)
    chain.tx("alice", "claim", task)
    with reverts("MarketNotLeaseHolder", taskId=task, caller=chain.addr("mallory")):
        chain.commit("mallory", task)


def test_commit_reverts_when_lease_expired(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    chain.advance(3601)
    with reverts("MarketLeaseExpired", taskId=task):
        chain.commit("alice", task)


def test_commit_reverts_on_empty_commitment(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    chain.tx("alice", "claim", task)
    with reverts("MarketEmptyCommitment", taskId=task):
        chain.commit("alice", task, b"\x00" * 32, b"\x02" * 32)
    with reverts("MarketEmptyCommitment", taskId=task):
        chain.commit("alice", task, b"\x01" * 32, b"\x00" * 32)


def test_check_probability_decays_with_accepted_tasks_to_the_floor(chain: Chain) -> None:
    bounty = chain.post()
    assert [chain.view("checkProbabilityBps", bounty, n) for n in (0, 4, 12, 100)] == [5000, 2500, 2000, 2000]


def test_challenge_is_not_drawn_until_a_later_block_exists(chain: Chain) -> None:
    bounty = _ready(chain)
    task = chain.task_id(bounty)
    receipt = chain.claim_and_commit("alice", task)
    with reverts("MarketChallengeNotDrawnYet", taskId=task, drawBlock=receipt["blockNumber"] + 1):
        chain.view("challengeOf", task)
    with reverts("MarketChallengeNotDrawnYet"):
        chain.tx("bob", "drawChallenge", task)
    chain.mine(2)
    checked, mask = chain.view("challengeOf", task)
    assert bin(mask).count("1") == 2 and mask < 2**8


def test_settle_reverts_while_challenge_window_open(chain: Chain) -> None:
    bounty = _ready(chain, **RARE_CHECKS)
    task = chain.task_id(bounty)
    with reverts("MarketTaskNotInStatus", status=OPEN):
        chain.tx("bob", "settle", task)
    chain.claim_and_commit("alice", task)
    closes = chain.task(task)["deadline"] + 600
    with reverts("MarketChallengeWindowOpen", taskId=task, closesAt=closes):
        chain.tx("bob", "settle", task)


def test_settle_accepts_unchecked_task_and_credits_reward(chain: Chain) -> None:
    bounty = _ready(chain, **RARE_CHECKS)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.advance(601)
    receipt = chain.tx("bob", "settle", task)
    assert chain.events(receipt, "TaskAccepted")[0]["reward"] == TOKEN // 10
    assert chain.task(task)["status"] == ACCEPTED
    assert chain.stake_of("alice") == (5_000 * TOKEN, 0, 0, 1)
    assert chain.view("claimable", chain.addr("alice")) == TOKEN // 10
    with reverts("MarketTaskNotInStatus", status=ACCEPTED):
        chain.tx("bob", "settle", task)


def test_checked_task_waits_for_a_verdict_then_is_accepted_if_none_came(chain: Chain) -> None:
    bounty = _ready(chain, **ALWAYS_CHECKED)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.advance(601)
    with reverts("MarketVerdictPending", taskId=task, verifyDeadline=chain.task(task)["deadline"] + 1800):
        chain.tx("bob", "settle", task)
    chain.advance(1200)
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED


def test_lost_randomness_checks_every_segment(chain: Chain) -> None:
    bounty = _ready(chain, **RARE_CHECKS)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine(300)  # the draw block leaves the 256-block horizon unrecorded
    assert chain.view("challengeOf", task) == [True, 2**8 - 1]
    with reverts("MarketChallengeNotDrawnYet"):
        chain.tx("bob", "drawChallenge", task)


def test_recorded_draw_survives_the_block_horizon(chain: Chain) -> None:
    bounty = _ready(chain, **RARE_CHECKS)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine(2)
    live = chain.view("challengeOf", task)
    receipt = chain.tx("bob", "drawChallenge", task)
    assert chain.events(receipt, "ChallengeDrawn")[0]["attempt"] == 0
    chain.tx("bob", "drawChallenge", task)  # idempotent
    chain.mine(300)
    assert chain.view("challengeOf", task) == live
    assert live[0] is False
    chain.advance(601)
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED


def test_task_reopens_at_most_255_times(chain: Chain) -> None:
    bounty = _ready(chain, leasePenalty=0)
    task = chain.task_id(bounty)
    for _ in range(255):
        chain.tx("alice", "claim", task)
        chain.advance(3601)
        chain.tx("bob", "expireLease", task)
    assert chain.task(task)["attempt"] == 255
    chain.tx("alice", "claim", task)
    chain.advance(3601)
    with reverts("MarketTaskAttemptsExhausted", taskId=task):
        chain.tx("bob", "expireLease", task)


def test_no_review_opens_on_a_tasks_last_attempt_it_could_not_end(chain: Chain) -> None:
    """Every end of a review but acceptance reopens the task, which its 255th attempt cannot: a FAIL quorum there
    is refused (as the slash it used to be was), and the task settles when its verify window closes."""
    bounty = _ready(chain, leasePenalty=0, **ALWAYS_CHECKED)
    task = chain.task_id(bounty)
    for _ in range(255):
        chain.tx("alice", "claim", task)
        chain.advance(3601)
        chain.tx("bob", "expireLease", task)
    chain.claim_and_commit("alice", task)
    chain.mine(2)
    chain.tx("vera", "attest", task, False)
    with reverts("MarketTaskAttemptsExhausted", taskId=task):
        chain.tx("victor", "attest", task, False)
    chain.advance(601 + 1201)
    chain.tx("bob", "settle", task)


def test_claim_rewards_pays_and_reverts_when_nothing_owed(chain: Chain) -> None:
    with reverts("MarketNothingToClaim", account=chain.addr("alice")):
        chain.tx("alice", "claimRewards")


def test_settle_many_accepts_the_due_tasks_and_skips_the_rest_without_reverting(chain: Chain) -> None:
    """The coordinator's one transaction per round: what `settle` would accept is accepted, everything else (an
    open task, a window still open, a check awaiting its verdict, an unknown id) is left as it was."""
    unchecked = _ready(chain, shards=4, rounds=1, **RARE_CHECKS)
    checked = chain.post_and_open(shards=1, rounds=1, **ALWAYS_CHECKED)
    due = [chain.task_id(unchecked, 0, shard) for shard in (0, 1)]
    for task in [*due, chain.task_id(checked)]:
        chain.claim_and_commit("alice", task)
    chain.advance(601)
    late = chain.task_id(unchecked, 0, 2)
    chain.claim_and_commit("bob", late)  # its window has just opened
    never_claimed, unknown = chain.task_id(unchecked, 0, 3), chain.task_id(999)
    listed = [*due, late, never_claimed, chain.task_id(checked), unknown]
    assert chain.market.functions.settleMany(listed).call() == 2
    receipt = chain.tx("bob", "settleMany", listed)
    assert [e["taskId"] for e in chain.events(receipt, "TaskAccepted")] == due
    assert [chain.task(t)["status"] for t in listed[:-1]] == [ACCEPTED, ACCEPTED, COMMITTED, OPEN, COMMITTED]
    assert chain.view("claimable", chain.addr("alice")) == 2 * (TOKEN // 10)
    again = chain.tx("bob", "settleMany", listed)  # nothing due any more: a no-op, not a revert
    assert chain.events(again, "TaskAccepted") == []
    chain.advance(1200)  # the checked task's verify window passed with no verdict: accepted like `settle` would
    chain.tx("bob", "settleMany", listed)
    assert chain.task(chain.task_id(checked))["status"] == ACCEPTED


def test_draw_many_records_each_fresh_draw_once_and_skips_the_rest(chain: Chain) -> None:
    bounty = _ready(chain, shards=4, **RARE_CHECKS)
    fresh, recorded, unclaimed, late = (chain.task_id(bounty, 0, shard) for shard in range(4))
    for task in (fresh, recorded):
        chain.claim_and_commit("alice", task)
    chain.mine()
    chain.tx("bob", "drawChallenge", recorded)
    chain.claim_and_commit("bob", late)  # its draw block is the one drawMany is mined in: not served yet
    live = chain.view("challengeOf", fresh)
    receipt = chain.tx("vera", "drawMany", [fresh, recorded, unclaimed, late])
    assert [e["taskId"] for e in chain.events(receipt, "ChallengeDrawn")] == [fresh]
    chain.mine(300)
    assert chain.view("challengeOf", fresh) == live  # recorded: the same draw past the horizon
    assert chain.view("challengeOf", late) == [True, 2**8 - 1]  # never recorded: the lost-seed rule
    assert chain.events(chain.tx("vera", "drawMany", [fresh, late]), "ChallengeDrawn") == []


def test_the_game_module_is_deployed_by_the_market_and_holds_nothing_of_its_own(chain: Chain) -> None:
    module = chain.view("games")
    assert len(chain.w3.eth.get_code(module)) > 0
    direct = chain.w3.eth.contract(address=module, abi=chain.market.abi)
    # Called directly it finds no game in its own storage: every move reverts, nothing changes anywhere.
    with reverts("MarketNoGame"):
        chain.send("bob", direct.functions.forfeit(chain.task_id(_ready(chain))))
