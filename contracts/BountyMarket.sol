// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IBountyMarket} from "./interfaces/IBountyMarket.sol";
import {Staking} from "./Staking.sol";
import {VerifierRegistry} from "./VerifierRegistry.sol";

/// @title Shardwork bounty market
/// @notice Escrowed training bounties split into tasks (shard × round). Volunteers claim with a stake
///         lock, commit a proof-of-learning trace root, are spot-checked with randomness drawn after the
///         commit, and pull rewards once accepted. Cheaters lose their lock, proven wrong by a verifier
///         quorum or in a bisection game. The coordinator opens and closes rounds and referees games (its
///         ruling on one step decides who is slashed); no one can move escrow or stake outside these rules.
contract BountyMarket is IBountyMarket, Staking, VerifierRegistry {
    uint256 public constant MAX_SHARDS = 256;
    uint256 public constant MAX_SEGMENTS = 256;
    uint256 public constant MAX_QUORUM = 15;
    /// @notice Each move of a bisection game gets the verify window: shorter, an honest side could not
    ///         recompute its state in time and would forfeit.
    uint256 public constant MIN_VERIFY_WINDOW = 30;
    uint256 private constant BPS = 10_000;

    /// @dev A ballot entry (32 bits): the voter's registry seat plus one (bits 0-30; zero: no entry) and its
    ///      verdict (bit 31: PASS).
    uint256 private constant VOTE_PASSED = 1 << 31;
    uint256 private constant VOTE_SEAT = VOTE_PASSED - 1;

    struct Verification {
        uint16 disputedSegment;
        address challenger;
    }

    uint256 public nextBountyId = 1;
    mapping(uint256 bountyId => Bounty) internal _bounties;
    mapping(uint256 bountyId => string) public specCidOf;
    mapping(uint256 taskId => Task) internal _tasks;
    mapping(uint256 taskId => bytes32) public commitmentOf; // keccak(traceRoot, updateHash)
    mapping(uint256 taskId => bytes32) internal _drawnSeeds;
    mapping(uint256 taskId => Verification) internal _verifications;
    // The votes on a task's current attempt, in order, eight entries to a slot: a quorum of two costs a vote one
    // new slot and the next one a rewrite (a per-voter flag and voter lists cost three new slots per vote).
    mapping(uint256 taskId => mapping(uint256 slot => uint256)) internal _ballots;
    mapping(address account => uint256) public claimable;
    mapping(uint256 taskId => Game) internal _games;
    // BOINC-style adaptive replication, per poster: only tasks a verifier quorum replayed and passed count,
    // and only since the volunteer's last slash (`epoch` = its slash count when the record was last written).
    // Cheap unchecked tasks, or tasks on a bounty the volunteer posted for itself, buy no trust elsewhere.
    mapping(address volunteer => mapping(address poster => Reputation)) internal _reputation;
    // A challenger contests an attempt once: a game a silent referee dissolved cannot be reopened by the same
    // account to keep an honest volunteer's stake locked and its reward waiting.
    mapping(uint256 taskId => mapping(uint256 attempt => mapping(address challenger => bool))) internal _contested;

    constructor(IERC20 token_, uint256 unbondingDelay_) Staking(token_, unbondingDelay_) {}

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
        if (_drawnSeeds[taskId] != 0) return;
        bytes32 seed = _blockSeed(taskId, t);
        if (seed == 0) revert MarketChallengeNotDrawnYet(taskId, uint256(t.commitBlock) + 1);
        _drawnSeeds[taskId] = seed;
        emit ChallengeDrawn(taskId, t.attempt, seed);
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

    // ---------------------------------------------------------------- bisection games

    /// @inheritdoc IBountyMarket
    function contest(
        uint256 taskId,
        bytes32 traceRoot,
        bytes32 updateHash,
        TraceStep calldata lo,
        TraceStep calldata hi
    ) external {
        Task storage t = _tasks[taskId];
        if (t.status == TaskStatus.Contested) revert MarketGameInProgress(taskId);
        if (t.status != TaskStatus.Committed && t.status != TaskStatus.Challenged) {
            revert MarketTaskNotInStatus(taskId, t.status);
        }
        if (msg.sender == t.volunteer) revert MarketSelfDispute(taskId, msg.sender);
        if (_contested[taskId][t.attempt][msg.sender]) revert MarketAlreadyContested(taskId, msg.sender);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        uint256 verifyDeadline = uint256(t.deadline) + b.challengeWindow + b.verifyWindow;
        if (block.timestamp > verifyDeadline) revert MarketVerifyWindowClosed(taskId, verifyDeadline);
        if (
            commitmentOf[taskId] != keccak256(abi.encode(traceRoot, updateHash)) || lo.step >= hi.step
                || !_provenStep(taskId, t.volunteer, traceRoot, lo) || !_provenStep(taskId, t.volunteer, traceRoot, hi)
        ) revert MarketBadTraceClaim(taskId);
        uint256 stake = b.stakePerTask;
        _requireFreeStake(taskId, msg.sender, stake);

        _lockStake(msg.sender, stake);
        _contested[taskId][t.attempt][msg.sender] = true;
        t.status = TaskStatus.Contested;
        Game storage g = _games[taskId];
        g.challenger = msg.sender;
        g.loStep = lo.step;
        g.hiStep = hi.step;
        g.loHash = lo.stateHash;
        g.hiHash = hi.stateHash;
        _nextTurn(g, b, hi.step - lo.step == 1 ? GameTurn.Referee : GameTurn.Volunteer);
        emit GameOpened(taskId, msg.sender, lo.step, lo.stateHash, hi.step, hi.stateHash);
    }

    /// @inheritdoc IBountyMarket
    function bisect(uint256 taskId, bytes32 midHash, string calldata stateCid) external {
        (Game storage g, Bounty storage b) = _gameMove(taskId, GameTurn.Volunteer, _tasks[taskId].volunteer);
        if (midHash == 0) revert MarketEmptyStateHash(taskId);
        g.midHash = midHash;
        _nextTurn(g, b, GameTurn.Challenger);
        emit GameBisected(taskId, (uint256(g.loStep) + g.hiStep) / 2, midHash, stateCid);
    }

    /// @inheritdoc IBountyMarket
    function respond(uint256 taskId, bool agree) external {
        (Game storage g, Bounty storage b) = _gameMove(taskId, GameTurn.Challenger, _games[taskId].challenger);
        uint32 mid = uint32((uint256(g.loStep) + g.hiStep) / 2);
        if (agree) {
            (g.loStep, g.loHash) = (mid, g.midHash);
        } else {
            (g.hiStep, g.hiHash) = (mid, g.midHash);
        }
        g.midHash = 0;
        _nextTurn(g, b, g.hiStep - g.loStep == 1 ? GameTurn.Referee : GameTurn.Volunteer);
        emit GameAnswered(taskId, agree, g.loStep, g.hiStep);
    }

    /// @inheritdoc IBountyMarket
    function rule(uint256 taskId, bool stepCorrect) external {
        (uint256 bountyId,,) = _splitTaskId(taskId);
        (Game storage g, Bounty storage b) = _gameMove(taskId, GameTurn.Referee, _bounties[bountyId].coordinator);
        emit GameRuled(taskId, msg.sender, stepCorrect);
        if (g.challenger != address(0)) return _endGame(taskId, stepCorrect);
        // A review of a failed check: the referee replayed the commit itself.
        Task storage t = _tasks[taskId];
        if (!stepCorrect) {
            delete _games[taskId]; // _reopen clears only a challenger's game
            return _slash(taskId, bountyId, b, t);
        }
        _resumeAfterGame(taskId, t);
        _payVerifiers(taskId, b, true);
        _earnReputation(t.volunteer, b.poster);
        _accept(taskId, bountyId, b, t);
    }

    /// @inheritdoc IBountyMarket
    function forfeit(uint256 taskId) external {
        Game storage g = _games[taskId];
        GameTurn turn = g.turn;
        if (turn == GameTurn.None) revert MarketNoGame(taskId);
        if (block.timestamp <= g.deadline) revert MarketMoveNotOverdue(taskId, g.deadline);
        emit GameForfeited(taskId, turn);
        if (turn == GameTurn.Referee) {
            // The referee's silence proves nothing about either side: the game dissolves, nobody is slashed.
            address challenger = g.challenger;
            Task storage t = _tasks[taskId];
            (uint256 bountyId,,) = _splitTaskId(taskId);
            Bounty storage b = _bounties[bountyId];
            if (challenger != address(0)) {
                _resumeAfterGame(taskId, t);
                _unlockStake(challenger, b.stakePerTask, false);
                return;
            }
            // An unreviewed failed check: no reward without a verdict, no slash without a ruling. The task is
            // done again; a disputer gets its bond back.
            address disputer = _verifications[taskId].challenger;
            if (disputer != address(0)) _credit(disputer, taskId, b.challengeBond);
            _unlockStake(t.volunteer, b.stakePerTask, false);
            delete _games[taskId];
            _reopen(taskId, t);
        } else {
            _endGame(taskId, turn == GameTurn.Challenger);
        }
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
        if (t.status != TaskStatus.Committed && t.status != TaskStatus.Challenged && t.status != TaskStatus.Contested)
        {
            revert MarketTaskNotInStatus(taskId, t.status);
        }
    }

    function _requireFreeStake(uint256 taskId, address account, uint256 needed) private view {
        StakeAccount storage s = _stakes[account];
        uint256 free = s.bonded > s.locked ? s.bonded - s.locked : 0;
        if (free < needed) revert MarketVerifierIneligible(taskId, account, free, needed);
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

    function _accept(uint256 taskId, uint256 bountyId, Bounty storage b, Task storage t) private {
        address volunteer = t.volunteer;
        uint256 reward = b.rewardPerTask;
        uint256 credit = reward;
        // A dispute that ended in PASS compensates the volunteer with the challenger's bond.
        if (t.status == TaskStatus.Challenged) credit += b.challengeBond;
        t.status = TaskStatus.Accepted;
        b.escrow -= uint128(reward);
        _unlockStake(volunteer, b.stakePerTask, true);
        emit TaskAccepted(taskId, bountyId, volunteer, credit);
        _credit(volunteer, taskId, credit);
    }

    function _slash(uint256 taskId, uint256 bountyId, Bounty storage b, Task storage t) private {
        address volunteer = t.volunteer;
        ++_stakes[volunteer].slashes; // its reputation with every poster starts over
        // A proven cheater takes none of this poster's tasks while this bounty runs: each claim would cost the
        // round a detection and a redo.
        Reputation storage r = _reputation[volunteer][b.poster];
        if (r.barredUntil < b.deadline) r.barredUntil = b.deadline;
        uint256 taken = _slashStake(volunteer, b.stakePerTask);
        emit TaskSlashed(taskId, bountyId, volunteer, taken);
        uint256 remainder = taken - _payVerifiers(taskId, b, false);
        address gameWinner = _games[taskId].challenger;
        if (gameWinner != address(0)) {
            // The challenger who proved the step wrong gets its stake back and half of what is left.
            _unlockStake(gameWinner, b.stakePerTask, false);
            uint256 prize = remainder / 2;
            remainder -= prize;
            _credit(gameWinner, taskId, prize);
        }
        Verification storage v = _verifications[taskId];
        address challenger = v.challenger;
        if (challenger != address(0)) {
            uint256 share = remainder / 2;
            remainder -= share;
            _credit(challenger, taskId, b.challengeBond + share);
        }
        // The rest of the slashed stake funds the redo of this task.
        b.escrow += uint128(remainder);
        _reopen(taskId, t);
    }

    /// @dev Credits `verifierFee` to each attester on the winning side; PASS fees come from escrow,
    ///      FAIL fees from the slashed stake (the caller accounts for the returned total).
    function _payVerifiers(uint256 taskId, Bounty storage b, bool passed) private returns (uint256 total) {
        uint256 fee = b.verifierFee;
        for (uint256 k = 0;; ++k) {
            uint256 entry = _ballotEntry(taskId, k);
            if (entry == 0) break;
            if ((entry & VOTE_PASSED != 0) != passed) continue;
            _credit(_seats[(entry & VOTE_SEAT) - 1].holder, taskId, fee);
            total += fee;
        }
        if (passed) b.escrow -= uint128(total);
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

    function _ballotEntry(uint256 taskId, uint256 k) private view returns (uint256) {
        return (_ballots[taskId][k / 8] >> (32 * (k % 8))) & type(uint32).max;
    }

    function _earnReputation(address volunteer, address poster) private {
        Reputation storage r = _reputation[volunteer][poster];
        uint32 epoch = _stakes[volunteer].slashes;
        if (r.epoch != epoch) (r.epoch, r.checkedTasks) = (epoch, 0);
        ++r.checkedTasks;
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

    function _reopen(uint256 taskId, Task storage t) private {
        if (t.attempt == type(uint8).max) revert MarketTaskAttemptsExhausted(taskId);
        uint8 nextAttempt = t.attempt + 1;
        delete _tasks[taskId];
        t.attempt = nextAttempt;
        delete commitmentOf[taskId];
        delete _drawnSeeds[taskId];
        delete _verifications[taskId];
        // Ballot slots fill in order: the first empty one ends it.
        for (uint256 slot = 0; _ballots[taskId][slot] != 0; ++slot) {
            delete _ballots[taskId][slot];
        }
        // Only a game's loser reaches here with one; clearing five empty slots would cost every reopen ~10k gas.
        if (_games[taskId].challenger != address(0)) delete _games[taskId];
    }

    function _provenStep(uint256 taskId, address volunteer, bytes32 traceRoot, TraceStep calldata s)
        private
        pure
        returns (bool)
    {
        // The leaf protocol/merkle.py trace_leaf builds: hashed twice, as OpenZeppelin's MerkleProof expects.
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(taskId, volunteer, uint256(s.step), s.stateHash))));
        return MerkleProof.verifyCalldata(s.proof, traceRoot, leaf);
    }

    /// @dev Checks that it is `turn` and `mover` is calling in time; returns the game and its bounty.
    function _gameMove(uint256 taskId, GameTurn turn, address mover)
        private
        view
        returns (Game storage g, Bounty storage b)
    {
        g = _games[taskId];
        if (g.turn == GameTurn.None) revert MarketNoGame(taskId);
        if (g.turn != turn || msg.sender != mover) revert MarketNotYourTurn(taskId, msg.sender, g.turn);
        if (block.timestamp > g.deadline) revert MarketMoveTooLate(taskId, g.deadline);
        (uint256 bountyId,,) = _splitTaskId(taskId);
        b = _bounties[bountyId];
    }

    /// @dev Each move gets the bounty's verify window: a side that needs longer to recompute a stretch
    ///      than verifiers need to replay one check could not play honestly.
    function _nextTurn(Game storage g, Bounty storage b, GameTurn turn) private {
        g.turn = turn;
        g.deadline = uint32(block.timestamp + b.verifyWindow);
    }

    /// @dev The volunteer wins when its step was correct: the challenger's locked stake is slashed, half
    ///      to the volunteer for the delay, half to the bounty's escrow, and the task resumes. Otherwise
    ///      the volunteer is slashed like a failed check and the task reopens.
    function _endGame(uint256 taskId, bool volunteerWins) private {
        Task storage t = _tasks[taskId];
        address volunteer = t.volunteer;
        address challenger = _games[taskId].challenger;
        (uint256 bountyId,,) = _splitTaskId(taskId);
        Bounty storage b = _bounties[bountyId];
        if (!volunteerWins) {
            emit GameEnded(taskId, challenger, volunteer);
            _slash(taskId, bountyId, b, t);
            return;
        }
        emit GameEnded(taskId, volunteer, challenger);
        _resumeAfterGame(taskId, t);
        uint256 taken = _slashStake(challenger, b.stakePerTask);
        emit ChallengerSlashed(taskId, challenger, taken);
        uint256 compensation = taken / 2;
        b.escrow += uint128(taken - compensation);
        _credit(volunteer, taskId, compensation);
    }

    /// @dev Back to where the game found the task, with its windows restarted from now so that other
    ///      verifiers and challengers still have their full time.
    function _resumeAfterGame(uint256 taskId, Task storage t) private {
        delete _games[taskId];
        t.status = _verifications[taskId].challenger == address(0) ? TaskStatus.Committed : TaskStatus.Challenged;
        t.deadline = uint32(block.timestamp);
    }

    /// @dev The one place a claimable balance grows: every credit (reward, verifier fee, challenger's share)
    ///      emits RewardCredited, so an auditor sums one event to know what each account is owed.
    function _credit(address account, uint256 taskId, uint256 amount) private {
        claimable[account] += amount;
        emit RewardCredited(account, taskId, amount);
    }

    /// @dev Rewards and verifier fees still owed to committed tasks of the current round; only the
    ///      current round can have them because a round closes only when all its tasks are accepted.
    function _reservedForPendingTasks(uint256 bountyId, Bounty storage b) private view returns (uint256 reserved) {
        if (b.status == BountyStatus.Finalized) return 0;
        uint256 perTask = uint256(b.rewardPerTask) + uint256(b.quorum) * b.verifierFee;
        uint256 round = b.currentRound;
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            TaskStatus status = _tasks[_taskId(bountyId, round, shard)].status;
            if (status == TaskStatus.Committed || status == TaskStatus.Challenged || status == TaskStatus.Contested) {
                reserved += perTask;
            }
        }
    }

    function _taskId(uint256 bountyId, uint256 round, uint256 shard) private pure returns (uint256) {
        return (bountyId << 64) | (round << 32) | shard;
    }

    function _splitTaskId(uint256 taskId) private pure returns (uint256 bountyId, uint256 round, uint256 shard) {
        return (taskId >> 64, (taskId >> 32) & type(uint32).max, taskId & type(uint32).max);
    }
}
