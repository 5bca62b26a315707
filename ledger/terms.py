"""A bounty's economic terms as a poster writes them ([bounty] in the spec file), and their on-chain form.

The one way to make a bounty's parameters: `load_bounty_file` (or BountyTerms in code), then
`BountyTerms.posting`, which refuses what the contract or the nodes would refuse later — a spec no node
could train within the memory budget, terms under which cheating pays — before anything is sent.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.amounts import format_amount, parse_amount
from protocol.spec import SpecError, TrainingSpec, read_spec_file

BPS = 10_000


class DetectionTarget(BaseModel):
    """What spot checks must achieve, from which the bounty's floor check rate and sample size are derived: a
    volunteer faking `cheat_fraction` of its segments is caught with `probability` within `within_tasks` of its
    tasks at the floor rate (newcomers are checked more often, so sooner)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cheat_fraction: float = Field(0.1, gt=0, le=1, description="share of its segments a partial faker fakes")
    probability: float = Field(0.99, gt=0, lt=1, description="chance such a faker is caught ...")
    within_tasks: int = Field(100, ge=1, le=1_000_000, description="... within this many of its tasks")

    def per_task(self) -> float:
        """The detection each task must have: 1 − (1 − d)^within_tasks = probability."""
        return 1 - (1 - self.probability) ** (1 / self.within_tasks)

    def spot_checks(self) -> tuple[float, int]:
        """(floor check probability, segments per check) of least verification for this target.

        A check replays k sampled segments, so a task costs p·k segment replays on average and catches a faker of
        fraction f with p·(1 − (1 − f)^k) (at least that: sampling without replacement does better). The catch per
        replay, (1 − (1 − f)^k)/k, falls as k grows, so one segment per check is cheapest, at p = d/f; more than one
        is sampled only when even checking every task (p = 1) with one segment falls short."""
        needed, f = self.per_task(), self.cheat_fraction
        if needed <= f:
            return math.ceil(needed / f * BPS) / BPS, 1
        return 1.0, math.ceil(math.log(1 - needed) / math.log(1 - f))


class BountyTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reward: str = Field("10", description="tokens paid per accepted task")
    stake: str = Field("100", description="tokens a volunteer locks per task; all of it is slashed on a failed check")
    verifier_fee: str = Field("1", description="tokens per attestation on the winning side")
    challenge_bond: str = Field("20", description="tokens a permissionless challenger posts")
    lease_penalty: str = Field("5", description="tokens taken when a claimed task is abandoned")
    check_probability: float = Field(1.0, gt=0, le=1, description="spot-check probability for a newcomer")
    min_check_probability: float = Field(0.5, gt=0, le=1, description="floor it decays to with reputation")
    reputation_half_life: int = Field(4, ge=1, le=65535, description="accepted tasks per halving of the probability")
    segments_per_check: int = Field(3, ge=1, le=256, description="segments replayed when a task is checked")
    detection: DetectionTarget | None = Field(
        None, description="derives min_check_probability and segments_per_check (DetectionTarget.spot_checks)"
    )
    quorum: int = Field(
        2, ge=1, le=15, description="matching verifier attestations that settle a check (the contract's MAX_QUORUM)"
    )
    lease_duration_s: int = Field(3600, ge=60, description="seconds to commit after claiming")
    challenge_window_s: int = Field(600, ge=1)
    verify_window_s: int = Field(
        1200,
        ge=30,
        description="seconds verifiers have to reach a quorum after the challenge window; also each bisection-game "
        "move's time (at least the contract's MIN_VERIFY_WINDOW, 30)",
    )
    deadline_days: float = Field(30, gt=0, le=3650)
    coordinator: str = Field(description="address that opens and closes rounds and referees bisection games")

    @model_validator(mode="before")
    @classmethod
    def _derive_spot_checks(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("detection") is None:
            return data
        try:
            target = DetectionTarget.model_validate(data["detection"])
        except ValidationError:
            return data  # field validation reports it, located under detection
        floor, per_check = target.spot_checks()
        derived = {"min_check_probability": floor, "segments_per_check": per_check}
        # Equal values pass, so that a dump of these terms validates again.
        given = [name for name, value in derived.items() if name in data and data[name] != value]
        if given:
            raise ValueError(f"{' and '.join(given)} follow from detection: set one or the other, not both")
        newcomer = data.get("check_probability", 1.0)
        if isinstance(newcomer, int | float) and floor > newcomer:  # anything else: field validation refuses it
            raise ValueError(
                f"detection needs a floor check probability of {floor}, above check_probability "
                f"{data['check_probability']}: raise check_probability or lower the target"
            )
        return {**data, "detection": target, **derived}

    @model_validator(mode="after")
    def _amounts_parse(self) -> BountyTerms:
        for name in ("reward", "stake", "verifier_fee", "challenge_bond", "lease_penalty"):
            parse_amount(getattr(self, name), allow_zero=name != "reward")
        if self.min_check_probability > self.check_probability:
            raise ValueError("min_check_probability cannot exceed check_probability")
        return self

    def base(self, name: str) -> int:
        return parse_amount(getattr(self, name), allow_zero=True)

    def escrow(self, tasks: int) -> int:
        return tasks * (self.base("reward") + self.quorum * self.base("verifier_fee"))

    def caught_chance(self, segments: int, faked: int) -> float:
        """Probability that a task with `faked` of `segments` segments faked is caught, at the floor rate."""
        picks = min(self.segments_per_check, segments)
        missed = math.comb(segments - faked, picks) / math.comb(segments, picks)
        return self.min_check_probability * (1 - missed)

    @property
    def sound(self) -> bool:
        """The contract's economics rule: the stake lost at the floor check rate outweighs the reward."""
        return self.base("stake") * round(self.min_check_probability * BPS) >= self.base("reward") * BPS

    def check_detection(self, spec: TrainingSpec) -> None:
        """SpecError when the detection target samples more segments per check than a task of `spec` has."""
        if self.detection is not None and self.segments_per_check > spec.segments:
            raise SpecError(
                f"bounty.detection needs {self.segments_per_check} segments replayed per check and a task has "
                f"{spec.segments}: lower the target, or give tasks more segments (checkpoint_interval)"
            )

    def posting(self, spec: TrainingSpec, spec_cid: str, now: int) -> dict[str, Any]:
        """The BountyParams that post `spec` (published as `spec_cid`) on these terms; SpecError for a spec or
        terms that would be refused later, by the contract or by every node."""
        from protocol.footprint import check_footprint

        check_footprint(spec)
        self.check_detection(spec)
        if not self.sound:
            raise SpecError(
                f"stake {format_amount(self.base('stake'))} × min_check_probability {self.min_check_probability} "
                f"< reward {format_amount(self.base('reward'))}: cheating would pay; raise stake or min_check_probability"
            )
        return self.params(spec_cid, spec.data.shards, spec.rounds, spec.segments, now)

    def params(self, spec_cid: str, shards: int, rounds: int, segments: int, now: int) -> dict[str, Any]:
        from web3 import Web3

        return {
            "specCid": spec_cid,
            "coordinator": Web3.to_checksum_address(self.coordinator),
            "shards": shards,
            "rounds": rounds,
            "segmentsPerTask": segments,
            "segmentsPerCheck": min(self.segments_per_check, segments),
            "checkBps": round(self.check_probability * BPS),
            "minCheckBps": round(self.min_check_probability * BPS),
            "reputationHalfLife": self.reputation_half_life,
            "quorum": self.quorum,
            "rewardPerTask": self.base("reward"),
            "stakePerTask": self.base("stake"),
            "verifierFee": self.base("verifier_fee"),
            "challengeBond": self.base("challenge_bond"),
            "leasePenalty": self.base("lease_penalty"),
            "leaseDuration": self.lease_duration_s,
            "challengeWindow": self.challenge_window_s,
            "verifyWindow": self.verify_window_s,
            "deadline": now + int(self.deadline_days * 86400),
        }


def load_bounty_file(path: Path) -> tuple[TrainingSpec, BountyTerms]:
    """(TrainingSpec, BountyTerms) from a TOML/JSON spec file with a [bounty] table; one-line SpecErrors."""
    from protocol.footprint import check_footprint

    raw = read_spec_file(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("bounty"), dict):
        raise SpecError(f"spec {path} has no [bounty] table (reward, stake, coordinator, …)")
    terms_raw = raw.pop("bounty")
    try:
        spec = TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"spec {path}: {_first_error(exc)}") from None
    try:
        terms = BountyTerms.model_validate(terms_raw)
    except ValidationError as exc:
        raise SpecError(f"spec {path}: {_first_error(exc, 'bounty')}") from None
    check_footprint(spec)  # resolves the model too: unknown families and bad params are SpecErrors
    terms.check_detection(spec)
    return spec, terms


def _first_error(exc: ValidationError, *section: str) -> str:
    """`where: what` of a validation's first error, located under `section` (a model validator's has no loc)."""
    err = exc.errors()[0]
    return f"{'.'.join([*section, *(str(p) for p in err['loc'])])}: {err['msg'].removeprefix('Value error, ')}"
