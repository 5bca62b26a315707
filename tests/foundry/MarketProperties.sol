// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IMarketTypes} from "contracts/interfaces/IMarketTypes.sol";
import {Fmt, MarketModel} from "./MarketModel.sol";

/// @notice The properties checked after every call of every sequence, computed in one pass over the
///         market's public views (forge runs this check ~200,000 times per suite, so it reads each
///         bounty, task and account once). See docs/contracts.md, "Invariant suite".
abstract contract MarketProperties is MarketModel {
    using Fmt for uint256;

    /// @notice The first property that does not hold, or "" when all hold.
    function brokenProperty() external view returns (string memory) {
        // (4), (6) and the rules of every call: the handler predicted each outcome and token movement.
        if (violations > 0) return string.concat("rule broken (", violations.str(), " in all): ", firstViolation);

        (string memory failure, uint256 escrow, uint256 bonds) = _bountyProperties();
        if (bytes(failure).length > 0) return failure;
        uint256 stakesAndRewards;
        (failure, stakesAndRewards) = _accountProperties();
        if (bytes(failure).length > 0) return failure;

        // (1) Conservation of tokens.
        uint256 held = token.balanceOf(address(market));
        uint256 accounted = escrow + bonds + stakesAndRewards;
        if (held != accounted) {
            return string.concat("token conservation: market holds ", held.str(), ", accounted ", accounted.str());
        }
        if (bonds != ghostOpenBonds) return "token conservation: open dispute bonds != disputes the rules left open";
        if (token.totalSupply() != ghostMinted) return "token conservation: supply changed other than by a mint";

        // (2) No double pay.
        if (maxAcceptedEventsPerTask > 1) return "double pay: a task id was accepted twice";
        if (seenAcceptances != expectedAcceptances) {
            return "double pay: TaskAccepted events != acceptances the rules allow";
        }

        // (3) No slash without a failed verification (verifiers and the referee tell the truth: only fakes
        //     may fail, or a volunteer that let its move in a game lapse), and no challenger who proved a
        //     fake slashed unless it let its own move lapse.
        if (honestCommitsSlashed > 0) return "an honest commit was slashed";
        if (seenSlashes != expectedSlashes) return "TaskSlashed events != failed verifications";
        if (truthfulChallengersSlashed > 0) {
            return "a challenger who contested a fake and answered in time was slashed";
        }
        if (seenChallengerSlashes != expectedChallengerSlashes) {
            return "ChallengerSlashed events != games the rules let the volunteer win";
        }

        // (5) Re-entrant calls from inside a token transfer never get through.
        // (Each attempt is in fact stopped by the reentrancy guard: `reentrancyBlocked` in the run summary.)
        (, uint256 successes,) = attacker.record();
        if (successes > 0) return string.concat("reentrancy: ", successes.str(), " re-entrant calls went through");
        return "";
    }

    /// @dev Per bounty: escrow equals the model's; the bounty can pay what it still owes (every task not
    ///      yet accepted before any refund, every pending task after one). Returns the escrow and the
    ///      bonds of open disputes for the conservation sum (a contested task keeps its dispute's bond).
    function _bountyProperties() private view returns (string memory failure, uint256 escrow, uint256 bonds) {
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            uint256 id = _bountyIds[i];
            IMarketTypes.Bounty memory b = _bounty(id);
            uint256 pending;
            for (uint256 shard = 0; shard < b.shards; ++shard) {
                uint256 taskId = _taskIdOf(id, b.currentRound, shard);
                IMarketTypes.Task memory t = _task(taskId);
                IMarketTypes.TaskStatus s = t.status;
                if (s == IMarketTypes.TaskStatus.Challenged) bonds += b.challengeBond;
                // Whether a contested task was disputed first is the model's record (the market keeps no view of it).
                if (s == IMarketTypes.TaskStatus.Contested && _tasks[taskId][t.attempt].challenger != address(0)) {
                    bonds += b.challengeBond;
                }
                if (_isPending(s)) ++pending;
            }
            escrow += b.escrow;
            if (b.escrow != ghostEscrow[id]) {
                failure =
                    string.concat("escrow of bounty ", id.str(), " is ", uint256(b.escrow).str(), ", the rules give ");
                return (string.concat(failure, ghostEscrow[id].str()), 0, 0);
            }
            uint256 perTask = uint256(b.rewardPerTask) + uint256(b.quorum) * b.verifierFee;
            uint256 owed;
            if (b.refunded == 0) owed = (uint256(b.shards) * b.rounds - ghostAcceptedTasks[id]) * perTask;
            else if (b.status == IMarketTypes.BountyStatus.Active) owed = pending * perTask;
            if (b.escrow < owed) {
                failure = string.concat("bounty ", id.str(), " holds ", uint256(b.escrow).str(), " but owes ");
                return (string.concat(failure, owed.str()), 0, 0);
            }
        }
    }

    /// @dev Per account: collateral (bonded + unbonding), locks (leases held and games contested) and
    ///      claimable rewards equal the model's, and locked stake is covered by collateral. Returns the
    ///      sum of collateral and claimable.
    function _accountProperties() private view returns (string memory failure, uint256 total) {
        address[] memory all = accounts();
        for (uint256 i = 0; i < all.length; ++i) {
            address a = all[i];
            (uint256 bonded, uint256 locked, uint256 unbonding,) = market.stakeOf(a);
            uint256 claimable = market.claimable(a);
            total += bonded + unbonding + claimable;
            if (bonded + unbonding != ghostCollateral[a]) failure = "stake moved outside the rules";
            else if (locked != ghostLocked[a]) failure = "locked stake != the stake of its open leases and games";
            else if (locked > bonded + unbonding) failure = "locked stake not covered by collateral";
            else if (claimable != ghostClaimable[a]) failure = "claimable != the rewards the rules credited";
            if (bytes(failure).length > 0) return (string.concat(failure, ": ", vm.toString(a)), 0);
        }
    }
}
