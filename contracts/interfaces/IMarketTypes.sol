// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The bounty market's types, errors and events, shared by the market and its game module
/// @notice Task id = bountyId << 64 | round << 32 | shard. One task = one shard of one round.
interface IMarketTypes {
    enum TaskStatus {
        Open,
        Claimed,
        Committed,
        Challenged, // a permissionless dispute was raised; a drawn spot-check keeps the task Committed
        Accepted,
        Contested // a bisection game over a stretch of its trace is being played; nothing else moves it
    }

    /// @notice Whose move a bisection game waits for.
    enum GameTurn {
        None,
        Volunteer, // post the hash of the state at the midpoint step
        Challenger, // agree or disagree with that state
        Referee // recompute the one step left and rule
    }

    /// @notice A bisection game over the steps between two committed states the challenger says do not follow
    ///         from each other. Both sides agree on the state at `loStep` and disagree on the one at `hiStep`;
    ///         each round halves the stretch until one optimizer step is left, which the referee recomputes.
    struct Game {
        address challenger;
        uint32 loStep;
        uint32 hiStep;
        uint32 deadline; // the side whose turn it is must move by then, or forfeit
        GameTurn turn;
        bytes32 loHash; // state hash both sides agree on
        bytes32 hiHash; // the volunteer's state hash the challenger disputes
        bytes32 midHash; // the volunteer's state at the midpoint, awaiting the challenger's answer
    }

    /// @notice A volunteer's record with one poster since `epoch` (its slash count then).
    struct Reputation {
        uint32 epoch;
        uint32 checkedTasks;
        uint40 barredUntil; // slashed on one of the poster's bounties: claims none of its tasks until then
    }

    /// @notice A checkpoint of a committed trace with its Merkle proof against the trace root.
    struct TraceStep {
        uint32 step;
        bytes32 stateHash;
        bytes32[] proof;
    }

    enum BountyStatus {
        None,
        Active,
        Finalized
    }

    /// @notice What a poster fixes when posting; every amount is in token base units.
    struct BountyParams {
        string specCid; // training spec in the content store
        address coordinator; // opens and closes rounds, referees bisection games; nothing else
        uint32 shards; // tasks per round (at most MAX_SHARDS)
        uint32 rounds;
        uint16 segmentsPerTask; // checkpoints per task minus one (at most 256)
        uint16 segmentsPerCheck; // segments replayed when a task is checked
        uint16 checkBps; // spot-check probability for a volunteer with no record, basis points
        uint16 minCheckBps; // floor the probability decays to as accepted tasks accumulate
        uint16 reputationHalfLife; // checked, passed tasks (with this poster) after which it has halved
        uint8 quorum; // matching verifier attestations that settle a check
        uint96 rewardPerTask;
        uint96 stakePerTask; // locked at claim; the whole lock is slashed on a failed check
        uint96 verifierFee; // per attestation on the winning side
        uint96 challengeBond; // posted by a permissionless challenger
        uint96 leasePenalty; // taken from the lock when a lease expires without a commit
        uint32 leaseDuration; // seconds to commit after claiming
        uint32 challengeWindow; // seconds after a commit during which disputes may be raised
        uint32 verifyWindow; // further seconds verifiers have to reach a quorum
        uint40 deadline; // no claims or commits after; unspent escrow refundable after
    }

    struct Bounty {
        address poster;
        uint32 shards;
        uint32 rounds;
        uint32 currentRound;
        address coordinator;
        uint40 deadline;
        uint32 leaseDuration;
        BountyStatus status;
        bool roundOpen;
        uint8 quorum;
        uint96 rewardPerTask;
        uint96 stakePerTask;
        uint32 challengeWindow;
        uint32 verifyWindow;
        uint96 verifierFee;
        uint96 challengeBond;
        uint16 checkBps;
        uint16 minCheckBps;
        uint16 reputationHalfLife;
        uint16 segmentsPerTask;
        uint96 leasePenalty;
        uint16 segmentsPerCheck;
        uint128 escrow; // tokens this bounty still holds
        uint128 refunded;
    }

    struct Task {
        address volunteer;
        TaskStatus status;
        uint8 attempt; // increments each time the task reopens
        uint32 deadline; // lease deadline while Claimed; commit time once Committed
        uint32 commitBlock;
        uint16 checkBps; // the volunteer's check probability, fixed at claim
    }

    error MarketUnknownBounty(uint256 bountyId);
    error MarketInvalidParams(string field);
    error MarketEconomicallyUnsound(uint256 stakePerTask, uint256 minCheckBps, uint256 rewardPerTask);
    error MarketNotCoordinator(uint256 bountyId, address caller);
    error MarketNotPoster(uint256 bountyId, address caller);
    error MarketBountyNotActive(uint256 bountyId);
    error MarketBountyExpired(uint256 bountyId, uint256 deadline);
    error MarketRoundAlreadyOpen(uint256 bountyId, uint256 round);
    error MarketRoundNotOpen(uint256 bountyId);
    error MarketRoundIncomplete(uint256 bountyId, uint256 round, uint256 shard);
    error MarketNotCurrentTask(uint256 taskId);
    error MarketTaskNotInStatus(uint256 taskId, TaskStatus status);
    error MarketLeaseActive(uint256 taskId, uint256 leaseDeadline);
    error MarketLeaseExpired(uint256 taskId, uint256 leaseDeadline);
    error MarketNotLeaseHolder(uint256 taskId, address caller);
    error MarketEmptyCommitment(uint256 taskId);
    error MarketTaskAttemptsExhausted(uint256 taskId);
    error MarketChallengeNotDrawnYet(uint256 taskId, uint256 drawBlock);
    error MarketChallengeWindowOpen(uint256 taskId, uint256 closesAt);
    error MarketChallengeWindowClosed(uint256 taskId, uint256 closedAt);
    error MarketSegmentOutOfRange(uint256 taskId, uint256 segment, uint256 segments);
    error MarketSelfDispute(uint256 taskId, address volunteer);
    error MarketNotChecked(uint256 taskId);
    error MarketVerdictPending(uint256 taskId, uint256 verifyDeadline);
    error MarketVerifyWindowClosed(uint256 taskId, uint256 verifyDeadline);
    error MarketVerifierIneligible(uint256 taskId, address verifier, uint256 freeStake, uint256 needed);
    error MarketAlreadyAttested(uint256 taskId, address verifier);
    error MarketNothingToRefund(uint256 bountyId);
    error MarketRefundNotYetAllowed(uint256 bountyId, uint256 deadline);
    error MarketNothingToClaim(address account);
    error MarketGameInProgress(uint256 taskId);
    error MarketAlreadyContested(uint256 taskId, address challenger);
    error MarketNoGame(uint256 taskId);
    error MarketBadTraceClaim(uint256 taskId);
    error MarketNotYourTurn(uint256 taskId, address caller, GameTurn turn);
    error MarketMoveTooLate(uint256 taskId, uint256 deadline);
    error MarketMoveNotOverdue(uint256 taskId, uint256 deadline);
    error MarketEmptyStateHash(uint256 taskId);
    error MarketNotOnCommittee(uint256 taskId, address verifier);
    error MarketVolunteerBarred(address volunteer, uint256 until);

    event BountyPosted(
        uint256 indexed bountyId,
        address indexed poster,
        address indexed coordinator,
        string specCid,
        uint256 shards,
        uint256 rounds,
        uint256 escrow
    );
    event RoundOpened(uint256 indexed bountyId, uint256 indexed round, string modelCid);
    event RoundClosed(uint256 indexed bountyId, uint256 indexed round, string aggregateCid);
    event BountyFinalized(uint256 indexed bountyId, string finalModelCid);
    event EscrowRefunded(uint256 indexed bountyId, address indexed poster, uint256 amount);
    event TaskClaimed(
        uint256 indexed taskId, uint256 indexed bountyId, address indexed volunteer, uint256 attempt, uint256 leaseDeadline
    );
    event LeaseExpired(uint256 indexed taskId, uint256 indexed bountyId, address indexed volunteer, uint256 penalty);
    event TaskCommitted(
        uint256 indexed taskId,
        uint256 indexed bountyId,
        address indexed volunteer,
        bytes32 traceRoot,
        bytes32 updateHash,
        string traceCid,
        string updateCid
    );
    event ChallengeDrawn(uint256 indexed taskId, uint256 attempt, bytes32 seed);
    event TaskDisputed(uint256 indexed taskId, address indexed challenger, uint256 segment, uint256 bond);
    event VerdictAttested(uint256 indexed taskId, address indexed verifier, bool passed);
    event TaskAccepted(uint256 indexed taskId, uint256 indexed bountyId, address indexed volunteer, uint256 reward);
    event TaskSlashed(uint256 indexed taskId, uint256 indexed bountyId, address indexed volunteer, uint256 amount);
    event RewardCredited(address indexed account, uint256 indexed taskId, uint256 amount);
    event RewardsClaimed(address indexed account, uint256 amount);
    event GameOpened(
        uint256 indexed taskId,
        address indexed challenger,
        uint256 loStep,
        bytes32 loHash,
        uint256 hiStep,
        bytes32 hiHash
    );
    event GameBisected(uint256 indexed taskId, uint256 midStep, bytes32 midHash, string stateCid);
    event GameAnswered(uint256 indexed taskId, bool agreed, uint256 loStep, uint256 hiStep);
    event GameRuled(uint256 indexed taskId, address indexed referee, bool stepCorrect);
    event GameForfeited(uint256 indexed taskId, GameTurn turn);
    event GameEnded(uint256 indexed taskId, address indexed winner, address indexed loser);
    event ChallengerSlashed(uint256 indexed taskId, address indexed challenger, uint256 amount);
    event ReviewOpened(uint256 indexed taskId, uint256 failVotes);
}
