"""Proof of improvement: every accepted update judged by what it does to the model (anchor: Templar's gauntlet).

Before a round closes, each usable accepted update is applied alone to the round's model and scored on the
held-out split with the family's metric (protocol.training.held_out_score, the score each round manifest
publishes). The scores go into the next round's manifest with whether each update was used, so the explorer
shows the evidence and anyone recomputes it from CIDs. With the spec's `aggregation.exclude_worse_by` set, an
update that leaves the model worse than the round's own score by more than that fraction is left out of the
aggregate (it was accepted and is paid: an honest update can be unlucky on held-out data; it only does not
steer the model). The coordinator's close, its early preparation and the auditor share this one selection.
"""

from __future__ import annotations

from dataclasses import dataclass

from judge.commit import audit_update
from judge.context import ChainView, RoundContext
from ledger.market import split_task_id, task_id_of
from protocol.compression import CompressedUpdate
from protocol.manifests import UpdateScore
from protocol.spec import AggregationSpec
from protocol.training import held_out_score, load_state

# Scores published by another machine may differ from ours in the last bits (another numeric class): an
# auditor accepts a recomputed score this close and judges selection by the published scores.
SCORE_AGREEMENT = 1e-4


@dataclass(frozen=True)
class RoundUpdates:
    """A round's accepted updates, held in bounded memory: each update as it was sent (CompressedUpdate), and what
    a shard carries into its next task (its end optimizer state, its compression error) by the CIDs its trace
    names, never read: that content stays on the volunteer's node until the shard's next volunteer fetches it.
    Decompressed and with those tensors, a close held 16 bytes per parameter per shard; now about one with int8
    updates."""

    base: float  # the round model's own held-out score
    updates: dict[int, CompressedUpdate]  # task id -> its usable accepted update
    scores: list[UpdateScore]  # every usable update's evidence, in shard order, used or not
    unusable: dict[int, list[str]]  # task id -> why its accepted content cannot be used
    end_states: dict[int, str]  # task id -> the CID of the optimizer state its trace ends with (carry_state)
    errors: dict[int, str]  # task id -> the CID of what its compressed update did not send (error feedback)
    fresh: frozenset[int] = frozenset()  # task ids whose trace started without what its round carried

    @property
    def used(self) -> list[CompressedUpdate]:
        """What the aggregate is made of, in shard order."""
        return [self.updates[s.task_id] for s in self.scores if s.used]

    def chosen_by(self, published: list[UpdateScore]) -> list[CompressedUpdate]:
        """The updates a manifest says were used (its scores, which may come from another numeric class)."""
        return [self.updates[s.task_id] for s in published if s.used and s.task_id in self.updates]

    def carried(
        self, ctx: RoundContext, published: list[UpdateScore] | None = None
    ) -> list[tuple[str, int] | None] | None:
        """Per shard, the CID of the optimizer state its task of the next round starts from and the inner steps it
        has counted: the end state of the shard's update if the aggregate used it (per `published` scores, when
        given), else None (a fresh optimizer). None when the spec does not carry optimizer state."""
        spec = ctx.spec
        if not spec.optimizer.carry_state:
            return None
        used = {split_task_id(s.task_id)[2]: s.task_id for s in (published or self.scores) if s.used}
        carried: list[tuple[str, int] | None] = []
        for shard in range(spec.data.shards):
            state = self.end_states.get(used[shard]) if shard in used else None
            start = None if used.get(shard) in self.fresh else ctx.manifest.inner_state(shard)
            counted = (0 if start is None else start.steps) + spec.steps_per_task
            carried.append(None if state is None else (state, counted))
        return carried

    def errors_carried(self, ctx: RoundContext, published: list[UpdateScore] | None = None) -> list[str | None] | None:
        """Per shard, the CID of the error its task of the next round adds to its update: what the shard's update
        left unsent if the aggregate used it (per `published` scores, when given), else None (a left-out update's
        error is dropped with it, as its optimizer state is). None when the spec does not compress."""
        if ctx.spec.compression.method == "none":
            return None
        used = {split_task_id(s.task_id)[2]: s.task_id for s in (published or self.scores) if s.used}
        return [self.errors.get(used[shard]) if shard in used else None for shard in range(ctx.spec.data.shards)]


def worse(score: float, base: float, higher_is_better: bool, spec: AggregationSpec) -> bool:
    """Whether an update scoring `score` hurt a model scoring `base` by more than the spec tolerates."""
    if spec.exclude_worse_by is None:
        return False
    allowed = spec.exclude_worse_by * abs(base)
    return score < base - allowed if higher_is_better else score > base + allowed


def round_updates(view: ChainView, ctx: RoundContext) -> RoundUpdates:
    """The round's accepted updates (each task's current attempt), read as sent (audit_update), scored and
    selected; what each shard carries on is named by its trace."""
    spec, workload = ctx.spec, ctx.workload
    weights = view.round_weights(ctx)
    holdout = view.tensors(ctx.manifest.holdout_cid)
    base = ctx.manifest.metric
    if base is None:  # a manifest from before scores were published
        base = held_out_score(spec, workload, load_state(spec, weights, workload).model, holdout)
    updates, scores, unusable, end_states, errors, fresh = {}, [], {}, {}, {}, set()
    for shard in range(spec.data.shards):
        task_id = task_id_of(ctx.opened.bounty_id, ctx.opened.round, shard)
        audit = audit_update(view, task_id)
        if audit.update is None:
            unusable[task_id] = audit.problems
            continue
        update = audit.update
        candidate = {name: w + update[name] for name, w in weights.items()}
        score = held_out_score(spec, workload, load_state(spec, candidate, workload).model, holdout)
        keep = not worse(score, base, workload.higher_is_better, spec.aggregation)
        commit, trace = audit.commit, audit.trace
        assert commit is not None and trace is not None  # a usable update's audit read both
        scores.append(
            UpdateScore(task_id=task_id, attempt=commit.attempt, volunteer=commit.volunteer, score=score, used=keep)
        )
        updates[task_id] = update
        if trace.carry_cid is not None:
            end_states[task_id] = trace.carry_cid
        if trace.error_cid is not None:
            errors[task_id] = trace.error_cid
        if trace.fresh_start:
            fresh.add(task_id)
    return RoundUpdates(base, updates, scores, unusable, end_states, errors, frozenset(fresh))
