// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BountyMarket} from "contracts/BountyMarket.sol";
import {Token} from "contracts/Token.sol";
import {HostileToken, MaliciousActor} from "./lib/Attackers.sol";
import {InvariantTestBase} from "./lib/Vm.sol";
import {MarketHandler} from "./MarketHandler.sol";
import {Fmt, IFaucetToken} from "./MarketModel.sol";

/// @notice Invariants of the market over random operation sequences (docs/contracts.md, "Invariant
///         suite"). Forge calls the handler's operations in random order with random arguments and
///         checks `invariant_marketKeepsItsRules` after every call; `afterInvariant` winds each
///         sequence down and requires the market to end empty. Run with `scripts/invariants`.
abstract contract MarketInvariantsBase is InvariantTestBase {
    using Fmt for uint256;

    uint256 internal constant UNBONDING_DELAY = 3 days;
    string internal constant STATS_DIR = "build/foundry/invariant-stats";

    MarketHandler internal handler;
    BountyMarket internal market;
    IFaucetToken internal token;
    MaliciousActor internal attacker;

    function _deployToken() internal virtual returns (IFaucetToken);

    function _wire(IFaucetToken token_, BountyMarket market_) internal virtual;

    function _suite() internal pure virtual returns (string memory);

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.roll(1_000);
        token = _deployToken();
        market = new BountyMarket(token, UNBONDING_DELAY);
        _wire(token, market);
        attacker = new MaliciousActor(market, address(token));
        handler = new MarketHandler(market, token, attacker);
        // Starting stakes: verifiers can vote on several tasks, volunteers can claim a few.
        for (uint256 i = 0; i < 7; ++i) {
            handler.seedStake(i, uint256(i < 4 ? 250 : 900) * 1 ether);
        }
        for (uint256 i = 0; i < 3; ++i) {
            handler.toggleSeat(i); // the three verifiers take their seats before any commit
        }
        vm.roll(block.number + 1);

        bytes4[] memory ops = new bytes4[](28);
        ops[0] = handler.postBounty.selector;
        ops[1] = handler.openRound.selector;
        ops[2] = handler.closeRound.selector;
        ops[3] = handler.refund.selector;
        ops[4] = handler.deadlinePassesAndPosterRecovers.selector;
        ops[5] = handler.stake.selector;
        ops[6] = handler.requestUnstake.selector;
        ops[7] = handler.withdraw.selector;
        ops[8] = handler.claim.selector;
        ops[9] = handler.commit.selector;
        ops[10] = handler.drawChallenge.selector;
        ops[11] = handler.dispute.selector;
        ops[12] = handler.attest.selector;
        ops[13] = handler.settle.selector;
        ops[14] = handler.expireLease.selector;
        ops[15] = handler.lifecycle.selector;
        ops[16] = handler.claimRewards.selector;
        ops[17] = handler.passTime.selector;
        ops[18] = handler.unauthorizedCall.selector;
        ops[19] = handler.lifecycle.selector; // a second ticket: whole tasks make the deep paths likely
        ops[20] = handler.contest.selector;
        ops[21] = handler.bisect.selector;
        ops[22] = handler.respond.selector;
        ops[23] = handler.rule.selector;
        ops[24] = handler.forfeit.selector;
        ops[25] = handler.gameLifecycle.selector;
        ops[26] = handler.toggleSeat.selector;
        ops[27] = handler.settleMany.selector;
        _target(address(handler), ops);
        _targetSender(address(0xF022));
        vm.createDir(STATS_DIR, true);
    }

    /// @notice Every property, after every call of every sequence (MarketProperties.brokenProperty):
    ///         (1) tokens conserved: the market holds exactly open escrow + bonded + unbonding stake +
    ///             claimable rewards + open dispute bonds, and supply grows only by the handler's mints;
    ///             escrow, collateral, locks and claimable of every account equal the rules' model;
    ///         (2) no task id accepted or paid twice; (3) no slash of an honest commit (but for a volunteer
    ///             silent in its own game), no slash of a challenger who contested a fake (but for a
    ///             challenger silent in its own game);
    ///         (4) a refund after the deadline always succeeds and empties the bounty;
    ///         (5) re-entrant calls from a token hook never succeed;
    ///         (6) calls outside the rules (strangers, the coordinator, participants out of role) revert
    ///             and move nothing; the coordinator's own calls move no token.
    function invariant_marketKeepsItsRules() public view {
        string memory broken = handler.brokenProperty();
        if (bytes(broken).length > 0) revert(broken);
    }

    /// @notice The sequence winds down: every deadline passes, everything is settled, refunded, claimed
    ///         and withdrawn, and the market must then hold no token at all.
    function afterInvariant() public {
        handler.windDown();
        invariant_marketKeepsItsRules();
        _writeStats();
    }

    // ------------------------------------------------------------------ per-run statistics

    function _writeStats() internal {
        MarketHandler.Stats memory s = handler.statsSnapshot();
        string memory line = string.concat(
            '{"posted":',
            s.posted.str(),
            ',"claims":',
            s.claims.str(),
            ',"commits":',
            s.commits.str(),
            ',"accepted":',
            s.accepted.str(),
            ',"fakesPaid":',
            s.fakesPaid.str(),
            ',"slashed":',
            s.slashed.str()
        );
        line = string.concat(
            line,
            ',"leasesExpired":',
            s.leasesExpired.str(),
            ',"disputes":',
            s.disputes.str(),
            ',"unansweredDisputes":',
            s.unansweredDisputes.str(),
            ',"refunds":',
            s.refunds.str(),
            ',"deadlineRefunds":',
            s.deadlineRefunds.str(),
            ',"roundsClosed":',
            s.roundsClosed.str()
        );
        line = string.concat(
            line,
            ',"finalized":',
            s.finalized.str(),
            ',"unauthorized":',
            s.unauthorizedCalls.str(),
            ',"reentrancyBlocked":',
            attacker.blockedByGuard().str()
        );
        line = string.concat(
            line,
            ',"gamesOpened":',
            s.gamesOpened.str(),
            ',"gameMoves":',
            s.gameMoves.str(),
            ',"volunteerWins":',
            s.volunteerWins.str(),
            ',"challengerWins":',
            s.challengerWins.str()
        );
        line = string.concat(
            line,
            ',"gameForfeits":',
            s.gameForfeits.str(),
            ',"gamesDissolved":',
            s.gamesDissolved.str(),
            ',"honestSilentSlashed":',
            s.honestSilentSlashed.str()
        );
        line = string.concat(
            line,
            ',"reviewsOpened":',
            s.reviewsOpened.str(),
            ',"reviewsRuled":',
            s.reviewsRuled.str(),
            ',"reviewsDissolved":',
            s.reviewsDissolved.str(),
            ',"barredClaims":',
            s.barredClaims.str(),
            "}"
        );
        vm.writeLine(string.concat(STATS_DIR, "/", _suite(), ".jsonl"), line);
    }
}

/// @notice The market on the project token (plain OpenZeppelin ERC-20).
contract MarketInvariantsTest is MarketInvariantsBase {
    function _deployToken() internal override returns (IFaucetToken) {
        return IFaucetToken(address(new Token(address(this), 0, true)));
    }

    function _wire(IFaucetToken, BountyMarket) internal override {}

    function _suite() internal pure override returns (string memory) {
        return "project-token";
    }
}

/// @notice The market on a hostile token whose transfers call back into contract parties, so the
///         attacker contract re-enters claimRewards / withdraw / stake / refund mid-transfer.
contract HostileTokenMarketInvariantsTest is MarketInvariantsBase {
    function _deployToken() internal override returns (IFaucetToken) {
        return IFaucetToken(address(new HostileToken()));
    }

    function _wire(IFaucetToken token_, BountyMarket market_) internal override {
        HostileToken(address(token_)).setMarket(address(market_));
    }

    function _suite() internal pure override returns (string memory) {
        return "hostile-token";
    }
}
