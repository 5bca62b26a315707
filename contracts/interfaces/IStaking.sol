// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Staking: bonded stake, per-task locks, an unbonding queue, slashing
interface IStaking {
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
    function stake(uint256 amount) external;

    /// @notice Moves `amount` of bonded stake into the unbonding queue. It stays slashable there, and
    ///         the part still locked by tasks cannot be withdrawn until those tasks settle.
    function requestUnstake(uint256 amount) external;

    /// @notice Pays out every unbonding request whose `unbondingDelay` has passed, less stake still locked.
    /// @return amount tokens sent to the caller
    function withdraw() external returns (uint256 amount);

    /// @notice Stake position of `account`; free stake is `bonded - locked` when positive.
    function stakeOf(address account)
        external
        view
        returns (uint256 bonded, uint256 locked, uint256 unbonding, uint256 acceptedTasks);
}
