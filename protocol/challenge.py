"""The spot-check draw, exactly as BountyMarket computes it (`_seed`, `_isChecked`, `_draw`): the one
definition the verifiers' recording, the auditor and the simulations share.

The seed of a commit is keccak(blockhash(commitBlock + 1), taskId, attempt). Once anyone records it on-chain
(`drawChallenge`) it is fixed forever. Unrecorded, it can be computed only while the EVM still serves that
block's hash, i.e. up to 256 blocks later; past that horizon the seed is *lost* and the contract checks every
segment, so lost randomness never favours the volunteer.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

BPS = 10_000
# `blockhash(n)` is non-zero only for the 256 most recent blocks before the executing one.
BLOCKHASH_HORIZON = 256


@dataclass(frozen=True)
class Challenge:
    checked: bool
    segments: tuple[int, ...]  # sorted
    seed_lost: bool = False


def draw_seed(draw_block_hash: bytes, task_id: int, attempt: int) -> bytes:
    """keccak(blockhash(commitBlock + 1), taskId, attempt)."""
    return keccak(encode(["bytes32", "uint256", "uint256"], [draw_block_hash, task_id, attempt]))


def seed_is_live(commit_block: int, at_block: int) -> bool:
    """Whether `blockhash(commitBlock + 1)` is still non-zero in a transaction executing in block `at_block`."""
    draw_block = commit_block + 1
    return draw_block < at_block <= draw_block + BLOCKHASH_HORIZON


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


def challenge(seed: bytes | None, check_bps: int, segments: int, picks: int, disputed: int | None = None) -> Challenge:
    """`challengeOf` for a known seed, or None for a lost one; a dispute forces a check of its segment."""
    if seed is None:
        return Challenge(True, tuple(range(segments)), seed_lost=True)
    checked, mask = draw(seed, check_bps, segments, picks)
    if disputed is not None:
        checked = True
        mask = [*mask, disputed] if disputed not in mask else mask
    return Challenge(checked, tuple(sorted(mask)))
