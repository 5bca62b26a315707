"""The training spec a poster publishes: what to train, on what data, and how it is checked.

The spec's CID is recorded on-chain with the bounty, so every volunteer and verifier reads the same bytes.
Model families validate their own parameters (protocol.workloads), so this module stays torch-free.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocol.cid import check_cid
from protocol.errors import PermanentError
from protocol.nesting import nesting_depth

# A spec is a few hundred bytes; anything past this is refused before it is parsed (the explorer reads
# specs with the same limit).
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_DEPTH = 32  # a spec nests 3 deep; a recursive parser must never meet thousands of levels


# Fields added to version 1 after specs were published, and the default at which each means what its absence
# meant: left out of canonical bytes there.
LATER_FIELDS: dict[tuple[str, ...], object] = {
    ("base_model",): None,
    ("data", "dataset"): None,
    ("aggregation", "outer_lr"): 1.0,
    ("aggregation", "outer_momentum"): 0.0,
    ("aggregation", "exclude_worse_by"): None,
    ("optimizer", "carry_state"): False,
    ("compression",): {"method": "none", "fraction": 0.015625, "chunk": 4096},
}


class SpecError(PermanentError, ValueError):
    """A spec file that cannot be read or does not describe a sound training job."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    family: str = Field(description="registered model family, e.g. mnist-mlp, mnist-cnn, char-transformer")
    params: dict[str, Any] = Field(default_factory=dict, description="the family's hyperparameters")


class OptimizerSpec(_Strict):
    name: Literal["sgd", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, le=1)
    carry_state: bool = Field(
        False,
        description="each shard's task starts from the optimizer state its shard's used update ended the previous "
        "round with (Adam's moments and step count), published in the round manifest, instead of a fresh optimizer",
    )

    @model_validator(mode="after")
    def _state_to_carry(self) -> OptimizerSpec:
        if self.carry_state and self.name == "sgd" and self.momentum == 0:
            raise ValueError("carry_state needs an optimizer with state: Adam, or SGD with momentum")
        return self


class ReplaySpec(_Strict):
    mode: Literal["exact", "tolerance"] = Field(
        "exact", description="exact: bit-for-bit on the same CPU kind; tolerance: normalized distance ≤ tolerance"
    )
    tolerance: float = Field(1e-3, gt=0, le=1, description="δ in ‖ŵ − w_{i+1}‖ / ‖w_{i+1} − w_i‖ ≤ δ")
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads; reduction order depends on it")


class DataSpec(_Strict):
    # At most the market contract's MAX_SHARDS (256): a spec the chain would refuse is refused as a spec.
    shards: int = Field(4, ge=1, le=256, description="tasks per round, one content-addressed shard each")
    holdout_fraction: float = Field(0.1, gt=0, lt=0.5, description="held out for evaluating each round's model")
    split_seed: int = Field(0, ge=0, lt=2**63, description="fixes which examples land in which shard")
    dataset: str | None = Field(
        None, description="CID of a dataset manifest (`shardwork dataset add`); default: the family's built-in data"
    )

    @field_validator("dataset")
    @classmethod
    def _dataset_cid(cls, value: str | None) -> str | None:
        return value if value is None else check_cid(value)


class AggregationSpec(_Strict):
    """How a round's accepted updates become the next round's model (protocol.aggregate)."""

    method: Literal["mean", "trimmed_mean", "centered_clip"] = "mean"
    trim_fraction: float = Field(
        0.2, ge=0, lt=0.5, description="trimmed_mean: share dropped from each end per coordinate, rounded up"
    )
    clip_radius: float = Field(
        1.0, gt=0, description="centered_clip: τ, the farthest an update may pull, in median offsets from the center"
    )
    outer_lr: float = Field(1.0, gt=0, le=2, description="outer learning rate on the combined update (DiLoCo)")
    outer_momentum: float = Field(
        0.0, ge=0, lt=1, description="outer Nesterov momentum; 0 with outer_lr 1 is FedAvg (see docs/protocol.md)"
    )
    exclude_worse_by: float | None = Field(
        None,
        ge=0,
        le=1,
        description="leave out of the aggregate an update that alone leaves the held-out score worse than the "
        "round's by more than this fraction (None: every usable update is used; all are scored and published)",
    )


class CompressionSpec(_Strict):
    """How a task's update is sent (protocol.compression): the committed, published and aggregated update is the
    compressed one, with per-shard error feedback carried from round to round."""

    method: Literal["none", "int8", "topk"] = Field(
        "none", description="none: float32 deltas; int8: every value, scaled per chunk; topk: each chunk's largest"
    )
    fraction: float = Field(1 / 64, gt=0, le=0.5, description="topk: share of each chunk's values sent")
    chunk: int = Field(4096, ge=64, le=32_768, description="values per chunk (positions are int16: at most 32,768)")


class TrainingSpec(_Strict):
    version: Literal[1] = 1
    name: str = Field("bounty", min_length=1, max_length=100)
    model: ModelSpec
    optimizer: OptimizerSpec = OptimizerSpec()
    batch_size: int = Field(64, ge=1, le=4096)
    steps_per_task: int = Field(40, ge=1, le=100_000)
    checkpoint_interval: int = Field(5, ge=1, description="steps between checkpoints; one segment each")
    rounds: int = Field(3, ge=1, le=1000)
    init_seed: int = Field(0, ge=0, lt=2**63, description="fixes the round-0 model")
    base_model: str | None = Field(
        None,
        description="CID of safetensors weights the round-0 model starts from (a previous bounty's final model_cid, "
        "from its model card); default: fresh weights from init_seed",
    )
    data: DataSpec = DataSpec()
    replay: ReplaySpec = ReplaySpec()
    aggregation: AggregationSpec = AggregationSpec()
    compression: CompressionSpec = CompressionSpec()

    @field_validator("base_model")
    @classmethod
    def _base_model_cid(cls, value: str | None) -> str | None:
        return value if value is None else check_cid(value)

    @model_validator(mode="after")
    def _segments_fit(self) -> TrainingSpec:
        if self.steps_per_task % self.checkpoint_interval:
            raise ValueError(
                f"steps_per_task ({self.steps_per_task}) must be a multiple of "
                f"checkpoint_interval ({self.checkpoint_interval})"
            )
        if not 1 <= self.segments <= 256:
            raise ValueError(f"{self.segments} segments per task; the contract allows 1 to 256")
        return self

    @property
    def segments(self) -> int:
        return self.steps_per_task // self.checkpoint_interval

    def canonical_bytes(self) -> bytes:
        """The bytes published to the content store: sorted keys, no whitespace, so the CID is stable. Fields
        added after version 1 (LATER_FIELDS) are left out at their defaults: earlier specs keep their CIDs."""
        doc = self.model_dump(mode="json")
        for path, default in LATER_FIELDS.items():
            *tables, key = path
            table = doc
            for name in tables:
                table = table[name]
            if table[key] == default:
                del table[key]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingSpec:
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"spec is {len(data)} bytes, over the {MAX_SPEC_BYTES}-byte limit")
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise SpecError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "spec"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def read_spec_file(path: Path) -> Any:
    """The parsed contents of a TOML (by suffix) or JSON spec file; unreadable or malformed is a SpecError."""
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        with path.open("rb") as f:
            text = f.read(MAX_SPEC_BYTES + 1)  # bounded: the path may be a huge file or a device
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"spec {path} is over the {MAX_SPEC_BYTES}-byte limit")
    try:
        if nesting_depth(text.decode()) > MAX_SPEC_DEPTH:
            raise SpecError(f"spec {path} is {kind} nested too deeply")
        return tomllib.loads(text.decode()) if kind == "TOML" else json.loads(text)
    except ValueError as exc:  # a decode error of either parser, bad UTF-8, or an integer past 4,300 digits
        raise SpecError(f"spec {path} is not valid {kind}: {exc}") from None
    except RecursionError:  # both parsers recurse per nesting level (the depth check above stops that first)
        raise SpecError(f"spec {path} is {kind} nested too deeply") from None


def load_spec(path: str | Path) -> TrainingSpec:
    """Reads a TOML or JSON spec file; every problem becomes one SpecError line."""
    path = Path(path)
    raw = read_spec_file(path)
    try:
        return TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"spec {path}: {_first_problem(exc)}") from None
