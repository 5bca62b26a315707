// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IStakingTypes} from "./IStakingTypes.sol";

/// @title Staking: bonded stake, per-task locks, an unbonding queue, slashing
interface IStaking is IStakingTypes {
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
