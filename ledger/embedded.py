"""An embedded py-evm chain that replays bit for bit: the same seed, the same blocks, hashes and randomness.

eth-tester's chain stamps each block with the wall clock and draws each block's `prevrandao` from os.urandom, so
every block hash differs run to run, and with them the tasks' seeds and the spot-check draws (both come from
block hashes): seven demo runs had seven final models. This chain starts at a fixed genesis time, stamps each
block one second after its parent (time moves further only by `advance_time`; calls and gas estimates run at that
time too), and derives `prevrandao` from the seed and the block number. It is for reproducing a run; a live network's randomness is its chain's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from eth.vm.forks import PragueVM
from eth.vm.forks.cancun import get_total_blob_gas
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import ZERO_ADDRESS, get_default_genesis_params
from web3 import EthereumTesterProvider, Web3

GENESIS_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


class SteadyClockVM(PragueVM):
    """eth-tester's VM, stamping each new header one second after its parent instead of with the wall clock: the
    pending block, and the state that `eth_call` and gas estimates run in."""

    @classmethod
    def create_header_from_parent(cls, parent_header: Any, **header_params: Any) -> Any:
        if parent_header is not None and "timestamp" not in header_params:
            header_params["timestamp"] = parent_header.timestamp + 1
        return super().create_header_from_parent(parent_header, **header_params)


class SeededBackend(PyEVMBackend):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        super().__init__(
            genesis_parameters=get_default_genesis_params({"timestamp": GENESIS_TIME}),
            vm_configuration=((0, SteadyClockVM),),
        )

    def prevrandao(self, number: int) -> bytes:
        domain = b"shardwork embedded chain"
        return hashlib.sha256(domain + self.seed.to_bytes(32, "big") + number.to_bytes(32, "big")).digest()

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = ZERO_ADDRESS) -> tuple[bytes, ...]:
        # PyEVMBackend.mine_blocks, with prevrandao from the seed instead of os.urandom.
        hashes = []
        for _ in range(num_blocks):
            blob_gas = sum(get_total_blob_gas(tx) for tx in self.chain.get_block().transactions)
            mix_hash = self.prevrandao(self.chain.header.block_number)
            hashes.append(self.chain.mine_block(coinbase=coinbase, mix_hash=mix_hash, blob_gas_used=blob_gas).hash)
        return tuple(hashes)


def seeded_chain(seed: int) -> Web3:
    return Web3(EthereumTesterProvider(EthereumTester(SeededBackend(seed))))
