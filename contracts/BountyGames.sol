// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IBountyGames} from "./interfaces/IBountyGames.sol";
import {MarketState} from "./base/MarketState.sol";

/// @title The market's bisection games, in a module of their own
/// @notice Deployed by BountyMarket's constructor and run only by its delegatecall, on the market's storage:
///         one market holds more logic than the 24,576 bytes EIP-170 allows a contract. Called directly, each
///         function finds no task or game in this contract's own (empty) storage and reverts.
contract BountyGames is IBountyGames, MarketState {
    /// @inheritdoc IBountyGames
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

    /// @inheritdoc IBountyGames
    function bisect(uint256 taskId, bytes32 midHash, string calldata stateCid) external {
        (Game storage g, Bounty storage b) = _gameMove(taskId, GameTurn.Volunteer, _tasks[taskId].volunteer);
        if (midHash == 0) revert MarketEmptyStateHash(taskId);
        g.midHash = midHash;
        _nextTurn(g, b, GameTurn.Challenger);
        emit GameBisected(taskId, (uint256(g.loStep) + g.hiStep) / 2, midHash, stateCid);
    }

    /// @inheritdoc IBountyGames
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

    /// @inheritdoc IBountyGames
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

    /// @inheritdoc IBountyGames
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
}
