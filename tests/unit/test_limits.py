"""Byte limits follow from the spec: an honest trace manifest of the longest task the spec allows fits its
limit, though it is larger than the fixed 1 MiB that used to refuse it."""

from __future__ import annotations

import random

import pytest

from protocol.errors import ContentInvalid
from protocol.manifests import (
    MAX_MANIFEST_BYTES,
    CheckpointRef,
    NumericEnvironment,
    TraceManifest,
    trace_manifest_limit,
)
from protocol.spec import TrainingSpec

CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


def longest_honest_trace(spec: TrainingSpec) -> TraceManifest:
    rng = random.Random(0)
    refs = [
        CheckpointRef(step=i * spec.checkpoint_interval, cid=CID, hash="0x" + rng.randbytes(32).hex())
        for i in range(spec.segments + 1)
    ]
    return TraceManifest(
        task_id=2**255 + rng.getrandbits(200),  # the largest ids take the most digits
        volunteer="0x" + "ab" * 20,
        round_cid=CID,
        checkpoints=refs,
        update_cid=CID,
        update_hash="0x" + "cd" * 32,
        numerics=NumericEnvironment(
            torch="2.13.0+cpu" + "x" * 54,  # the longest fields the format allows
            machine="x" * 32,
            kernels="x" * 32,
            profile="x" * 32,
            threads=64,
            fingerprint="0x" + "ef" * 32,
        ),
        losses=[-rng.random() * 10 ** rng.randint(-300, 300) for _ in range(spec.steps_per_task)],  # longest floats
    )


def test_a_trace_of_the_longest_task_the_spec_allows_fits_its_limit() -> None:
    spec = TrainingSpec.model_validate(
        {"model": {"family": "mnist-mlp"}, "steps_per_task": 100_000, "checkpoint_interval": 400}
    )
    data = longest_honest_trace(spec).canonical_bytes()
    limit = trace_manifest_limit(spec.steps_per_task, spec.segments)
    assert MAX_MANIFEST_BYTES < len(data) <= limit
    assert len(TraceManifest.parse(data, limit).losses) == spec.steps_per_task
    with pytest.raises(ContentInvalid, match="over the"):
        TraceManifest.parse(data)  # the round manifest's fixed limit would refuse this honest trace


def test_a_spec_has_no_more_shards_than_the_contract_accepts() -> None:
    """The market's MAX_SHARDS is 256: a larger spec is refused as a spec, before any post is attempted."""
    TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}, "data": {"shards": 256}})
    with pytest.raises(ValueError, match="256"):
        TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}, "data": {"shards": 257}})
