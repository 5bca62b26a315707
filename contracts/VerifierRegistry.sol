// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IVerifierRegistry} from "./interfaces/IVerifierRegistry.sol";

/// @title Registered verifiers and the committees drawn among them
/// @notice Inherited by the market: a checked task's committee is drawn from the seats taken before the task's
///         commit, with the task's challenge seed (a block hash the volunteer could not know when it committed).
///         Nobody can join after seeing a commit to land on its committee, and no verifier chooses its tasks.
///         Absent members are covered by spare seats; the market's permissionless `contest` stays open to
///         everyone else, so a committee is never the only line of defence.
abstract contract VerifierRegistry is IVerifierRegistry {
    /// @notice Committee seats drawn per vote of a bounty's quorum: spares for members who are offline or of
    ///         another numeric class and abstain, so that a quorum can still form.
    uint256 public constant SEATS_PER_VOTE = 2;

    /// @dev An account's latest seat, read on every vote: one storage slot.
    struct Membership {
        uint32 seatPlusOne; // 0: never registered
        uint32 since;
        bool active;
    }

    /// @dev The registry's size and its newest seat's block, one slot: a vote whose commit is younger than
    ///      every seat (the usual case) learns the pool from this one read.
    struct Head {
        uint32 seats;
        uint32 newestSince;
    }

    Head internal _head;
    mapping(uint256 index => address) internal _seatHolder;
    mapping(uint256 index => uint32) internal _seatSince;
    mapping(address verifier => Membership) internal _membership;

    /// @inheritdoc IVerifierRegistry
    function registerVerifier() external {
        if (_membership[msg.sender].active) revert RegistryAlreadyRegistered(msg.sender);
        if (!_hasStake(msg.sender)) revert RegistryNoStake(msg.sender);
        uint32 index = _head.seats;
        uint32 since = uint32(block.number);
        _head = Head({seats: index + 1, newestSince: since});
        _seatHolder[index] = msg.sender;
        _seatSince[index] = since;
        _membership[msg.sender] = Membership({seatPlusOne: index + 1, since: since, active: true});
        emit VerifierRegistered(msg.sender, index);
    }

    /// @inheritdoc IVerifierRegistry
    function deregisterVerifier() external {
        Membership storage m = _membership[msg.sender];
        if (!m.active) revert RegistryNotRegistered(msg.sender);
        m.active = false;
        emit VerifierDeregistered(msg.sender, m.seatPlusOne - 1);
    }

    /// @inheritdoc IVerifierRegistry
    function seatCount() external view returns (uint256) {
        return _head.seats;
    }

    /// @inheritdoc IVerifierRegistry
    function seatAt(uint256 index) external view returns (Seat memory) {
        address holder = _seatHolder[index];
        Membership storage m = _membership[holder];
        return Seat({verifier: holder, since: _seatSince[index], active: m.active && m.seatPlusOne == index + 1});
    }

    /// @inheritdoc IVerifierRegistry
    function seatOf(address verifier) external view returns (bool registered, uint256 index) {
        Membership storage m = _membership[verifier];
        return (m.active, m.active ? m.seatPlusOne - 1 : 0);
    }

    function _hasStake(address account) internal view virtual returns (bool);

    /// @dev Whether `verifier` sits on the committee of `seats` seats drawn with `seed` among the seats taken
    ///      before block `commitBlock`. A zero seed (the draw was lost: nobody recorded it within 256 blocks)
    ///      seats the whole pool: lost randomness must not narrow who may check the volunteer.
    function _onCommittee(address verifier, bytes32 seed, uint256 commitBlock, uint256 seats)
        internal
        view
        returns (bool)
    {
        Membership memory m = _membership[verifier];
        if (!m.active || m.since >= commitBlock) return false;
        uint256 pool = _seatsBefore(commitBlock);
        if (seed == 0 || pool <= seats) return true;
        uint256[] memory drawn = _draw(seed, pool, seats);
        for (uint256 k = 0; k < seats; ++k) {
            // slither-disable-next-line incorrect-equality (seat indices, not balances or times)
            if (drawn[k] == m.seatPlusOne - 1) return true;
        }
        return false;
    }

    /// @dev The holders of the committee's seats (see _onCommittee), in draw order: the whole pool when the seed
    ///      is zero or the pool is no larger than the committee.
    function _committee(bytes32 seed, uint256 commitBlock, uint256 seats) internal view returns (address[] memory) {
        uint256 pool = _seatsBefore(commitBlock);
        bool everyone = seed == 0 || pool <= seats;
        uint256[] memory drawn = everyone ? new uint256[](0) : _draw(seed, pool, seats);
        address[] memory members = new address[](everyone ? pool : seats);
        for (uint256 k = 0; k < members.length; ++k) {
            members[k] = _seatHolder[everyone ? k : drawn[k]];
        }
        return members;
    }

    /// @dev `seats` distinct seat indices below `pool` (pool > seats), drawn in order with `seed`. Memory only: a
    ///      vote pays hashing, not storage reads. A 256-bit filter of `pick mod 256` makes a new pick cost one
    ///      bit test; only a filter hit scans the picks. Worst case (pool = seats + 1 = 31): ~94 draws.
    function _draw(bytes32 seed, uint256 pool, uint256 seats) internal pure returns (uint256[] memory drawn) {
        drawn = new uint256[](seats);
        uint256 found = 0;
        uint256 filter = 0;
        for (uint256 j = 0; found < seats; ++j) {
            // slither-disable-next-line weak-prng
            uint256 pick = uint256(keccak256(abi.encode(seed, "committee", j))) % pool;
            uint256 bit = uint256(1) << (pick & 255);
            if (filter & bit != 0 && _picked(drawn, found, pick)) continue;
            filter |= bit;
            drawn[found++] = pick;
        }
    }

    function _picked(uint256[] memory drawn, uint256 found, uint256 pick) private pure returns (bool) {
        for (uint256 k = 0; k < found; ++k) {
            // slither-disable-next-line incorrect-equality (seat indices, not balances or times)
            if (drawn[k] == pick) return true;
        }
        return false;
    }

    /// @dev How many seats were taken before block `blockNumber`. Seats are appended in block order, so a binary
    ///      search when some seat is younger than the commit.
    function _seatsBefore(uint256 blockNumber) internal view returns (uint256 low) {
        Head memory head = _head;
        uint256 high = head.seats;
        if (head.newestSince < blockNumber) return high;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (_seatSince[mid] < blockNumber) low = mid + 1;
            else high = mid;
        }
    }
}
