"""The referee's review of a failed check: does the commit a FAIL quorum voted down hold after all?

A vote carries no proof, and a committee can be wrong (another numeric class, content it could not fetch) or
lie, so a FAIL quorum does not slash: it hands the commit to the referee (contract `ReviewOpened`), who runs
the same checks the committee ran (judge.commit: the audit, then the sampled segments' replays) and rules.
Content the referee cannot fetch is asked for again for its patience (the coordinator's trace timeout, at most
half the review, so that half is left to replay): only then does it count against the volunteer. Everything a
ruling needs is fetched before anything is replayed, so a volunteer holding back one checkpoint costs the
referee downloads, not replays, until its patience runs out.
"""

from __future__ import annotations

from judge.commit import CommitAudit, audit_commit, replay_segments
from judge.context import ChainView
from judge.game import StretchVerdict
from ledger.market import Game, Task
from protocol.errors import ContentMissing
from protocol.verify import checkpoint_limit, needs_end


def review_verdict(
    view: ChainView, task: Task, game: Game, now: int, review_window: int, patience_s: int
) -> StretchVerdict:
    """Whether the reviewed commit holds (`follows`), as StretchVerdict says it for one step of a game. The review
    opened `review_window` seconds before its deadline; missing content is waited for `patience_s` from then."""
    audit = audit_commit(view, task.task_id, task)
    if not audit.ok and not audit.missing:
        return StretchVerdict(False, "; ".join(audit.problems)[:300])
    segments: list[int] = []
    missing = "; ".join(audit.problems) if audit.missing else None
    if missing is None:
        _, segments = view.market.challenge(task.task_id)
        missing = _unfetchable(view, audit, segments)
    if missing is not None:
        if now < game.deadline - review_window + min(patience_s, review_window // 2):
            return StretchVerdict(False, missing[:300], unavailable=True)
        return StretchVerdict(False, f"still unavailable after the referee's patience: {missing}"[:300])
    verdicts = replay_segments(view, audit, segments)
    failed = [v for v in verdicts if v.failed]
    if failed:
        return StretchVerdict(False, "; ".join(f"segment {v.segment}: {v.reason}" for v in failed)[:300])
    abstained = [v for v in verdicts if v.abstained]
    if abstained:
        # Another numeric class than the volunteer's, and nothing measured tells an honest difference from a cheat.
        return StretchVerdict(False, abstained[0].reason[:300], undecided=True)
    return StretchVerdict(True, f"audit passed and segments {segments} replayed")


def _unfetchable(view: ChainView, audit: CommitAudit, segments: list[int]) -> str | None:
    """Why a checkpoint the sampled segments' replays need cannot be fetched now; None when all can (malformed
    content is left to the replay, which fails it)."""
    trace = audit.trace
    assert trace is not None
    ctx = view.round_of_task(audit.task_id)
    limit = checkpoint_limit(ctx.spec, ctx.workload)
    ends = needs_end(ctx.spec, trace)
    for segment in segments:
        for index in (segment, segment + 1) if ends else (segment,):
            if index == 0 or index >= len(trace.checkpoints):
                continue  # checkpoint 0 is built by the referee itself (judge.commit.replay_segments)
            try:
                view.store.get_buffer(trace.checkpoints[index].cid, limit)
            except ContentMissing as exc:
                return f"checkpoint {index} unavailable: {exc}"[:300]
    return None
