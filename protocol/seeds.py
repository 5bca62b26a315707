"""Task and step seeds: the randomness a volunteer cannot choose and a verifier can recompute."""

from __future__ import annotations

import hashlib

from eth_abi import encode
from eth_utils import keccak


def task_seed(bounty_id: int, round_: int, shard: int, round_salt: bytes) -> bytes:
    """keccak(bounty id, round, shard, round-open randomness).

    `round_salt` is the hash of the block that mined the round's RoundOpened event: it did not exist
    before the round opened, and anyone can read it back from the chain.
    """
    return keccak(encode(["uint256", "uint256", "uint256", "bytes32"], [bounty_id, round_, shard, round_salt]))


def step_seed(seed: bytes, step: int) -> int:
    """A torch seed for one optimizer step, so that any segment can be replayed on its own."""
    digest = hashlib.sha256(seed + step.to_bytes(8, "big")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)
