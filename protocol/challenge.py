"""The spot-check draw, exactly as BountyMarket._draw computes it, for auditors and simulations."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

BPS = 10_000


def draw_seed(draw_block_hash: bytes, task_id: int, attempt: int) -> bytes:
    """keccak(blockhash(commitBlock + 1), taskId, attempt)."""
    return keccak(encode(["bytes32", "uint256", "uint256"], [draw_block_hash, task_id, attempt]))


def draw(seed: bytes, check_bps: int, segments: int, picks: int) -> tuple[bool, list[int]]:
    """Whether the task is checked, and the sampled segments in draw order (linear probing on collisions)."""
    checked = int.from_bytes(seed, "big") % BPS < check_bps
    mask: list[int] = []
    for j in range(picks):
        index = int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, j])), "big") % segments
        while index in mask:
            index = (index + 1) % segments
        mask.append(index)
    return checked, mask
