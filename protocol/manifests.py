"""JSON documents published to the content store: what a round offers and what a volunteer did."""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocol.cid import InvalidCid, check_cid
from protocol.errors import ContentInvalid
from protocol.merkle import merkle_root, trace_leaf

# A round manifest is a few KiB; a larger document is refused before it is parsed into Python objects. A trace
# manifest's limit follows from its spec instead (trace_manifest_limit): it holds one loss per training step.
MAX_MANIFEST_BYTES = 1 << 20
# Trace leaves encode task ids and steps as uint256: a larger number would fail inside the Merkle code.
_UINT256 = 2**256


def trace_manifest_limit(steps_per_task: int, segments: int) -> int:
    """The most bytes an honest trace manifest of a task can have: a fixed part (ids, CIDs, hashes), one
    checkpoint reference per segment boundary, one loss per step (a float's longest JSON form is 24 characters).
    At the spec's 100,000 steps that is about 3.3 MB; a fixed 1 MiB refused honest traces past ~55,000 steps."""
    return 4096 + 256 * (segments + 1) + 32 * steps_per_task


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes, max_bytes: int = MAX_MANIFEST_BYTES) -> Self:
        if len(data) > max_bytes:
            raise ContentInvalid(f"malformed {cls.__name__}: {len(data)} bytes, over the {max_bytes}-byte limit")
        try:
            doc = cls.model_validate_json(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"])
            raise ContentInvalid(f"malformed {cls.__name__}: {where + ': ' if where else ''}{err['msg']}") from None
        try:
            for cid in doc.cids():
                check_cid(cid)
        except InvalidCid as exc:
            raise ContentInvalid(f"malformed {cls.__name__}: {exc}") from None
        return doc

    def cids(self) -> list[str]:
        return []


class UpdateScore(_Doc):
    """One accepted update's evidence (judge/improvement.py): the held-out score of the round's model with this
    update alone applied, and whether the aggregate used it."""

    task_id: int = Field(ge=0, lt=_UINT256)
    attempt: int = Field(ge=0)
    volunteer: str
    score: float
    used: bool


class InnerState(_Doc):
    """The optimizer state a shard's task starts from (optimizer.carry_state): the optimizer tensors of the last
    checkpoint of the shard's update used in the previous round (protocol.training.inner_state)."""

    cid: str  # safetensors, named as a checkpoint's optimizer part
    steps: int = Field(ge=1, description="inner steps the state has counted: Adam's step count at the task's step 0")


class RoundManifest(_Doc):
    """Published by the coordinator; its CID is the `modelCid` of RoundOpened."""

    bounty_id: int = Field(ge=0)
    round: int = Field(ge=0)
    spec_cid: str
    model_cid: str  # weights the round's tasks start from (safetensors, parameter names)
    shard_cids: list[str] = Field(min_length=1)
    holdout_cid: str
    metric_name: str | None = None  # the model's score on the held-out data, for explorers and posters
    metric: float | None = None
    # δ× (judge/calibration.py): how far a replay in another numeric class may land from an honest end,
    # measured on this spec at intake. None: not measured; verifiers across classes then abstain.
    cross_class_tolerance: float | None = Field(None, gt=0, le=0.5)
    # The outer optimizer's momentum after the round that made this model (protocol.aggregate): tensors named
    # and shaped as the weights. None without outer momentum, and for round 0.
    outer_velocity_cid: str | None = None
    # The previous round's accepted updates judged by what each did to its model (proof of improvement).
    update_scores: list[UpdateScore] = Field(default_factory=list, max_length=256)
    # Per shard, the optimizer state its task starts from; empty without optimizer.carry_state and for round 0,
    # None for a shard whose previous update was not used (its task starts a fresh optimizer).
    inner_states: list[InnerState | None] = Field(default_factory=list, max_length=256)
    # Per shard, what compression has not sent of its updates yet (protocol.compression's error feedback: float32
    # tensors named and shaped as the weights), added to its next update; empty without compression and for
    # round 0, None for a shard whose previous update was not used (it starts with none).
    update_errors: list[str | None] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _a_state_per_shard(self) -> Self:
        for label, per_shard in (("inner states", self.inner_states), ("update errors", self.update_errors)):
            if per_shard and len(per_shard) != len(self.shard_cids):
                raise ValueError(f"{len(per_shard)} {label} for {len(self.shard_cids)} shards")
        return self

    def inner_state(self, shard: int) -> InnerState | None:
        return self.inner_states[shard] if self.inner_states else None

    def canonical_bytes(self) -> bytes:
        """As every document's, but without `update_errors` when there are none: manifests of bounties that do
        not compress keep the CIDs they had before the field existed."""
        doc = self.model_dump(mode="json")
        if not doc["update_errors"]:
            del doc["update_errors"]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def update_error(self, shard: int) -> str | None:
        return self.update_errors[shard] if self.update_errors else None

    def cids(self) -> list[str]:
        velocity = [] if self.outer_velocity_cid is None else [self.outer_velocity_cid]
        states = [s.cid for s in self.inner_states if s is not None]
        errors = [cid for cid in self.update_errors if cid is not None]
        return [self.spec_cid, self.model_cid, self.holdout_cid, *self.shard_cids, *velocity, *states, *errors]


class DatasetFile(_Doc):
    name: str = Field(min_length=1, max_length=255, description="the file's name when added, for people")
    cid: str
    bytes: int = Field(ge=1)


class DatasetManifest(_Doc):
    """A poster's data (`shardwork dataset add`), named by a spec's `data.dataset`. Its examples are a pure
    function of the files (protocol.datasets.decode): text files are joined by line breaks into one token
    stream; safetensors files laid out as the family's shards are concatenated, in the order listed."""

    kind: Literal["text", "tensors"]
    files: list[DatasetFile] = Field(min_length=1, max_length=4096)

    def cids(self) -> list[str]:
        return [f.cid for f in self.files]


class CheckpointRef(_Doc):
    step: int = Field(ge=0, lt=_UINT256)
    cid: str
    hash: str = Field(pattern=r"^0x[0-9a-f]{64}$", description="canonical tensor hash (sha256)")


class NumericEnvironment(_Doc):
    """How the volunteer's machine computes, recorded in its trace manifest (bound by the trace CID the commit records).

    Two machines are in the same numeric class for a spec when their fingerprints are equal: the canonical
    hash after a few training steps of the spec's own model on fixed synthetic data (protocol.numerics). Only
    then is bit-for-bit replay meaningful. The other fields say why two classes differ, for people."""

    torch: str = Field(max_length=64, description="torch version")
    machine: str = Field(max_length=32, description="CPU architecture, e.g. x86_64")
    kernels: str = Field(max_length=32, description="ATen CPU capability in force, e.g. AVX2")
    profile: str = Field(max_length=32, description="kernel-dispatch pins in force (protocol.pins), or native")
    threads: int = Field(ge=1, le=64)
    fingerprint: str = Field(pattern=r"^0x[0-9a-f]{64}$")


class TraceManifest(_Doc):
    """Published by the volunteer; its CID is the `traceCid` of TaskCommitted."""

    task_id: int = Field(ge=0, lt=_UINT256)
    volunteer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    round_cid: str
    checkpoints: list[CheckpointRef] = Field(min_length=2, max_length=257)
    update_cid: str
    update_hash: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    numerics: NumericEnvironment
    losses: list[float] = Field(
        default_factory=list, max_length=100_000, description="training loss per step (≤ steps_per_task), for explorers"
    )
    # What the shard carries into its next task, kept on the volunteer's own node and named here so that nobody
    # reads the last checkpoint to make the next round (the coordinator reads this manifest and the update only):
    # the optimizer state the trace ends with (optimizer.carry_state) and what the compressed update left unsent
    # (error feedback). Both are pure functions of the last checkpoint, checked with the last segment's replay
    # (judge.commit.check_derivation). None where the spec carries neither.
    carry_cid: str | None = None
    error_cid: str | None = None
    # The task started from a fresh optimizer and no carried error although its round names some for its shard:
    # the volunteer could not fetch them (whoever trained the shard before went offline). Honest, only slower to
    # converge; checkers then build its start without them.
    fresh_start: bool = False

    def cids(self) -> list[str]:
        carried = [cid for cid in (self.carry_cid, self.error_cid) if cid is not None]
        return [self.round_cid, self.update_cid, *(c.cid for c in self.checkpoints), *carried]

    def canonical_bytes(self) -> bytes:
        """As every document's, without the carried-content fields where they are unset: a trace of a spec that
        carries nothing keeps the form it had before they existed."""
        doc = self.model_dump(mode="json")
        for key, unset in (("carry_cid", None), ("error_cid", None), ("fresh_start", False)):
            if doc[key] == unset:
                del doc[key]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def leaves(self) -> list[bytes]:
        return [trace_leaf(self.task_id, self.volunteer, c.step, bytes.fromhex(c.hash[2:])) for c in self.checkpoints]

    def trace_root(self) -> bytes:
        return merkle_root(self.leaves())
