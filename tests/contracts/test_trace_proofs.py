"""Merkle proofs built by protocol.merkle verify with OpenZeppelin's MerkleProof on-chain."""

from __future__ import annotations

import hashlib

from protocol.merkle import merkle_proof, merkle_root, trace_leaf
from tests.support.chain import Chain


def test_python_trace_proofs_verify_on_chain_for_every_leaf_and_fail_when_tampered(chain: Chain) -> None:
    bounty = chain.post_and_open()
    task = chain.task_id(bounty)
    chain.stake("alice")
    volunteer = chain.addr("alice")
    # 9 leaves: an odd count exercises the promoted-node path at two levels.
    leaves = [trace_leaf(task, volunteer, 5 * i, hashlib.sha256(bytes([i])).digest()) for i in range(9)]
    root, update = merkle_root(leaves), b"\x07" * 32
    chain.tx("alice", "claim", task)
    chain.commit("alice", task, root, update)
    for i, leaf in enumerate(leaves):
        assert chain.view("verifyTraceLeaf", task, root, update, leaf, merkle_proof(leaves, i)) is True
    assert chain.view("verifyTraceLeaf", task, root, update, leaves[3], merkle_proof(leaves, 4)) is False
    other = trace_leaf(task, chain.addr("mallory"), 15, hashlib.sha256(bytes([3])).digest())
    assert chain.view("verifyTraceLeaf", task, root, update, other, merkle_proof(leaves, 3)) is False
