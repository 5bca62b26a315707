// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BountyMarket} from "contracts/BountyMarket.sol";
import {IMarketTypes} from "contracts/interfaces/IMarketTypes.sol";
import {StakingState} from "contracts/base/StakingState.sol";
import {MaliciousActor} from "./lib/Attackers.sol";
import {Fmt, IFaucetToken, MarketModel} from "./MarketModel.sol";
import {MarketProperties} from "./MarketProperties.sol";

/// @notice The operations forge strings into random sequences. Each one picks its actors and its
///         bounty/task from bounded seeds, predicts from the rules whether the market must accept the
///         call, makes it as the actor, and moves the model's tokens the way the rules say.
contract MarketHandler is MarketProperties {
    using Fmt for uint256;

    uint256 internal constant MAX_BOUNTIES = 3;
    bytes32 internal constant UPDATE_HASH = keccak256("update");
    uint256 internal constant BAD_CLAIMS = 4; // claim kinds below this are refused (see _traceClaim)
    uint256 internal constant SOUND_CLAIM = BAD_CLAIMS;
    uint256 internal constant MAX_TRACE_STEPS = 16;

    constructor(BountyMarket market_, IFaucetToken token_, MaliciousActor attacker_)
        MarketModel(market_, token_, attacker_)
    {}

    // ------------------------------------------------------------------ bounties and rounds

    /// @notice The poster (or the attacker contract) posts a random sound bounty; usually opened at once.
    function postBounty(uint256 seed, bool byAttacker) public {
        if (_bountyIds.length >= MAX_BOUNTIES) return;
        IMarketTypes.BountyParams memory p = _params(seed);
        address who = byAttacker ? address(attacker) : poster;
        uint256 escrow = uint256(p.shards) * p.rounds * (uint256(p.rewardPerTask) + uint256(p.quorum) * p.verifierFee);
        _fund(who, escrow);
        uint256 before = token.balanceOf(who);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.postBounty, (p)));
        _expect("postBounty", true, ok, ret);
        if (!ok) return;
        uint256 id = abi.decode(ret, (uint256));
        _bountyIds.push(id);
        ghostEscrow[id] = escrow;
        ++stats.posted;
        _check(before - token.balanceOf(who) == escrow, "postBounty: the poster paid more or less than the escrow");
        if (byAttacker) attacker.notePosted(id);
        if (seed % 4 != 0) _openRound(id);
    }

    /// @notice The coordinator opens round 0; it must move no tokens.
    function openRound(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id != 0) _openRound(id);
    }

    function _openRound(uint256 id) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        bool allowed = b.status == IMarketTypes.BountyStatus.Active && !b.roundOpen && b.currentRound == 0;
        bytes32 before = _moneyFingerprint();
        (bool ok, bytes memory ret) = _call(coordinator, abi.encodeCall(market.openRound, (id, "bafymodel0")));
        _expect("openRound", allowed, ok, ret);
        _check(_moneyFingerprint() == before, "openRound: the coordinator moved tokens");
    }

    /// @notice The coordinator closes the current round (allowed only when every shard is accepted).
    function closeRound(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        IMarketTypes.Bounty memory b = _bounty(id);
        bool allowed = b.status == IMarketTypes.BountyStatus.Active && b.roundOpen;
        for (uint256 shard = 0; allowed && shard < b.shards; ++shard) {
            allowed = _task(_taskIdOf(id, b.currentRound, shard)).status == IMarketTypes.TaskStatus.Accepted;
        }
        bytes32 before = _moneyFingerprint();
        (bool ok, bytes memory ret) = _call(coordinator, abi.encodeCall(market.closeRound, (id, "bafyaggregate")));
        _expect("closeRound", allowed, ok, ret);
        _check(_moneyFingerprint() == before, "closeRound: the coordinator moved tokens");
        if (!ok) return;
        ++stats.roundsClosed;
        if (b.currentRound + 1 == b.rounds) {
            ++stats.finalized;
            _check(
                _bounty(id).status == IMarketTypes.BountyStatus.Finalized, "closeRound: last round did not finalize"
            );
        }
    }

    /// @notice The bounty's poster asks for a refund (allowed once finalized or past the deadline).
    function refund(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id != 0) _refund(id);
    }

    /// @notice Time passes beyond a bounty's deadline and every verify window: open games are played
    ///         out, the pending tasks are settled or expired, then the poster's refund must succeed and
    ///         leave the bounty empty. A game may outlast the deadline: the poster refunds while it runs,
    ///         which must leave what the contested task may still be owed.
    function deadlinePassesAndPosterRecovers(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        if (_hasOpenGame(id)) {
            uint256 deadline = _bounty(id).deadline;
            if (block.timestamp <= deadline) vm.warp(deadline + 1);
            _refund(id);
        }
        _finishGames(id);
        uint256 end = _quietAfter(id);
        if (block.timestamp < end) vm.warp(end);
        vm.roll(block.number + 2); // the draw block of a commit made in this block exists
        _closeOut(id);
        ++stats.deadlineRefunds;
    }

    // ------------------------------------------------------------------ staking

    /// @notice A volunteer or verifier bonds more stake.
    function stake(uint256 actorSeed, uint256 amount) public {
        _stake(_staker(actorSeed), 1 + amount % (300 * TOKEN));
    }

    /// @notice Starting stake for the set-up (not a fuzzed operation).
    function seedStake(uint256 actorSeed, uint256 amount) external {
        _stake(_staker(actorSeed), amount);
    }

    function _stake(address who, uint256 amount) internal {
        _fund(who, amount);
        uint256 before = token.balanceOf(who);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.stake, (amount)));
        _expect("stake", true, ok, ret);
        if (!ok) return;
        ghostCollateral[who] += amount;
        _check(before - token.balanceOf(who) == amount, "stake: wrong amount pulled");
    }

    /// @notice A verifier (or the cheater, a sybil in the pool) takes a seat in the registry, or leaves it.
    function toggleSeat(uint256 actorSeed) public {
        address who = actorSeed % 4 == 3 ? cheater : _verifier(actorSeed);
        if (ghostSeated[who]) {
            (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.deregisterVerifier, ()));
            _expect("deregisterVerifier", true, ok, ret);
            if (ok) ghostSeated[who] = false;
            return;
        }
        (uint256 bonded,,) = _position(who);
        (bool joined, bytes memory reason) = _call(who, abi.encodeCall(market.registerVerifier, ()));
        _expect("registerVerifier", bonded > 0, joined, reason);
        if (!joined) return;
        if (ghostSeatPlusOne[who] == 0) {
            ghostSeatHolder.push(who);
            ghostSeatCreated.push(block.number);
            ghostSeatSince.push(block.number);
            ghostSeatPlusOne[who] = ghostSeatHolder.length;
        } else {
            ghostSeatSince[ghostSeatPlusOne[who] - 1] = block.number; // one seat per account: taken back
        }
        ghostSeated[who] = true;
        _check(market.seatCount() == ghostSeatHolder.length, "registerVerifier: seat count");
    }

    /// @notice A staker moves part of its bond (possibly more than it has) into the unbonding queue.
    function requestUnstake(uint256 actorSeed, uint256 amount) public {
        address who = _staker(actorSeed);
        (uint256 bonded,,) = _position(who);
        amount = 1 + amount % (bonded + 10 * TOKEN);
        uint256 queued = market.unbondingRequests(who).length;
        bool allowed = amount <= bonded && queued < market.MAX_UNBONDING_REQUESTS();
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.requestUnstake, (amount)));
        _expect("requestUnstake", allowed, ok, ret);
        if (!ok || !allowed) return;
        (uint256 bondedAfter,,) = _position(who);
        StakingState.UnbondingRequest[] memory queue = market.unbondingRequests(who);
        _check(
            bondedAfter == bonded - amount && queue.length == queued + 1, "requestUnstake: bond not moved to the queue"
        );
        StakingState.UnbondingRequest memory last = queue[queue.length - 1];
        _check(
            last.amount == amount && last.releaseAt == block.timestamp + unbondingDelay,
            "requestUnstake: request not released after the unbonding delay"
        );
    }

    /// @notice A staker withdraws matured unbonding stake; locked stake must stay behind.
    function withdraw(uint256 actorSeed) public {
        _withdraw(_staker(actorSeed));
    }

    // ------------------------------------------------------------------ tasks

    /// @notice A volunteer claims a task of a bounty's current round.
    function claim(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _claim(_volunteer(actorSeed), id, _currentTask(id, shardSeed));
    }

    /// @notice The lease holder commits (honestly or not, by its nature); others are refused.
    function commit(uint256 bountySeed, uint256 shardSeed, uint256 honestySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        IMarketTypes.Task memory t = _task(taskId);
        address who = t.status == IMarketTypes.TaskStatus.Claimed ? t.volunteer : _volunteer(honestySeed);
        _commit(who, taskId, _honesty(who, honestySeed), honestySeed >> 8);
    }

    /// @notice Anyone records a committed task's challenge seed.
    function drawChallenge(uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        IMarketTypes.Task memory t = _task(taskId);
        bool committed = _isPending(t.status); // a contested task's draw may be recorded too
        bytes32 recorded = _tasks[taskId][t.attempt].drawnSeed;
        bytes32 seed;
        if (committed && recorded == 0 && block.number > uint256(t.commitBlock) + 1) {
            bytes32 h = blockhash(uint256(t.commitBlock) + 1);
            if (h != 0) seed = keccak256(abi.encode(h, taskId, uint256(t.attempt)));
        }
        bool allowed = committed && (recorded != 0 || seed != 0);
        (bool ok, bytes memory ret) = _call(stranger, abi.encodeCall(market.drawChallenge, (taskId)));
        _expect("drawChallenge", allowed, ok, ret);
        if (ok && recorded == 0) _tasks[taskId][t.attempt].drawnSeed = seed;
    }

    /// @notice A staked account disputes a committed task, naming a segment (sometimes out of range).
    function dispute(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed, uint256 segment) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _dispute(_staker(actorSeed), id, _currentTask(id, shardSeed), segment);
    }

    /// @notice A verifier (or an honest volunteer acting as one) attests the truth about a task; one vote in
    ///         eight is a verifier's lying FAIL (only the referee's ruling may slash on it).
    function attest(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        address who = actorSeed % 5 < 3 ? _verifier(actorSeed) : (actorSeed % 5 == 3 ? honestA : honestB);
        _attestAs(who, id, _currentTask(id, shardSeed), (actorSeed >> 8) % 8 == 0);
    }

    /// @notice Anyone settles a task.
    function settle(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _settle(actorSeed % 2 == 0 ? stranger : _staker(actorSeed), id, _currentTask(id, shardSeed));
    }

    /// @notice Anyone settles a bounty's whole current round in one call: what `settle` would accept (and whose
    ///         draw block is behind us) is accepted, every other task is left exactly as it was.
    function settleMany(uint256 actorSeed, uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        IMarketTypes.Bounty memory b = _bounty(id);
        uint256[] memory ids = new uint256[](b.shards);
        IMarketTypes.Task[] memory before = new IMarketTypes.Task[](b.shards);
        bool[] memory due = new bool[](b.shards);
        uint256 expected;
        for (uint256 s = 0; s < b.shards; ++s) {
            ids[s] = _taskIdOf(id, b.currentRound, s);
            before[s] = _task(ids[s]);
            // Only a Committed task's settlement reads its draw, whose block must be behind us; a disputed
            // (Challenged) one is settled on time alone, even in the draw's own block.
            due[s] = _predictSettle(b, ids[s], before[s])
                && (before[s].status == IMarketTypes.TaskStatus.Challenged
                    || block.number > uint256(before[s].commitBlock) + 1);
            if (due[s]) ++expected;
        }
        address who = actorSeed % 2 == 0 ? stranger : _staker(actorSeed);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.settleMany, (ids)));
        _expect("settleMany", true, ok, ret);
        if (!ok) return;
        _check(abi.decode(ret, (uint256)) == expected, "settleMany: accepted another number of tasks");
        for (uint256 s = 0; s < b.shards; ++s) {
            IMarketTypes.Task memory after_ = _task(ids[s]);
            if (!due[s]) {
                _check(
                    after_.status == before[s].status && after_.attempt == before[s].attempt,
                    "settleMany: moved a task that was not due"
                );
                continue;
            }
            _modelAccept(id, b, ids[s], before[s], false);
            if (before[s].status == IMarketTypes.TaskStatus.Challenged) ++stats.unansweredDisputes;
            _check(after_.status == IMarketTypes.TaskStatus.Accepted, "settleMany: a due task not Accepted");
        }
    }

    /// @notice Anyone reopens a task whose lease lapsed.
    function expireLease(uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _expireLease(id, _currentTask(id, shardSeed));
    }

    /// @notice A whole task in one step: claim, commit, the draw block, sometimes a dispute, a truthful
    ///         quorum (or absent verifiers), the windows pass, settle. Random interleavings of the
    ///         single steps reach settlement too rarely.
    function lifecycle(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed, uint256 honestySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        address who = _volunteer(actorSeed);
        if (!_claim(who, id, taskId)) return;
        _commit(who, taskId, _honesty(who, honestySeed), honestySeed >> 64);
        vm.roll(block.number + 2);
        vm.warp(block.timestamp + 1 + (honestySeed >> 8) % 30);
        uint256 mode = (honestySeed >> 16) % 8;
        if (mode < 3) _dispute(_verifier(honestySeed >> 24), id, taskId, honestySeed >> 32);
        if (mode != 2 && mode != 3) {
            // Mode 7: a committee of liars votes FAIL whatever the truth.
            for (uint256 i = 0; i < 3; ++i) {
                _attestAs(_verifier(actorSeed % 3 + i), id, taskId, mode == 7);
            }
        }
        IMarketTypes.Bounty memory b = _bounty(id);
        if (_tasks[taskId][_task(taskId).attempt].game.turn == IMarketTypes.GameTurn.Referee) {
            // A review the FAIL votes opened: ruled truthfully, or (one in four) left to lapse and dissolve.
            if ((honestySeed >> 48) % 4 == 0) {
                vm.warp(block.timestamp + b.verifyWindow + 1);
                _forfeit(stranger, id, taskId);
            } else {
                _rule(coordinator, id, taskId);
            }
        }
        vm.warp(block.timestamp + b.challengeWindow + b.verifyWindow + 1);
        _settle(stranger, id, taskId);
    }

    // ------------------------------------------------------------------ bisection games

    /// @notice A staker contests a committed task's trace, sometimes with a claim the market must refuse.
    ///         Whoever contests a fake tells the truth; only a liar contests an honest trace.
    function contest(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed, uint256 claimSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        bool honestTrace = _tasks[taskId][_task(taskId).attempt].honesty == HONEST;
        _contest(_challenger(actorSeed, honestTrace), id, taskId, claimSeed % 10);
    }

    /// @notice The volunteer of a contested task posts its state at the midpoint (sometimes an empty hash).
    function bisect(uint256 bountySeed, uint256 shardSeed, uint256 hashSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        IMarketTypes.Task memory t = _task(taskId);
        address who = t.status == IMarketTypes.TaskStatus.Contested ? t.volunteer : _volunteer(hashSeed);
        _bisect(who, id, taskId, hashSeed % 10 == 0 ? bytes32(0) : _midHashOf(taskId, t, hashSeed >> 8));
    }

    /// @notice The challenger of a contested task answers the volunteer's midpoint.
    function respond(uint256 bountySeed, uint256 shardSeed, uint256 answerSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        address challenger = _tasks[taskId][_task(taskId).attempt].game.challenger;
        _respond(challenger != address(0) ? challenger : _staker(answerSeed), id, taskId, answerSeed);
    }

    /// @notice The coordinator, as referee, recomputes the one step left and rules truthfully.
    function rule(uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _rule(coordinator, id, _currentTask(id, shardSeed));
    }

    /// @notice Anyone ends a game whose mover let its deadline pass; often that time passes first.
    function forfeit(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed, uint256 waitSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        GameGhost storage game = _tasks[taskId][_task(taskId).attempt].game;
        bool open = game.turn != IMarketTypes.GameTurn.None;
        if (open && waitSeed % 2 == 0 && block.timestamp <= game.deadline) vm.warp(game.deadline + 1);
        _forfeit(actorSeed % 2 == 0 ? stranger : _staker(actorSeed), id, taskId);
    }

    /// @notice A whole game in one step: claim, commit, the draw block, sometimes a dispute or a first
    ///         attestation (whose FAIL fee a lost game pays before the challenger's half), a contest (by a
    ///         truthful challenger of a fake, or by a liar of an honest trace), the moves until the referee
    ///         rules (each mover sometimes silent), sometimes a second contest of the resumed task, then
    ///         the windows pass and the task settles. One game in four stops after a few moves, for the
    ///         single moves and the wind-down to finish. Random interleavings of the single moves reach a
    ///         ruling too rarely.
    function gameLifecycle(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed, uint256 playSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        address who = _volunteer(actorSeed);
        if (!_claim(who, id, taskId)) return;
        _commit(who, taskId, _honesty(who, playSeed), playSeed >> 64);
        vm.roll(block.number + 2);
        vm.warp(block.timestamp + 1 + (playSeed >> 8) % 30);
        if ((playSeed >> 16) % 4 == 0) _dispute(_verifier(playSeed >> 24), id, taskId, playSeed >> 32);
        if ((playSeed >> 20) % 3 == 0) _attest(_verifier(playSeed >> 40), id, taskId);
        bool honestTrace = _tasks[taskId][_task(taskId).attempt].honesty == HONEST;
        for (uint256 game = 0; game < 2; ++game) {
            if (game == 1 && (playSeed >> 200) % 3 != 0) break;
            _contest(_challenger(actorSeed >> (8 + 8 * game), honestTrace), id, taskId, SOUND_CLAIM);
            uint256 moves = (playSeed >> 128) % 4 == 0 ? (playSeed >> 132) % 4 : MAX_TRACE_STEPS;
            _playGame(id, taskId, playSeed >> (136 + 8 * game), moves, true);
            if (_task(taskId).status == IMarketTypes.TaskStatus.Contested) return;
        }
        IMarketTypes.Bounty memory b = _bounty(id);
        vm.warp(block.timestamp + b.challengeWindow + b.verifyWindow + 1);
        _settle(stranger, id, taskId);
    }

    /// @notice Each actor pulls its credited rewards.
    function claimRewards(uint256 actorSeed) public {
        address[] memory all = accounts();
        _claimRewards(all[actorSeed % all.length]);
    }

    /// @notice Time and blocks pass (sometimes past the 256-block horizon of unrecorded draws).
    function passTime(uint256 secondsSeed, uint256 blocksSeed) public {
        uint256[6] memory steps = [uint256(30), 700, 2_000, 4_000, 1 days, 4 days];
        vm.warp(block.timestamp + steps[secondsSeed % 6] + (secondsSeed >> 8) % 60);
        vm.roll(block.number + 1 + blocksSeed % (blocksSeed % 8 == 0 ? 300 : 4));
    }

    // ------------------------------------------------------------------ outside the rules

    /// @notice Someone calls a state-changing function it has no right to: a stranger or the coordinator
    ///         reaching for escrow, stake or rewards, a volunteer committing another's lease or attesting
    ///         its own task, a verifier voting twice, the poster refunding early, anyone pulling the
    ///         market's tokens through the ERC-20; in a game, a contest without stake or of one's own
    ///         task, a move by someone other than the mover, a ruling by a party to the game, a forfeit
    ///         before the mover is overdue. Every such call must revert and move nothing.
    function unauthorizedCall(uint256 callerSeed, uint256 fnSeed, uint256 bountySeed, uint256 shardSeed) public {
        address caller = callerSeed % 2 == 0 ? stranger : coordinator; // neither ever stakes nor posts
        uint256 which = fnSeed % 21;
        if (which == 4) _openRefundWindow(bountySeed); // try another's refund when the poster's would pay
        (address who, address target, bytes memory data, string memory what) =
            _forbiddenCall(caller, which, bountySeed, shardSeed);
        if (target == address(0)) return;
        bytes32 before = _fingerprint();
        vm.recordLogs();
        vm.prank(who);
        (bool ok,) = target.call(data);
        _scanEvents();
        ++stats.unauthorizedCalls;
        _check(!ok, string.concat("unauthorized ", what, " by ", vm.toString(who), " succeeded"));
        _check(_fingerprint() == before, string.concat("unauthorized ", what, " moved state"));
    }

    /// @dev Lets time pass to just after a bounty's deadline unless its refund is open already.
    function _openRefundWindow(uint256 bountySeed) private {
        if (_bountyIds.length == 0) return;
        IMarketTypes.Bounty memory b = _bounty(_bountyIds[bountySeed % _bountyIds.length]);
        if (b.status == IMarketTypes.BountyStatus.Active && block.timestamp <= b.deadline) {
            vm.warp(uint256(b.deadline) + 1);
        }
    }

    function _forbiddenCall(address caller, uint256 which, uint256 bountySeed, uint256 shardSeed)
        private
        view
        returns (address who, address target, bytes memory data, string memory what)
    {
        if (which == 0) {
            return (caller, address(market), abi.encodeCall(market.requestUnstake, (1)), "requestUnstake");
        }
        if (which == 1) return (caller, address(market), abi.encodeCall(market.withdraw, ()), "withdraw");
        if (which == 2) return (caller, address(market), abi.encodeCall(market.claimRewards, ()), "claimRewards");
        if (which == 3) {
            data = abi.encodeCall(token.transferFrom, (address(market), caller, 1));
            return (caller, address(token), data, "token.transferFrom(market)");
        }
        if (_bountyIds.length == 0) return (address(0), address(0), "", "");
        uint256 id = _bountyIds[bountySeed % _bountyIds.length];
        uint256 taskId = _currentTask(id, shardSeed);
        target = address(market);
        if (which == 4) return (caller, target, abi.encodeCall(market.refund, (id)), "refund of another's bounty");
        if (which == 5) return (stranger, target, abi.encodeCall(market.openRound, (id, "x")), "openRound");
        if (which == 6) return (stranger, target, abi.encodeCall(market.closeRound, (id, "x")), "closeRound");
        if (which == 7) return (caller, target, abi.encodeCall(market.claim, (taskId)), "claim without stake");
        if (which == 8) return (caller, target, abi.encodeCall(market.attest, (taskId, shardSeed % 2 == 0)), "attest");
        if (which == 9) return (caller, target, abi.encodeCall(market.dispute, (taskId, 0)), "dispute");
        if (which == 14) {
            // A sound claim against the committed trace, from an account with no stake to lock.
            (bytes32 root, bytes32 update, IMarketTypes.TraceStep memory lo, IMarketTypes.TraceStep memory hi,) =
                _traceClaim(taskId, _task(taskId), SOUND_CLAIM);
            return (caller, target, abi.encodeCall(market.contest, (taskId, root, update, lo, hi)), "contest");
        }
        if (which == 15) {
            return (caller, target, abi.encodeCall(market.bisect, (taskId, keccak256("mid"), "x")), "bisect");
        }
        if (which == 16) return (caller, target, abi.encodeCall(market.respond, (taskId, true)), "respond");
        (who, data, what) = _forbiddenByParticipant(which, id, taskId);
        if (who == address(0)) target = address(0);
    }

    /// @dev Calls by participants outside their role.
    function _forbiddenByParticipant(uint256 which, uint256 id, uint256 taskId)
        private
        view
        returns (address who, bytes memory data, string memory what)
    {
        IMarketTypes.Task memory t = _task(taskId);
        if (which == 10) {
            // Someone other than the lease holder commits.
            data = abi.encodeCall(market.commit, (taskId, bytes32("r"), bytes32("u"), "t", "u"));
            return (t.volunteer == honestA ? honestB : honestA, data, "commit of another's lease");
        }
        if (which == 11) {
            // The volunteer votes on its own task.
            return (t.volunteer, abi.encodeCall(market.attest, (taskId, true)), "attest on own task");
        }
        if (which == 12) {
            // A verifier that already voted on this attempt votes again.
            for (uint256 i = 0; i < 3; ++i) {
                if (_attested[taskId][t.attempt][_verifier(i)]) {
                    return (_verifier(i), abi.encodeCall(market.attest, (taskId, true)), "second attest");
                }
            }
            return (address(0), "", "");
        }
        if (which == 13) {
            // The poster refunds an active bounty before its deadline.
            IMarketTypes.Bounty memory b = _bounty(id);
            if (b.status != IMarketTypes.BountyStatus.Active || block.timestamp > b.deadline) {
                return (address(0), "", "");
            }
            return (b.poster, abi.encodeCall(market.refund, (id)), "refund before the deadline");
        }
        return _forbiddenGameMove(which, taskId, t);
    }

    /// @dev Game calls by a party to the game outside its role.
    function _forbiddenGameMove(uint256 which, uint256 taskId, IMarketTypes.Task memory t)
        private
        view
        returns (address who, bytes memory data, string memory what)
    {
        GameGhost storage game = _tasks[taskId][t.attempt].game;
        if (which == 17) {
            // The volunteer rules on its own game (a stranger where nobody holds the task).
            who = t.volunteer == address(0) ? stranger : t.volunteer;
            return (who, abi.encodeCall(market.rule, (taskId, true)), "rule by a party to the game");
        }
        if (which == 18) {
            // The volunteer contests its own trace.
            if (t.volunteer == address(0)) return (address(0), "", "");
            (bytes32 root, bytes32 update, IMarketTypes.TraceStep memory lo, IMarketTypes.TraceStep memory hi,) =
                _traceClaim(taskId, t, SOUND_CLAIM);
            return (t.volunteer, abi.encodeCall(market.contest, (taskId, root, update, lo, hi)), "contest of own task");
        }
        if (which == 19) {
            // The other side moves in the mover's place; the challenger rules on its own game.
            if (game.turn == IMarketTypes.GameTurn.Volunteer) {
                data = abi.encodeCall(market.bisect, (taskId, keccak256("mid"), "x"));
                return (game.challenger, data, "bisect by the challenger");
            }
            if (game.turn == IMarketTypes.GameTurn.Challenger) {
                return (t.volunteer, abi.encodeCall(market.respond, (taskId, false)), "respond by the volunteer");
            }
            if (game.turn == IMarketTypes.GameTurn.Referee) {
                return (game.challenger, abi.encodeCall(market.rule, (taskId, false)), "rule by the challenger");
            }
            return (address(0), "", "");
        }
        // A forfeit before the mover is overdue (or of no game at all).
        if (game.turn != IMarketTypes.GameTurn.None && block.timestamp > game.deadline) return (address(0), "", "");
        return (stranger, abi.encodeCall(market.forfeit, (taskId)), "forfeit before the deadline");
    }

    // ------------------------------------------------------------------ end of a sequence

    /// @notice Everything winds down (called by afterInvariant): open games are played out, every
    ///         deadline and window passes, all pending tasks settle or expire, posters recover their
    ///         escrow, everyone claims, unstakes and withdraws. Afterwards the market must hold no token.
    function windDown() external {
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            _finishGames(_bountyIds[i]);
        }
        uint256 end = block.timestamp;
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            uint256 quiet = _quietAfter(_bountyIds[i]);
            if (quiet > end) end = quiet;
        }
        vm.warp(end + unbondingDelay);
        vm.roll(block.number + 2);
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            _closeOut(_bountyIds[i]);
        }
        address[] memory all = accounts();
        for (uint256 i = 0; i < all.length; ++i) {
            if (ghostClaimable[all[i]] > 0) _claimRewards(all[i]);
            _withdraw(all[i]); // what matured already, so the queue has room
            (uint256 bonded,,) = _position(all[i]);
            if (bonded > 0) {
                (bool ok, bytes memory ret) = _call(all[i], abi.encodeCall(market.requestUnstake, (bonded)));
                _expect("wind-down requestUnstake", true, ok, ret);
            }
        }
        vm.warp(block.timestamp + unbondingDelay);
        for (uint256 i = 0; i < all.length; ++i) {
            _withdraw(all[i]);
            (uint256 bonded, uint256 locked, uint256 unbonding) = _position(all[i]);
            _check(bonded + locked + unbonding + market.claimable(all[i]) == 0, "wind-down: an account kept tokens");
        }
        uint256 stuck = token.balanceOf(address(market));
        _check(stuck == 0, string.concat("wind-down: ", stuck.str(), " tokens stuck in the market"));
    }

    // ------------------------------------------------------------------ single steps

    function _claim(address who, uint256 id, uint256 taskId) internal returns (bool ok) {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        (bool allowed, bool expires) = _predictClaim(who, b, t);
        bytes memory ret;
        (ok, ret) = _call(who, abi.encodeCall(market.claim, (taskId)));
        _expect("claim", allowed, ok, ret);
        if (!ok && block.timestamp <= ghostBarredUntil[who][b.poster]) ++stats.barredClaims;
        if (!ok || !allowed) return false;
        if (expires) _modelExpiry(id, b, t);
        ghostLocked[who] += b.stakePerTask;
        ++stats.claims;
        _checkClaimed(who, b, t, _task(taskId), expires);
    }

    function _checkClaimed(
        address who,
        IMarketTypes.Bounty memory b,
        IMarketTypes.Task memory before,
        IMarketTypes.Task memory after_,
        bool expired
    ) private {
        uint256 lease = block.timestamp + b.leaseDuration;
        if (lease > b.deadline) lease = b.deadline;
        _check(after_.volunteer == who && after_.status == IMarketTypes.TaskStatus.Claimed, "claim: wrong holder");
        _check(after_.attempt == before.attempt + (expired ? 1 : 0), "claim: wrong attempt");
        _check(after_.deadline == lease, "claim: lease deadline not min(now + leaseDuration, deadline)");
        _check(after_.checkBps == _expectedCheckBps(b, who), "claim: check probability does not follow the record");
    }

    /// @dev The trace is a real two-leaf Merkle tree over the states at step 0 and at a last step of 1–16
    ///      (from `traceSeed`), so that a challenger can prove both in a contest. A faked trace makes up
    ///      every state from a random step on, the committed last one included.
    function _commit(address who, uint256 taskId, uint8 honesty, uint256 traceSeed) internal {
        IMarketTypes.Task memory t = _task(taskId);
        bool allowed =
            t.status == IMarketTypes.TaskStatus.Claimed && t.volunteer == who && block.timestamp <= t.deadline;
        uint32 lastStep = uint32(1 + traceSeed % MAX_TRACE_STEPS);
        uint32 fakedFrom = uint32(1 + (traceSeed >> 8) % lastStep);
        bytes32 lastState = _traceState(taskId, t.attempt, honesty == DISHONEST, fakedFrom, lastStep);
        bytes32 root =
            _hashPair(_traceLeaf(taskId, who, 0, _trueState(taskId, 0)), _traceLeaf(taskId, who, lastStep, lastState));
        (bool ok, bytes memory ret) =
            _call(who, abi.encodeCall(market.commit, (taskId, root, UPDATE_HASH, "bafytrace", "bafyupdate")));
        _expect("commit", allowed, ok, ret);
        if (!ok || !allowed) return;
        TaskGhost storage g = _tasks[taskId][t.attempt];
        g.honesty = honesty;
        g.traceRoot = root;
        g.lastStep = lastStep;
        g.fakedFrom = fakedFrom;
        ++stats.commits;
        IMarketTypes.Task memory after_ = _task(taskId);
        _check(after_.status == IMarketTypes.TaskStatus.Committed, "commit: not Committed");
        _check(after_.deadline == block.timestamp && after_.commitBlock == block.number, "commit: wrong time/block");
    }

    function _dispute(address who, uint256 id, uint256 taskId, uint256 segment) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        segment = segment % (uint256(b.segmentsPerTask) + 1); // sometimes one past the end
        bool allowed = t.status == IMarketTypes.TaskStatus.Committed
            && block.timestamp <= uint256(t.deadline) + b.challengeWindow && segment < b.segmentsPerTask
            && _freeStake(who) >= b.stakePerTask && who != t.volunteer;
        _fund(who, b.challengeBond);
        uint256 before = token.balanceOf(who);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.dispute, (taskId, segment)));
        _expect("dispute", allowed, ok, ret);
        if (!ok || !allowed) return;
        TaskGhost storage g = _tasks[taskId][t.attempt];
        g.challenger = who;
        g.bond = b.challengeBond;
        ghostOpenBonds += b.challengeBond;
        ++stats.disputes;
        _check(before - token.balanceOf(who) == b.challengeBond, "dispute: wrong bond pulled");
    }

    function _attest(address who, uint256 id, uint256 taskId) internal {
        _attestAs(who, id, taskId, false);
    }

    /// @dev A vote: the truth the verifier's replay finds, or (`lies`) FAIL whatever it finds.
    function _attestAs(address who, uint256 id, uint256 taskId, bool lies) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        TaskGhost storage g = _tasks[taskId][t.attempt];
        bool verdict = !lies && g.honesty == HONEST;
        bool allowed = _predictAttest(who, b, taskId, t);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.attest, (taskId, verdict)));
        _expect("attest", allowed, ok, ret);
        if (!ok || !allowed) return;
        _attested[taskId][t.attempt][who] = true;
        (verdict ? g.passVoters : g.failVoters).push(who);
        uint256 votes = verdict ? g.passVoters.length : g.failVoters.length;
        IMarketTypes.Task memory after_ = _task(taskId);
        if (votes < b.quorum) {
            _check(after_.status == t.status && after_.attempt == t.attempt, "attest: settled before quorum");
        } else if (verdict) {
            _modelAccept(id, b, taskId, t, true);
            _check(after_.status == IMarketTypes.TaskStatus.Accepted, "attest: PASS quorum did not accept");
        } else {
            // Votes prove nothing: the referee reviews the commit, and only its ruling slashes.
            g.game.turn = IMarketTypes.GameTurn.Referee;
            g.game.deadline = block.timestamp + b.verifyWindow;
            ++stats.reviewsOpened;
            _check(
                after_.status == IMarketTypes.TaskStatus.Contested && after_.attempt == t.attempt,
                "attest: FAIL quorum did not open a review"
            );
            _checkGame(taskId, g.game, "attest: FAIL quorum");
        }
    }

    function _settle(address who, uint256 id, uint256 taskId) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        bool allowed = _predictSettle(b, taskId, t);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.settle, (taskId)));
        _expect(string.concat("settle task ", taskId.str()), allowed, ok, ret);
        if (!ok || !allowed) return;
        _modelAccept(id, b, taskId, t, false);
        if (t.status == IMarketTypes.TaskStatus.Challenged) ++stats.unansweredDisputes;
        _check(_task(taskId).status == IMarketTypes.TaskStatus.Accepted, "settle: not Accepted");
    }

    function _expireLease(uint256 id, uint256 taskId) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        bool allowed = t.status == IMarketTypes.TaskStatus.Claimed && block.timestamp > t.deadline;
        (bool ok, bytes memory ret) = _call(stranger, abi.encodeCall(market.expireLease, (taskId)));
        _expect("expireLease", allowed, ok, ret);
        if (!ok || !allowed) return;
        _modelExpiry(id, b, t);
        IMarketTypes.Task memory after_ = _task(taskId);
        _check(
            after_.status == IMarketTypes.TaskStatus.Open && after_.attempt == t.attempt + 1,
            "expireLease: task not reopened"
        );
    }

    function _claimRewards(address who) internal {
        uint256 owed = ghostClaimable[who];
        uint256 before = token.balanceOf(who);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.claimRewards, ()));
        _expect("claimRewards", owed > 0, ok, ret);
        if (!ok || owed == 0) return;
        uint256 paid = abi.decode(ret, (uint256));
        ghostClaimable[who] = 0;
        ++stats.rewardClaims;
        _check(paid == owed, string.concat("claimRewards: paid ", paid.str(), ", owed ", owed.str()));
        _check(token.balanceOf(who) - before == paid, "claimRewards: tokens received != amount returned");
    }

    function _withdraw(address who) internal {
        uint256 expected = _withdrawable(who);
        uint256 before = token.balanceOf(who);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.withdraw, ()));
        _expect("withdraw", expected > 0, ok, ret);
        if (!ok || expected == 0) return;
        uint256 paid = abi.decode(ret, (uint256));
        ghostCollateral[who] = _sub(ghostCollateral[who], paid, "withdraw: collateral");
        ++stats.withdrawals;
        _check(paid == expected, string.concat("withdraw: paid ", paid.str(), ", expected ", expected.str()));
        _check(token.balanceOf(who) - before == paid, "withdraw: tokens received != amount returned");
    }

    /// @dev What the rules let leave: matured requests (a prefix of the queue), less locked stake that
    ///      sits in the queue because its owner unbonded it early.
    function _withdrawable(address who) internal returns (uint256) {
        (uint256 bonded, uint256 locked, uint256 unbonding) = _position(who);
        uint256 encumbered = locked > bonded ? locked - bonded : 0;
        uint256 payable_ = _sub(unbonding, encumbered, "withdraw: locked stake exceeds collateral");
        uint256 matured;
        StakingState.UnbondingRequest[] memory queue = market.unbondingRequests(who);
        for (uint256 i = 0; i < queue.length && queue[i].releaseAt <= block.timestamp; ++i) {
            matured += queue[i].amount;
        }
        return matured < payable_ ? matured : payable_;
    }

    function _refund(uint256 id) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        bool open = b.status == IMarketTypes.BountyStatus.Finalized || block.timestamp > b.deadline;
        uint256 reserved = _reserved(id, b);
        uint256 expected = _sub(ghostEscrow[id], reserved, "refund: escrow below what pending tasks are owed");
        uint256 before = token.balanceOf(b.poster);
        (bool ok, bytes memory ret) = _call(b.poster, abi.encodeCall(market.refund, (id)));
        _expect("refund", open && expected > 0, ok, ret);
        if (!ok || !open || expected == 0) return;
        uint256 paid = abi.decode(ret, (uint256));
        ghostEscrow[id] -= expected;
        ++stats.refunds;
        _check(paid == expected, string.concat("refund: paid ", paid.str(), ", expected ", expected.str()));
        _check(token.balanceOf(b.poster) - before == paid, "refund: tokens received != amount returned");
    }

    /// @dev After the deadline and every verify window (games finished before): settle what is committed,
    ///      expire what is claimed, refund; the bounty must end with nothing in escrow and no lock on any
    ///      of its tasks.
    function _closeOut(uint256 id) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            uint256 taskId = _taskIdOf(id, b.currentRound, shard);
            IMarketTypes.TaskStatus s = _task(taskId).status;
            if (s == IMarketTypes.TaskStatus.Claimed) {
                _expireLease(id, taskId);
            } else if (s == IMarketTypes.TaskStatus.Committed || s == IMarketTypes.TaskStatus.Challenged) {
                _settle(stranger, id, taskId);
            }
            s = _task(taskId).status;
            _check(
                s == IMarketTypes.TaskStatus.Open || s == IMarketTypes.TaskStatus.Accepted,
                "close-out: a task is still pending after the deadline"
            );
        }
        if (ghostEscrow[id] > 0) _refund(id);
        uint256 left = _bounty(id).escrow;
        _check(left == 0, string.concat("close-out: bounty ", id.str(), " keeps ", left.str(), " after refund"));
    }

    // ------------------------------------------------------------------ game moves

    function _contest(address who, uint256 id, uint256 taskId, uint256 claimKind) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        (
            bytes32 root,
            bytes32 update,
            IMarketTypes.TraceStep memory lo,
            IMarketTypes.TraceStep memory hi,
            bool sound
        ) = _traceClaim(taskId, t, claimKind);
        bool committed =
            t.status == IMarketTypes.TaskStatus.Committed || t.status == IMarketTypes.TaskStatus.Challenged;
        bool allowed = committed && who != t.volunteer && !_contestedBy[taskId][t.attempt][who]
            && block.timestamp <= uint256(t.deadline) + b.challengeWindow + b.verifyWindow && sound
            && _freeStake(who) >= b.stakePerTask;
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.contest, (taskId, root, update, lo, hi)));
        _expect("contest", allowed, ok, ret);
        if (!ok || !allowed) return;
        _contestedBy[taskId][t.attempt][who] = true;
        TaskGhost storage g = _tasks[taskId][t.attempt];
        GameGhost storage game = g.game;
        ghostLocked[who] += b.stakePerTask;
        game.challenger = who;
        game.truthful = g.honesty == DISHONEST;
        (game.loStep, game.loHash, game.hiStep, game.hiHash) = (lo.step, lo.stateHash, hi.step, hi.stateHash);
        game.turn = hi.step - lo.step == 1 ? IMarketTypes.GameTurn.Referee : IMarketTypes.GameTurn.Volunteer;
        game.deadline = block.timestamp + b.verifyWindow;
        ++stats.gamesOpened;
        _check(_task(taskId).status == IMarketTypes.TaskStatus.Contested, "contest: task not Contested");
        _checkGame(taskId, game, "contest");
        _checkNarrowed(taskId, g, "contest");
    }

    function _bisect(address who, uint256 id, uint256 taskId, bytes32 midHash) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        GameGhost storage game = _tasks[taskId][t.attempt].game;
        bool allowed = game.turn == IMarketTypes.GameTurn.Volunteer && who == t.volunteer
            && block.timestamp <= game.deadline && midHash != 0;
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.bisect, (taskId, midHash, "bafystate")));
        _expect("bisect", allowed, ok, ret);
        if (!ok || !allowed) return;
        game.midHash = midHash;
        game.turn = IMarketTypes.GameTurn.Challenger;
        game.deadline = block.timestamp + b.verifyWindow;
        ++stats.gameMoves;
        _checkGame(taskId, game, "bisect");
    }

    /// @dev A truthful challenger agrees exactly with true states; a liar answers at random (and must lose
    ///      all the same, since an honest volunteer posts nothing but true states).
    function _respond(address who, uint256 id, uint256 taskId, uint256 answerSeed) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        TaskGhost storage g = _tasks[taskId][t.attempt];
        GameGhost storage game = g.game;
        uint32 mid = uint32((uint256(game.loStep) + game.hiStep) / 2);
        bool agree = game.truthful ? game.midHash == _trueState(taskId, mid) : answerSeed % 2 == 0;
        bool allowed = game.turn == IMarketTypes.GameTurn.Challenger && who == game.challenger
            && block.timestamp <= game.deadline;
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.respond, (taskId, agree)));
        _expect("respond", allowed, ok, ret);
        if (!ok || !allowed) return;
        if (agree) (game.loStep, game.loHash) = (mid, game.midHash);
        else (game.hiStep, game.hiHash) = (mid, game.midHash);
        game.midHash = 0;
        bool oneStepLeft = game.hiStep - game.loStep == 1;
        game.turn = oneStepLeft ? IMarketTypes.GameTurn.Referee : IMarketTypes.GameTurn.Volunteer;
        game.deadline = block.timestamp + b.verifyWindow;
        ++stats.gameMoves;
        _checkGame(taskId, game, "respond");
        _checkNarrowed(taskId, g, "respond");
    }

    /// @dev The referee recomputes the one step from the agreed state: correct when it reaches the
    ///      volunteer's state. It rules the truth, so an honest volunteer must win and a challenger who
    ///      contested a fake must win.
    function _rule(address who, uint256 id, uint256 taskId) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        TaskGhost storage g = _tasks[taskId][t.attempt];
        GameGhost storage game = g.game;
        bool review = game.challenger == address(0);
        bool stepCorrect = review ? g.honesty == HONEST : game.hiHash == _trueState(taskId, game.hiStep);
        bool allowed =
            game.turn == IMarketTypes.GameTurn.Referee && who == b.coordinator && block.timestamp <= game.deadline;
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.rule, (taskId, stepCorrect)));
        _expect("rule", allowed, ok, ret);
        if (!ok || !allowed) return;
        if (review) return _endReview(id, b, taskId, t, stepCorrect);
        if (g.honesty == HONEST) _check(stepCorrect, "rule: an honest volunteer lost a game ruled truthfully");
        if (game.truthful) {
            _check(!stepCorrect, "rule: a challenger who contested a fake lost a game ruled truthfully");
        }
        _endGame(id, b, taskId, t, stepCorrect, false);
    }

    function _forfeit(address who, uint256 id, uint256 taskId) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        IMarketTypes.Task memory t = _task(taskId);
        GameGhost storage game = _tasks[taskId][t.attempt].game;
        IMarketTypes.GameTurn turn = game.turn;
        bool allowed = turn != IMarketTypes.GameTurn.None && block.timestamp > game.deadline;
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.forfeit, (taskId)));
        _expect("forfeit", allowed, ok, ret);
        if (!ok || !allowed) return;
        ++stats.gameForfeits;
        if (turn == IMarketTypes.GameTurn.Referee && game.challenger == address(0)) {
            // An unreviewed failed check: the task reopens; nobody is paid or slashed, a disputer's bond returns.
            _modelDissolveReview(b, taskId, t);
            IMarketTypes.Task memory after_ = _task(taskId);
            _check(
                after_.status == IMarketTypes.TaskStatus.Open && after_.attempt == t.attempt + 1,
                "forfeit of a review: the task did not reopen"
            );
        } else if (turn == IMarketTypes.GameTurn.Referee) {
            // The referee's silence proves nothing: the challenger's lock comes back, the task resumes.
            _modelDissolve(b, taskId, t);
            _checkResumed(taskId, t, "forfeit by a silent referee");
        } else {
            _endGame(id, b, taskId, t, turn == IMarketTypes.GameTurn.Challenger, true);
        }
    }

    /// @dev The referee's ruling on a review: the commit holds (accepted as by a PASS quorum, its PASS voters
    ///      paid) or it does not (slashed as by a lost game without a challenger).
    function _endReview(
        uint256 id,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t,
        bool workCorrect
    ) internal {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        delete g.game;
        ++stats.reviewsRuled;
        IMarketTypes.Task memory before = t;
        before.status = g.challenger != address(0) ? IMarketTypes.TaskStatus.Challenged : IMarketTypes.TaskStatus.Committed;
        IMarketTypes.Task memory after_ = _task(taskId);
        if (workCorrect) {
            _modelAccept(id, b, taskId, before, true);
            _check(after_.status == IMarketTypes.TaskStatus.Accepted, "review upheld: the task was not accepted");
        } else {
            _modelSlash(id, b, taskId, before, false);
            _check(
                after_.status == IMarketTypes.TaskStatus.Open && after_.attempt == t.attempt + 1,
                "review lost: the task did not reopen"
            );
        }
    }

    /// @dev The loser pays: a volunteer as for a failed check (the game's challenger takes half of what the
    ///      FAIL voters leave) and its task reopens; a challenger its lock, and the task resumes.
    function _endGame(
        uint256 id,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t,
        bool volunteerWins,
        bool byForfeit
    ) internal {
        if (volunteerWins) {
            _modelChallengerLoss(id, b, taskId, t);
            _checkResumed(taskId, t, "game won by the volunteer");
            return;
        }
        _modelSlash(id, b, taskId, t, byForfeit);
        IMarketTypes.Task memory after_ = _task(taskId);
        _check(
            after_.status == IMarketTypes.TaskStatus.Open && after_.attempt == t.attempt + 1,
            "game lost by the volunteer: the task did not reopen"
        );
    }

    /// @dev Plays a contested task's game for up to `maxMoves` moves: each mover moves truthfully in time,
    ///      or (`mayGoSilent`, one move in ten) lets its deadline pass and anyone ends the game.
    function _playGame(uint256 id, uint256 taskId, uint256 seed, uint256 maxMoves, bool mayGoSilent) internal {
        for (uint256 move = 0; move < maxMoves && move < 2 * MAX_TRACE_STEPS; ++move) {
            IMarketTypes.Task memory t = _task(taskId);
            if (t.status != IMarketTypes.TaskStatus.Contested) return;
            GameGhost storage game = _tasks[taskId][t.attempt].game;
            uint256 roll = uint256(keccak256(abi.encode(seed, move)));
            if (mayGoSilent && block.timestamp <= game.deadline) {
                // The mover takes some of its time, or all of it and more.
                if (roll % 10 == 0) vm.warp(game.deadline + 1);
                else vm.warp(block.timestamp + (roll >> 8) % (game.deadline - block.timestamp + 1));
            }
            if (block.timestamp > game.deadline) {
                _forfeit((roll >> 16) % 2 == 0 ? stranger : _staker(roll >> 17), id, taskId);
            } else if (game.turn == IMarketTypes.GameTurn.Volunteer) {
                _bisect(t.volunteer, id, taskId, _midHashOf(taskId, t, roll >> 16));
            } else if (game.turn == IMarketTypes.GameTurn.Challenger) {
                _respond(game.challenger, id, taskId, roll >> 16);
            } else {
                _rule(coordinator, id, taskId);
            }
        }
    }

    /// @dev Plays every open game of a bounty's round to its end, now and truthfully (a mover already
    ///      overdue forfeits), so that its tasks can settle or reopen.
    function _finishGames(uint256 id) internal {
        IMarketTypes.Bounty memory b = _bounty(id);
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            uint256 taskId = _taskIdOf(id, b.currentRound, shard);
            if (_task(taskId).status == IMarketTypes.TaskStatus.Contested) {
                _playGame(id, taskId, taskId ^ block.timestamp, 2 * MAX_TRACE_STEPS, false);
            }
            _check(_task(taskId).status != IMarketTypes.TaskStatus.Contested, "finishing games: a game did not end");
        }
    }

    /// @dev Whether a task of the bounty's round is Contested.
    function _hasOpenGame(uint256 id) internal view returns (bool) {
        IMarketTypes.Bounty memory b = _bounty(id);
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            if (_task(_taskIdOf(id, b.currentRound, shard)).status == IMarketTypes.TaskStatus.Contested) return true;
        }
        return false;
    }

    /// @dev When the bounty's deadline and the windows of its pending tasks have all closed: a game the
    ///      volunteer won restarted its task's windows, possibly past the bounty's deadline.
    function _quietAfter(uint256 id) internal view returns (uint256 end) {
        IMarketTypes.Bounty memory b = _bounty(id);
        uint256 windows = uint256(b.challengeWindow) + b.verifyWindow + 1;
        end = uint256(b.deadline) + windows;
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            IMarketTypes.Task memory t = _task(_taskIdOf(id, b.currentRound, shard));
            if (_isPending(t.status) && t.deadline + windows > end) end = t.deadline + windows;
        }
    }

    /// @dev A challenger's claim against the committed trace of the task's current attempt: both
    ///      checkpoints with their proofs (each the other leaf), or by `kind` one the market must refuse:
    ///      0 both at one step, 1 the steps swapped, 2 the last state misquoted, 3 the wrong update hash.
    function _traceClaim(uint256 taskId, IMarketTypes.Task memory t, uint256 kind)
        internal
        view
        returns (
            bytes32 root,
            bytes32 update,
            IMarketTypes.TraceStep memory lo,
            IMarketTypes.TraceStep memory hi,
            bool sound
        )
    {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        bool faked = g.honesty == DISHONEST;
        bytes32 firstState = _trueState(taskId, 0);
        bytes32 lastState = _traceState(taskId, t.attempt, faked, g.fakedFrom, g.lastStep);
        lo = IMarketTypes.TraceStep(0, firstState, new bytes32[](1));
        hi = IMarketTypes.TraceStep(g.lastStep, lastState, new bytes32[](1));
        lo.proof[0] = _traceLeaf(taskId, t.volunteer, g.lastStep, lastState);
        hi.proof[0] = _traceLeaf(taskId, t.volunteer, 0, firstState);
        (root, update) = (g.traceRoot, UPDATE_HASH);
        if (kind == 0) hi = lo;
        else if (kind == 1) (lo, hi) = (hi, lo);
        else if (kind == 2) hi.stateHash = faked
            ? _trueState(taskId, hi.step)
            : _madeUpState(taskId, t.attempt, hi.step);
        else if (kind == 3) update = keccak256("another update");
        sound = g.honesty != 0 && kind >= BAD_CLAIMS; // a task the handler never committed has no trace
    }

    /// @dev What the volunteer posts at the game's midpoint: its trace's state (an honest trace holds only
    ///      true states); a faker sometimes makes up a state where its trace is still true.
    function _midHashOf(uint256 taskId, IMarketTypes.Task memory t, uint256 seed) internal view returns (bytes32) {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        uint256 mid = (uint256(g.game.loStep) + g.game.hiStep) / 2;
        bool faked = g.honesty == DISHONEST;
        if (faked && seed % 4 == 0) return _madeUpState(taskId, t.attempt, mid);
        return _traceState(taskId, t.attempt, faked, g.fakedFrom, mid);
    }

    function _checkGame(uint256 taskId, GameGhost storage game, string memory what) internal {
        IMarketTypes.Game memory m = market.gameOf(taskId);
        _check(
            m.challenger == game.challenger && m.turn == game.turn && m.loStep == game.loStep && m.hiStep == game.hiStep
                && m.deadline == game.deadline && m.loHash == game.loHash && m.hiHash == game.hiHash
                && m.midHash == game.midHash,
            string.concat(what, ": the game is not where the moves put it")
        );
    }

    /// @dev What truthful play keeps true of the stretch left: both sides agree on the true state at its
    ///      start; its end is the true state in an honest trace, a made-up one when a truthful challenger
    ///      contested a fake.
    function _checkNarrowed(uint256 taskId, TaskGhost storage g, string memory what) internal {
        GameGhost storage game = g.game;
        bool hiTrue = game.hiHash == _trueState(taskId, game.hiStep);
        _check(game.loHash == _trueState(taskId, game.loStep), string.concat(what, ": the agreed state is not true"));
        if (g.honesty == HONEST) _check(hiTrue, string.concat(what, ": an honest trace's disputed state is not true"));
        if (game.truthful) _check(!hiTrue, string.concat(what, ": the made-up state left the disputed stretch"));
    }

    /// @dev After a game the volunteer won or the referee let lapse: the task is where the game found it,
    ///      with its windows restarted from now, and the game is gone.
    function _checkResumed(uint256 taskId, IMarketTypes.Task memory t, string memory what) internal {
        IMarketTypes.Task memory after_ = _task(taskId);
        bool disputed = _tasks[taskId][t.attempt].challenger != address(0);
        IMarketTypes.TaskStatus resumed =
            disputed ? IMarketTypes.TaskStatus.Challenged : IMarketTypes.TaskStatus.Committed;
        _check(
            after_.status == resumed && after_.attempt == t.attempt && after_.deadline == block.timestamp,
            string.concat(what, ": the task did not resume with its windows restarted")
        );
        _check(market.gameOf(taskId).turn == IMarketTypes.GameTurn.None, string.concat(what, ": the game remains"));
    }

    // ------------------------------------------------------------------ helpers

    /// @dev One of the bounties; the first is posted on demand so that no call of a sequence is wasted.
    function _pickBounty(uint256 seed) internal returns (uint256) {
        if (_bountyIds.length == 0) postBounty(seed, seed % 3 == 0);
        if (_bountyIds.length == 0) return 0;
        return _bountyIds[seed % _bountyIds.length];
    }

    function _currentTask(uint256 id, uint256 shardSeed) internal view returns (uint256) {
        IMarketTypes.Bounty memory b = _bounty(id);
        return _taskIdOf(id, b.currentRound, shardSeed % b.shards);
    }

    /// @dev Token positions only (no task state): what the coordinator must never change.
    function _moneyFingerprint() internal view returns (bytes32 h) {
        h = keccak256(abi.encode(token.balanceOf(address(market))));
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            h = keccak256(abi.encode(h, _bounty(_bountyIds[i]).escrow));
        }
        address[] memory all = accounts();
        for (uint256 i = 0; i < all.length; ++i) {
            (uint256 bonded, uint256 locked, uint256 unbonding) = _position(all[i]);
            h = keccak256(abi.encode(h, bonded, locked, unbonding, market.claimable(all[i])));
        }
    }

    /// @dev A random sound bounty: small enough that sequences of ~20 calls finish tasks and rounds,
    ///      varied enough to reach zero fees, zero bonds, zero penalties, odd remainders and quorum 1–3.
    function _params(uint256 seed) internal view returns (IMarketTypes.BountyParams memory p) {
        p.specCid = "bafyspec";
        p.coordinator = coordinator;
        p.shards = uint32(_range(seed, 1, 1, 3));
        p.rounds = uint32(_range(seed, 2, 1, 2));
        p.segmentsPerTask = uint16(_range(seed, 3, 1, 8));
        p.segmentsPerCheck = uint16(_range(seed, 4, 1, p.segmentsPerTask));
        p.minCheckBps = uint16(_range(seed, 5, 2_000, 10_000));
        p.checkBps = uint16(_range(seed, 6, p.minCheckBps, 10_000));
        p.reputationHalfLife = uint16(_range(seed, 7, 1, 8));
        p.quorum = uint8(_range(seed, 8, 1, 3));
        p.rewardPerTask = uint96(_range(seed, 9, 1, 20 * TOKEN));
        p.verifierFee = uint96(_maybeZero(seed, 10, 2 * TOKEN));
        uint256 floor = (uint256(p.rewardPerTask) * BPS + p.minCheckBps - 1) / p.minCheckBps;
        uint256 fees = uint256(p.quorum) * p.verifierFee;
        p.stakePerTask = uint96((floor > fees ? floor : fees) + _maybeZero(seed, 11, 50 * TOKEN));
        p.challengeBond = uint96(_maybeZero(seed, 12, 30 * TOKEN));
        p.leasePenalty = uint96(_maybeZero(seed, 13, p.stakePerTask));
        p.leaseDuration = uint32(_range(seed, 14, 60, 3600));
        p.challengeWindow = uint32(_range(seed, 15, 60, 1200));
        p.verifyWindow = uint32(_range(seed, 16, 60, 2400));
        p.deadline = uint40(block.timestamp + _range(seed, 17, 1 hours, 3 days));
    }

    function _range(uint256 seed, uint256 salt, uint256 lo, uint256 hi) private pure returns (uint256) {
        return lo + uint256(keccak256(abi.encode(seed, salt))) % (hi - lo + 1);
    }

    function _maybeZero(uint256 seed, uint256 salt, uint256 hi) private pure returns (uint256) {
        return _range(seed, salt + 100, 0, 3) == 0 ? 0 : _range(seed, salt, 0, hi);
    }
}
