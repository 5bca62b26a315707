"""The verifier registry and the committees drawn from it: only the verifiers the chain drew for a task's check
may vote on it, the draw comes from seats taken before the commit, and no one can join after seeing a commit."""

from __future__ import annotations

from web3.types import RPCEndpoint

from tests.support.chain import ACCEPTED, ALWAYS_CHECKED, COMMITTED, CONTESTED, TOKEN, Chain, reverts

POOL = ("bob", "carol", "dave", "vera", "victor", "mallory")  # six seats; quorum 1 draws a committee of two


def _seated_and_committed(chain: Chain, quorum: int = 1) -> int:
    bounty = chain.post_and_open(quorum=quorum, verifierFee=TOKEN, **ALWAYS_CHECKED)
    chain.stake("alice", 5_000 * TOKEN, verifier=False)
    for actor in POOL:
        chain.stake(actor, 5_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine(2)  # a view reads at the head: the draw block must be behind it
    return task


def test_registering_takes_a_seat_once_and_needs_stake(chain: Chain) -> None:
    with reverts("RegistryNoStake", verifier=chain.addr("bob")):
        chain.tx("bob", "registerVerifier")
    chain.stake("bob", 100 * TOKEN, verifier=False)
    receipt = chain.tx("bob", "registerVerifier")
    assert chain.events(receipt, "VerifierRegistered") == [{"verifier": chain.addr("bob"), "seat": 0}]
    assert chain.view("seatOf", chain.addr("bob")) == [True, 0]
    with reverts("RegistryAlreadyRegistered", verifier=chain.addr("bob")):
        chain.tx("bob", "registerVerifier")
    assert chain.view("seatCount") == 1


def test_leaving_and_rejoining_reuse_one_seat_per_account(chain: Chain) -> None:
    """Churning one account must not fill the pool with empty chairs: it has one seat, ever."""
    with reverts("RegistryNotRegistered", verifier=chain.addr("bob")):
        chain.tx("bob", "deregisterVerifier")
    chain.stake("bob")
    receipt = chain.tx("bob", "deregisterVerifier")
    assert chain.events(receipt, "VerifierDeregistered") == [{"verifier": chain.addr("bob"), "seat": 0}]
    assert chain.view("seatOf", chain.addr("bob")) == [False, 0]
    with reverts("RegistryNotRegistered"):
        chain.tx("bob", "deregisterVerifier")
    joined_at = chain.view("seatAt", 0)[1]
    for _ in range(3):
        chain.tx("bob", "registerVerifier")
        chain.tx("bob", "deregisterVerifier")
    receipt = chain.tx("bob", "registerVerifier")
    assert chain.events(receipt, "VerifierRegistered") == [{"verifier": chain.addr("bob"), "seat": 0}]
    assert chain.view("seatCount") == 1 and chain.view("seatOf", chain.addr("bob")) == [True, 0]
    holder, since, active = chain.view("seatAt", 0)
    assert (holder, active) == (chain.addr("bob"), True) and since > joined_at  # serves only later commits


def test_empty_chairs_are_passed_over_by_the_draw(chain: Chain) -> None:
    """Seats whose holders left are not drawn in place of serving ones: with two of six empty, a draw that looks
    at up to four seats (LOOKS_PER_SEAT) always fills the committee's two with serving seats."""
    bounty = chain.post_and_open(quorum=1, verifierFee=TOKEN, **ALWAYS_CHECKED)
    chain.stake("alice", 5_000 * TOKEN, verifier=False)
    for actor in POOL:
        chain.stake(actor, 5_000 * TOKEN)
    for actor in POOL[:2]:
        chain.tx(actor, "deregisterVerifier")
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine(2)
    committee = chain.committee(task)
    assert len(committee) == 2 and set(committee) <= {chain.addr(a) for a in POOL[2:]}


def test_only_the_drawn_committee_may_vote_and_its_vote_decides(chain: Chain) -> None:
    task = _seated_and_committed(chain)
    committee = chain.committee(task)
    pool = {chain.addr(a): a for a in POOL}
    assert len(committee) == 2 and len(set(committee)) == 2 and set(committee) <= set(pool)
    for outsider in (a for a in POOL if chain.addr(a) not in committee):
        with reverts("MarketNotOnCommittee", taskId=task, verifier=chain.addr(outsider)):
            chain.tx(outsider, "attest", task, False)
    assert chain.task(task)["status"] == COMMITTED  # four refused FAIL votes moved nothing
    chain.tx(pool[committee[0]], "attest", task, True)  # quorum 1
    assert chain.task(task)["status"] == ACCEPTED


def test_the_draw_differs_between_tasks(chain: Chain) -> None:
    """Not one fixed pair judging everything: over the shards of a round, the committees differ."""
    bounty = chain.post_and_open(quorum=1, verifierFee=TOKEN, shards=8, rounds=1, **ALWAYS_CHECKED)
    chain.stake("alice", 20_000 * TOKEN, verifier=False)
    for actor in POOL:
        chain.stake(actor, 5_000 * TOKEN)
    tasks = [chain.task_id(bounty, 0, shard) for shard in range(8)]
    for task in tasks:
        chain.claim_and_commit("alice", task)
    chain.mine(2)  # a view reads at the head: the draw block must be behind it
    committees = {frozenset(chain.committee(task)) for task in tasks}
    assert len(committees) > 1


def test_a_seat_taken_after_the_commit_is_not_drawn_for_it(chain: Chain) -> None:
    bounty = chain.post_and_open(**ALWAYS_CHECKED)
    chain.stake("alice", 5_000 * TOKEN, verifier=False)
    chain.stake("vera", 5_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.stake("victor", 5_000 * TOKEN)  # joins having seen the commit
    chain.mine(2)  # a view reads at the head: the draw block must be behind it
    assert chain.committee(task) == [chain.addr("vera")]
    with reverts("MarketNotOnCommittee", verifier=chain.addr("victor")):
        chain.tx("victor", "attest", task, False)


def test_a_member_who_left_cannot_vote(chain: Chain) -> None:
    bounty = chain.post_and_open(**ALWAYS_CHECKED)
    chain.stake("alice", 5_000 * TOKEN, verifier=False)
    for actor in ("vera", "victor"):
        chain.stake(actor, 5_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine(2)  # a view reads at the head: the draw block must be behind it
    chain.tx("vera", "deregisterVerifier")
    with reverts("MarketNotOnCommittee", verifier=chain.addr("vera")):
        chain.tx("vera", "attest", task, True)
    chain.tx("vera", "registerVerifier")  # its seat back, but (re)joined after the commit
    with reverts("MarketNotOnCommittee", verifier=chain.addr("vera")):
        chain.tx("vera", "attest", task, True)


def test_a_lost_draw_seats_the_whole_pool(chain: Chain) -> None:
    """Nobody recorded the seed within 256 blocks: lost randomness must not narrow who checks the volunteer."""
    task = _seated_and_committed(chain)
    chain.w3.provider.make_request(RPCEndpoint("anvil_mine"), [300])
    assert sorted(chain.committee(task)) == sorted(chain.addr(a) for a in POOL)  # every serving seat
    outsider = POOL[-1]
    chain.tx(outsider, "attest", task, False)  # quorum 1: any seated verifier's vote sends it to the referee
    assert chain.task(task)["status"] == CONTESTED
