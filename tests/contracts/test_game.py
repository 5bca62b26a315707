"""The bisection game: a challenger claims a committed state does not follow from an earlier one; the volunteer
posts midpoint states, the challenger agrees or disagrees, and after ⌈log2 steps⌉ rounds one optimizer step
is left for the referee (the bounty's coordinator) to recompute. Every path: each side proven wrong, each
side silent, the referee silent, bad claims, turns, and a second challenger after a first one lost."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from protocol.merkle import merkle_proof, merkle_root, trace_leaf
from tests.support.chain import ACCEPTED, CHALLENGED, COMMITTED, OPEN, TOKEN, Chain, reverts

CONTESTED = 5
NONE, VOLUNTEER, CHALLENGER, REFEREE = range(4)
STEPS = [0, 16, 32]  # three committed checkpoints, 16 optimizer steps apart
STAKE = 100 * TOKEN  # DEFAULT_TERMS' stake per task
VERIFY_WINDOW = 1200


def state(step: int, faked: bool = False) -> bytes:
    return keccak(f"state {step}{' faked' if faked else ''}".encode())


class Trace:
    """The commitment a volunteer made: one leaf per checkpoint, bound to the task and the volunteer."""

    def __init__(self, chain: Chain, task: int, volunteer: str) -> None:
        self.hashes = [state(s) for s in STEPS]
        self.leaves = [trace_leaf(task, chain.addr(volunteer), s, h) for s, h in zip(STEPS, self.hashes, strict=True)]
        self.root = merkle_root(self.leaves)
        self.update = b"\x22" * 32

    def step(self, index: int) -> tuple[int, bytes, list[bytes]]:
        return (STEPS[index], self.hashes[index], merkle_proof(self.leaves, index))


def _committed(chain: Chain, **overrides: Any) -> tuple[int, int, Trace]:
    bounty = chain.post_and_open(**overrides)
    for actor in ("alice", "bob", "vera", "victor", "dave"):
        chain.stake(actor, 5_000 * TOKEN)
    task = chain.task_id(bounty)
    trace = Trace(chain, task, "alice")
    chain.tx("alice", "claim", task)
    chain.commit("alice", task, trace.root, trace.update)
    chain.mine()
    return bounty, task, trace


def contest(chain: Chain, who: str, task: int, trace: Trace, lo: int = 0, hi: int = 1) -> Any:
    return chain.tx(who, "contest", task, trace.root, trace.update, trace.step(lo), trace.step(hi))


def game(chain: Chain, task: int) -> dict[str, Any]:
    fields = ("challenger", "loStep", "hiStep", "deadline", "turn", "loHash", "hiHash", "midHash")
    return dict(zip(fields, chain.view("gameOf", task), strict=True))


def play_to_the_referee(chain: Chain, task: int, answers: list[bool]) -> int:
    """Volunteer and challenger alternate until one step is left; returns the rounds played."""
    rounds = 0
    while game(chain, task)["turn"] == VOLUNTEER:
        g = game(chain, task)
        mid = (g["loStep"] + g["hiStep"]) // 2
        chain.tx("alice", "bisect", task, state(mid), f"bafystate{mid}")
        chain.tx("dave", "respond", task, answers[rounds])
        rounds += 1
    return rounds


def test_contest_opens_a_game_locks_the_challenger_and_freezes_the_task(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    receipt = contest(chain, "dave", task, trace)
    assert chain.events(receipt, "GameOpened")[0] == {
        "taskId": task,
        "challenger": chain.addr("dave"),
        "loStep": 0,
        "loHash": trace.hashes[0],
        "hiStep": 16,
        "hiHash": trace.hashes[1],
    }
    g = game(chain, task)
    assert (g["challenger"], g["turn"], g["deadline"]) == (chain.addr("dave"), VOLUNTEER, chain.now() + VERIFY_WINDOW)
    assert chain.task(task)["status"] == CONTESTED
    assert chain.stake_of("dave")[1] == STAKE
    # Nothing else moves the task while the game is played: no vote, no dispute, no settling, no second game.
    for actor, fn, args in (("vera", "attest", (True,)), ("bob", "dispute", (1,)), ("bob", "settle", ())):
        with reverts("MarketTaskNotInStatus", status=CONTESTED):
            chain.tx(actor, fn, task, *args)
    with reverts("MarketGameInProgress", taskId=task):
        contest(chain, "vera", task, trace, 1, 2)


def test_contest_refuses_claims_the_commitment_does_not_prove(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    with reverts("MarketBadTraceClaim", taskId=task):  # another update than the committed one
        chain.tx("dave", "contest", task, trace.root, b"\x33" * 32, trace.step(0), trace.step(1))
    forged = (16, state(16, faked=True), merkle_proof(trace.leaves, 1))
    with reverts("MarketBadTraceClaim", taskId=task):  # a state the volunteer never committed
        chain.tx("dave", "contest", task, trace.root, trace.update, trace.step(0), forged)
    with reverts("MarketBadTraceClaim", taskId=task):  # the stretch must go forward
        contest(chain, "dave", task, trace, 1, 0)
    with reverts("MarketSelfDispute", taskId=task):
        contest(chain, "alice", task, trace)
    with reverts("MarketVerifierIneligible", verifier=chain.addr("mallory"), needed=STAKE):
        contest(chain, "mallory", task, trace)
    chain.advance(600 + VERIFY_WINDOW + 1)
    with reverts("MarketVerifyWindowClosed", taskId=task):
        contest(chain, "dave", task, trace)


def test_a_wrong_step_found_in_log2_rounds_slashes_the_volunteer_and_pays_the_challenger(chain: Chain) -> None:
    bounty, task, trace = _committed(chain)
    escrow = chain.bounty(bounty)["escrow"]
    contest(chain, "dave", task, trace)
    rounds = play_to_the_referee(chain, task, [False, True, False, True])
    g = game(chain, task)
    assert rounds == 4 and g["turn"] == REFEREE and g["hiStep"] - g["loStep"] == 1  # ⌈log2 16⌉ = 4
    assert (g["loStep"], g["hiStep"]) == (5, 6)  # [0,16] → [0,8] → [4,8] → [4,6] → [5,6]
    receipt = chain.tx("coordinator", "rule", task, False)
    assert chain.events(receipt, "GameRuled")[0]["stepCorrect"] is False
    assert chain.events(receipt, "GameEnded")[0]["loser"] == chain.addr("alice")
    assert chain.events(receipt, "TaskSlashed")[0]["amount"] == STAKE
    # The challenger's stake comes back with half the slashed stake; the other half funds the redo.
    assert chain.stake_of("dave") == (5_000 * TOKEN, 0, 0, 0)
    assert chain.view("claimable", chain.addr("dave")) == STAKE // 2
    assert chain.bounty(bounty)["escrow"] == escrow + STAKE // 2
    reopened = chain.task(task)
    assert reopened["status"] == OPEN and reopened["attempt"] == 1
    assert game(chain, task)["turn"] == NONE


def test_a_correct_step_slashes_the_challenger_and_the_task_goes_on(chain: Chain) -> None:
    bounty, task, trace = _committed(chain)
    escrow = chain.bounty(bounty)["escrow"]
    contest(chain, "dave", task, trace, 1, 2)
    play_to_the_referee(chain, task, [True, True, True, True])
    assert (game(chain, task)["loStep"], game(chain, task)["hiStep"]) == (31, 32)
    receipt = chain.tx("coordinator", "rule", task, True)
    assert chain.events(receipt, "ChallengerSlashed")[0] == {
        "taskId": task,
        "challenger": chain.addr("dave"),
        "amount": STAKE,
    }
    assert chain.stake_of("dave") == (4_900 * TOKEN, 0, 0, 0)
    assert chain.view("claimable", chain.addr("alice")) == STAKE // 2  # for the delay
    assert chain.bounty(bounty)["escrow"] == escrow + STAKE // 2
    resumed = chain.task(task)
    assert resumed["status"] == COMMITTED and resumed["deadline"] == chain.now()  # windows restart
    chain.advance(600 + VERIFY_WINDOW + 1)
    chain.tx("bob", "settle", task)
    assert chain.task(task)["status"] == ACCEPTED
    assert chain.view("claimable", chain.addr("alice")) == STAKE // 2 + 10 * TOKEN


def test_only_the_side_whose_turn_it_is_moves_and_only_in_time(chain: Chain) -> None:
    bounty, task, trace = _committed(chain)
    contest(chain, "dave", task, trace)
    with reverts("MarketNotYourTurn", caller=chain.addr("dave"), turn=VOLUNTEER):
        chain.tx("dave", "bisect", task, state(8), "bafy")
    with reverts("MarketNotYourTurn", caller=chain.addr("alice"), turn=VOLUNTEER):
        chain.tx("alice", "respond", task, True)
    with reverts("MarketEmptyStateHash", taskId=task):
        chain.tx("alice", "bisect", task, b"\x00" * 32, "bafy")
    receipt = chain.tx("alice", "bisect", task, state(8), "bafystate8")
    assert chain.events(receipt, "GameBisected")[0] == {
        "taskId": task,
        "midStep": 8,
        "midHash": state(8),
        "stateCid": "bafystate8",
    }
    with reverts("MarketNotYourTurn", caller=chain.addr("alice"), turn=CHALLENGER):
        chain.tx("alice", "bisect", task, state(8), "bafy")
    with reverts("MarketNotYourTurn", caller=chain.addr("vera"), turn=CHALLENGER):
        chain.tx("vera", "respond", task, True)
    chain.advance(VERIFY_WINDOW + 1)
    with reverts("MarketMoveTooLate", taskId=task):
        chain.tx("dave", "respond", task, True)
    with reverts("MarketNoGame", taskId=chain.task_id(bounty, 0, 1)):
        chain.tx("bob", "forfeit", chain.task_id(bounty, 0, 1))


def test_a_silent_volunteer_loses_its_game(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    contest(chain, "dave", task, trace)
    with reverts("MarketMoveNotOverdue", taskId=task):
        chain.tx("bob", "forfeit", task)
    chain.advance(VERIFY_WINDOW + 1)
    receipt = chain.tx("bob", "forfeit", task)
    assert chain.events(receipt, "GameForfeited")[0]["turn"] == VOLUNTEER
    assert chain.events(receipt, "TaskSlashed")[0]["volunteer"] == chain.addr("alice")
    assert chain.task(task)["status"] == OPEN


def test_a_silent_challenger_loses_its_stake(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    contest(chain, "dave", task, trace)
    chain.tx("alice", "bisect", task, state(8), "bafystate8")
    chain.advance(VERIFY_WINDOW + 1)
    receipt = chain.tx("bob", "forfeit", task)
    assert chain.events(receipt, "GameForfeited")[0]["turn"] == CHALLENGER
    assert chain.events(receipt, "ChallengerSlashed")[0]["amount"] == STAKE
    assert chain.task(task)["status"] == COMMITTED


def test_a_silent_referee_dissolves_the_game_and_slashes_nobody(chain: Chain) -> None:
    bounty, task, trace = _committed(chain)
    escrow = chain.bounty(bounty)["escrow"]
    contest(chain, "dave", task, trace)
    play_to_the_referee(chain, task, [True, True, True, True])
    chain.advance(VERIFY_WINDOW + 1)
    with reverts("MarketMoveTooLate", taskId=task):
        chain.tx("coordinator", "rule", task, True)
    receipt = chain.tx("bob", "forfeit", task)
    assert chain.events(receipt, "GameForfeited")[0]["turn"] == REFEREE
    assert not chain.events(receipt, "ChallengerSlashed") and not chain.events(receipt, "TaskSlashed")
    assert chain.stake_of("dave") == (5_000 * TOKEN, 0, 0, 0)
    assert chain.stake_of("alice")[:2] == (5_000 * TOKEN, STAKE)  # still locked on its task
    assert chain.bounty(bounty)["escrow"] == escrow
    assert chain.task(task)["status"] == COMMITTED


def test_only_the_coordinator_referees(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    contest(chain, "dave", task, trace)
    play_to_the_referee(chain, task, [True, True, True, True])
    for who in ("alice", "dave", "poster"):
        with reverts("MarketNotYourTurn", caller=chain.addr(who), turn=REFEREE):
            chain.tx(who, "rule", task, True)


def test_adjacent_states_go_straight_to_the_referee(chain: Chain) -> None:
    bounty = chain.post_and_open()
    for actor in ("alice", "dave"):
        chain.stake(actor, 5_000 * TOKEN)
    task = chain.task_id(bounty)
    hashes = [state(0), state(1)]
    leaves = [trace_leaf(task, chain.addr("alice"), step, h) for step, h in zip((0, 1), hashes, strict=True)]
    chain.tx("alice", "claim", task)
    chain.commit("alice", task, merkle_root(leaves), b"\x22" * 32)
    steps = [(i, hashes[i], merkle_proof(leaves, i)) for i in (0, 1)]
    chain.tx("dave", "contest", task, merkle_root(leaves), b"\x22" * 32, *steps)
    assert game(chain, task)["turn"] == REFEREE


def test_a_disputed_task_returns_to_challenged_and_its_disputer_shares_a_lost_game(chain: Chain) -> None:
    bounty, task, trace = _committed(chain)
    chain.tx("bob", "dispute", task, 1)
    contest(chain, "dave", task, trace, 1, 2)
    play_to_the_referee(chain, task, [True, True, True, True])
    escrow = chain.bounty(bounty)["escrow"]
    chain.tx("coordinator", "rule", task, False)
    # 100 slashed: half to the game's winner; of the other 50, the disputer gets its bond back plus half.
    assert chain.view("claimable", chain.addr("dave")) == 50 * TOKEN
    assert chain.view("claimable", chain.addr("bob")) == 20 * TOKEN + 25 * TOKEN
    assert chain.bounty(bounty)["escrow"] == escrow + 25 * TOKEN


def test_a_second_challenger_may_contest_after_the_first_lost(chain: Chain) -> None:
    _, task, trace = _committed(chain)
    chain.tx("bob", "dispute", task, 1)
    contest(chain, "dave", task, trace)
    play_to_the_referee(chain, task, [True, True, True, True])
    chain.tx("coordinator", "rule", task, True)
    assert chain.task(task)["status"] == CHALLENGED
    contest(chain, "vera", task, trace, 1, 2)
    assert game(chain, task)["challenger"] == chain.addr("vera")


def test_a_challenger_contests_an_attempt_once(chain: Chain) -> None:
    """A game the referee let dissolve cannot be reopened by the same account, to keep an honest volunteer's
    stake locked and its reward waiting; another challenger still may."""
    _, task, trace = _committed(chain)
    contest(chain, "dave", task, trace)
    play_to_the_referee(chain, task, [True, True, True, True])
    chain.advance(VERIFY_WINDOW + 1)
    chain.tx("bob", "forfeit", task)  # the referee was silent: dissolved, nobody slashed
    with reverts("MarketAlreadyContested", taskId=task, challenger=chain.addr("dave")):
        contest(chain, "dave", task, trace, 1, 2)
    contest(chain, "vera", task, trace, 1, 2)


def test_a_verify_window_too_short_to_answer_a_game_is_refused_at_post_time(chain: Chain) -> None:
    with reverts("MarketInvalidParams", field="verifyWindow"):
        chain.post(verifyWindow=29)
    chain.post(verifyWindow=30)
