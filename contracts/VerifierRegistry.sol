// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IVerifierRegistry} from "./interfaces/IVerifierRegistry.sol";

/// @title Registered verifiers and the committees drawn among them
/// @notice Inherited by the market: a checked task's committee is drawn from the seats that existed before the
///         task's commit, with the task's challenge seed (a block hash the volunteer could not know when it
///         committed). Nobody can join after seeing a commit to land on its committee, and no verifier chooses
///         its tasks. Absent members are covered by spare seats; the market's permissionless `contest` stays open
///         to everyone else, so a committee is never the only line of defence.
abstract contract VerifierRegistry is IVerifierRegistry {
    /// @notice Committee seats drawn per vote of a bounty's quorum: spares for members who are offline or of
    ///         another numeric class and abstain, so that a quorum can still form.
    uint256 public constant SEATS_PER_VOTE = 2;
    /// @notice Seats a draw may look at per committee seat: empty chairs (seats whose holder left, or rejoined
    ///         after the commit) are passed over, but a pool full of them cannot make a vote's draw unbounded.
    uint256 public constant LOOKS_PER_SEAT = 2;

    /// @dev One seat per account, ever: leaving and rejoining reuses it, so churning one account cannot fill
    ///      the pool with empty chairs. One slot, read once per seat a draw looks at.
    struct SeatSlot {
        address holder;
        uint32 created; // block it was first taken: seats are in this order, and a commit's pool is a prefix
        uint32 since; // block of the holder's latest (re)joining: it serves commits of later blocks only
        bool active;
    }

    /// @dev The registry's size and its newest seat's creation block, one slot: a vote whose commit is younger
    ///      than every seat (the usual case) learns its pool from this one read.
    struct Head {
        uint32 seats;
        uint32 newestCreated;
    }

    /// @dev What _committeeSeat returns for an account that may not vote. Seats stay below it (a ballot entry
    ///      keeps a seat plus one in 31 bits); 2^31 registrations would take millions of full blocks anyway.
    uint256 internal constant NOT_SEATED = (1 << 31) - 1;

    Head internal _head;
    mapping(uint256 index => SeatSlot) internal _seats;
    mapping(address verifier => uint256) internal _seatPlusOne; // 0: never registered

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

    /// @dev `verifier`'s seat if it sits on the committee of a commit made in block `commitBlock`, drawn with
    ///      `seed`; NOT_SEATED if it does not.
    function _committeeSeat(address verifier, bytes32 seed, uint256 commitBlock, uint256 seats)
        internal
        view
        returns (uint256)
    {
        uint256 plusOne = _seatPlusOne[verifier];
        if (plusOne == 0 || !_serves(_seats[plusOne - 1], commitBlock)) return NOT_SEATED;
        uint256 seat = plusOne - 1;
        // No more seats than the committee, or a lost seed: every serving seat sits (nothing to read or draw).
        if (seed == 0 || _seatsBefore(commitBlock) <= seats) return seat;
        (uint256[] memory members, uint256 count) = _draw(seed, commitBlock, seats);
        for (uint256 k = 0; k < count; ++k) {
            // slither-disable-next-line incorrect-equality (seat indices, not balances or times)
            if (members[k] == seat) return seat;
        }
        return NOT_SEATED;
    }

    /// @dev Whether a seat may vote on a commit made in block `commitBlock`: held now, and (re)joined before it.
    function _serves(SeatSlot storage seat, uint256 commitBlock) private view returns (bool) {
        return seat.active && seat.since < commitBlock;
    }

    /// @dev The committee of a commit made in block `commitBlock`: among the seats created before that block,
    ///      draw `keccak(seed, "committee", j) % pool` for j = 0, 1, … skipping repeats, and keep the seats that
    ///      serve the commit, until `seats` are kept or `seats × LOOKS_PER_SEAT` distinct seats were looked at.
    ///      The whole serving pool when it is no larger than that, or when the seed was lost (zero): lost
    ///      randomness must not narrow who may check the volunteer. A 256-bit filter of `pick mod 256` makes a
    ///      new pick cost one bit test; only a filter hit scans the seats looked at.
    function _draw(bytes32 seed, uint256 commitBlock, uint256 seats)
        internal
        view
        returns (uint256[] memory members, uint256 count)
    {
        uint256 pool = _seatsBefore(commitBlock);
        uint256 looks = seats * LOOKS_PER_SEAT;
        if (seed == 0 || pool <= looks) {
            members = new uint256[](pool);
            for (uint256 i = 0; i < pool; ++i) {
                if (_serves(_seats[i], commitBlock)) members[count++] = i;
            }
            if (seed == 0 || count <= seats) return (members, count);
        }
        members = new uint256[](seats);
        count = 0;
        uint256[] memory looked = new uint256[](looks);
        uint256 seen = 0;
        uint256 filter = 0;
        for (uint256 j = 0; count < seats && seen < looks; ++j) {
            // slither-disable-next-line weak-prng
            uint256 pick = uint256(keccak256(abi.encode(seed, "committee", j))) % pool;
            uint256 bit = uint256(1) << (pick & 255);
            if (filter & bit != 0 && _seen(looked, seen, pick)) continue;
            filter |= bit;
            looked[seen++] = pick;
            if (_serves(_seats[pick], commitBlock)) members[count++] = pick;
        }
    }

    function _seen(uint256[] memory looked, uint256 seen, uint256 pick) private pure returns (bool) {
        for (uint256 k = 0; k < seen; ++k) {
            // slither-disable-next-line incorrect-equality (seat indices, not balances or times)
            if (looked[k] == pick) return true;
        }
        return false;
    }

    /// @dev How many seats were created before block `blockNumber`. Seats are created in block order, so a
    ///      binary search when some seat is younger than the commit.
    function _seatsBefore(uint256 blockNumber) internal view returns (uint256 low) {
        Head memory head = _head;
        uint256 high = head.seats;
        if (head.newestCreated < blockNumber) return high;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (_seats[mid].created < blockNumber) low = mid + 1;
            else high = mid;
        }
    }
}
