// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BountyMarket} from "contracts/BountyMarket.sol";
import {IBountyMarket} from "contracts/interfaces/IBountyMarket.sol";
import {Staking} from "contracts/Staking.sol";
import {MaliciousActor} from "./lib/Attackers.sol";
import {Fmt, IFaucetToken, MarketModel} from "./MarketModel.sol";
import {MarketProperties} from "./MarketProperties.sol";

/// @notice The operations forge strings into random sequences. Each one picks its actors and its
///         bounty/task from bounded seeds, predicts from the rules whether the market must accept the
///         call, makes it as the actor, and moves the model's tokens the way the rules say.
contract MarketHandler is MarketProperties {
    using Fmt for uint256;

    uint256 internal constant MAX_BOUNTIES = 3;

    constructor(BountyMarket market_, IFaucetToken token_, MaliciousActor attacker_)
        MarketModel(market_, token_, attacker_)
    {}

    // ------------------------------------------------------------------ bounties and rounds

    /// @notice The poster (or the attacker contract) posts a random sound bounty; usually opened at once.
    function postBounty(uint256 seed, bool byAttacker) public {
        if (_bountyIds.length >= MAX_BOUNTIES) return;
        IBountyMarket.BountyParams memory p = _params(seed);
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
        IBountyMarket.Bounty memory b = _bounty(id);
        bool allowed = b.status == IBountyMarket.BountyStatus.Active && !b.roundOpen && b.currentRound == 0;
        bytes32 before = _moneyFingerprint();
        (bool ok, bytes memory ret) = _call(coordinator, abi.encodeCall(market.openRound, (id, "bafymodel0")));
        _expect("openRound", allowed, ok, ret);
        _check(_moneyFingerprint() == before, "openRound: the coordinator moved tokens");
    }

    /// @notice The coordinator closes the current round (allowed only when every shard is accepted).
    function closeRound(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        IBountyMarket.Bounty memory b = _bounty(id);
        bool allowed = b.status == IBountyMarket.BountyStatus.Active && b.roundOpen;
        for (uint256 shard = 0; allowed && shard < b.shards; ++shard) {
            allowed = _task(_taskIdOf(id, b.currentRound, shard)).status == IBountyMarket.TaskStatus.Accepted;
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
                _bounty(id).status == IBountyMarket.BountyStatus.Finalized, "closeRound: last round did not finalize"
            );
        }
    }

    /// @notice The bounty's poster asks for a refund (allowed once finalized or past the deadline).
    function refund(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id != 0) _refund(id);
    }

    /// @notice Time passes beyond a bounty's deadline and every verify window: the pending tasks are
    ///         settled or expired, then the poster's refund must succeed and leave the bounty empty.
    function deadlinePassesAndPosterRecovers(uint256 bountySeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        IBountyMarket.Bounty memory b = _bounty(id);
        uint256 end = uint256(b.deadline) + b.challengeWindow + b.verifyWindow + 1;
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
        Staking.UnbondingRequest[] memory queue = market.unbondingRequests(who);
        _check(
            bondedAfter == bonded - amount && queue.length == queued + 1, "requestUnstake: bond not moved to the queue"
        );
        Staking.UnbondingRequest memory last = queue[queue.length - 1];
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
        IBountyMarket.Task memory t = _task(taskId);
        address who = t.status == IBountyMarket.TaskStatus.Claimed ? t.volunteer : _volunteer(honestySeed);
        _commit(who, taskId, _honesty(who, honestySeed));
    }

    /// @notice Anyone records a committed task's challenge seed.
    function drawChallenge(uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        uint256 taskId = _currentTask(id, shardSeed);
        IBountyMarket.Task memory t = _task(taskId);
        bool committed =
            t.status == IBountyMarket.TaskStatus.Committed || t.status == IBountyMarket.TaskStatus.Challenged;
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

    /// @notice A verifier (or an honest volunteer acting as one) attests the truth about a task.
    function attest(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        address who = actorSeed % 5 < 3 ? _verifier(actorSeed) : (actorSeed % 5 == 3 ? honestA : honestB);
        _attest(who, id, _currentTask(id, shardSeed));
    }

    /// @notice Anyone settles a task.
    function settle(uint256 actorSeed, uint256 bountySeed, uint256 shardSeed) public {
        uint256 id = _pickBounty(bountySeed);
        if (id == 0) return;
        _settle(actorSeed % 2 == 0 ? stranger : _staker(actorSeed), id, _currentTask(id, shardSeed));
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
        _commit(who, taskId, _honesty(who, honestySeed));
        vm.roll(block.number + 2);
        vm.warp(block.timestamp + 1 + (honestySeed >> 8) % 30);
        uint256 mode = (honestySeed >> 16) % 8;
        if (mode < 3) _dispute(_verifier(honestySeed >> 24), id, taskId, honestySeed >> 32);
        if (mode != 2 && mode != 3) {
            for (uint256 i = 0; i < 3; ++i) {
                _attest(_verifier(actorSeed % 3 + i), id, taskId);
            }
        }
        IBountyMarket.Bounty memory b = _bounty(id);
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
    ///         market's tokens through the ERC-20. Every such call must revert and move nothing.
    function unauthorizedCall(uint256 callerSeed, uint256 fnSeed, uint256 bountySeed, uint256 shardSeed) public {
        address caller = callerSeed % 2 == 0 ? stranger : coordinator; // neither ever stakes nor posts
        uint256 which = fnSeed % 14;
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
        IBountyMarket.Bounty memory b = _bounty(_bountyIds[bountySeed % _bountyIds.length]);
        if (b.status == IBountyMarket.BountyStatus.Active && block.timestamp <= b.deadline) {
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
        (who, data, what) = _forbiddenByParticipant(which, id, taskId);
        if (who == address(0)) target = address(0);
    }

    /// @dev Calls by participants outside their role.
    function _forbiddenByParticipant(uint256 which, uint256 id, uint256 taskId)
        private
        view
        returns (address who, bytes memory data, string memory what)
    {
        IBountyMarket.Task memory t = _task(taskId);
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
        // The poster refunds an active bounty before its deadline.
        IBountyMarket.Bounty memory b = _bounty(id);
        if (b.status != IBountyMarket.BountyStatus.Active || block.timestamp > b.deadline) return (address(0), "", "");
        return (b.poster, abi.encodeCall(market.refund, (id)), "refund before the deadline");
    }

    // ------------------------------------------------------------------ end of a sequence

    /// @notice Everything winds down (called by afterInvariant): every deadline and window passes, all
    ///         pending tasks settle or expire, posters recover their escrow, everyone claims, unstakes
    ///         and withdraws. Afterwards the market must hold no token at all.
    function windDown() external {
        uint256 end = block.timestamp;
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            IBountyMarket.Bounty memory b = _bounty(_bountyIds[i]);
            uint256 closes = uint256(b.deadline) + b.challengeWindow + b.verifyWindow + 1;
            if (closes > end) end = closes;
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
        IBountyMarket.Bounty memory b = _bounty(id);
        IBountyMarket.Task memory t = _task(taskId);
        (bool allowed, bool expires) = _predictClaim(who, b, t);
        bytes memory ret;
        (ok, ret) = _call(who, abi.encodeCall(market.claim, (taskId)));
        _expect("claim", allowed, ok, ret);
        if (!ok || !allowed) return false;
        if (expires) _modelExpiry(id, b, t);
        ghostLocked[who] += b.stakePerTask;
        ++stats.claims;
        _checkClaimed(who, b, t, _task(taskId), expires);
    }

    function _checkClaimed(
        address who,
        IBountyMarket.Bounty memory b,
        IBountyMarket.Task memory before,
        IBountyMarket.Task memory after_,
        bool expired
    ) private {
        uint256 lease = block.timestamp + b.leaseDuration;
        if (lease > b.deadline) lease = b.deadline;
        _check(after_.volunteer == who && after_.status == IBountyMarket.TaskStatus.Claimed, "claim: wrong holder");
        _check(after_.attempt == before.attempt + (expired ? 1 : 0), "claim: wrong attempt");
        _check(after_.deadline == lease, "claim: lease deadline not min(now + leaseDuration, deadline)");
        _check(after_.checkBps == _expectedCheckBps(b, who), "claim: check probability does not follow the record");
    }

    function _commit(address who, uint256 taskId, uint8 honesty) internal {
        IBountyMarket.Task memory t = _task(taskId);
        bool allowed =
            t.status == IBountyMarket.TaskStatus.Claimed && t.volunteer == who && block.timestamp <= t.deadline;
        bytes32 root = keccak256(abi.encode(honesty == HONEST ? "trained" : "faked", taskId, t.attempt));
        (bool ok, bytes memory ret) =
            _call(who, abi.encodeCall(market.commit, (taskId, root, keccak256("update"), "bafytrace", "bafyupdate")));
        _expect("commit", allowed, ok, ret);
        if (!ok || !allowed) return;
        _tasks[taskId][t.attempt].honesty = honesty;
        ++stats.commits;
        IBountyMarket.Task memory after_ = _task(taskId);
        _check(after_.status == IBountyMarket.TaskStatus.Committed, "commit: not Committed");
        _check(after_.deadline == block.timestamp && after_.commitBlock == block.number, "commit: wrong time/block");
    }

    function _dispute(address who, uint256 id, uint256 taskId, uint256 segment) internal {
        IBountyMarket.Bounty memory b = _bounty(id);
        IBountyMarket.Task memory t = _task(taskId);
        segment = segment % (uint256(b.segmentsPerTask) + 1); // sometimes one past the end
        bool allowed = t.status == IBountyMarket.TaskStatus.Committed
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
        IBountyMarket.Bounty memory b = _bounty(id);
        IBountyMarket.Task memory t = _task(taskId);
        TaskGhost storage g = _tasks[taskId][t.attempt];
        bool verdict = g.honesty == HONEST; // verifiers replay the segments and tell the truth
        bool allowed = _predictAttest(who, b, taskId, t);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.attest, (taskId, verdict)));
        _expect("attest", allowed, ok, ret);
        if (!ok || !allowed) return;
        _attested[taskId][t.attempt][who] = true;
        (verdict ? g.passVoters : g.failVoters).push(who);
        uint256 votes = verdict ? g.passVoters.length : g.failVoters.length;
        IBountyMarket.Task memory after_ = _task(taskId);
        if (votes < b.quorum) {
            _check(after_.status == t.status && after_.attempt == t.attempt, "attest: settled before quorum");
        } else if (verdict) {
            _modelAccept(id, b, taskId, t, true);
            _check(after_.status == IBountyMarket.TaskStatus.Accepted, "attest: PASS quorum did not accept");
        } else {
            _modelSlash(id, b, taskId, t);
            _check(
                after_.status == IBountyMarket.TaskStatus.Open && after_.attempt == t.attempt + 1,
                "attest: FAIL quorum did not reopen the task"
            );
        }
    }

    function _settle(address who, uint256 id, uint256 taskId) internal {
        IBountyMarket.Bounty memory b = _bounty(id);
        IBountyMarket.Task memory t = _task(taskId);
        bool allowed = _predictSettle(b, taskId, t);
        (bool ok, bytes memory ret) = _call(who, abi.encodeCall(market.settle, (taskId)));
        _expect(string.concat("settle task ", taskId.str()), allowed, ok, ret);
        if (!ok || !allowed) return;
        _modelAccept(id, b, taskId, t, false);
        if (t.status == IBountyMarket.TaskStatus.Challenged) ++stats.unansweredDisputes;
        _check(_task(taskId).status == IBountyMarket.TaskStatus.Accepted, "settle: not Accepted");
    }

    function _expireLease(uint256 id, uint256 taskId) internal {
        IBountyMarket.Bounty memory b = _bounty(id);
        IBountyMarket.Task memory t = _task(taskId);
        bool allowed = t.status == IBountyMarket.TaskStatus.Claimed && block.timestamp > t.deadline;
        (bool ok, bytes memory ret) = _call(stranger, abi.encodeCall(market.expireLease, (taskId)));
        _expect("expireLease", allowed, ok, ret);
        if (!ok || !allowed) return;
        _modelExpiry(id, b, t);
        IBountyMarket.Task memory after_ = _task(taskId);
        _check(
            after_.status == IBountyMarket.TaskStatus.Open && after_.attempt == t.attempt + 1,
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
        Staking.UnbondingRequest[] memory queue = market.unbondingRequests(who);
        for (uint256 i = 0; i < queue.length && queue[i].releaseAt <= block.timestamp; ++i) {
            matured += queue[i].amount;
        }
        return matured < payable_ ? matured : payable_;
    }

    function _refund(uint256 id) internal {
        IBountyMarket.Bounty memory b = _bounty(id);
        bool open = b.status == IBountyMarket.BountyStatus.Finalized || block.timestamp > b.deadline;
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

    /// @dev After the deadline and every verify window: settle what is committed, expire what is
    ///      claimed, refund; the bounty must end with nothing in escrow and no lock on any of its tasks.
    function _closeOut(uint256 id) internal {
        IBountyMarket.Bounty memory b = _bounty(id);
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            uint256 taskId = _taskIdOf(id, b.currentRound, shard);
            IBountyMarket.TaskStatus s = _task(taskId).status;
            if (s == IBountyMarket.TaskStatus.Claimed) {
                _expireLease(id, taskId);
            } else if (s == IBountyMarket.TaskStatus.Committed || s == IBountyMarket.TaskStatus.Challenged) {
                _settle(stranger, id, taskId);
            }
            s = _task(taskId).status;
            _check(
                s == IBountyMarket.TaskStatus.Open || s == IBountyMarket.TaskStatus.Accepted,
                "close-out: a task is still pending after the deadline"
            );
        }
        if (ghostEscrow[id] > 0) _refund(id);
        uint256 left = _bounty(id).escrow;
        _check(left == 0, string.concat("close-out: bounty ", id.str(), " keeps ", left.str(), " after refund"));
    }

    // ------------------------------------------------------------------ helpers

    /// @dev One of the bounties; the first is posted on demand so that no call of a sequence is wasted.
    function _pickBounty(uint256 seed) internal returns (uint256) {
        if (_bountyIds.length == 0) postBounty(seed, seed % 3 == 0);
        if (_bountyIds.length == 0) return 0;
        return _bountyIds[seed % _bountyIds.length];
    }

    function _currentTask(uint256 id, uint256 shardSeed) internal view returns (uint256) {
        IBountyMarket.Bounty memory b = _bounty(id);
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
    function _params(uint256 seed) internal view returns (IBountyMarket.BountyParams memory p) {
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
