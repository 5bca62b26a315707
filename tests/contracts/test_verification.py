import pytest
from eth_account import Account
from web3.types import RPCEndpoint

from ledger.market import ATTEST_DECIDING_GAS
from ledger.tx import Transactor
from tests.support.chain import (
    ACCEPTED,
    ALWAYS_CHECKED,
    CHALLENGED,
    COMMITTED,
    CONTESTED,
    OPEN,
    RARE_CHECKS,
    TOKEN,
    Chain,
    reverts,
)


def _committed(chain: Chain, **overrides: object) -> tuple[int, int]:
    bounty = chain.post_and_open(**overrides)
    chain.stake("alice", 5_000 * TOKEN, verifier=False)  # the volunteer
    for actor in ("bob", "vera", "victor", "dave"):  # four seats: the whole pool sits on every committee
        chain.stake(actor, 5_000 * TOKEN)
    task = chain.task_id(bounty)
    chain.claim_and_commit("alice", task)
    chain.mine()
    return bounty, task


def test_pass_quorum_accepts_and_pays_verifier_fees_from_escrow(chain: Chain) -> None:
    bounty, task = _committed(chain, **ALWAYS_CHECKED)
    escrow = chain.bounty(bounty)["escrow"]
    receipt = chain.tx("vera", "attest", task, True)
    assert chain.events(receipt, "VerdictAttested")[0] == {
        "taskId": task,
        "verifier": chain.addr("vera"),
        "passed": True,
    }
    assert chain.task(task)["status"] == COMMITTED
    receipt = chain.tx("victor", "attest", task, True)
    assert chain.task(task)["status"] == ACCEPTED
    assert chain.bounty(bounty)["escrow"] == escrow - 10 * TOKEN - 2 * TOKEN
    for actor, owed in (("alice", 10 * TOKEN), ("vera", TOKEN), ("victor", TOKEN)):
        assert chain.view("claimable", chain.addr(actor)) == owed
    # Every credit is one RewardCredited, the volunteer's reward included: one event type to sum.
    credited = {(e["account"], e["amount"]) for e in chain.events(receipt, "RewardCredited")}
    assert credited == {(chain.addr("alice"), 10 * TOKEN), (chain.addr("vera"), TOKEN), (chain.addr("victor"), TOKEN)}


def test_a_fail_quorum_opens_a_review_and_only_the_referees_ruling_slashes(chain: Chain) -> None:
    bounty, task = _committed(chain, **ALWAYS_CHECKED)
    escrow = chain.bounty(bounty)["escrow"]
    chain.tx("vera", "attest", task, False)
    chain.tx("bob", "attest", task, True)  # a dissenting verifier is outvoted, not paid
    receipt = chain.tx("victor", "attest", task, False)
    assert chain.events(receipt, "ReviewOpened") == [{"taskId": task, "failVotes": 2}]
    assert not chain.events(receipt, "TaskSlashed")  # votes carry no proof: nobody is slashed on them
    assert chain.task(task)["status"] == CONTESTED
    assert chain.stake_of("alice") == (5_000 * TOKEN, 100 * TOKEN, 0, 0)
    game = chain.view("gameOf", task)
    assert game[0] == "0x" + "0" * 40 and game[4] == 3  # no challenger; the referee's turn
    with reverts("MarketNotYourTurn", caller=chain.addr("vera")):
        chain.tx("vera", "rule", task, False)
    with reverts("MarketTaskNotInStatus", status=CONTESTED):
        chain.tx("dave", "attest", task, False)
    with reverts("MarketTaskNotInStatus", status=CONTESTED):
        chain.tx("bob", "settle", task)
    receipt = chain.tx("coordinator", "rule", task, False)
    assert chain.events(receipt, "TaskSlashed")[0]["amount"] == 100 * TOKEN
    assert chain.stake_of("alice") == (4_900 * TOKEN, 0, 0, 0)
    assert chain.view("claimable", chain.addr("bob")) == 0
    assert chain.view("claimable", chain.addr("vera")) == TOKEN
    assert chain.bounty(bounty)["escrow"] == escrow + 98 * TOKEN
    reopened = chain.task(task)
    assert reopened["status"] == OPEN and reopened["attempt"] == 1 and reopened["volunteer"] == "0x" + "0" * 40
    assert chain.view("commitmentOf", task) == b"\x00" * 32
    assert chain.view("gameOf", task)[4] == 0
    chain.claim_and_commit("bob", task)  # the redo starts fresh: earlier votes do not carry over
    chain.mine()
    chain.tx("vera", "attest", task, True)


def test_a_review_the_referee_upholds_accepts_and_pays_only_the_pass_voters(chain: Chain) -> None:
    bounty, task = _committed(chain, **ALWAYS_CHECKED)
    escrow = chain.bounty(bounty)["escrow"]
    chain.tx("vera", "attest", task, False)
    chain.tx("bob", "attest", task, True)
    chain.tx("victor", "attest", task, False)
    receipt = chain.tx("coordinator", "rule", task, True)
    assert not chain.events(receipt, "TaskSlashed")
    assert chain.task(task)["status"] == ACCEPTED
    assert chain.stake_of("alice") == (5_000 * TOKEN, 0, 0, 1)
    for actor, owed in (("alice", 10 * TOKEN), ("bob", TOKEN), ("vera", 0), ("victor", 0)):
        assert chain.view("claimable", chain.addr(actor)) == owed
    assert chain.bounty(bounty)["escrow"] == escrow - 11 * TOKEN
    assert chain.view("reputationOf", chain.addr("alice"), chain.addr("poster")) == 1  # checked, by the referee


def test_a_review_the_referee_lets_pass_reopens_the_task_without_a_slash_or_a_payment(chain: Chain) -> None:
    bounty, task = _committed(chain, **RARE_CHECKS)
    chain.tx("dave", "dispute", task, 3)
    escrow = chain.bounty(bounty)["escrow"]
    chain.tx("vera", "attest", task, False)
    chain.tx("victor", "attest", task, False)
    with reverts("MarketMoveNotOverdue", taskId=task):
        chain.tx("bob", "forfeit", task)
    chain.advance(1201)
    with reverts("MarketMoveTooLate", taskId=task):
        chain.tx("coordinator", "rule", task, False)
    receipt = chain.tx("bob", "forfeit", task)
    assert chain.events(receipt, "GameForfeited") == [{"taskId": task, "turn": 3}]
    assert not chain.events(receipt, "TaskSlashed")
    reopened = chain.task(task)
    assert reopened["status"] == OPEN and reopened["attempt"] == 1
    assert chain.stake_of("alice") == (5_000 * TOKEN, 0, 0, 0)
    assert chain.bounty(bounty)["escrow"] == escrow  # the reward waits for the redo
    for actor, owed in (("alice", 0), ("vera", 0), ("victor", 0), ("dave", 20 * TOKEN)):  # the bond goes back
        assert chain.view("claimable", chain.addr(actor)) == owed
    assert chain.view("gameOf", task)[4] == 0


def test_attest_reverts_on_unchecked_task(chain: Chain) -> None:
    _, task = _committed(chain, **RARE_CHECKS)
    with reverts("MarketNotChecked", taskId=task):
        chain.tx("vera", "attest", task, True)


def test_attest_reverts_for_volunteer_unseated_understaked_and_repeat(chain: Chain) -> None:
    chain.stake("mallory", TOKEN)  # seated, but its free stake cannot cover the bounty's stake per task
    _, task = _committed(chain, quorum=3, **ALWAYS_CHECKED)  # six seats for a pool of five: all of it sits
    with reverts("MarketVerifierIneligible", verifier=chain.addr("alice")):
        chain.tx("alice", "attest", task, True)
    with reverts("MarketNotOnCommittee", taskId=task, verifier=chain.addr("carol")):
        chain.tx("carol", "attest", task, True)  # never registered: not in the pool the committee is drawn from
    with reverts("MarketVerifierIneligible", verifier=chain.addr("mallory"), freeStake=TOKEN, needed=100 * TOKEN):
        chain.tx("mallory", "attest", task, True)
    chain.tx("vera", "attest", task, True)
    with reverts("MarketAlreadyAttested", taskId=task, verifier=chain.addr("vera")):
        chain.tx("vera", "attest", task, False)


def test_attest_reverts_after_verify_window_and_on_open_task(chain: Chain) -> None:
    bounty, task = _committed(chain, **ALWAYS_CHECKED)
    chain.advance(1801)
    with reverts("MarketVerifyWindowClosed", taskId=task):
        chain.tx("vera", "attest", task, False)
    with reverts("MarketTaskNotInStatus", status=OPEN):
        chain.tx("vera", "attest", chain.task_id(bounty, 0, 1), False)


def test_dispute_forces_check_and_false_claim_loses_bond_to_volunteer(chain: Chain) -> None:
    _, task = _committed(chain, **RARE_CHECKS)
    with reverts("MarketNotChecked"):
        chain.tx("vera", "attest", task, True)
    before = chain.balance("dave")
    receipt = chain.tx("dave", "dispute", task, 5)
    assert chain.events(receipt, "TaskDisputed")[0] == {
        "taskId": task,
        "challenger": chain.addr("dave"),
        "segment": 5,
        "bond": 20 * TOKEN,
    }
    assert before - chain.balance("dave") == 20 * TOKEN
    assert chain.task(task)["status"] == CHALLENGED
    checked, mask = chain.view("challengeOf", task)
    assert checked and mask & (1 << 5)
    with reverts("MarketTaskNotInStatus", status=CHALLENGED):
        chain.tx("bob", "dispute", task, 1)
    chain.tx("vera", "attest", task, True)
    chain.tx("victor", "attest", task, True)
    assert chain.view("claimable", chain.addr("alice")) == TOKEN // 10 + 20 * TOKEN


def test_dispute_proven_right_rewards_challenger(chain: Chain) -> None:
    _, task = _committed(chain, **RARE_CHECKS)
    chain.tx("dave", "dispute", task, 0)
    chain.fail_check(task)
    # slashed 1,000; 2 × 1 to verifiers; challenger gets its bond back + half of the remaining 998.
    assert chain.view("claimable", chain.addr("dave")) == 20 * TOKEN + 499 * TOKEN


def test_dispute_reverts_outside_window_bad_segment_unstaked_or_from_the_volunteer(chain: Chain) -> None:
    _, task = _committed(chain, **RARE_CHECKS)
    with reverts("MarketSegmentOutOfRange", taskId=task, segment=8, segments=8):
        chain.tx("dave", "dispute", task, 8)
    with reverts("MarketVerifierIneligible", verifier=chain.addr("mallory")):
        chain.tx("mallory", "dispute", task, 1)
    # The volunteer cannot take its attempt's dispute slot with its own honest segment (pre-empting a real one).
    with reverts("MarketSelfDispute", taskId=task, volunteer=chain.addr("alice")):
        chain.tx("alice", "dispute", task, 0)
    chain.advance(601)
    with reverts("MarketChallengeWindowClosed", taskId=task):
        chain.tx("dave", "dispute", task, 1)


def test_disputed_task_without_quorum_is_accepted_after_verify_window(chain: Chain) -> None:
    _, task = _committed(chain, **RARE_CHECKS)
    chain.tx("dave", "dispute", task, 2)
    chain.advance(601)
    with reverts("MarketVerdictPending"):
        chain.tx("bob", "settle", task)
    chain.advance(1200)
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED


def test_trace_leaf_verifies_against_commitment_with_openzeppelin_merkle_proof(chain: Chain) -> None:
    from eth_utils import keccak

    bounty = chain.post_and_open()
    chain.stake("alice", 500 * TOKEN)
    task = chain.task_id(bounty)
    leaves = [keccak(bytes([i])) for i in range(2)]
    root = keccak(b"".join(sorted(leaves)))  # OpenZeppelin's commutative (sorted-pair) hashing
    chain.tx("alice", "claim", task)
    chain.commit("alice", task, root, b"\x02" * 32)
    assert chain.view("verifyTraceLeaf", task, root, b"\x02" * 32, leaves[0], [leaves[1]]) is True
    assert chain.view("verifyTraceLeaf", task, root, b"\x02" * 32, leaves[0], [leaves[0]]) is False
    assert chain.view("verifyTraceLeaf", task, root, b"\x03" * 32, leaves[0], [leaves[1]]) is False


def _register_verifiers(chain: Chain, count: int) -> dict[str, Transactor]:
    """`count` fresh staked verifiers, by address."""
    registered = {}
    for _ in range(count):
        account = Account.create()
        chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [account.address, hex(10**18)])
        chain.send("deployer", chain.token.functions.transfer(account.address, 200 * TOKEN))
        voter = Transactor(chain.w3, account)
        voter.send(chain.token.functions.approve(chain.deployment.market, 2**256 - 1))
        voter.send(chain.market.functions.stake(200 * TOKEN))
        voter.send(chain.market.functions.registerVerifier())
        registered[account.address] = voter
    return registered


def test_a_ballot_over_two_slots_pays_only_the_winning_side_refuses_repeats_and_clears_on_reopen(chain: Chain) -> None:
    """Votes pack eight to a slot: nine votes of a quorum of five span two, and every rule reads both."""
    registered = _register_verifiers(chain, 6)  # ten seats with _committed's four: the committee of a quorum of 5
    bounty, task = _committed(chain, quorum=5, **ALWAYS_CHECKED)
    chain.mine()
    escrow = chain.bounty(bounty)["escrow"]
    voters = [registered[a] for a in chain.committee(task) if a in registered]
    assert len(voters) == 6
    for voter in voters[:4]:
        voter.send(chain.market.functions.attest(task, True))
    for actor in ("bob", "vera", "victor", "dave"):
        chain.tx(actor, "attest", task, False)  # entries 5 to 8: the first slot is full
    with reverts("MarketAlreadyAttested", verifier=chain.addr("vera")):
        chain.tx("vera", "attest", task, True)
    receipt = voters[4].send(chain.market.functions.attest(task, False))  # the ninth entry, in the second slot
    assert chain.events(receipt, "ReviewOpened") == [{"taskId": task, "failVotes": 5}]
    chain.tx("coordinator", "rule", task, False)
    for actor in ("bob", "vera", "victor", "dave"):
        assert chain.view("claimable", chain.addr(actor)) == TOKEN
    assert chain.view("claimable", voters[4].address) == TOKEN
    assert all(chain.view("claimable", v.address) == 0 for v in voters[:4])
    assert chain.bounty(bounty)["escrow"] == escrow + 100 * TOKEN - 5 * TOKEN
    # The redo's ballot starts empty: the ninth voter (second slot) and a first-slot voter may vote again.
    chain.claim_and_commit("bob", task)  # alice, slashed, is barred from the poster's tasks
    chain.mine(2)
    assert voters[4].address in chain.committee(task)
    voters[4].send(chain.market.functions.attest(task, True))
    chain.tx("vera", "attest", task, True)


@pytest.mark.parametrize("passed", [True, False])
def test_the_deciding_vote_of_the_largest_quorum_fits_the_gas_every_vote_carries(chain: Chain, passed: bool) -> None:
    """A vote may be mined as the deciding one after others land, so every vote carries ATTEST_DECIDING_GAS:
    that must cover the most expensive deciding vote: the contract's largest quorum, paying that many new accounts."""
    largest = int(chain.market.functions.MAX_QUORUM().call())
    seats = largest * int(chain.market.functions.SEATS_PER_VOTE().call())
    # One seat more than the committee (with the four of _committed): the costliest draw, nearly the whole pool.
    registered = _register_verifiers(chain, seats + 1 - 4)
    _, task = _committed(chain, quorum=largest, **ALWAYS_CHECKED)
    chain.mine()
    voters = [registered[a] for a in chain.committee(task) if a in registered][:largest]
    assert len(voters) == largest
    for voter in voters[:-1]:
        voter.send(chain.market.functions.attest(task, passed))
    deciding = voters[-1].send(chain.market.functions.attest(task, passed))
    assert chain.task(task)["status"] == (ACCEPTED if passed else CONTESTED)  # it decided: accepted, or reviewed
    assert deciding["gasUsed"] < ATTEST_DECIDING_GAS
