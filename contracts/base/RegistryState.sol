// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The verifier registry's storage and the committee draw
/// @notice Shared by the market (VerifierRegistry) and its game module (BountyGames); see StakingState.
abstract contract RegistryState {
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

    // Written by VerifierRegistry's functions; slither reads each contract alone and finds no writer in the game
    // module, which only runs on the market's storage (docs/contracts.md, "The game module").
    // slither-disable-next-line uninitialized-state
    Head internal _head;
    mapping(uint256 index => SeatSlot) internal _seats;
    // slither-disable-next-line uninitialized-state
    mapping(address verifier => uint256) internal _seatPlusOne; // 0: never registered

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
