// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStaking} from "./interfaces/IStaking.sol";

/// @title Staking with unbonding, per-task locks and slashing
/// @notice Inherited by the market rather than deployed beside it: locking and unlocking stake happens
///         on every task, and an internal call saves two cold external calls per task lifecycle.
///         A volunteer may unbond stake that is still locked (to start the delay early), but it stays
///         slashable in the queue and cannot be withdrawn until its tasks settle: unbonding never
///         shields stake from a slash.
abstract contract Staking is IStaking, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Pending unstake requests an account may hold, bounding the slashing loop.
    uint256 public constant MAX_UNBONDING_REQUESTS = 32;

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

    IERC20 public immutable token;
    uint256 public immutable unbondingDelay;

    mapping(address account => StakeAccount) internal _stakes;
    // Filled by push in requestUnstake; slither's uninitialized-state misreads array-valued mappings.
    // slither-disable-next-line uninitialized-state
    mapping(address account => UnbondingRequest[]) internal _unbonding;

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
