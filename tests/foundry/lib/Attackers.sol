// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {BountyMarket} from "contracts/BountyMarket.sol";

/// @notice ERC-777-style hooks a hostile token calls on contract parties of a market transfer.
interface ITokenHooks {
    function tokensToSend(address to, uint256 amount) external;
    function tokensReceived(address from, uint256 amount) external;
}

/// @notice An ERC-20 whose transfers to and from the market call back into contract parties: before
///         tokens leave a contract for the market (`tokensToSend`) and after the market paid a contract
///         (`tokensReceived`). Deployed under a second market to give receivers a reentrancy foothold the
///         plain project token never offers.
contract HostileToken is ERC20 {
    address public market;

    constructor() ERC20("Hostile", "HOST") {}

    /// @notice Wires the market whose transfers trigger hooks; once.
    function setMarket(address market_) external {
        require(market == address(0), "market already set");
        market = market_;
    }

    /// @notice Test mint, the same signature as Token.faucet.
    function faucet(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        address m = market;
        if (to == m && from.code.length > 0) ITokenHooks(from).tokensToSend(to, value);
        super._update(from, to, value);
        if (from == m && to.code.length > 0) ITokenHooks(to).tokensReceived(from, value);
    }
}

/// @notice A market participant implemented as a contract: volunteer, challenger and poster at once.
///         Whenever the hostile token calls one of its hooks (that is, in the middle of a market call
///         that moves its tokens) it tries to re-enter every market function that pays out or pulls in
///         tokens, and records how each attempt ended. The handler drives its ordinary calls by prank.
contract MaliciousActor is ITokenHooks {
    BountyMarket public immutable market;
    address public immutable token;

    uint256 public attempts; // re-entrant calls tried
    uint256 public successes; // re-entrant calls that went through (must stay 0)
    uint256 public blockedByGuard; // re-entrant calls refused with ReentrancyGuardReentrantCall
    uint256 public hookCalls;

    uint256[] private _postedBounties;
    bool private _inHook;

    constructor(BountyMarket market_, address token_) {
        market = market_;
        token = token_;
    }

    /// @notice Re-entrant calls tried, those that went through, those the reentrancy guard stopped.
    function record() external view returns (uint256, uint256, uint256) {
        return (attempts, successes, blockedByGuard);
    }

    /// @notice Remembers a bounty this contract posted, so its hooks also try to re-enter `refund`.
    function notePosted(uint256 bountyId) external {
        _postedBounties.push(bountyId);
    }

    function tokensToSend(address, uint256) external {
        _reenter();
    }

    function tokensReceived(address, uint256) external {
        _reenter();
    }

    function _reenter() private {
        if (msg.sender != token || _inHook) return;
        _inHook = true;
        ++hookCalls;
        _attempt(abi.encodeCall(market.claimRewards, ()));
        _attempt(abi.encodeCall(market.withdraw, ()));
        _attempt(abi.encodeCall(market.stake, (1)));
        for (uint256 i = 0; i < _postedBounties.length; ++i) {
            _attempt(abi.encodeCall(market.refund, (_postedBounties[i])));
        }
        _inHook = false;
    }

    function _attempt(bytes memory data) private {
        ++attempts;
        (bool ok, bytes memory ret) = address(market).call(data);
        if (ok) {
            ++successes;
        } else if (ret.length >= 4 && bytes4(ret) == ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector) {
            ++blockedByGuard;
        }
    }
}
