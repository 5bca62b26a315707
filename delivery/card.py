"""A model card: everything a poster (or anyone) needs to trust and reuse a bounty's model, rebuilt from the
chain's events and the content store alone (no coordinator asked), so anyone can make the same card."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.audit import AuditReport
from ledger.amounts import format_amount
from ledger.market import split_task_id
from protocol.manifests import UpdateScore


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoundModel(_Card):
    """The model a round started from (round = the bounty's rounds: the final model) and its held-out score."""

    round: int
    manifest_cid: str
    model_cid: str
    metric: float | None
    update_scores: list[UpdateScore] = Field(
        default_factory=list, description="the round before's updates, each scored alone; used: in this model"
    )


class Contributor(_Card):
    volunteer: str
    accepted_tasks: list[str] = Field(description="task ids (hex) whose updates went into this model")
    earned: int = Field(description="rewards for those tasks, in token base units")


class Slash(_Card):
    task_id: str
    volunteer: str
    amount: int
    block: int


class AuditSummary(_Card):
    """`shardwork audit bounty` at the block the card was made: Merkle proofs of every commit checked against
    the content store, and `replays` committed segments replayed independently."""

    block: int
    commits: int
    accepted: int
    slashed: int
    proof_problems_accepted: int = Field(description="problems with the proofs of accepted commits: findings")
    proof_problems_slashed: int = Field(description="problems with the proofs of slashed commits: often why")
    replays: int
    disagreements: int
    unchecked_cheats: int
    data_problems: list[str] = Field(description="shards, holdout or round-0 model not recomputed from the spec")


class ModelCard(_Card):
    bounty_id: int
    name: str
    family: str
    params: dict[str, Any]
    chain_id: int
    market: str
    poster: str
    round: int = Field(description="the round this model opened; == rounds for the final model")
    rounds: int
    final: bool
    metric_name: str
    higher_is_better: bool
    metric: float | None
    spec_cid: str
    manifest_cid: str
    model_cid: str
    holdout_cid: str
    shard_cids: list[str]
    history: list[RoundModel]
    contributors: list[Contributor]
    slashes: list[Slash]
    audit: AuditSummary

    def summary(self) -> str:
        which = "final model" if self.final else f"round {self.round} model (not final: {self.rounds} rounds)"
        score = "not measured" if self.metric is None else f"{self.metric_name} {self.metric:.4f}"
        return f"bounty {self.bounty_id} '{self.name}': {which}, {self.family}, held-out {score}"


def contributors_of(events: list[Any], before_round: int) -> list[Contributor]:
    """Volunteers whose accepted tasks of rounds before `before_round` went into the model."""
    tasks: dict[str, list[str]] = defaultdict(list)
    earned: dict[str, int] = defaultdict(int)
    for e in events:
        if e.name == "TaskAccepted" and split_task_id(int(e.args["taskId"]))[1] < before_round:
            tasks[e.args["volunteer"]].append(hex(int(e.args["taskId"])))
            earned[e.args["volunteer"]] += int(e.args["reward"])
    return [Contributor(volunteer=v, accepted_tasks=ids, earned=earned[v]) for v, ids in sorted(tasks.items())]


def slashes_of(events: list[Any]) -> list[Slash]:
    return [
        Slash(
            task_id=hex(int(e.args["taskId"])),
            volunteer=e.args["volunteer"],
            amount=int(e.args["amount"]),
            block=e.block,
        )
        for e in events
        if e.name == "TaskSlashed"
    ]


def audit_summary(report: AuditReport, block: int) -> AuditSummary:
    def problems(outcome: str) -> int:
        return sum(len(c.proof_problems) for c in report.commits if c.outcome == outcome)

    return AuditSummary(
        block=block,
        commits=len(report.commits),
        accepted=sum(c.outcome == "accepted" for c in report.commits),
        slashed=sum(c.outcome == "slashed" for c in report.commits),
        proof_problems_accepted=problems("accepted"),
        proof_problems_slashed=problems("slashed"),
        replays=len(report.replays),
        disagreements=report.disagreements,
        unchecked_cheats=report.unchecked_cheats,
        data_problems=report.data_problems,
    )


def render_markdown(card: ModelCard) -> str:
    """The card for people (README.md beside the weights); model-card.json holds the same for programs."""
    better = "higher is better" if card.higher_is_better else "lower is better"
    lines = [
        f"# {card.name}: bounty {card.bounty_id}",
        "",
        card.summary() + ".",
        "",
        f"- Family `{card.family}`, parameters `{card.params}`; load it with `shardwork model eval DIR` or in",
        "  PyTorch: build the family's module and `load_state_dict(safetensors.torch.load_file('model.safetensors'))`.",
        f"- Chain {card.chain_id}, market `{card.market}`, poster `{card.poster}`.",
        f"- Weights `{card.model_cid}` (the CID of model.safetensors), round manifest `{card.manifest_cid}`,",
        f"  spec `{card.spec_cid}` (spec.json), held-out data `{card.holdout_cid}`.",
        "",
        f"## Held-out {card.metric_name} per round ({better})",
        "",
        "| round | " + card.metric_name + " | updates used (each scored alone) | model |",
        "|---|---|---|---|",
    ]
    for r in card.history:
        label = "final" if r.round == card.rounds else str(r.round)
        value = "–" if r.metric is None else f"{r.metric:.4f}"
        scores = " ".join(f"{s.score:.4f}" if s.used else f"~~{s.score:.4f}~~" for s in r.update_scores)
        used = f"{sum(s.used for s in r.update_scores)}/{len(r.update_scores)} {scores}" if r.update_scores else "–"
        lines.append(f"| {label} | {value} | {used} | `{r.model_cid}` |")
    lines += ["", "## Contributors (accepted tasks in this model)", ""]
    lines += [
        f"- `{c.volunteer}`: {len(c.accepted_tasks)} tasks, earned {c.earned} base units" for c in card.contributors
    ]
    lines += ["", "## Slashed", ""]
    lines += [
        f"- task {s.task_id}: `{s.volunteer}` lost {format_amount(s.amount)} tokens of stake (block {s.block})"
        for s in card.slashes
    ]
    if not card.slashes:
        lines.append("- nobody")
    a = card.audit
    lines += [
        "",
        f"## Audit (block {a.block})",
        "",
        f"{a.commits} commits ({a.accepted} accepted, {a.slashed} slashed): {a.proof_problems_accepted} proof problems "
        f"in accepted commits ({a.proof_problems_slashed} in slashed ones); {a.replays} commits replayed "
        f"independently, {a.disagreements} verdicts contradicted, {a.unchecked_cheats} unchecked cheats found; "
        + ("shards, holdout and starting model recomputed from the spec." if not a.data_problems else "DATA: ")
        + "; ".join(a.data_problems),
        "",
    ]
    return "\n".join(lines)
