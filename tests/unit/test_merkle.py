from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.merkle import merkle_proof, merkle_root, verify_proof


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True), st.data())
def test_every_leaf_proves_membership_and_no_other_leaf_uses_its_proof(
    leaves: list[bytes], data: st.DataObject
) -> None:
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_proof(proof, root, leaves[index])
    other = data.draw(st.integers(0, len(leaves) - 1))
    if leaves[other] != leaves[index] and len(leaves) > 1:
        assert not verify_proof(proof, root, leaves[other])
