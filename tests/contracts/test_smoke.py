from tests.support.chain import ACCEPTED, RARE_CHECKS, TOKEN, Chain


def test_full_lifecycle_pays_reward_after_challenge_window(chain: Chain) -> None:
    bounty = chain.post_and_open(**RARE_CHECKS)
    chain.stake("alice", 2_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.advance(601)
    chain.mine()  # the draw block's hash is visible to calls only once a later block exists
    assert chain.view("challengeOf", task)[0] is False
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED
    before = chain.balance("alice")
    chain.tx("alice", "claimRewards")
    assert chain.balance("alice") - before == TOKEN // 10
