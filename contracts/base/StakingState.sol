// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IStakingTypes} from "../interfaces/IStakingTypes.sol";

/// @title Staking's storage and the lock, unlock and slash every task moves it by
/// @notice Shared by the market (Staking) and its game module (BountyGames), which runs by delegatecall on
///         the market's storage: both declare their state only through these base contracts, so the layouts
///         match (scripts/export_artifacts.py refuses to export them otherwise).
abstract contract StakingState is IStakingTypes {
    struct StakeAccount {
        uint96 bonded; // includes `locked`
        uint96 locked;
        uint32 acceptedTasks; // tasks this account had accepted as a volunteer, on any bounty (a statistic)
        uint32 slashes; // times it was slashed for cheating: each starts its reputation over (BountyMarket)
    }

    struct UnbondingRequest {
        uint96 amount;
        uint40 releaseAt;
    }

    mapping(address account => StakeAccount) internal _stakes;
    // Filled by push in requestUnstake; slither's uninitialized-state misreads array-valued mappings.
    // slither-disable-next-line uninitialized-state
    mapping(address account => UnbondingRequest[]) internal _unbonding;

    function _lockStake(address account, uint256 amount) internal {
        StakeAccount storage s = _stakes[account];
        uint256 free = s.bonded > s.locked ? s.bonded - s.locked : 0;
        if (amount > free) revert StakingInsufficientFreeStake(account, free, amount);
        s.locked += uint96(amount);
    }

    function _unlockStake(address account, uint256 amount, bool accepted) internal {
        StakeAccount storage s = _stakes[account];
        s.locked -= uint96(amount);
        if (accepted) ++s.acceptedTasks;
    }

    /// @dev Slashes `amount` of locked stake: the lock is released and the tokens are taken from bonded
    ///      stake, then from the unbonding queue newest first (where locked stake goes when its owner
    ///      unbonds early). Collateral (bonded + unbonding) always covers `locked`, so all of it is found.
    ///      The caller owns the returned tokens.
    function _slashStake(address account, uint256 amount) internal returns (uint256 taken) {
        StakeAccount storage s = _stakes[account];
        s.locked -= uint96(amount);
        uint256 fromBonded = s.bonded < amount ? s.bonded : amount;
        s.bonded -= uint96(fromBonded);
        taken = fromBonded;
        UnbondingRequest[] storage queue = _unbonding[account];
        while (taken < amount) {
            UnbondingRequest storage last = queue[queue.length - 1];
            uint256 need = amount - taken;
            if (last.amount > need) {
                last.amount -= uint96(need);
                taken += need;
            } else {
                taken += last.amount;
                queue.pop();
            }
        }
        emit StakeSlashed(account, taken);
    }

    function _unbondingTotal(address account) internal view returns (uint256 total) {
        UnbondingRequest[] storage queue = _unbonding[account];
        for (uint256 i = 0; i < queue.length; ++i) {
            total += queue[i].amount;
        }
    }
}
