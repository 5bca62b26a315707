// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarketTypes} from "./IMarketTypes.sol";

/// @title Bisection games over a committed trace, played at the market's address
/// @notice The market runs these in its game module (BountyGames) by delegatecall, on its own storage.
interface IBountyGames is IMarketTypes {
    /// @notice Any staked account but the volunteer, until the verify window closes, claims that the committed
    ///         state at `hi.step` does not follow from the one at `lo.step` and opens a bisection game, locking
    ///         `stakePerTask` of its own stake: lost if the volunteer wins, returned with half the volunteer's
    ///         slashed stake if the volunteer loses. One game at a time per task; the task waits for it.
    ///         Each account contests an attempt at most once.
    function contest(
        uint256 taskId,
        bytes32 traceRoot,
        bytes32 updateHash,
        TraceStep calldata lo,
        TraceStep calldata hi
    ) external;

    /// @notice The volunteer's move: the hash of its state at the midpoint step and where to fetch that state.
    function bisect(uint256 taskId, bytes32 midHash, string calldata stateCid) external;

    /// @notice The challenger's move: whether it agrees with the volunteer's midpoint state.
    function respond(uint256 taskId, bool agree) external;

    /// @notice The referee (the bounty's coordinator) recomputes the one step left and rules whether the
    ///         volunteer's state at `hiStep` follows from the one at `loStep`. In a review (a game without a
    ///         challenger, opened by a FAIL quorum) it rules on the whole commit: correct accepts the task and
    ///         pays its PASS voters, not correct slashes the volunteer and pays the FAIL voters.
    function rule(uint256 taskId, bool stepCorrect) external;

    /// @notice Ends a game whose mover let its deadline pass: a silent volunteer or challenger loses; a
    ///         silent referee dissolves the game and nobody is slashed. A review the referee let pass reopens
    ///         the task: the volunteer's stake is unlocked, nobody is paid or slashed.
    function forfeit(uint256 taskId) external;
}
