// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Staking's errors and events, shared by the market and its game module
interface IStakingTypes {
    error StakingZeroAmount();
    error StakingAmountTooLarge(uint256 amount);
    error StakingInsufficientFreeStake(address account, uint256 free, uint256 needed);
    error StakingUnbondingQueueFull(address account, uint256 pending);
    error StakingInsufficientStake(address account, uint256 bonded, uint256 needed);
    error StakingNothingToWithdraw(address account, uint256 nextReleaseAt, uint256 encumbered);

    event Staked(address indexed account, uint256 amount, uint256 bonded);
    event UnstakeRequested(address indexed account, uint256 amount, uint256 releaseAt);
    event Withdrawn(address indexed account, uint256 amount);
    event StakeSlashed(address indexed account, uint256 amount);

    /// @notice Bonds `amount` tokens of the caller (needs a prior ERC-20 approval).
}
