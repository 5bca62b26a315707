// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BountyMarket} from "contracts/BountyMarket.sol";
import {IMarketTypes} from "contracts/interfaces/IMarketTypes.sol";
import {MaliciousActor} from "./lib/Attackers.sol";
import {Vm} from "./lib/Vm.sol";

/// @notice Both test tokens mint through the project token's faucet signature.
interface IFaucetToken is IERC20 {
    function faucet(address to, uint256 amount) external;
}

/// @notice The reference model the handler keeps beside the market: where every token should be
///         (escrow per bounty, collateral, locks and claimable rewards per account, open dispute
///         bonds), what each commit really was (honest or fake), and which calls the rules allow.
///         The model computes amounts from the bounty parameters alone; it never copies them from the
///         market, so any token the market moves outside the rules shows up as a difference.
///         A broken rule is recorded (`violations`, `firstViolation`) rather than reverted: with
///         `fail_on_revert = false` forge would count a handler revert as an ordinary reverted call.
abstract contract MarketModel {
    using Fmt for uint256;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant TOKEN = 1 ether;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant FAUCET_LIMIT = 10_000 ether;
    uint8 internal constant HONEST = 1;
    uint8 internal constant DISHONEST = 2;

    /// @notice The model's copy of a task's bisection game (turn None when there is none).
    struct GameGhost {
        address challenger;
        bool truthful; // contested a fake and answers the truth; only a liar contests an honest trace
        IMarketTypes.GameTurn turn;
        uint32 loStep;
        uint32 hiStep;
        uint256 deadline;
        bytes32 loHash;
        bytes32 hiHash;
        bytes32 midHash;
    }

    struct TaskGhost {
        uint8 honesty; // HONEST or DISHONEST once committed
        bytes32 drawnSeed; // recorded by drawChallenge
        address challenger; // of the bond dispute
        uint256 bond;
        address[] passVoters;
        address[] failVoters;
        // The committed trace: a two-leaf Merkle tree over the states at step 0 and at `lastStep`.
        bytes32 traceRoot;
        uint32 lastStep;
        uint32 fakedFrom; // a faked trace's first made-up state (1..lastStep); the states before it are true
        GameGhost game;
    }

    /// @notice Counters that show what a sequence reached (written per run by afterInvariant).
    struct Stats {
        uint256 posted;
        uint256 claims;
        uint256 commits;
        uint256 accepted;
        uint256 fakesPaid; // unchecked fake commits accepted: allowed, the spot-check missed them
        uint256 slashed;
        uint256 leasesExpired;
        uint256 disputes;
        uint256 unansweredDisputes; // challenged tasks settled after the verify window without a quorum
        uint256 refunds;
        uint256 deadlineRefunds;
        uint256 roundsClosed;
        uint256 finalized;
        uint256 rewardClaims;
        uint256 withdrawals;
        uint256 unauthorizedCalls;
        uint256 predictedReverts; // calls the rules refuse and the market refused
        uint256 gamesOpened;
        uint256 gameMoves; // bisections and answers
        uint256 volunteerWins; // the challenger was slashed (ruled wrong, or silent)
        uint256 challengerWins; // the volunteer was slashed (ruled wrong, or silent)
        uint256 gameForfeits; // a mover let its deadline pass
        uint256 gamesDissolved; // the referee was silent: nobody slashed
        uint256 honestSilentSlashed; // honest volunteers slashed for missing their own move
        uint256 reviewsOpened; // FAIL quorums, each sent to the referee
        uint256 reviewsRuled;
        uint256 reviewsDissolved; // the referee let a review lapse: the task reopened, nobody slashed
        uint256 barredClaims; // claims refused to a volunteer slashed on one of the poster's bounties
    }

    BountyMarket public immutable market;
    IFaucetToken public immutable token;
    MaliciousActor public immutable attacker;
    uint256 public immutable unbondingDelay;

    address public immutable poster = _actor("poster");
    address public immutable coordinator = _actor("coordinator");
    address public immutable stranger = _actor("stranger");
    address public immutable honestA = _actor("honestA");
    address public immutable honestB = _actor("honestB");
    address public immutable cheater = _actor("cheater");
    address public immutable vera = _actor("vera");
    address public immutable victor = _actor("victor");
    address public immutable vince = _actor("vince");

    // ------------------------------------------------------------------ the model
    uint256[] internal _bountyIds;
    mapping(uint256 bountyId => uint256) public ghostEscrow;
    mapping(uint256 bountyId => uint256) public ghostAcceptedTasks;
    mapping(address account => uint256) public ghostCollateral; // bonded + unbonding
    mapping(address account => uint256) public ghostLocked;
    mapping(address account => uint256) public ghostClaimable;
    mapping(address account => uint256) public ghostAcceptedBy; // accepted tasks, any bounty (a statistic)
    // Reputation: tasks a PASS quorum accepted, per poster, since the volunteer's last slash.
    mapping(address volunteer => mapping(address poster => uint256)) internal ghostReputation;
    mapping(address volunteer => mapping(address poster => uint256)) internal ghostReputationEpoch;
    // Slashed on one of the poster's bounties: none of the poster's tasks until that bounty's deadline.
    mapping(address volunteer => mapping(address poster => uint256)) internal ghostBarredUntil;
    mapping(address volunteer => uint256) public ghostSlashes;
    uint256 public ghostOpenBonds;
    uint256 public ghostMinted;
    mapping(uint256 taskId => mapping(uint256 attempt => TaskGhost)) internal _tasks;
    mapping(uint256 taskId => mapping(uint256 attempt => mapping(address verifier => bool))) internal _attested;
    mapping(uint256 taskId => mapping(uint256 attempt => mapping(address challenger => bool))) internal _contestedBy;

    // ------------------------------------------------------------------ evidence from the market's events
    mapping(uint256 taskId => uint256) public acceptedEventsOf;
    uint256 public maxAcceptedEventsPerTask;
    uint256 public expectedAcceptances;
    uint256 public seenAcceptances;
    uint256 public expectedSlashes;
    uint256 public seenSlashes;
    uint256 public honestCommitsSlashed;
    uint256 public expectedChallengerSlashes;
    uint256 public seenChallengerSlashes;
    uint256 public truthfulChallengersSlashed; // challengers of a fake slashed though they answered in time

    // The verifier registry as the rules describe it: seats in order, each with its block; an account's latest.
    address[] internal ghostSeatHolder;
    uint256[] internal ghostSeatCreated;
    uint256[] internal ghostSeatSince; // the holder's latest (re)joining
    mapping(address verifier => uint256) internal ghostSeatPlusOne;
    mapping(address verifier => bool) internal ghostSeated;

    Stats internal stats;
    uint256 public violations;
    string public firstViolation;

    constructor(BountyMarket market_, IFaucetToken token_, MaliciousActor attacker_) {
        market = market_;
        token = token_;
        attacker = attacker_;
        unbondingDelay = market_.unbondingDelay();
        address[] memory everyone = accounts();
        for (uint256 i = 0; i < everyone.length; ++i) {
            vm.prank(everyone[i]);
            token_.approve(address(market_), type(uint256).max);
        }
        vm.label(address(attacker_), "attacker");
    }

    // ------------------------------------------------------------------ actors

    /// @notice Every account that can hold stake, escrow or rewards in the market.
    function accounts() public view returns (address[] memory all) {
        all = new address[](10);
        all[0] = poster;
        all[1] = coordinator;
        all[2] = stranger;
        all[3] = honestA;
        all[4] = honestB;
        all[5] = cheater;
        all[6] = address(attacker);
        all[7] = vera;
        all[8] = victor;
        all[9] = vince;
    }

    /// @notice The counters of this sequence.
    function statsSnapshot() external view returns (Stats memory) {
        return stats;
    }

    /// @notice Bounties posted so far.
    function bountyIds() external view returns (uint256[] memory) {
        return _bountyIds;
    }

    function _volunteer(uint256 seed) internal view returns (address) {
        uint256 i = seed % 4;
        return i == 0 ? honestA : i == 1 ? honestB : i == 2 ? cheater : address(attacker);
    }

    function _verifier(uint256 seed) internal view returns (address) {
        uint256 i = seed % 3;
        return i == 0 ? vera : i == 1 ? victor : vince;
    }

    /// @dev Anyone who may stake: the four volunteers and the three verifiers.
    function _staker(uint256 seed) internal view returns (address) {
        return seed % 7 < 4 ? _volunteer(seed % 7) : _verifier(seed % 7 - 4);
    }

    /// @dev Who contests a trace: a verifier or an honest volunteer contests a fake; only the cheater or
    ///      the attacker contract would contest an honest trace (and lie in the game).
    function _challenger(uint256 seed, bool ofHonestTrace) internal view returns (address) {
        if (ofHonestTrace) return seed % 2 == 0 ? cheater : address(attacker);
        uint256 i = seed % 5;
        return i < 3 ? _verifier(i) : i == 3 ? honestA : honestB;
    }

    /// @dev Honest volunteers never fake; the cheater always does; the attacker contract does either.
    function _honesty(address volunteer, uint256 seed) internal view returns (uint8) {
        if (volunteer == cheater) return DISHONEST;
        if (volunteer == address(attacker)) return seed % 2 == 0 ? HONEST : DISHONEST;
        return HONEST;
    }

    function _actor(string memory name) private returns (address a) {
        a = address(uint160(uint256(keccak256(bytes(name)))));
        vm.label(a, name);
    }

    // ------------------------------------------------------------------ calls into the market

    /// @dev One market call as `actor`, with the market's events checked afterwards.
    function _call(address actor, bytes memory data) internal returns (bool ok, bytes memory ret) {
        vm.recordLogs();
        vm.prank(actor);
        (ok, ret) = address(market).call(data);
        _scanEvents();
        if (!ok) ++stats.predictedReverts;
    }

    /// @dev Compares a call's outcome with what the rules predicted.
    function _expect(string memory what, bool predicted, bool ok, bytes memory ret) internal {
        if (predicted == ok) return;
        if (predicted) _fail(string.concat(what, ": the rules allow it but it reverted with ", vm.toString(ret)));
        else _fail(string.concat(what, ": the rules forbid it but it succeeded"));
    }

    /// @dev Independent evidence from the event log: every TaskAccepted at most once per task id,
    ///      every TaskSlashed against a commit the model knows to be fake (or a volunteer that forfeited
    ///      its game by missing its move), every ChallengerSlashed against a challenger the model knows
    ///      to have contested an honest trace (or to have missed its move).
    function _scanEvents() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        // A forfeit names the silent side before the slash it causes, in the same call.
        uint256 forfeitedTask;
        IMarketTypes.GameTurn silent;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter != address(market)) continue;
            bytes32 topic = logs[i].topics[0];
            if (topic == IMarketTypes.TaskAccepted.selector) {
                uint256 taskId = uint256(logs[i].topics[1]);
                uint256 n = ++acceptedEventsOf[taskId];
                if (n > maxAcceptedEventsPerTask) maxAcceptedEventsPerTask = n;
                ++seenAcceptances;
            } else if (topic == IMarketTypes.TaskSlashed.selector) {
                uint256 taskId = uint256(logs[i].topics[1]);
                // The task reopened with attempt + 1 in the same call.
                uint256 attempt = market.taskOf(taskId).attempt - 1;
                bool missedMove = forfeitedTask == taskId && silent == IMarketTypes.GameTurn.Volunteer;
                if (_tasks[taskId][attempt].honesty != DISHONEST && !missedMove) ++honestCommitsSlashed;
                ++seenSlashes;
            } else if (topic == IMarketTypes.GameForfeited.selector) {
                forfeitedTask = uint256(logs[i].topics[1]);
                silent = abi.decode(logs[i].data, (IMarketTypes.GameTurn));
            } else if (topic == IMarketTypes.ChallengerSlashed.selector) {
                uint256 taskId = uint256(logs[i].topics[1]);
                // The task resumed under the same attempt; the model still holds the game.
                GameGhost storage game = _tasks[taskId][market.taskOf(taskId).attempt].game;
                bool missedMove = forfeitedTask == taskId && silent == IMarketTypes.GameTurn.Challenger;
                if (game.truthful && !missedMove) ++truthfulChallengersSlashed;
                ++seenChallengerSlashes;
            }
        }
    }

    // ------------------------------------------------------------------ money

    /// @dev Mints what `who` lacks of `amount`, through the token's own faucet.
    function _fund(address who, uint256 amount) internal {
        uint256 balance = token.balanceOf(who);
        while (balance < amount) {
            uint256 part = amount - balance;
            if (part > FAUCET_LIMIT) part = FAUCET_LIMIT;
            token.faucet(who, part);
            ghostMinted += part;
            balance += part;
        }
    }

    function _position(address who) internal view returns (uint256 bonded, uint256 locked, uint256 unbonding) {
        (bonded, locked, unbonding,) = market.stakeOf(who);
    }

    function _freeStake(address who) internal view returns (uint256) {
        (uint256 bonded, uint256 locked,) = _position(who);
        return bonded > locked ? bonded - locked : 0;
    }

    /// @dev Subtraction that records a violation instead of reverting the handler call.
    function _sub(uint256 a, uint256 b, string memory what) internal returns (uint256) {
        if (b > a) {
            _fail(string.concat(what, ": model would go negative (", a.str(), " - ", b.str(), ")"));
            return 0;
        }
        return a - b;
    }

    // ------------------------------------------------------------------ the rules, as predictions

    function _bounty(uint256 id) internal view returns (IMarketTypes.Bounty memory) {
        return market.bountyOf(id);
    }

    function _task(uint256 taskId) internal view returns (IMarketTypes.Task memory) {
        return market.taskOf(taskId);
    }

    /// @dev IBountyMarket's task id layout (bountyId << 64 | round << 32 | shard), computed locally: the
    ///      property check runs after every call and an external call per task adds up.
    function _taskIdOf(uint256 bountyId, uint256 round, uint256 shard) internal pure returns (uint256) {
        return (bountyId << 64) | (round << 32) | shard;
    }

    /// @dev Whether the draw block of a committed task exists, and whether the task is spot-checked,
    ///      recomputed from the block hash exactly as docs/contracts.md ("Lifecycle") specifies.
    function _draw(uint256 taskId, IMarketTypes.Task memory t) internal view returns (bool drawn, bool checked) {
        bytes32 seed;
        (drawn, seed) = _seedOf(taskId, t);
        // A seed lost to the 256-block horizon counts as checked.
        checked = drawn && (seed == 0 || uint256(seed) % BPS < t.checkBps);
    }

    /// @return drawn whether the draw block is behind us; seed the recorded or live seed, zero once lost
    function _seedOf(uint256 taskId, IMarketTypes.Task memory t) internal view returns (bool drawn, bytes32 seed) {
        uint256 drawBlock = uint256(t.commitBlock) + 1;
        if (block.number <= drawBlock) return (false, 0);
        seed = _tasks[taskId][t.attempt].drawnSeed;
        if (seed == 0) {
            bytes32 h = blockhash(drawBlock);
            if (h != 0) seed = keccak256(abi.encode(h, taskId, uint256(t.attempt)));
        }
        return (true, seed);
    }

    /// @dev Whether the rules draw `verifier` onto the committee of the task's check, written from the rules, not
    ///      from the contract: a seat serves a commit when it is held and was (re)joined before the commit's block;
    ///      the pool is the seats created before that block. No more seats than `quorum × 2`, or a lost seed: every
    ///      serving seat sits. Else seats drawn with the seed (repeats skipped), keeping serving ones, until
    ///      `quorum × 2` are kept or `quorum × 4` distinct seats were looked at (the whole serving pool when the
    ///      pool has no more than that many seats and no more serving ones than the committee).
    function _drawnToVote(address verifier, uint256 taskId, IMarketTypes.Task memory t, uint256 quorum)
        internal
        view
        returns (bool)
    {
        if (!ghostSeated[verifier]) return false;
        uint256 own = ghostSeatPlusOne[verifier] - 1;
        if (!_seatServes(own, t.commitBlock)) return false;
        uint256 pool;
        uint256 serving;
        for (uint256 i = 0; i < ghostSeatCreated.length; ++i) {
            if (ghostSeatCreated[i] < t.commitBlock) {
                ++pool;
                if (_seatServes(i, t.commitBlock)) ++serving;
            }
        }
        (, bytes32 seed) = _seedOf(taskId, t);
        uint256 seats = quorum * 2;
        uint256 looks = seats * 2;
        if (seed == 0 || pool <= seats || (pool <= looks && serving <= seats)) return true;
        uint256[] memory looked = new uint256[](looks);
        uint256 seen;
        uint256 kept;
        for (uint256 j = 0; kept < seats && seen < looks; ++j) {
            uint256 pick = uint256(keccak256(abi.encode(seed, "committee", j))) % pool;
            bool again;
            for (uint256 k = 0; k < seen; ++k) {
                again = again || looked[k] == pick;
            }
            if (again) continue;
            looked[seen++] = pick;
            if (!_seatServes(pick, t.commitBlock)) continue;
            if (pick == own) return true;
            ++kept;
        }
        return false;
    }

    function _seatServes(uint256 seat, uint256 commitBlock) internal view returns (bool) {
        return ghostSeated[ghostSeatHolder[seat]] && ghostSeatSince[seat] < commitBlock;
    }

    function _reputationOf(address volunteer, address poster) internal view returns (uint256) {
        return ghostReputationEpoch[volunteer][poster] == ghostSlashes[volunteer] ? ghostReputation[volunteer][poster] : 0;
    }

    function _expectedCheckBps(IMarketTypes.Bounty memory b, address volunteer) internal view returns (uint256 bps) {
        uint256 halfLife = b.reputationHalfLife;
        bps = (uint256(b.checkBps) * halfLife) / (halfLife + _reputationOf(volunteer, b.poster));
        if (bps < b.minCheckBps) bps = b.minCheckBps;
    }

    /// @dev What pending (Committed/Challenged/Contested) tasks of the current round may still be owed.
    function _reserved(uint256 id, IMarketTypes.Bounty memory b) internal view returns (uint256 reserved) {
        if (b.status == IMarketTypes.BountyStatus.Finalized) return 0;
        uint256 perTask = uint256(b.rewardPerTask) + uint256(b.quorum) * b.verifierFee;
        for (uint256 shard = 0; shard < b.shards; ++shard) {
            if (_isPending(_task(_taskIdOf(id, b.currentRound, shard)).status)) reserved += perTask;
        }
    }

    /// @dev Committed and not yet accepted or reopened: the task may still be owed its reward and fees.
    function _isPending(IMarketTypes.TaskStatus s) internal pure returns (bool) {
        return s == IMarketTypes.TaskStatus.Committed || s == IMarketTypes.TaskStatus.Challenged
            || s == IMarketTypes.TaskStatus.Contested;
    }

    // ------------------------------------------------------------------ traces

    /// @dev The state training really reaches at `step` of a task (the same for every attempt).
    function _trueState(uint256 taskId, uint256 step) internal pure returns (bytes32) {
        return keccak256(abi.encode("true state", taskId, step));
    }

    /// @dev The state a faked trace claims at `step` of an attempt.
    function _madeUpState(uint256 taskId, uint256 attempt, uint256 step) internal pure returns (bytes32) {
        return keccak256(abi.encode("made-up state", taskId, attempt, step));
    }

    /// @dev What the committing volunteer's trace holds at `step`: a faked trace is true up to `fakedFrom`.
    function _traceState(uint256 taskId, uint256 attempt, bool faked, uint256 fakedFrom, uint256 step)
        internal
        pure
        returns (bytes32)
    {
        return faked && step >= fakedFrom ? _madeUpState(taskId, attempt, step) : _trueState(taskId, step);
    }

    /// @dev protocol/merkle.py's trace_leaf, as BountyMarket._provenStep recomputes it.
    function _traceLeaf(uint256 taskId, address volunteer, uint256 step, bytes32 stateHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(taskId, volunteer, step, stateHash))));
    }

    /// @dev OpenZeppelin MerkleProof's node hash: the pair sorted, then hashed.
    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function _predictSettle(IMarketTypes.Bounty memory b, uint256 taskId, IMarketTypes.Task memory t)
        internal
        view
        returns (bool)
    {
        bool challenged = t.status == IMarketTypes.TaskStatus.Challenged;
        if (!challenged && t.status != IMarketTypes.TaskStatus.Committed) return false;
        uint256 windowClosesAt = uint256(t.deadline) + b.challengeWindow;
        if (block.timestamp <= windowClosesAt) return false;
        bool mustWait = challenged;
        if (!challenged) {
            (bool drawn, bool checked) = _draw(taskId, t);
            if (!drawn) return false;
            mustWait = checked;
        }
        return !mustWait || block.timestamp > windowClosesAt + b.verifyWindow;
    }

    function _predictAttest(
        address verifier,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t
    ) internal view returns (bool) {
        if (t.status == IMarketTypes.TaskStatus.Committed) {
            (bool drawn, bool checked) = _draw(taskId, t);
            if (!drawn || !checked) return false;
        } else if (t.status != IMarketTypes.TaskStatus.Challenged) {
            return false;
        } else {
            (bool drawn,) = _seedOf(taskId, t); // a disputed task is checked, but its committee needs the seed
            if (!drawn) return false;
        }
        if (block.timestamp > uint256(t.deadline) + b.challengeWindow + b.verifyWindow) return false;
        if (verifier == t.volunteer) return false;
        if (!_drawnToVote(verifier, taskId, t, b.quorum)) return false;
        if (_freeStake(verifier) < b.stakePerTask) return false;
        return !_attested[taskId][t.attempt][verifier];
    }

    /// @return ok whether `volunteer` may claim; expires whether the claim first reopens a lapsed lease
    function _predictClaim(address volunteer, IMarketTypes.Bounty memory b, IMarketTypes.Task memory t)
        internal
        view
        returns (bool ok, bool expires)
    {
        if (b.status != IMarketTypes.BountyStatus.Active || !b.roundOpen) return (false, false);
        if (block.timestamp > b.deadline) return (false, false);
        expires = t.status == IMarketTypes.TaskStatus.Claimed && block.timestamp > t.deadline;
        if (!expires && t.status != IMarketTypes.TaskStatus.Open) return (false, false);
        if (block.timestamp <= ghostBarredUntil[volunteer][b.poster]) return (false, false);
        (uint256 bonded, uint256 locked,) = _position(volunteer);
        if (expires && t.volunteer == volunteer) {
            // The lapsed lease is released first: its penalty comes out of bonded stake, its lock goes.
            bonded -= bonded < b.leasePenalty ? bonded : b.leasePenalty;
            locked -= b.stakePerTask;
        }
        uint256 free = bonded > locked ? bonded - locked : 0;
        ok = free >= b.stakePerTask;
        if (!ok) expires = false;
    }

    // ------------------------------------------------------------------ the rules, as token movements

    /// @dev A task accepted by `settle` (viaQuorum false) or by a PASS quorum (true).
    function _modelAccept(
        uint256 id,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t,
        bool viaQuorum
    ) internal {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        uint256 credit = b.rewardPerTask;
        if (t.status == IMarketTypes.TaskStatus.Challenged) {
            credit += g.bond; // a dispute that ended in PASS pays the volunteer the challenger's bond
            ghostOpenBonds = _sub(ghostOpenBonds, g.bond, "accept: open bonds");
        }
        uint256 fromEscrow = b.rewardPerTask;
        if (viaQuorum) {
            for (uint256 i = 0; i < g.passVoters.length; ++i) {
                ghostClaimable[g.passVoters[i]] += b.verifierFee;
            }
            fromEscrow += g.passVoters.length * b.verifierFee;
        }
        ghostEscrow[id] = _sub(ghostEscrow[id], fromEscrow, "accept: escrow");
        ghostLocked[t.volunteer] = _sub(ghostLocked[t.volunteer], b.stakePerTask, "accept: lock");
        ghostClaimable[t.volunteer] += credit;
        ++ghostAcceptedBy[t.volunteer];
        if (viaQuorum) {
            // Only a replayed and passed task earns trust, and only with this bounty's poster.
            if (ghostReputationEpoch[t.volunteer][b.poster] != ghostSlashes[t.volunteer]) {
                ghostReputationEpoch[t.volunteer][b.poster] = ghostSlashes[t.volunteer];
                ghostReputation[t.volunteer][b.poster] = 0;
            }
            ++ghostReputation[t.volunteer][b.poster];
            _check(
                market.reputationOf(t.volunteer, b.poster) == ghostReputation[t.volunteer][b.poster],
                "accept: reputation differs from the rule (checked, passed tasks with this poster since a slash)"
            );
        }
        ++ghostAcceptedTasks[id];
        ++expectedAcceptances;
        ++stats.accepted;
        if (g.honesty == DISHONEST) ++stats.fakesPaid;
    }

    /// @dev A FAIL quorum or a lost game: the whole lock is taken, fail voters are paid from it, the
    ///      game's challenger gets its lock back plus half the rest, a disputer gets its bond back plus
    ///      half of what is left, the remainder funds the redo. Only a fake may be slashed, or a volunteer
    ///      that let its move in a game lapse (`missedMove`).
    function _modelSlash(
        uint256 id,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t,
        bool missedMove
    ) internal {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        if (g.honesty != DISHONEST) {
            if (missedMove) ++stats.honestSilentSlashed;
            else _fail(string.concat("slash: honest commit slashed, task ", taskId.str()));
        }
        uint256 stake = b.stakePerTask;
        ++ghostSlashes[t.volunteer]; // its reputation with every poster starts over
        if (ghostBarredUntil[t.volunteer][b.poster] < b.deadline) ghostBarredUntil[t.volunteer][b.poster] = b.deadline;
        ghostCollateral[t.volunteer] = _sub(ghostCollateral[t.volunteer], stake, "slash: collateral");
        ghostLocked[t.volunteer] = _sub(ghostLocked[t.volunteer], stake, "slash: lock");
        for (uint256 i = 0; i < g.failVoters.length; ++i) {
            ghostClaimable[g.failVoters[i]] += b.verifierFee;
        }
        uint256 remainder = _sub(stake, g.failVoters.length * b.verifierFee, "slash: fees");
        address gameWinner = g.game.challenger;
        if (gameWinner != address(0)) {
            ghostLocked[gameWinner] = _sub(ghostLocked[gameWinner], stake, "slash: game challenger's lock");
            uint256 prize = remainder / 2;
            remainder -= prize;
            ghostClaimable[gameWinner] += prize;
            ++stats.challengerWins;
        }
        if (g.challenger != address(0)) {
            uint256 share = remainder / 2;
            remainder -= share;
            ghostClaimable[g.challenger] += g.bond + share;
            ghostOpenBonds = _sub(ghostOpenBonds, g.bond, "slash: open bonds");
        }
        ghostEscrow[id] += remainder;
        ++expectedSlashes;
        ++stats.slashed;
    }

    /// @dev A game the volunteer won: the challenger's locked stake is taken, half (rounded down) to the
    ///      volunteer, the rest to the bounty; the task resumes where the game found it.
    function _modelChallengerLoss(
        uint256 id,
        IMarketTypes.Bounty memory b,
        uint256 taskId,
        IMarketTypes.Task memory t
    ) internal {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        address challenger = g.game.challenger;
        uint256 stake = b.stakePerTask;
        ghostCollateral[challenger] = _sub(ghostCollateral[challenger], stake, "challenger slash: collateral");
        ghostLocked[challenger] = _sub(ghostLocked[challenger], stake, "challenger slash: lock");
        uint256 compensation = stake / 2;
        ghostClaimable[t.volunteer] += compensation;
        ghostEscrow[id] += stake - compensation;
        delete g.game;
        ++expectedChallengerSlashes;
        ++stats.volunteerWins;
    }

    /// @dev A game the referee let lapse: the challenger's lock is released, nobody is slashed.
    function _modelDissolveReview(IMarketTypes.Bounty memory b, uint256 taskId, IMarketTypes.Task memory t)
        internal
    {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        ghostLocked[t.volunteer] = _sub(ghostLocked[t.volunteer], b.stakePerTask, "dissolved review: lock");
        if (g.challenger != address(0)) {
            ghostClaimable[g.challenger] += g.bond;
            ghostOpenBonds = _sub(ghostOpenBonds, g.bond, "dissolved review: open bonds");
        }
        delete g.game;
        ++stats.reviewsDissolved;
    }

    function _modelDissolve(IMarketTypes.Bounty memory b, uint256 taskId, IMarketTypes.Task memory t) internal {
        TaskGhost storage g = _tasks[taskId][t.attempt];
        address challenger = g.game.challenger;
        ghostLocked[challenger] = _sub(ghostLocked[challenger], b.stakePerTask, "dissolve: challenger's lock");
        delete g.game;
        ++stats.gamesDissolved;
    }

    /// @dev A lapsed lease: the holder loses `leasePenalty` to the bounty and its lock.
    function _modelExpiry(uint256 id, IMarketTypes.Bounty memory b, IMarketTypes.Task memory t) internal {
        ghostCollateral[t.volunteer] = _sub(ghostCollateral[t.volunteer], b.leasePenalty, "expire: collateral");
        ghostLocked[t.volunteer] = _sub(ghostLocked[t.volunteer], b.stakePerTask, "expire: lock");
        ghostEscrow[id] += b.leasePenalty;
        ++stats.leasesExpired;
    }

    // ------------------------------------------------------------------ fingerprints and failures

    /// @dev A hash of every token position in the market, and of the current tasks.
    function _fingerprint() internal view returns (bytes32 h) {
        h = keccak256(abi.encode(token.balanceOf(address(market)), token.totalSupply()));
        for (uint256 i = 0; i < _bountyIds.length; ++i) {
            IMarketTypes.Bounty memory b = _bounty(_bountyIds[i]);
            h = keccak256(abi.encode(h, b.escrow, b.refunded, b.status, b.currentRound, b.roundOpen));
            for (uint256 shard = 0; shard < b.shards; ++shard) {
                uint256 taskId = _taskIdOf(_bountyIds[i], b.currentRound, shard);
                h = keccak256(abi.encode(h, _task(taskId), market.gameOf(taskId)));
            }
        }
        address[] memory all = accounts();
        for (uint256 i = 0; i < all.length; ++i) {
            (uint256 bonded, uint256 locked, uint256 unbonding) = _position(all[i]);
            h = keccak256(abi.encode(h, bonded, locked, unbonding, market.claimable(all[i]), token.balanceOf(all[i])));
        }
    }

    function _check(bool ok, string memory what) internal {
        if (!ok) _fail(what);
    }

    function _fail(string memory what) internal {
        if (violations++ == 0) firstViolation = what;
    }
}

/// @dev Number formatting for violation messages.
library Fmt {
    function str(uint256 value) internal pure returns (string memory) {
        return Vm(address(uint160(uint256(keccak256("hevm cheat code"))))).toString(value);
    }
}
