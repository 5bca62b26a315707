// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Shardwork token (SWK)
/// @notice ERC-20 used for stakes, bounties and rewards. A faucet exists only on local test chains,
///         so a deployment on a public network can never mint out of thin air.
contract Token is ERC20 {
    /// @notice Most a single faucet call may mint (10,000 SWK).
    uint256 public constant FAUCET_LIMIT = 10_000 ether;

    /// @notice True when this deployment lets anyone mint test tokens.
    bool public immutable faucetEnabled;

    error TokenFaucetDisabled();
    error TokenFaucetOnPublicChain(uint256 chainId);
    error TokenFaucetLimitExceeded(uint256 requested, uint256 limit);

    event FaucetDripped(address indexed to, uint256 amount);

    /// @param initialHolder receives `initialSupply` base units at deployment
    /// @param enableFaucet allowed only on local chain ids (anvil/Hardhat 31337, 1337, eth-tester)
    constructor(address initialHolder, uint256 initialSupply, bool enableFaucet) ERC20("Shardwork", "SWK") {
        if (enableFaucet && !_isLocalChain()) revert TokenFaucetOnPublicChain(block.chainid);
        faucetEnabled = enableFaucet;
        if (initialSupply > 0) _mint(initialHolder, initialSupply);
    }

    /// @notice Mints up to FAUCET_LIMIT test tokens to `to`; local chains only.
    function faucet(address to, uint256 amount) external {
        if (!faucetEnabled) revert TokenFaucetDisabled();
        if (amount > FAUCET_LIMIT) revert TokenFaucetLimitExceeded(amount, FAUCET_LIMIT);
        _mint(to, amount);
        emit FaucetDripped(to, amount);
    }

    function _isLocalChain() private view returns (bool) {
        return block.chainid == 31337 || block.chainid == 1337 || block.chainid == 131277322940537;
    }
}
