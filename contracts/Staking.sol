// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {StakingState} from "./base/StakingState.sol";

/// @title Staking with unbonding, per-task locks and slashing
/// @notice Inherited by the market rather than deployed beside it: locking and unlocking stake happens
///         on every task, and an internal call saves two cold external calls per task lifecycle.
///         A volunteer may unbond stake that is still locked (to start the delay early), but it stays
///         slashable in the queue and cannot be withdrawn until its tasks settle: unbonding never
///         shields stake from a slash.
abstract contract Staking is IStaking, StakingState, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Pending unstake requests an account may hold, bounding the slashing loop.
    uint256 public constant MAX_UNBONDING_REQUESTS = 32;

    IERC20 public immutable token;
    uint256 public immutable unbondingDelay;

    constructor(IERC20 token_, uint256 unbondingDelay_) {
        token = token_;
        unbondingDelay = unbondingDelay_;
    }

    /// @inheritdoc IStaking
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert StakingZeroAmount();
        _pullTokens(msg.sender, amount);
        StakeAccount storage account = _stakes[msg.sender];
        account.bonded += _toUint96(amount);
        emit Staked(msg.sender, amount, account.bonded);
    }

    /// @inheritdoc IStaking
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert StakingZeroAmount();
        StakeAccount storage account = _stakes[msg.sender];
        if (amount > account.bonded) revert StakingInsufficientStake(msg.sender, account.bonded, amount);
        UnbondingRequest[] storage queue = _unbonding[msg.sender];
        if (queue.length >= MAX_UNBONDING_REQUESTS) revert StakingUnbondingQueueFull(msg.sender, queue.length);
        account.bonded -= uint96(amount);
        uint256 releaseAt = block.timestamp + unbondingDelay;
        queue.push(UnbondingRequest(uint96(amount), uint40(releaseAt)));
        emit UnstakeRequested(msg.sender, amount, releaseAt);
    }

    /// @inheritdoc IStaking
    function withdraw() external nonReentrant returns (uint256 amount) {
        StakeAccount storage account = _stakes[msg.sender];
        UnbondingRequest[] storage queue = _unbonding[msg.sender];
        // Locked stake that was sent to unbonding stays in the queue until its tasks settle.
        uint256 encumbered = account.locked > account.bonded ? account.locked - account.bonded : 0;
        uint256 payable_ = _unbondingTotal(msg.sender) - encumbered;
        // Requests are appended with non-decreasing release times, so matured ones form a prefix.
        uint256 matured;
        while (matured < queue.length && queue[matured].releaseAt <= block.timestamp && amount < payable_) {
            uint256 part = queue[matured].amount;
            if (amount + part > payable_) {
                part = payable_ - amount;
                queue[matured].amount -= uint96(part);
                amount += part;
                break;
            }
            amount += part;
            ++matured;
        }
        if (amount == 0) {
            uint256 nextRelease = queue.length == 0 ? 0 : queue[0].releaseAt;
            revert StakingNothingToWithdraw(msg.sender, nextRelease, encumbered);
        }
        uint256 remaining = queue.length - matured;
        for (uint256 i = 0; i < remaining; ++i) {
            queue[i] = queue[i + matured];
        }
        for (uint256 i = 0; i < matured; ++i) {
            queue.pop();
        }
        emit Withdrawn(msg.sender, amount);
        _sendTokens(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function stakeOf(address account)
        external
        view
        returns (uint256 bonded, uint256 locked, uint256 unbonding, uint256 acceptedTasks)
    {
        StakeAccount storage s = _stakes[account];
        return (s.bonded, s.locked, _unbondingTotal(account), s.acceptedTasks);
    }

    /// @notice Pending unstake requests of `account`, oldest first.
    function unbondingRequests(address account) external view returns (UnbondingRequest[] memory) {
        return _unbonding[account];
    }

    function _toUint96(uint256 value) internal pure returns (uint96) {
        if (value > type(uint96).max) revert StakingAmountTooLarge(value);
        return uint96(value);
    }

    /// @dev The only way tokens enter the contract.
    function _pullTokens(address from, uint256 amount) internal {
        token.safeTransferFrom(from, address(this), amount);
    }

    /// @dev The only way tokens leave the contract.
    function _sendTokens(address to, uint256 amount) internal {
        token.safeTransfer(to, amount);
    }
}
