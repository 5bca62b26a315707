// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IVerifierRegistry} from "./interfaces/IVerifierRegistry.sol";
import {RegistryState} from "./base/RegistryState.sol";

/// @title Registered verifiers and the committees drawn among them
/// @notice Inherited by the market: a checked task's committee is drawn from the seats that existed before the
///         task's commit, with the task's challenge seed (a block hash the volunteer could not know when it
///         committed). Nobody can join after seeing a commit to land on its committee, and no verifier chooses
///         its tasks. Absent members are covered by spare seats; the market's permissionless `contest` stays open
///         to everyone else, so a committee is never the only line of defence.
abstract contract VerifierRegistry is IVerifierRegistry, RegistryState {
    /// @inheritdoc IVerifierRegistry
    function registerVerifier() external {
        if (!_hasStake(msg.sender)) revert RegistryNoStake(msg.sender);
        uint256 plusOne = _seatPlusOne[msg.sender];
        uint32 now_ = uint32(block.number);
        if (plusOne != 0) {
            SeatSlot storage seat = _seats[plusOne - 1];
            if (seat.active) revert RegistryAlreadyRegistered(msg.sender);
            seat.active = true;
            seat.since = now_;
            emit VerifierRegistered(msg.sender, plusOne - 1);
            return;
        }
        uint32 index = _head.seats;
        if (index >= NOT_SEATED) revert RegistryFull();
        _head = Head({seats: index + 1, newestCreated: now_});
        _seats[index] = SeatSlot({holder: msg.sender, created: now_, since: now_, active: true});
        _seatPlusOne[msg.sender] = uint256(index) + 1;
        emit VerifierRegistered(msg.sender, index);
    }

    /// @inheritdoc IVerifierRegistry
    function deregisterVerifier() external {
        uint256 plusOne = _seatPlusOne[msg.sender];
        if (plusOne == 0 || !_seats[plusOne - 1].active) revert RegistryNotRegistered(msg.sender);
        _seats[plusOne - 1].active = false;
        emit VerifierDeregistered(msg.sender, plusOne - 1);
    }

    /// @inheritdoc IVerifierRegistry
    function seatCount() external view returns (uint256) {
        return _head.seats;
    }

    /// @inheritdoc IVerifierRegistry
    function seatAt(uint256 index) external view returns (Seat memory) {
        SeatSlot storage s = _seats[index];
        return Seat({verifier: s.holder, since: s.since, active: s.active});
    }

    /// @inheritdoc IVerifierRegistry
    function seatOf(address verifier) external view returns (bool registered, uint256 index) {
        uint256 plusOne = _seatPlusOne[verifier];
        if (plusOne == 0) return (false, 0);
        return (_seats[plusOne - 1].active, plusOne - 1);
    }

    function _hasStake(address account) internal view virtual returns (bool);
}
