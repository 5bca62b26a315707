from tests.support.chain import ALWAYS_CHECKED, TOKEN, UNBONDING_DELAY, Chain, reverts


def test_stake_bonds_tokens_and_emits(chain: Chain) -> None:
    before = chain.balance("alice")
    receipt = chain.tx("alice", "stake", 300 * TOKEN)
    assert chain.events(receipt, "Staked")[0]["bonded"] == 300 * TOKEN
    assert chain.stake_of("alice") == (300 * TOKEN, 0, 0, 0)
    assert before - chain.balance("alice") == 300 * TOKEN


def test_stake_reverts_on_zero(chain: Chain) -> None:
    with reverts("StakingZeroAmount"):
        chain.tx("alice", "stake", 0)


def test_stake_reverts_above_uint96(chain: Chain) -> None:
    too_much = 2**96
    chain.send("deployer", chain.token.functions.approve(chain.market.address, too_much))
    with reverts("StakingAmountTooLarge", amount=too_much):
        chain.tx("deployer", "stake", too_much)


def test_request_unstake_reverts_on_zero_and_beyond_bonded(chain: Chain) -> None:
    chain.stake("alice", 100 * TOKEN)
    with reverts("StakingZeroAmount"):
        chain.tx("alice", "requestUnstake", 0)
    with reverts("StakingInsufficientStake", bonded=100 * TOKEN, needed=101 * TOKEN):
        chain.tx("alice", "requestUnstake", 101 * TOKEN)


def test_withdraw_reverts_before_unbonding_delay_then_pays(chain: Chain) -> None:
    chain.stake("alice", 100 * TOKEN)
    chain.tx("alice", "requestUnstake", 60 * TOKEN)
    release_at = chain.view("unbondingRequests", chain.addr("alice"))[0][1]
    with reverts("StakingNothingToWithdraw", nextReleaseAt=release_at, encumbered=0):
        chain.tx("alice", "withdraw")
    chain.advance(UNBONDING_DELAY + 1)
    before = chain.balance("alice")
    chain.tx("alice", "withdraw")
    assert chain.balance("alice") - before == 60 * TOKEN
    assert chain.stake_of("alice") == (40 * TOKEN, 0, 0, 0)


def test_withdraw_pays_only_matured_requests(chain: Chain) -> None:
    chain.stake("alice", 100 * TOKEN)
    chain.tx("alice", "requestUnstake", 10 * TOKEN)
    chain.advance(UNBONDING_DELAY // 2)
    chain.tx("alice", "requestUnstake", 20 * TOKEN)
    chain.advance(UNBONDING_DELAY // 2 + 1)
    before = chain.balance("alice")
    chain.tx("alice", "withdraw")
    assert chain.balance("alice") - before == 10 * TOKEN
    assert chain.stake_of("alice")[2] == 20 * TOKEN


def test_unbonding_queue_is_bounded(chain: Chain) -> None:
    chain.stake("alice", 100 * TOKEN)
    for _ in range(32):
        chain.tx("alice", "requestUnstake", 1)
    with reverts("StakingUnbondingQueueFull", pending=32):
        chain.tx("alice", "requestUnstake", 1)


def test_locked_stake_sent_to_unbonding_cannot_be_withdrawn_until_task_settles(chain: Chain) -> None:
    bounty = chain.post_and_open(**ALWAYS_CHECKED)
    chain.stake("alice", 100 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.tx("alice", "requestUnstake", 100 * TOKEN)  # everything, including the task's lock
    assert chain.stake_of("alice") == (0, 100 * TOKEN, 100 * TOKEN, 0)
    chain.advance(UNBONDING_DELAY + 1)
    with reverts("StakingNothingToWithdraw", encumbered=100 * TOKEN):
        chain.tx("alice", "withdraw")


def test_slash_reaches_unbonding_stake(chain: Chain) -> None:
    bounty = chain.post_and_open(**ALWAYS_CHECKED)
    for verifier in ("vera", "victor"):
        chain.stake(verifier)
    chain.stake("mallory", 150 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("mallory", task)
    chain.tx("mallory", "requestUnstake", 150 * TOKEN)  # tries to run with the locked stake
    chain.mine()
    receipt = chain.fail_check(task)
    assert chain.events(receipt, "StakeSlashed")[0]["amount"] == 100 * TOKEN
    assert chain.stake_of("mallory") == (0, 0, 50 * TOKEN, 0)
    chain.advance(UNBONDING_DELAY + 1)
    before = chain.balance("mallory")
    chain.tx("mallory", "withdraw")
    assert chain.balance("mallory") - before == 50 * TOKEN
