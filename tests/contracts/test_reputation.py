"""Reputation that means something (BOINC adaptive replication): only tasks a verifier quorum replayed and
passed earn it, only with the poster whose bounty they were, and a slash starts it over everywhere. Unchecked
tasks and tasks on a bounty the volunteer posted for itself buy no trust on anyone else's bounty."""

from __future__ import annotations

from tests.support.chain import ALWAYS_CHECKED, RARE_CHECKS, TOKEN, Chain, reverts


def _stake_all(chain: Chain) -> None:
    for actor in ("alice", "bob", "vera", "victor"):
        chain.stake(actor, 5_000 * TOKEN)


def _checked_and_passed(chain: Chain, bounty: int, shard: int, volunteer: str = "alice") -> None:
    task = chain.task_id(bounty, 0, shard)
    chain.claim_and_commit(volunteer, task)
    chain.mine()
    chain.tx("vera", "attest", task, True)
    chain.tx("victor", "attest", task, True)


def test_checked_and_passed_tasks_earn_reputation_with_that_poster_only(chain: Chain) -> None:
    _stake_all(chain)
    bounty = chain.post_and_open(shards=4, **ALWAYS_CHECKED)
    for shard in range(3):
        _checked_and_passed(chain, bounty, shard)
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 3
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("carol")) == 0  # another poster
    assert chain.stake_of("alice")[3] == 3  # the all-bounties statistic still counts them
    # The record lowers the next claim's check probability on this poster's bounties: 5000·4/(4+3).
    other = chain.post_and_open()
    task = chain.task_id(other)
    chain.tx("alice", "claim", task)
    assert chain.task(task)["checkBps"] == 5000 * 4 // 7


def test_unchecked_tasks_earn_no_reputation(chain: Chain) -> None:
    _stake_all(chain)
    bounty = chain.post_and_open(**RARE_CHECKS)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.advance(601)
    chain.tx("bob", "settle", task)
    assert chain.stake_of("alice")[3] == 1
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 0


def test_a_self_posted_bounty_buys_no_trust_on_another_posters_bounty(chain: Chain) -> None:
    _stake_all(chain)
    chain.send("deployer", chain.token.functions.transfer(chain.addr("alice"), 10_000 * TOKEN))
    own = chain.post_and_open(poster="alice", shards=4, **ALWAYS_CHECKED)
    for shard in range(4):
        _checked_and_passed(chain, own, shard, volunteer="bob")
    assert chain.view("reputationOf", chain.addr("bob"), chain.addr("alice")) == 4
    theirs = chain.post_and_open()
    task = chain.task_id(theirs)
    chain.tx("bob", "claim", task)
    assert chain.task(task)["checkBps"] == 5000  # a newcomer's probability with this poster


def test_a_slash_starts_reputation_over_with_every_poster(chain: Chain) -> None:
    _stake_all(chain)
    bounty = chain.post_and_open(shards=4, **ALWAYS_CHECKED)
    for shard in range(2):
        _checked_and_passed(chain, bounty, shard)
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 2
    task = chain.task_id(bounty, 0, 2)
    chain.claim_and_commit("alice", task)
    chain.mine()
    chain.fail_check(task)  # slashed
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 0
    chain.advance(chain.bounty(bounty)["deadline"] - chain.now() + 1)  # barred from the poster's tasks until then
    _checked_and_passed(chain, chain.post_and_open(**ALWAYS_CHECKED), 0)
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 1  # earned anew


def test_a_slashed_volunteer_takes_none_of_the_posters_tasks_until_that_bountys_deadline(chain: Chain) -> None:
    """A proven cheater would cost each round it joins a detection and a redo: it is barred from the poster's
    bounties while the bounty it cheated on runs, and only from that poster's."""
    _stake_all(chain)
    bounty = chain.post_and_open(shards=2, **ALWAYS_CHECKED)
    task = chain.task_id(bounty, 0, 0)
    chain.claim_and_commit("alice", task)
    chain.mine()
    chain.fail_check(task)
    deadline = chain.bounty(bounty)["deadline"]
    with reverts("MarketVolunteerBarred", volunteer=chain.addr("alice"), until=deadline):
        chain.tx("alice", "claim", chain.task_id(bounty, 0, 1))
    with reverts("MarketVolunteerBarred", volunteer=chain.addr("alice")):
        chain.tx("alice", "claim", chain.task_id(chain.post_and_open(), 0, 0))  # the same poster's next bounty
    chain.send("deployer", chain.token.functions.transfer(chain.addr("carol"), 10_000 * TOKEN))
    elsewhere = chain.post_and_open(poster="carol")
    chain.tx("alice", "claim", chain.task_id(elsewhere))  # another poster's bounty takes it
    later = chain.post_and_open(deadline=deadline + 40 * 24 * 3600)
    chain.advance(deadline - chain.now() + 1)
    chain.tx("alice", "claim", chain.task_id(later))  # the bar ends with the bounty it cheated on
