// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Verifier registry: who may be drawn onto a checked task's committee
/// @notice A staked account registers to verify; each checked task's committee is drawn with the task's
///         challenge seed among the seats registered before its commit, so no verifier picks its tasks.
interface IVerifierRegistry {
    /// @notice An account's seat. Each account has one seat, ever: seats are never removed (a commit's pool is
    ///         the seats created before it); leaving marks the seat inactive and rejoining reactivates it.
    struct Seat {
        address verifier;
        uint32 since; // block of the latest (re)joining: the seat serves commits of later blocks only
        bool active;
    }

    error RegistryAlreadyRegistered(address verifier);
    error RegistryNotRegistered(address verifier);
    error RegistryNoStake(address verifier);
    error RegistryFull();

    event VerifierRegistered(address indexed verifier, uint256 seat);
    event VerifierDeregistered(address indexed verifier, uint256 seat);

    /// @notice Takes (or takes back) the caller's seat; the caller must have bonded stake. The seat serves
    ///         commits made from the next block on; whether it may vote on a bounty is its free stake's business.
    function registerVerifier() external;

    /// @notice Leaves the pool: the caller's seat is passed over by every draw until it registers again, and
    ///         then serves only commits made after that.
    function deregisterVerifier() external;

    /// @notice Every seat ever taken, in order.
    function seatCount() external view returns (uint256);

    /// @notice The seat at `index`.
    function seatAt(uint256 index) external view returns (Seat memory);

    /// @notice The caller-facing state of `verifier`: whether it holds an active seat, and which.
    function seatOf(address verifier) external view returns (bool registered, uint256 index);
}
