"""The proof-of-learning Merkle tree, compatible with OpenZeppelin's MerkleProof (keccak, sorted pairs).

Leaves are hashed twice, as OpenZeppelin's StandardMerkleTree does, so that an inner node can never be
passed off as a leaf. An odd node at the end of a level moves up unchanged, which MerkleProof accepts
(its proof simply has no sibling for that level).
"""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak


def trace_leaf(task_id: int, volunteer: str, step: int, checkpoint_hash: bytes) -> bytes:
    """Leaf for checkpoint `step` of `task_id` trained by `volunteer`: binds the work to who committed it."""
    inner = keccak(encode(["uint256", "address", "uint256", "bytes32"], [task_id, volunteer, step, checkpoint_hash]))
    return keccak(inner)


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append(
            [_pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        )
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} out of range for {len(leaves)} leaves")
    proof = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_proof(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
