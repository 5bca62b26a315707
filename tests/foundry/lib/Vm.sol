// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The few forge cheatcodes this suite uses (forge-std from npm is broken: it lacks ds-test).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function prank(address sender) external;
    function warp(uint256 timestamp) external;
    function roll(uint256 blockNumber) external;
    function label(address account, string calldata name) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function toString(uint256 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
    function toString(bytes calldata value) external pure returns (string memory);
    function createDir(string calldata path, bool recursive) external;
    function writeLine(string calldata path, string calldata data) external;
}

/// @notice Base of the invariant test contracts: the cheatcode handle plus the target getters forge's
///         invariant engine reads (the same signatures as forge-std's StdInvariant).
abstract contract InvariantTestBase {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;
    address[] private _targetSenders;

    /// @notice Contracts forge calls during a campaign.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @notice Functions forge calls on them.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    /// @notice Senders forge uses (the handler pranks the real actors itself).
    function targetSenders() public view returns (address[] memory) {
        return _targetSenders;
    }

    function _target(address target, bytes4[] memory selectors) internal {
        _targetContracts.push(target);
        _targetSelectors.push(FuzzSelector(target, selectors));
    }

    function _targetSender(address sender) internal {
        _targetSenders.push(sender);
    }
}
