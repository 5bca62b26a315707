// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {BountyGames} from "./BountyGames.sol";
import {MarketState} from "./base/MarketState.sol";
import {IBountyGames} from "./interfaces/IBountyGames.sol";
import {IBountyMarket} from "./interfaces/IBountyMarket.sol";
import {Staking} from "./Staking.sol";
import {VerifierRegistry} from "./VerifierRegistry.sol";

/// @title Shardwork bounty market
/// @notice Escrowed training bounties split into tasks (shard × round). Volunteers claim with a stake
///         lock, commit a proof-of-learning trace root, are spot-checked with randomness drawn after the
///         commit, and pull rewards once accepted. Cheaters lose their lock, proven wrong by a verifier
///         quorum or in a bisection game. The coordinator opens and closes rounds and referees games (its
///         ruling on one step decides who is slashed); no one can move escrow or stake outside these rules.
///         The bisection games run in a module of their own (BountyGames, by delegatecall on this storage).
contract BountyMarket is IBountyMarket, IBountyGames, MarketState, Staking, VerifierRegistry {
    /// @inheritdoc IBountyMarket
    /// @dev `shardwork contracts verify` checks the module's code against the sources too.
    address public immutable games;

    constructor(IERC20 token_, uint256 unbondingDelay_) Staking(token_, unbondingDelay_) {
        games = address(new BountyGames());
    }

    // ---------------------------------------------------------------- bounties and rounds

    /// @inheritdoc IBountyMarket
    function postBounty(BountyParams calldata p) external nonReentrant returns (uint256 bountyId) {
        _checkParams(p);
        uint256 escrow = uint256(p.shards) * p.rounds * (uint256(p.rewardPerTask) + uint256(p.quorum) * p.verifierFee);
        if (escrow > type(uint128).max) revert MarketInvalidParams("escrow");

        bountyId = nextBountyId++;
        _bounties[bountyId] = Bounty({
            poster: msg.sender,
            shards: p.shards,
            rounds: p.rounds,
            currentRound: 0,
            coordinator: p.coordinator,
            deadline: p.deadline,
            leaseDuration: p.leaseDuration,
            status: BountyStatus.Active,
            roundOpen: false,
            quorum: p.quorum,
            rewardPerTask: p.rewardPerTask,
            stakePerTask: p.stakePerTask,
            challengeWindow: p.challengeWindow,
            verifyWindow: p.verifyWindow,
            verifierFee: p.verifierFee,
            challengeBond: p.challengeBond,
            checkBps: p.checkBps,
            minCheckBps: p.minCheckBps,
            reputationHalfLife: p.reputationHalfLife,
            segmentsPerTask: p.segmentsPerTask,
            leasePenalty: p.leasePenalty,
            segmentsPerCheck: p.segmentsPerCheck,
            escrow: uint128(escrow),
            refunded: 0
        });
        specCidOf[bountyId] = p.specCid;
        emit BountyPosted(bountyId, msg.sender, p.coordinator, p.specCid, p.shards, p.rounds, escrow);
        _pullTokens(msg.sender, escrow);
    }

    /// @inheritdoc IBountyMarket
    function openRound(uint256 bountyId, string calldata modelCid) external {
        Bounty storage b = _activeBountyOf(bountyId);
        if (msg.sender != b.coordinator) revert MarketNotCoordinator(bountyId, msg.sender);
        if (b.roundOpen || b.currentRound != 0) revert MarketRoundAlreadyOpen(bountyId, b.currentRound);
        b.roundOpen = true;
        emit RoundOpened(bountyId, 0, modelCid);
    }

    /// @inheritdoc IBountyMarket
    function closeRound(uint256 bountyId, string calldata aggregateCid) external {
        Bounty storage b = _activeBountyOf(bountyId);
        if (msg.sender != b.coordinator) revert MarketNotCoordinator(bountyId, msg.sender);
        if (!b.roundOpen) revert MarketRoundNotOpen(bountyId);
        uint256 round = b.currentRound;
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            if (_tasks[_taskId(bountyId, round, shard)].status != TaskStatus.Accepted) {
                revert MarketRoundIncomplete(bountyId, round, shard);
            }
        }
        emit RoundClosed(bountyId, round, aggregateCid);
        if (round + 1 == b.rounds) {
            b.roundOpen = false;
            b.status = BountyStatus.Finalized;
            emit BountyFinalized(bountyId, aggregateCid);
        } else {
            b.currentRound = uint32(round + 1);
            emit RoundOpened(bountyId, round + 1, aggregateCid);
        }
    }

    /// @inheritdoc IBountyMarket
    function refund(uint256 bountyId) external nonReentrant returns (uint256 amount) {
        Bounty storage b = _bountyOf(bountyId);
        if (msg.sender != b.poster) revert MarketNotPoster(bountyId, msg.sender);
        if (b.status != BountyStatus.Finalized && block.timestamp <= b.deadline) {
            revert MarketRefundNotYetAllowed(bountyId, b.deadline);
        }
        amount = b.escrow - _reservedForPendingTasks(bountyId, b);
        if (amount == 0) revert MarketNothingToRefund(bountyId);
        b.escrow -= uint128(amount);
        b.refunded += uint128(amount);
        emit EscrowRefunded(bountyId, msg.sender, amount);
        _sendTokens(msg.sender, amount);
    }

    // ---------------------------------------------------------------- task lifecycle

    /// @inheritdoc IBountyMarket
    function claim(uint256 taskId) external {
        (uint256 bountyId, uint256 round, uint256 shard) = _splitTaskId(taskId);
        Bounty storage b = _activeBountyOf(bountyId);
        if (!b.roundOpen || round != b.currentRound || shard >= b.shards) revert MarketNotCurrentTask(taskId);
        if (block.timestamp > b.deadline) revert MarketBountyExpired(bountyId, b.deadline);

        Task storage t = _tasks[taskId];
        if (t.status == TaskStatus.Claimed && block.timestamp > t.deadline) _expire(taskId, bountyId, b, t);
        if (t.status != TaskStatus.Open) revert MarketTaskNotInStatus(taskId, t.status);
        uint256 barredUntil = _reputation[msg.sender][b.poster].barredUntil;
        if (block.timestamp <= barredUntil) revert MarketVolunteerBarred(msg.sender, barredUntil);

        uint256 stakePerTask = b.stakePerTask;
        _lockStake(msg.sender, stakePerTask);
        uint256 leaseDeadline = block.timestamp + b.leaseDuration;
        if (leaseDeadline > b.deadline) leaseDeadline = b.deadline;
        t.volunteer = msg.sender;
        t.status = TaskStatus.Claimed;
        t.deadline = uint32(leaseDeadline);
        // Fixed now, from the record the volunteer brings to this task, so later acceptances of its
        // other tasks cannot change this task's draw.
        t.checkBps = uint16(_checkProbabilityBps(b, reputationOf(msg.sender, b.poster)));
        emit TaskClaimed(taskId, bountyId, msg.sender, t.attempt, leaseDeadline);
    }

    /// @inheritdoc IBountyMarket
    function expireLease(uint256 taskId) external {
        Task storage t = _tasks[taskId];
        if (t.status != TaskStatus.Claimed) revert MarketTaskNotInStatus(taskId, t.status);
        if (block.timestamp <= t.deadline) revert MarketLeaseActive(taskId, t.deadline);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        _expire(taskId, bountyId, _bounties[bountyId], t);
    }

    /// @inheritdoc IBountyMarket
    function commit(
        uint256 taskId,
        bytes32 traceRoot,
        bytes32 updateHash,
        string calldata traceCid,
        string calldata updateCid
    ) external {
        Task storage t = _tasks[taskId];
        if (t.status != TaskStatus.Claimed) revert MarketTaskNotInStatus(taskId, t.status);
        if (t.volunteer != msg.sender) revert MarketNotLeaseHolder(taskId, msg.sender);
        if (block.timestamp > t.deadline) revert MarketLeaseExpired(taskId, t.deadline);
        if (traceRoot == 0 || updateHash == 0) revert MarketEmptyCommitment(taskId);

        (uint256 bountyId,,) = _splitTaskId(taskId);
        t.status = TaskStatus.Committed;
        t.deadline = uint32(block.timestamp);
        t.commitBlock = uint32(block.number);
        commitmentOf[taskId] = keccak256(abi.encode(traceRoot, updateHash));
        emit TaskCommitted(taskId, bountyId, msg.sender, traceRoot, updateHash, traceCid, updateCid);
    }

    /// @inheritdoc IBountyMarket
    function drawChallenge(uint256 taskId) external {
        Task storage t = _committedTask(taskId);
        if (_drawnSeeds[taskId] == 0 && !_recordDraw(taskId, t)) {
            revert MarketChallengeNotDrawnYet(taskId, uint256(t.commitBlock) + 1);
        }
    }

    /// @inheritdoc IBountyMarket
    function drawMany(uint256[] calldata taskIds) external returns (uint256 drawn) {
        for (uint256 i = 0; i < taskIds.length; ++i) {
            uint256 taskId = taskIds[i];
            Task storage t = _tasks[taskId];
            if (_isCommitted(t.status) && _drawnSeeds[taskId] == 0 && _recordDraw(taskId, t)) ++drawn;
        }
    }

    /// @inheritdoc IBountyMarket
    function dispute(uint256 taskId, uint256 segment) external nonReentrant {
        Task storage t = _tasks[taskId];
        if (t.status != TaskStatus.Committed) revert MarketTaskNotInStatus(taskId, t.status);
        // A volunteer disputing its own honest segment would take the one dispute slot of its attempt and
        // pre-empt a challenger who knows which segment was faked.
        if (msg.sender == t.volunteer) revert MarketSelfDispute(taskId, msg.sender);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        uint256 closesAt = uint256(t.deadline) + b.challengeWindow;
        if (block.timestamp > closesAt) revert MarketChallengeWindowClosed(taskId, closesAt);
        if (segment >= b.segmentsPerTask) revert MarketSegmentOutOfRange(taskId, segment, b.segmentsPerTask);
        _requireFreeStake(taskId, msg.sender, b.stakePerTask);

        uint256 bond = b.challengeBond;
        t.status = TaskStatus.Challenged;
        Verification storage v = _verifications[taskId];
        v.challenger = msg.sender;
        v.disputedSegment = uint16(segment);
        emit TaskDisputed(taskId, msg.sender, segment, bond);
        _pullTokens(msg.sender, bond);
    }

    /// @inheritdoc IBountyMarket
    function attest(uint256 taskId, bool passed) external {
        Task storage t = _tasks[taskId];
        if (t.status != TaskStatus.Committed && t.status != TaskStatus.Challenged) {
            revert MarketTaskNotInStatus(taskId, t.status);
        }
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        if (t.status == TaskStatus.Committed) {
            if (!_isChecked(taskId, t)) revert MarketNotChecked(taskId);
        }
        uint256 verifyDeadline = uint256(t.deadline) + b.challengeWindow + b.verifyWindow;
        if (block.timestamp > verifyDeadline) revert MarketVerifyWindowClosed(taskId, verifyDeadline);
        if (msg.sender == t.volunteer) revert MarketVerifierIneligible(taskId, msg.sender, 0, b.stakePerTask);
        uint256 seat = _committeeSeat(msg.sender, _seed(taskId, t), t.commitBlock, uint256(b.quorum) * SEATS_PER_VOTE);
        if (seat == NOT_SEATED) revert MarketNotOnCommittee(taskId, msg.sender);
        _requireFreeStake(taskId, msg.sender, b.stakePerTask);

        uint256 votes = _castVote(taskId, seat + 1, passed);
        emit VerdictAttested(taskId, msg.sender, passed);
        if (votes < b.quorum) return;
        if (passed) {
            _payVerifiers(taskId, b, true);
            _earnReputation(t.volunteer, b.poster);
            _accept(taskId, bountyId, b, t);
        } else {
            // A vote carries no proof, and a committee can be wrong (another numeric class, content it could
            // not fetch) or lie: a FAIL quorum only sends the commit to the referee, whose ruling slashes. Every
            // end of a review but acceptance reopens the task: none may open on its last attempt (it settles).
            if (t.attempt == type(uint8).max) revert MarketTaskAttemptsExhausted(taskId);
            t.status = TaskStatus.Contested;
            _nextTurn(_games[taskId], b, GameTurn.Referee);
            emit ReviewOpened(taskId, votes);
        }
    }

    /// @inheritdoc IBountyMarket
    function settle(uint256 taskId) external {
        Task storage t = _tasks[taskId];
        if (t.status != TaskStatus.Committed && t.status != TaskStatus.Challenged) {
            revert MarketTaskNotInStatus(taskId, t.status);
        }
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        (uint256 notBefore, bool checkPending) = _settlesAfter(taskId, t, b);
        if (block.timestamp <= notBefore) {
            if (checkPending) revert MarketVerdictPending(taskId, notBefore);
            revert MarketChallengeWindowOpen(taskId, notBefore);
        }
        _accept(taskId, bountyId, b, t);
    }

    /// @inheritdoc IBountyMarket
    function settleMany(uint256[] calldata taskIds) external returns (uint256 settled) {
        for (uint256 i = 0; i < taskIds.length; ++i) {
            uint256 taskId = taskIds[i];
            Task storage t = _tasks[taskId];
            if (t.status != TaskStatus.Committed && t.status != TaskStatus.Challenged) continue;
            // Where settle would read the draw, its block must be behind us (settle would revert).
            if (t.status == TaskStatus.Committed && block.number <= uint256(t.commitBlock) + 1) continue;
            (uint256 bountyId,,) = _splitTaskId(taskId);
            Bounty storage b = _bounties[bountyId];
            (uint256 notBefore,) = _settlesAfter(taskId, t, b);
            if (block.timestamp <= notBefore) continue;
            _accept(taskId, bountyId, b, t);
            ++settled;
        }
    }

    // ---------------------------------------------------------------- bisection games (in BountyGames)

    /// @inheritdoc IBountyGames
    function contest(uint256, bytes32, bytes32, TraceStep calldata, TraceStep calldata) external {
        _playInGames();
    }

    /// @inheritdoc IBountyGames
    function bisect(uint256, bytes32, string calldata) external {
        _playInGames();
    }

    /// @inheritdoc IBountyGames
    function respond(uint256, bool) external {
        _playInGames();
    }

    /// @inheritdoc IBountyGames
    function rule(uint256, bool) external {
        _playInGames();
    }

    /// @inheritdoc IBountyGames
    function forfeit(uint256) external {
        _playInGames();
    }

    /// @inheritdoc IBountyMarket
    function claimRewards() external nonReentrant returns (uint256 amount) {
        amount = claimable[msg.sender];
        if (amount == 0) revert MarketNothingToClaim(msg.sender);
        claimable[msg.sender] = 0;
        emit RewardsClaimed(msg.sender, amount);
        _sendTokens(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice Everything fixed about a bounty plus its live escrow and round.
    function bountyOf(uint256 bountyId) external view returns (Bounty memory) {
        return _bountyOf(bountyId);
    }

    /// @notice The stored state of a task (status Open with a zero volunteer if never claimed).
    function taskOf(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    /// @notice Whether a committed task is spot-checked and which segments (bit i = segment i).
    /// @dev Reverts with MarketChallengeNotDrawnYet until the block after the commit exists.
    function challengeOf(uint256 taskId) external view returns (bool checked, uint256 segmentMask) {
        Task storage t = _committedTask(taskId);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        (checked, segmentMask) = _draw(taskId, t, b);
        Verification storage v = _verifications[taskId];
        if (v.challenger != address(0)) {
            checked = true;
            segmentMask |= uint256(1) << v.disputedSegment;
        }
    }

    /// @notice Whether `verifier` sits on the committee of the task's current attempt (what `attest` checks).
    function onCommitteeOf(uint256 taskId, address verifier) external view returns (bool) {
        Task storage t = _committedTask(taskId);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        uint256 seats = uint256(_bounties[bountyId].quorum) * SEATS_PER_VOTE;
        return _committeeSeat(verifier, _seed(taskId, t), t.commitBlock, seats) != NOT_SEATED;
    }

    /// @notice The bisection game of the task's current attempt (turn None when there is none).
    function gameOf(uint256 taskId) external view returns (Game memory) {
        return _games[taskId];
    }

    /// @notice Checks a proof-of-learning leaf against the task's commitment with OpenZeppelin's MerkleProof.
    function verifyTraceLeaf(
        uint256 taskId,
        bytes32 traceRoot,
        bytes32 updateHash,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        if (commitmentOf[taskId] != keccak256(abi.encode(traceRoot, updateHash))) return false;
        return MerkleProof.verifyCalldata(proof, traceRoot, leaf);
    }

    /// @notice Spot-check probability (basis points) a volunteer with `checkedTasks` of reputation gets on `bountyId`.
    function checkProbabilityBps(uint256 bountyId, uint256 checkedTasks) external view returns (uint256) {
        return _checkProbabilityBps(_bountyOf(bountyId), checkedTasks);
    }

    /// @notice The volunteer's reputation with `poster`: its tasks on that poster's bounties a verifier quorum
    ///         replayed and passed since its last slash. Its claims there are checked less often the more it has.
    function reputationOf(address volunteer, address poster) public view returns (uint256) {
        Reputation storage r = _reputation[volunteer][poster];
        return r.epoch == _stakes[volunteer].slashes ? r.checkedTasks : 0;
    }

    // ---------------------------------------------------------------- internals

    function _checkParams(BountyParams calldata p) private view {
        if (p.coordinator == address(0)) revert MarketInvalidParams("coordinator");
        if (bytes(p.specCid).length == 0) revert MarketInvalidParams("specCid");
        if (p.shards == 0 || p.shards > MAX_SHARDS) revert MarketInvalidParams("shards");
        if (p.rounds == 0) revert MarketInvalidParams("rounds");
        if (p.segmentsPerTask == 0 || p.segmentsPerTask > MAX_SEGMENTS) revert MarketInvalidParams("segmentsPerTask");
        if (p.segmentsPerCheck == 0 || p.segmentsPerCheck > p.segmentsPerTask) {
            revert MarketInvalidParams("segmentsPerCheck");
        }
        if (p.checkBps > BPS || p.minCheckBps > p.checkBps) revert MarketInvalidParams("checkBps");
        if (p.reputationHalfLife == 0) revert MarketInvalidParams("reputationHalfLife");
        if (p.quorum == 0 || p.quorum > MAX_QUORUM) revert MarketInvalidParams("quorum");
        if (p.rewardPerTask == 0) revert MarketInvalidParams("rewardPerTask");
        if (uint256(p.stakePerTask) < uint256(p.quorum) * p.verifierFee) revert MarketInvalidParams("verifierFee");
        if (p.leasePenalty > p.stakePerTask) revert MarketInvalidParams("leasePenalty");
        if (p.leaseDuration == 0) revert MarketInvalidParams("leaseDuration");
        if (p.verifyWindow < MIN_VERIFY_WINDOW) revert MarketInvalidParams("verifyWindow");
        if (p.deadline <= block.timestamp) revert MarketInvalidParams("deadline");
        if (uint256(p.stakePerTask) * p.minCheckBps < uint256(p.rewardPerTask) * BPS) {
            revert MarketEconomicallyUnsound(p.stakePerTask, p.minCheckBps, p.rewardPerTask);
        }
    }

    function _hasStake(address account) internal view override returns (bool) {
        return _stakes[account].bonded > 0;
    }

    function _bountyOf(uint256 bountyId) private view returns (Bounty storage b) {
        b = _bounties[bountyId];
        if (b.status == BountyStatus.None) revert MarketUnknownBounty(bountyId);
    }

    function _activeBountyOf(uint256 bountyId) private view returns (Bounty storage b) {
        b = _bountyOf(bountyId);
        if (b.status != BountyStatus.Active) revert MarketBountyNotActive(bountyId);
    }

    function _committedTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (!_isCommitted(t.status)) revert MarketTaskNotInStatus(taskId, t.status);
    }

    /// @dev Committed and not yet accepted or reopened: its commitment stands, it may be owed a reward.
    function _isCommitted(TaskStatus status) private pure returns (bool) {
        return status == TaskStatus.Committed || status == TaskStatus.Challenged || status == TaskStatus.Contested;
    }

    /// @dev BOINC-style adaptive checking: the probability halves every `reputationHalfLife` checked and
    ///      passed tasks (harmonically) but never drops below `minCheckBps`, which the economics check uses.
    function _checkProbabilityBps(Bounty storage b, uint256 checkedTasks) private view returns (uint256 bps) {
        uint256 halfLife = b.reputationHalfLife;
        bps = (uint256(b.checkBps) * halfLife) / (halfLife + checkedTasks);
        if (bps < b.minCheckBps) bps = b.minCheckBps;
    }

    /// @dev The seed comes from the hash of the first block after the commit, which the volunteer could not
    ///      know when committing. Zero when that block does not exist yet or has left the 256-block horizon.
    function _blockSeed(uint256 taskId, Task storage t) private view returns (bytes32) {
        bytes32 h = blockhash(uint256(t.commitBlock) + 1);
        if (h == 0) return 0;
        return keccak256(abi.encode(h, taskId, t.attempt));
    }

    /// @dev Records the live seed of a committed task's attempt; false when its block is not mined yet or has
    ///      left the 256-block horizon (then nothing can be recorded: the lost-seed rule applies).
    function _recordDraw(uint256 taskId, Task storage t) private returns (bool) {
        bytes32 seed = _blockSeed(taskId, t);
        if (seed == 0) return false;
        _drawnSeeds[taskId] = seed;
        emit ChallengeDrawn(taskId, t.attempt, seed);
        return true;
    }

    /// @dev The recorded seed, else the live one; zero once the draw block left the 256-block horizon.
    function _seed(uint256 taskId, Task storage t) private view returns (bytes32 seed) {
        uint256 drawBlock = uint256(t.commitBlock) + 1;
        if (block.number <= drawBlock) revert MarketChallengeNotDrawnYet(taskId, drawBlock);
        seed = _drawnSeeds[taskId];
        if (seed == 0) seed = _blockSeed(taskId, t);
    }

    /// @dev A lost seed counts as checked: lost randomness must never favour the volunteer.
    ///      Slither's weak-prng is by design here (docs/contracts.md, "Randomness"): the seed is the hash
    ///      of a block mined after the commit, unknown to the volunteer when it committed; only that
    ///      block's proposer could bias it, by discarding a block, and only between two draws.
    function _isChecked(uint256 taskId, Task storage t) private view returns (bool) {
        bytes32 seed = _seed(taskId, t);
        // slither-disable-next-line weak-prng
        return seed == 0 || uint256(seed) % BPS < t.checkBps;
    }

    function _draw(uint256 taskId, Task storage t, Bounty storage b)
        private
        view
        returns (bool checked, uint256 segmentMask)
    {
        bytes32 seed = _seed(taskId, t);
        uint256 segments = b.segmentsPerTask;
        if (seed == 0) {
            // Nobody recorded the draw within 256 blocks: every segment is checked.
            return (true, segments == 256 ? type(uint256).max : (uint256(1) << segments) - 1);
        }
        // slither-disable-next-line weak-prng
        checked = uint256(seed) % BPS < t.checkBps; // the same rule as _isChecked, inlined: settle is hot
        uint256 picks = b.segmentsPerCheck;
        for (uint256 j = 0; j < picks; ++j) {
            // slither-disable-next-line weak-prng
            uint256 index = uint256(keccak256(abi.encode(seed, j))) % segments;
            while (segmentMask & (uint256(1) << index) != 0) {
                // slither-disable-next-line weak-prng
                index = (index + 1) % segments;
            }
            segmentMask |= uint256(1) << index;
        }
    }

    /// @dev When a committed task may be settled: after its challenge window, or, while a check (drawn or
    ///      disputed) awaits a verdict, after its verify window too: a check no quorum answered in time does not
    ///      punish the volunteer for the verifiers' absence. `checkPending` says which applies.
    function _settlesAfter(uint256 taskId, Task storage t, Bounty storage b)
        private
        view
        returns (uint256 notBefore, bool checkPending)
    {
        notBefore = uint256(t.deadline) + b.challengeWindow;
        if (block.timestamp <= notBefore) return (notBefore, false);
        if (t.status == TaskStatus.Challenged || _isChecked(taskId, t)) return (notBefore + b.verifyWindow, true);
    }


    /// @dev Appends the vote of the seat `seatPlusOne` to the task's ballot; returns that side's votes so far.
    ///      A ballot never outgrows four slots: it closes when a side reaches the quorum (at most 15).
    function _castVote(uint256 taskId, uint256 seatPlusOne, bool passed) private returns (uint256 votes) {
        uint256 k = 0;
        for (;; ++k) {
            uint256 entry = _ballotEntry(taskId, k);
            if (entry == 0) break;
            // slither-disable-next-line incorrect-equality (seat indices, not balances or times)
            if (entry & VOTE_SEAT == seatPlusOne) revert MarketAlreadyAttested(taskId, msg.sender);
            if ((entry & VOTE_PASSED != 0) == passed) ++votes;
        }
        _ballots[taskId][k / 8] |= (passed ? seatPlusOne | VOTE_PASSED : seatPlusOne) << (32 * (k % 8));
        ++votes;
    }

    function _expire(uint256 taskId, uint256 bountyId, Bounty storage b, Task storage t) private {
        address volunteer = t.volunteer;
        uint256 penalty = b.leasePenalty;
        uint256 lock = b.stakePerTask;
        if (penalty > 0) {
            _slashStake(volunteer, penalty);
            b.escrow += uint128(penalty);
        }
        _unlockStake(volunteer, lock - penalty, false);
        emit LeaseExpired(taskId, bountyId, volunteer, penalty);
        _reopen(taskId, t);
    }






    /// @dev Rewards and verifier fees still owed to committed tasks of the current round; only the
    ///      current round can have them because a round closes only when all its tasks are accepted.
    function _reservedForPendingTasks(uint256 bountyId, Bounty storage b) private view returns (uint256 reserved) {
        if (b.status == BountyStatus.Finalized) return 0;
        uint256 perTask = uint256(b.rewardPerTask) + uint256(b.quorum) * b.verifierFee;
        uint256 round = b.currentRound;
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            if (_isCommitted(_tasks[_taskId(bountyId, round, shard)].status)) reserved += perTask;
        }
    }

    function _taskId(uint256 bountyId, uint256 round, uint256 shard) private pure returns (uint256) {
        return (bountyId << 64) | (round << 32) | shard;
    }

    /// @dev Runs this call's own calldata in the game module on this contract's storage, and returns or reverts
    ///      with whatever it returned or reverted with. The module is the immutable one deployed above.
    function _playInGames() private {
        address module = games;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), module, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }
}
