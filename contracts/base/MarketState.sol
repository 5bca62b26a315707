// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarketTypes} from "../interfaces/IMarketTypes.sol";
import {RegistryState} from "./RegistryState.sol";
import {StakingState} from "./StakingState.sol";

/// @title The market's storage and the state changes both the market and its game module make
/// @notice BountyMarket and BountyGames (run by delegatecall on the market's storage) inherit their state only
///         through StakingState, RegistryState and this contract, in this order: their storage layouts are
///         the same (scripts/export_artifacts.py compares them). Every credit, slash, acceptance and reopening
///         is written once, here.
abstract contract MarketState is IMarketTypes, StakingState, RegistryState {
    uint256 public constant MAX_SHARDS = 256;
    uint256 public constant MAX_SEGMENTS = 256;
    uint256 public constant MAX_QUORUM = 15;
    /// @notice Each move of a bisection game gets the verify window: shorter, an honest side could not
    ///         recompute its state in time and would forfeit.
    uint256 public constant MIN_VERIFY_WINDOW = 30;
    uint256 internal constant BPS = 10_000;

    /// @dev A ballot entry (32 bits): the voter's registry seat plus one (bits 0-30; zero: no entry) and its
    ///      verdict (bit 31: PASS).
    uint256 internal constant VOTE_PASSED = 1 << 31;
    uint256 internal constant VOTE_SEAT = VOTE_PASSED - 1;

    struct Verification {
        uint16 disputedSegment;
        address challenger;
    }

    uint256 public nextBountyId = 1;
    mapping(uint256 bountyId => Bounty) internal _bounties;
    mapping(uint256 bountyId => string) public specCidOf;
    mapping(uint256 taskId => Task) internal _tasks;
    mapping(uint256 taskId => bytes32) public commitmentOf; // keccak(traceRoot, updateHash)
    mapping(uint256 taskId => bytes32) internal _drawnSeeds;
    mapping(uint256 taskId => Verification) internal _verifications;
    // The votes on a task's current attempt, in order, eight entries to a slot: a quorum of two costs a vote one
    // new slot and the next one a rewrite (a per-voter flag and voter lists cost three new slots per vote).
    mapping(uint256 taskId => mapping(uint256 slot => uint256)) internal _ballots;
    mapping(address account => uint256) public claimable;
    mapping(uint256 taskId => Game) internal _games;
    // BOINC-style adaptive replication, per poster: only tasks a verifier quorum replayed and passed count,
    // and only since the volunteer's last slash (`epoch` = its slash count when the record was last written).
    // Cheap unchecked tasks, or tasks on a bounty the volunteer posted for itself, buy no trust elsewhere.
    mapping(address volunteer => mapping(address poster => Reputation)) internal _reputation;
    // A challenger contests an attempt once: a game a silent referee dissolved cannot be reopened by the same
    // account to keep an honest volunteer's stake locked and its reward waiting.
    mapping(uint256 taskId => mapping(uint256 attempt => mapping(address challenger => bool))) internal _contested;


    function _requireFreeStake(uint256 taskId, address account, uint256 needed) internal view {
        StakeAccount storage s = _stakes[account];
        uint256 free = s.bonded > s.locked ? s.bonded - s.locked : 0;
        if (free < needed) revert MarketVerifierIneligible(taskId, account, free, needed);
    }

    /// @dev Each move gets the bounty's verify window: a side that needs longer to recompute a stretch
    ///      than verifiers need to replay one check could not play honestly.
    function _nextTurn(Game storage g, Bounty storage b, GameTurn turn) internal {
        g.turn = turn;
        g.deadline = uint32(block.timestamp + b.verifyWindow);
    }


    function _slash(uint256 taskId, uint256 bountyId, Bounty storage b, Task storage t) internal {
        address volunteer = t.volunteer;
        ++_stakes[volunteer].slashes; // its reputation with every poster starts over
        // A proven cheater takes none of this poster's tasks while this bounty runs: each claim would cost the
        // round a detection and a redo.
        Reputation storage r = _reputation[volunteer][b.poster];
        if (r.barredUntil < b.deadline) r.barredUntil = b.deadline;
        uint256 taken = _slashStake(volunteer, b.stakePerTask);
        emit TaskSlashed(taskId, bountyId, volunteer, taken);
        uint256 remainder = taken - _payVerifiers(taskId, b, false);
        address gameWinner = _games[taskId].challenger;
        if (gameWinner != address(0)) {
            // The challenger who proved the step wrong gets its stake back and half of what is left.
            _unlockStake(gameWinner, b.stakePerTask, false);
            uint256 prize = remainder / 2;
            remainder -= prize;
            _credit(gameWinner, taskId, prize);
        }
        Verification storage v = _verifications[taskId];
        address challenger = v.challenger;
        if (challenger != address(0)) {
            uint256 share = remainder / 2;
            remainder -= share;
            _credit(challenger, taskId, b.challengeBond + share);
        }
        // The rest of the slashed stake funds the redo of this task.
        b.escrow += uint128(remainder);
        _reopen(taskId, t);
    }

    /// @dev Credits `verifierFee` to each attester on the winning side; PASS fees come from escrow,
    ///      FAIL fees from the slashed stake (the caller accounts for the returned total).
    function _payVerifiers(uint256 taskId, Bounty storage b, bool passed) internal returns (uint256 total) {
        uint256 fee = b.verifierFee;
        for (uint256 k = 0;; ++k) {
            uint256 entry = _ballotEntry(taskId, k);
            if (entry == 0) break;
            if ((entry & VOTE_PASSED != 0) != passed) continue;
            _credit(_seats[(entry & VOTE_SEAT) - 1].holder, taskId, fee);
            total += fee;
        }
        if (passed) b.escrow -= uint128(total);
    }


    function _earnReputation(address volunteer, address poster) internal {
        Reputation storage r = _reputation[volunteer][poster];
        uint32 epoch = _stakes[volunteer].slashes;
        if (r.epoch != epoch) (r.epoch, r.checkedTasks) = (epoch, 0);
        ++r.checkedTasks;
    }


    function _accept(uint256 taskId, uint256 bountyId, Bounty storage b, Task storage t) internal {
        address volunteer = t.volunteer;
        uint256 reward = b.rewardPerTask;
        uint256 credit = reward;
        // A dispute that ended in PASS compensates the volunteer with the challenger's bond.
        if (t.status == TaskStatus.Challenged) credit += b.challengeBond;
        t.status = TaskStatus.Accepted;
        b.escrow -= uint128(reward);
        _unlockStake(volunteer, b.stakePerTask, true);
        emit TaskAccepted(taskId, bountyId, volunteer, credit);
        _credit(volunteer, taskId, credit);
    }


    function _reopen(uint256 taskId, Task storage t) internal {
        if (t.attempt == type(uint8).max) revert MarketTaskAttemptsExhausted(taskId);
        uint8 nextAttempt = t.attempt + 1;
        delete _tasks[taskId];
        t.attempt = nextAttempt;
        delete commitmentOf[taskId];
        delete _drawnSeeds[taskId];
        delete _verifications[taskId];
        // Ballot slots fill in order: the first empty one ends it.
        for (uint256 slot = 0; _ballots[taskId][slot] != 0; ++slot) {
            delete _ballots[taskId][slot];
        }
        // Only a game's loser reaches here with one; clearing five empty slots would cost every reopen ~10k gas.
        if (_games[taskId].challenger != address(0)) delete _games[taskId];
    }

    /// @dev The one place a claimable balance grows: every credit (reward, verifier fee, challenger's share)
    ///      emits RewardCredited, so an auditor sums one event to know what each account is owed.
    function _credit(address account, uint256 taskId, uint256 amount) internal {
        claimable[account] += amount;
        emit RewardCredited(account, taskId, amount);
    }


    function _splitTaskId(uint256 taskId) internal pure returns (uint256 bountyId, uint256 round, uint256 shard) {
        return (taskId >> 64, (taskId >> 32) & type(uint32).max, taskId & type(uint32).max);
    }


    function _ballotEntry(uint256 taskId, uint256 k) internal view returns (uint256) {
        return (_ballots[taskId][k / 8] >> (32 * (k % 8))) & type(uint32).max;
    }
}
