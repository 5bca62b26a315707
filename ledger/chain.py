"""Connections to a chain: the embedded py-evm chain (zero set-up default) or any JSON-RPC URL."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.types import RPCEndpoint

from ledger.errors import ChainError, ChainMisconfigured

EMBEDDED_CHAIN_ID = 131277322940537
# anvil's and Hardhat's well-known development mnemonic; its keys are public, for local chains only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
LOCAL_CHAIN_IDS = frozenset({31337, 1337, EMBEDDED_CHAIN_ID})


def connect(rpc_url: str | None = None, *, timeout: float = 10.0) -> Web3:
    """Connects to `rpc_url`, or starts an embedded in-process chain when it is None."""
    if rpc_url is None:
        return Web3(EthereumTesterProvider())
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - the cheapest call that proves the node answers
    except Exception as exc:  # requests' and web3's connection errors share no useful base class
        raise ChainError(f"cannot reach an EVM node at {rpc_url}: {exc.__class__.__name__}") from exc
    return w3


def dev_accounts(w3: Web3, count: int = 10) -> list[LocalAccount]:
    """Funded development accounts of a local chain, with their keys (never for a public network)."""
    chain_id = w3.eth.chain_id
    if chain_id == EMBEDDED_CHAIN_ID:
        # eth-tester funds the keys 1..10.
        return [Account.from_key(i.to_bytes(32, "big")) for i in range(1, count + 1)]
    if chain_id in LOCAL_CHAIN_IDS:
        return mnemonic_accounts(count)
    raise ChainMisconfigured(f"chain {chain_id} is not a local development chain; it has no development accounts")


def mnemonic_accounts(count: int) -> list[LocalAccount]:
    """The first `count` keys of anvil's and Hardhat's public development mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def advance_time(w3: Web3, seconds: int) -> None:
    """Moves the chain's clock forward and mines a block stamped with the new time (local chains only)."""
    if w3.eth.chain_id == EMBEDDED_CHAIN_ID:
        target = w3.eth.get_block("latest")["timestamp"] + seconds
        w3.provider.make_request(RPCEndpoint("testing_timeTravel"), [target])
        mine(w3)
    else:
        w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        mine(w3)


def fund_gas(w3: Web3, address: str, wei: int) -> int:
    """Tops `address` up to `wei` of ETH from the first development account (local chains only): a wallet made with
    `shardwork wallet new` has none, and without gas it cannot send even the faucet's transaction. Returns what
    was sent (0 when the account already held enough)."""
    funder = dev_accounts(w3, 1)[0]  # refuses a chain that is not local
    short = wei - w3.eth.get_balance(Web3.to_checksum_address(address))
    if short <= 0:
        return 0
    tx: dict[str, Any] = {
        "to": Web3.to_checksum_address(address),
        "value": short,
        "gas": 21_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(funder.address, "pending"),
        "chainId": w3.eth.chain_id,
    }
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction)
    )
    if receipt["status"] != 1:
        raise ChainError(f"funding {address} with gas failed in block {receipt['blockNumber']}")
    return short
