"""The auditor: rebuilds a bounty's on-chain trail from the event index, checks every commitment's trace
against the content store, and independently replays sampled segments with the verifiers' own code.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from content.inputs import load_inputs
from judge.commit import CommitAudit, audit_recorded, replay_segments
from judge.context import MAX_MANIFEST_READ, ChainView, Commit, RoundContext
from judge.draw import sampled
from judge.improvement import SCORE_AGREEMENT, RoundUpdates, round_updates, worse
from ledger.index import Event, EventIndex
from protocol.aggregate import aggregate
from protocol.cid import b58decode, cid_of
from protocol.errors import ContentError
from protocol.manifests import RoundManifest, TraceManifest, trace_manifest_limit
from protocol.merkle import merkle_proof, verify_proof
from protocol.spec import SpecError
from protocol.tensors import to_bytes

OUTCOMES = ("TaskAccepted", "TaskSlashed", "LeaseExpired")


@dataclass
class CommitRecord:
    task_id: int
    attempt: int
    volunteer: str
    block: int
    trace_root: str
    trace_cid: str
    outcome: str  # accepted | slashed | pending
    verdicts: list[bool] = field(default_factory=list)
    disputed_segment: int | None = None
    drawn_seed: bytes | None = None  # recorded on-chain by drawChallenge for this attempt
    first_verdict_block: int | None = None  # where the contract decided the task was checked
    proof_problems: list[str] = field(default_factory=list)
    trace: TraceManifest | None = None
    update_cid: str = ""
    update_hash: str = ""  # 0x-hex, as the event index keeps it


@dataclass
class Replay:
    """The auditor's replay of one commit, against what the chain decided about it. A checked commit agrees
    when the replay reaches the verifiers' verdict; an unchecked one that fails is a cheat the sampling let
    through (a finding, but not a wrong verdict: nobody was asked to check it)."""

    task_id: int
    attempt: int
    volunteer: str
    checked: bool
    segments: list[int]
    failed: list[int]
    reason: str
    outcome: str
    agrees: bool
    # The auditor's numeric class is not the volunteer's and the round gave no cross-class tolerance: its replay
    # can neither confirm nor contradict the chain, so it counts as neither agreement nor finding.
    inconclusive: bool = False

    @classmethod
    def of(
        cls,
        record: CommitRecord,
        checked: bool,
        segments: list[int],
        failed: list[int],
        reason: str,
        agrees: bool,
        inconclusive: bool = False,
    ) -> Replay:
        return cls(
            record.task_id,
            record.attempt,
            record.volunteer,
            checked,
            segments,
            failed,
            reason,
            record.outcome,
            agrees,
            inconclusive,
        )


@dataclass
class AuditReport:
    subject: str
    commits: list[CommitRecord]
    events: list[Event]
    replays: list[Replay]
    # What the coordinator published that the auditor does not recompute: shards, holdout, round models.
    data_problems: list[str] = field(default_factory=list)

    @property
    def proof_problems(self) -> int:
        return sum(len(c.proof_problems) for c in self.commits)

    @property
    def disagreements(self) -> int:
        """Checked commits whose on-chain verdict the auditor's replay contradicts."""
        return sum(r.checked and not r.agrees and not r.inconclusive for r in self.replays)

    @property
    def unchecked_cheats(self) -> int:
        """Unchecked, accepted commits whose replay fails."""
        return sum(not r.checked and not r.agrees and not r.inconclusive for r in self.replays)

    @property
    def findings(self) -> int:
        """What makes an audit fail. A proof problem alone is not one: a slashed commit may rightly have them."""
        return self.disagreements + self.unchecked_cheats + len(self.data_problems)

    def as_dict(self) -> dict[str, Any]:
        commits = [
            {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in asdict(c).items() if k != "trace"}
            | {"numerics": c.trace.numerics.model_dump() if c.trace else None}
            for c in self.commits
        ]
        return {
            "subject": self.subject,
            "commits": commits,
            "replays": [asdict(r) for r in self.replays],
            "proof_problems": self.proof_problems,
            "disagreements": self.disagreements,
            "unchecked_cheats": self.unchecked_cheats,
            "data_problems": self.data_problems,
            "events": [{"block": e.block, "name": e.name, "args": e.args} for e in self.events],
        }


def commits_of(events: list[Event]) -> list[CommitRecord]:
    """One record per commit, each with the outcome and attestations that followed it (events are ordered)."""
    records: list[CommitRecord] = []
    open_by_task: dict[int, CommitRecord] = {}
    attempts: dict[int, int] = {}
    for e in events:
        task_id = int(e.args["taskId"]) if "taskId" in e.args else None
        if task_id is None:
            continue
        if e.name == "TaskClaimed":
            attempts[task_id] = int(e.args["attempt"])
        elif e.name == "TaskCommitted":
            record = CommitRecord(
                task_id,
                attempts.get(task_id, 0),
                e.args["volunteer"],
                e.block,
                e.args["traceRoot"],
                e.args["traceCid"],
                "pending",
                update_cid=str(e.args["updateCid"]),
                update_hash=str(e.args["updateHash"]),
            )
            records.append(record)
            open_by_task[task_id] = record
        elif task_id in open_by_task:
            record = open_by_task[task_id]
            if e.name == "VerdictAttested":
                record.verdicts.append(bool(e.args["passed"]))
                if record.first_verdict_block is None:
                    record.first_verdict_block = e.block
            elif e.name == "ChallengeDrawn" and int(e.args["attempt"]) == record.attempt:
                record.drawn_seed = bytes.fromhex(str(e.args["seed"])[2:])
            elif e.name == "TaskDisputed":
                record.disputed_segment = int(e.args["segment"])
            elif e.name in OUTCOMES:
                record.outcome = {"TaskAccepted": "accepted", "TaskSlashed": "slashed"}.get(e.name, "expired")
                del open_by_task[task_id]
    return records


def check_proofs(view: ChainView, record: CommitRecord) -> None:
    """Trace manifest retrievable and bound to the committed root; every leaf proves into the root; every
    checkpoint's committed hash is the digest its CID names."""
    spec = view.round_of_task(record.task_id).spec  # an unusable round is no finding about the volunteer
    trace_max = trace_manifest_limit(spec.steps_per_task, spec.segments)
    try:
        trace = TraceManifest.parse(view.store.get(record.trace_cid, max_bytes=trace_max), trace_max)
    except ContentError as exc:
        record.proof_problems.append(f"trace unavailable: {exc}")
        return
    record.trace = trace
    root = bytes.fromhex(record.trace_root[2:])
    if trace.trace_root() != root:
        record.proof_problems.append("trace manifest does not hash to the committed root")
        return
    leaves = trace.leaves()
    for i, ref in enumerate(trace.checkpoints):
        if not verify_proof(merkle_proof(leaves, i), root, leaves[i]):
            record.proof_problems.append(f"leaf {i}: Merkle proof fails")
        if b58decode(ref.cid)[2:].hex() != ref.hash[2:]:
            record.proof_problems.append(f"checkpoint {i}: CID {ref.cid} does not carry the committed hash")


def drawn_segments(view: ChainView, record: CommitRecord) -> list[int]:
    """The segments the contract sampled for this commit, from chain history (judge.draw: the recorded seed,
    else the live one where the first verdict was attested, else every segment), plus a disputed one."""
    raw = view.market.bounty(record.task_id >> 64).raw
    draw_block_hash = bytes(view.market.w3.eth.get_block(record.block + 1)["hash"])
    drawn = sampled(
        task_id=record.task_id,
        attempt=record.attempt,
        commit_block=record.block,
        segments=int(raw["segmentsPerTask"]),
        picks=int(raw["segmentsPerCheck"]),
        draw_block_hash=draw_block_hash,
        recorded=record.drawn_seed,
        decided_at=record.first_verdict_block,
        disputed=record.disputed_segment,
    )
    return list(drawn.segments)


@dataclass
class _Rechecked:
    failed: list[int]  # sampled segments whose replay failed
    abstained: list[int]
    broken: bool  # what the committee reads is wrong: the trace (and, in a disputed commit, the end and update)
    end_problems: list[str]  # what only the full audit reads is wrong, where the committee did not read it
    reason: str


def _replay(view: ChainView, record: CommitRecord, segments: list[int]) -> _Rechecked:
    """What the verifiers ran on this commit (judge.commit): the audit (the trace; the last checkpoint and the
    update made of it too where the commit was disputed, as verifiers audit a disputed commit), which fails a
    commit by itself, then the replay of its sampled segments against its committed root (the last one's
    includes the update's derivation). The full audit's findings about the end outside that are kept apart."""
    commit = Commit(
        record.task_id,
        record.attempt,
        record.volunteer,
        record.block,
        bytes.fromhex(record.trace_root[2:]),
        bytes.fromhex(record.update_hash[2:]),
        record.trace_cid,
        record.update_cid,
    )
    structure = audit_recorded(view, commit)
    verdicts = replay_segments(view, CommitAudit(record.task_id, trace=record.trace, commit=commit), segments)
    failed = [v.segment for v in verdicts if v.failed]
    abstained = [v.segment for v in verdicts if v.abstained]
    committee_read = not structure.past_trace or record.disputed_segment is not None
    reasons = [*structure.problems, *(f"segment {v.segment}: {v.reason}" for v in verdicts if not v.passed)]
    return _Rechecked(
        failed,
        abstained,
        bool(structure.problems) and committee_read,
        [] if committee_read else structure.problems,
        "; ".join(reasons) or "every replayed segment reproduced its checkpoint",
    )


def replay_sample(view: ChainView, records: list[CommitRecord], budget: int, rng: random.Random) -> list[Replay]:
    """Replays commits in random order until `budget` segments are spent. A checked commit (verdicts or a
    slash) replays the segments the chain sampled, so the auditor re-decides exactly what the verifiers
    decided; an unchecked one replays a random segment, to catch cheats that went unchecked."""
    replays: list[Replay] = []
    for record in rng.sample(records, len(records)):
        if budget <= 0:
            break
        if record.outcome not in ("accepted", "slashed"):
            continue
        checked = bool(record.verdicts) or record.outcome == "slashed"
        if record.trace is None or record.proof_problems:
            # Nothing verifiable was published: only a slash agrees with that.
            reason, agrees = "trace unavailable or inconsistent", record.outcome == "slashed"
            replays.append(Replay.of(record, checked, [], [], reason, agrees))
            continue
        n_segments = len(record.trace.checkpoints) - 1
        segments = drawn_segments(view, record) if checked else [rng.randrange(n_segments)]
        if len(segments) > budget:
            break  # a partial re-check of a verdict would prove nothing either way
        budget -= len(segments)
        found = _replay(view, record, segments)
        if not checked:  # nobody was asked: anything wrong with it is a cheat the sampling let through
            found.broken, found.end_problems = found.broken or bool(found.end_problems), []
        rejected = bool(found.failed) or found.broken
        agrees = rejected if record.outcome == "slashed" else not rejected
        inconclusive = bool(found.abstained) and not rejected
        replays.append(Replay.of(record, checked, segments, found.failed, found.reason, agrees, inconclusive))
        if found.end_problems and record.outcome != "slashed":
            # The committee read the trace and its sample; the end went unread (undisputed): an unchecked finding.
            reason = "; ".join(found.end_problems)
            replays.append(Replay.of(record, False, [], [], f"outside the committee's checks: {reason}", False))
    return replays


def audit(
    index: EventIndex,
    view: ChainView,
    *,
    bounty_id: int | None = None,
    task_id: int | None = None,
    account: str | None = None,
    replay: int = 0,
    seed: int | None = None,
) -> AuditReport:
    index.sync()
    if task_id is not None:
        events, subject = index.events(task_id=task_id), f"task {task_id:#x}"
    elif bounty_id is not None:
        events, subject = index.events(bounty_id=bounty_id), f"bounty {bounty_id}"
    else:
        assert account is not None
        events, subject = index.events(account=account), f"node {account}"
    task_events = events
    if account is not None:  # a node's commits: follow each of its tasks' full history
        task_ids = {int(e.args["taskId"]) for e in events if "taskId" in e.args}
        task_events = sorted(
            (e for t in task_ids for e in index.events(task_id=t)), key=lambda e: (e.block, e.log_index)
        )
    records = commits_of(task_events)
    if account is not None:
        records = [r for r in records if r.volunteer.lower() == account.lower()]
    for record in records:
        check_proofs(view, record)
    replays = replay_sample(view, records, replay, random.Random(seed))
    published = []
    if bounty_id is not None:
        published = check_data(view, bounty_id) + check_aggregates(view, bounty_id, events)
    return AuditReport(subject, records, events, replays, published)


def check_aggregates(view: ChainView, bounty_id: int, events: list[Event]) -> list[str]:
    """Recomputes each closed round's aggregate from the round's model and its accepted updates (the ones the
    coordinator could use: audit_commit's, in shard order, as rounds.try_close_round takes them) with the
    spec's aggregation; the next round's model must be exactly that. A mismatch is a finding: the model was
    not made of the work the chain paid for."""
    opened = {r.round: r for r in view.market.opened_rounds(bounty_id=bounty_id)}
    following = {r: view.load(opened[r + 1]).manifest for r in opened if r + 1 in opened}
    final = next((e.args["finalModelCid"] for e in events if e.name == "BountyFinalized"), None)
    if final is not None and opened:
        following[max(opened)] = RoundManifest.parse(view.store.get(final, max_bytes=MAX_MANIFEST_READ))
    problems = []
    for round_, manifest in sorted(following.items()):
        ctx = view.load(opened[round_])
        selected = round_updates(view, ctx)
        problems += _score_problems(ctx, selected, manifest)
        # A manifest from before scores were published used every usable update.
        updates = (
            selected.chosen_by(manifest.update_scores) if manifest.update_scores else list(selected.updates.values())
        )
        combined = aggregate(view.round_weights(ctx), updates, ctx.spec.aggregation, view.velocity(ctx))
        velocity = None if combined.velocity is None else cid_of(to_bytes(combined.velocity))
        if cid_of(to_bytes(combined.weights)) != manifest.model_cid or velocity != manifest.outer_velocity_cid:
            problems.append(
                f"round {round_ + 1}'s model {manifest.model_cid} is not what round {round_}'s model and its "
                f"{len(updates)} accepted updates make under the spec's aggregation"
            )
        problems += carried_problems(ctx, selected, manifest)
    return problems


def carried_problems(ctx: RoundContext, selected: RoundUpdates, manifest: RoundManifest) -> list[str]:
    """The optimizer states a manifest says each shard's next task starts from must be the end states of the
    shard's used updates, and the compression errors it names those updates' leftovers (none of either after the
    last round: no task starts from them)."""
    last = manifest.round == ctx.spec.rounds
    carried = None if last else selected.carried(ctx, manifest.update_scores or None)
    expected = list(carried or [])
    published = [None if s is None else (s.cid, s.steps) for s in manifest.inner_states]
    problems = []
    if expected != published:
        problems.append(
            f"round {manifest.round}'s manifest names optimizer states its shards did not end round "
            f"{ctx.opened.round} with ({sum(p is not None for p in published)} published, "
            f"{sum(e is not None for e in expected)} expected)"
        )
    errors = None if last else selected.errors_carried(ctx, manifest.update_scores or None)
    if list(errors or []) != manifest.update_errors:
        problems.append(
            f"round {manifest.round}'s manifest names compression errors its shards' used updates of round "
            f"{ctx.opened.round} did not leave"
        )
    return problems


def _score_problems(ctx: RoundContext, selected: RoundUpdates, manifest: RoundManifest) -> list[str]:
    """Each published score must be ours (within SCORE_AGREEMENT: the coordinator may compute in another
    numeric class), cover every usable update, and its `used` flag follow the spec's rule on the published
    score."""
    if not manifest.update_scores:
        return []
    where = f"round {ctx.opened.round + 1}'s manifest"
    published = {s.task_id: s for s in manifest.update_scores}
    problems = []
    for ours in selected.scores:
        theirs = published.get(ours.task_id)
        if theirs is None or theirs.attempt != ours.attempt:
            problems.append(f"{where} publishes no score for task {ours.task_id:#x}'s accepted update")
        elif abs(theirs.score - ours.score) > SCORE_AGREEMENT * max(1.0, abs(ours.score)):
            problems.append(
                f"{where} scores task {ours.task_id:#x}'s update {theirs.score:.6g}; it scores {ours.score:.6g}"
            )
        elif theirs.used == worse(theirs.score, selected.base, ctx.workload.higher_is_better, ctx.spec.aggregation):
            problems.append(
                f"{where} {'used' if theirs.used else 'left out'} task {ours.task_id:#x}'s update against the spec's rule"
            )
    return problems


def check_data(view: ChainView, bounty_id: int) -> list[str]:
    """Recomputes what intake published from the spec and the dataset and base model it names: every round's
    shard and holdout CIDs and round 0's model. A manifest naming anything else is a finding: volunteers
    would have trained on, or been scored against, data the poster never asked for."""
    opened = view.market.opened_rounds(bounty_id=bounty_id)
    if not opened:
        return []  # intake never opened the bounty: nothing was published
    try:
        first = view.load(next(r for r in opened if r.round == 0))
        inputs = load_inputs(first.spec, view.store)
    except (ContentError, SpecError) as exc:
        return [f"the spec's data cannot be recomputed: {exc}"]
    shard_cids = [cid_of(to_bytes(shard)) for shard in inputs.shards]
    holdout_cid = cid_of(to_bytes(inputs.holdout))
    problems = []
    if first.manifest.model_cid != cid_of(to_bytes(inputs.weights)):
        problems.append(f"round 0's model {first.manifest.model_cid} is not the spec's starting model")
    for r in opened:
        manifest = view.load(r).manifest
        if manifest.shard_cids != shard_cids:
            problems.append(f"round {r.round} names other shards than the spec's data splits into")
        if manifest.holdout_cid != holdout_cid:
            problems.append(f"round {r.round} names another holdout than the spec's data splits into")
    return problems
