// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarketTypes} from "./IMarketTypes.sol";

/// @title Bounty market: escrowed training bounties, the task state machine, verification, rewards
/// @notice Task id = bountyId << 64 | round << 32 | shard. One task = one shard of one round. The bisection
///         games (IBountyGames) are played at the same address.
interface IBountyMarket is IMarketTypes {
    /// @notice Posts a bounty and escrows `shards × rounds × (rewardPerTask + quorum × verifierFee)`.
    /// @dev Refuses parameters where `stakePerTask × minCheckBps < rewardPerTask × 10000`: cheating
    ///      must have negative expected value even for the most trusted volunteer.
    function postBounty(BountyParams calldata params) external returns (uint256 bountyId);

    /// @notice Coordinator opens the bounty's first round on `modelCid`.
    function openRound(uint256 bountyId, string calldata modelCid) external;

    /// @notice Coordinator closes the current round (every task Accepted) with the aggregated model;
    ///         opens the next round on it, or finalizes the bounty after the last round.
    function closeRound(uint256 bountyId, string calldata aggregateCid) external;

    /// @notice Poster takes back escrow not owed to pending tasks, once finalized or past the deadline.
    function refund(uint256 bountyId) external returns (uint256 amount);

    /// @notice Claims an open task of the current round, locking `stakePerTask` of the caller's stake.
    function claim(uint256 taskId) external;

    /// @notice Reopens a task whose lease ran out; the lease holder loses `leasePenalty`.
    function expireLease(uint256 taskId) external;

    /// @notice The lease holder commits its proof-of-learning trace root and update hash.
    function commit(
        uint256 taskId,
        bytes32 traceRoot,
        bytes32 updateHash,
        string calldata traceCid,
        string calldata updateCid
    ) external;

    /// @notice Records a committed task's challenge seed before its block hash leaves the 256-block horizon.
    function drawChallenge(uint256 taskId) external;

    /// @notice Records the challenge seed of each listed committed task whose draw block is served and whose seed
    ///         nobody recorded yet, and skips the rest without reverting: one transaction for a round's fresh
    ///         commits (a seed is one storage slot; the transaction around it costs more than the slot).
    /// @return drawn how many seeds it recorded
    function drawMany(uint256[] calldata taskIds) external returns (uint256 drawn);

    /// @notice The game module that runs `contest`, `bisect`, `respond`, `rule` and `forfeit` (IBountyGames) on
    ///         this market's storage; deployed by the market's constructor.
    function games() external view returns (address);

    /// @notice Any staked account may force a check of `segment` during the challenge window by posting the bond.
    function dispute(uint256 taskId, uint256 segment) external;

    /// @notice A verifier on the task's committee (drawn among the registered verifiers, see
    ///         IVerifierRegistry) attests the replay result of a checked task. A PASS quorum accepts it; a FAIL
    ///         quorum opens a review: the task waits (Contested, the referee's turn) for `rule`.
    function attest(uint256 taskId, bool passed) external;

    /// @notice Accepts a committed task once its window has passed and no check is pending.
    function settle(uint256 taskId) external;

    /// @notice Settles each listed task `settle` would accept now and skips the rest without reverting (not
    ///         committed, windows still open, a verdict pending): one transaction for a round's due tasks.
    /// @return settled how many it accepted
    function settleMany(uint256[] calldata taskIds) external returns (uint256 settled);

    /// @notice Pays the caller everything credited to it.
    function claimRewards() external returns (uint256 amount);
}
