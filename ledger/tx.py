"""The one place that signs, picks nonces, estimates gas, sends, waits and checks receipts.

A revert found while estimating is raised as the contract's typed error before anything is sent;
a transaction that reverts once mined is replayed to recover its reason. Nothing is fire-and-forget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import MethodUnavailable, Web3RPCError
from web3.types import BlockIdentifier, TxParams, TxReceipt

from ledger.errors import TransactionFailed, decode_revert, is_revert, revert_data_of, unaffordable

RECEIPT_TIMEOUT_S = 120


@contextlib.contextmanager
def typed_reverts() -> Iterator[None]:
    """Re-raises a revert (from a node or the embedded chain) as the contract's typed error."""
    try:
        yield
    except Exception as exc:
        if is_revert(exc):
            raise decode_revert(revert_data_of(exc)) from None
        raise


def call(fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
    """Calls a view function, raising the contract's typed error if it reverts."""
    with typed_reverts():
        return fn.call(block_identifier=block)


class Transactor:
    def __init__(self, w3: Web3, account: LocalAccount) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.gas_used = 0  # by every transaction this signer sent, mined or reverted

    def send(
        self, call: ContractFunction | ContractConstructor, *, gas: int | None = None, min_gas: int = 0
    ) -> TxReceipt:
        """Signs, sends and waits. `gas` skips the estimate; `min_gas` raises an estimate that may fall short
        once mined (the state the estimate saw can change before the transaction runs). An account that cannot
        pay the fee is a GasUnaffordable, with nothing sent."""
        try:
            return self._send(call, gas, min_gas)
        except Web3RPCError as exc:
            error = unaffordable(exc, self.address, self.w3.eth.get_balance(self.address))
            if error is None:
                raise
            raise error from None

    def _send(self, call: ContractFunction | ContractConstructor, gas: int | None, min_gas: int) -> TxReceipt:
        params: TxParams = {
            "from": self.address,
            "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            "chainId": self.w3.eth.chain_id,
        }
        with typed_reverts():
            if gas is None:
                # Estimated against the pending block, where the transaction will actually run: some
                # calls (a challenge draw) are valid only from the block after the latest one.
                probe = call.build_transaction({**params, "gas": 0})
                probe.pop("gas")
                gas = self._estimate(probe)
                gas = max(gas + gas // 5 + 10_000, min_gas)
            tx = call.build_transaction({**params, "gas": gas})
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]  # eth-account wants a dict, not a TxParams
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        self.gas_used += int(receipt["gasUsed"])
        if receipt["status"] != 1:
            self._raise_mined_revert(tx, receipt)
        return receipt

    def _estimate(self, tx: TxParams) -> int:
        try:
            return int(self.w3.eth.estimate_gas(tx, "pending"))
        except MethodUnavailable:
            # eth-tester estimates only against the latest block.
            return int(self.w3.eth.estimate_gas(tx))

    def _raise_mined_revert(self, tx: TxParams, receipt: TxReceipt) -> None:
        if int(receipt["gasUsed"]) >= int(tx["gas"]):
            # Out of gas: the state changed between the estimate and the block (a replay would say so as an
            # RPC error, not a revert). Re-read and try again.
            raise TransactionFailed(
                f"transaction {receipt['transactionHash'].hex()} ran out of gas ({receipt['gasUsed']} used)"
            )
        # Replayed on the state after its block first: a transaction that lost a race (another claim in the
        # same block) reverts there for the reason it did when mined; then on the state before the block.
        replay = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        for block in (receipt["blockNumber"], receipt["blockNumber"] - 1):
            with typed_reverts():
                self.w3.eth.call(replay, block)  # type: ignore[arg-type]  # a filtered TxParams, typed as a dict
        raise TransactionFailed(
            f"transaction {receipt['transactionHash'].hex()} reverted (gas used {receipt['gasUsed']})"
        )
