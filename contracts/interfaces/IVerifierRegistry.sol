// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Verifier registry: who may be drawn onto a checked task's committee
/// @notice A staked account registers to verify; each checked task's committee is drawn with the task's
///         challenge seed among the seats registered before its commit, so no verifier picks its tasks.
interface IVerifierRegistry {
    /// @notice One registration. Seats are never removed (a committee drawn from the first `n` seats stays
    ///         the same committee); leaving only marks the seat inactive, and rejoining takes a new seat.
    struct Seat {
        address verifier;
        uint32 since; // block of registration: the seat serves commits of later blocks only
        bool active;
    }

    error RegistryAlreadyRegistered(address verifier);
    error RegistryNotRegistered(address verifier);
    error RegistryNoStake(address verifier);

    event VerifierRegistered(address indexed verifier, uint256 seat);
    event VerifierDeregistered(address indexed verifier, uint256 seat);

    /// @notice Takes a new seat for the caller, which must have bonded stake. It is drawn for commits made
    ///         from the next block on; whether it may vote on a bounty is its free stake's business at vote time.
    function registerVerifier() external;

    /// @notice Leaves the pool: the caller's seat can no longer vote, and registering again takes a new seat.
    function deregisterVerifier() external;

    /// @notice Every seat ever taken, in order.
    function seatCount() external view returns (uint256);

    /// @notice The seat at `index`.
    function seatAt(uint256 index) external view returns (Seat memory);

    /// @notice The caller-facing state of `verifier`: whether it holds an active seat, and which.
    function seatOf(address verifier) external view returns (bool registered, uint256 index);
}
