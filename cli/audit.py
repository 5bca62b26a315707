"""`shardwork audit bounty ID | task ID | node ADDRESS`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import DeploymentOpt, JsonOpt, RpcOpt, cli_app, emit_json, open_session, parse_address

if TYPE_CHECKING:
    from protocol.manifests import TraceManifest

audit_app = cli_app(
    help="Read the on-chain trail, check Merkle proofs against the content store, replay segments independently. "
    "Exit code 3 when the audit finds a problem.",
    no_args_is_help=True,
)
ReplayOpt = Annotated[
    int,
    typer.Option(
        "--replay", help="Independently replay up to N committed segments (the ones the chain sampled).", min=0
    ),
]
SeedOpt = Annotated[int | None, typer.Option(help="Seed of the replay sample (default: random).")]
FINDINGS_EXIT = 3


def _run(
    bounty_id: int | None,
    task_id: int | None,
    account: str | None,
    rpc_url: str | None,
    deployment: Path | None,
    replay: int,
    seed: int | None,
    as_json: bool,
) -> None:
    from cli.common import fail_on_user_errors

    with fail_on_user_errors(as_json):
        from content.ipfs import open_store
        from judge.audit import audit
        from judge.context import ChainView
        from ledger.amounts import format_amount
        from ledger.index import EventIndex
        from ledger.market import BountyStatus
        from protocol.errors import ShardworkError

        session = open_session(rpc_url, deployment)
        if bounty_id is not None and session.market.bounty(bounty_id).status == BountyStatus.NONE:
            raise ShardworkError(f"bounty {bounty_id} does not exist: see `shardwork bounty list`")
        index = EventIndex(session.settings.index, session.market)
        view = ChainView(session.market, open_store(session.settings.store))
        report = audit(index, view, bounty_id=bounty_id, task_id=task_id, account=account, replay=replay, seed=seed)
        if task_id is not None and not report.events:
            raise ShardworkError(f"task {task_id:#x} has no history: it was never claimed, or does not exist")
        if as_json:
            emit_json(report.as_dict())
        else:
            typer.echo(f"audit of {report.subject}: {len(report.events)} events, {len(report.commits)} commits")
            for e in report.events:
                if e.name in (
                    "TaskCommitted",
                    "VerdictAttested",
                    "TaskDisputed",
                    "TaskAccepted",
                    "TaskSlashed",
                    "RewardCredited",
                    "LeaseExpired",
                    "RoundClosed",
                    "BountyFinalized",
                    "EscrowRefunded",
                ):
                    detail = ", ".join(
                        f"{k}={format_amount(v) if k in ('amount', 'reward') else v}"
                        for k, v in e.args.items()
                        if k not in ("traceCid", "updateCid", "updateHash")
                    )
                    typer.echo(f"  block {e.block:>6}  {e.name:<16} {detail}")
            for c in report.commits:
                state = "proofs ok" if not c.proof_problems else "; ".join(c.proof_problems[:2])
                typer.echo(
                    f"  commit task {c.task_id:#x} attempt {c.attempt} by {c.volunteer}: {c.outcome}, "
                    f"verdicts {c.verdicts or '-'}; {state}{_numerics(c.trace)}"
                )
            for r in report.replays:
                mark = (
                    "inconclusive (another numeric class)"
                    if r.inconclusive
                    else "agrees"
                    if r.agrees
                    else "DISAGREES"
                    if r.checked
                    else "UNCHECKED CHEAT"
                )
                typer.echo(
                    f"  replay task {r.task_id:#x} attempt {r.attempt} segments {r.segments}: "
                    f"{'fail ' + str(r.failed) if r.failed else 'pass'} vs on-chain {r.outcome}: {mark}"
                )
            for problem in report.data_problems:
                typer.echo(f"  DATA: {problem}")
            typer.echo(
                f"{report.proof_problems} proof problems, {len(report.replays)} replays, "
                f"{len(report.data_problems)} data problems, "
                f"{report.disagreements} disagreements, {report.unchecked_cheats} unchecked cheats"
            )
        if report.findings:
            raise typer.Exit(FINDINGS_EXIT)


def _numerics(trace: TraceManifest | None) -> str:
    """The commit's numeric class, as its trace manifest records it (torch, kernels, pins, fingerprint)."""
    if trace is None:
        return ""
    n = trace.numerics
    return f"; numerics torch {n.torch} {n.machine} {n.kernels} {n.profile}, class {n.fingerprint[:10]}…"


@audit_app.command("bounty")
def audit_bounty(
    bounty_id: int,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    replay: ReplayOpt = 0,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every commit, challenge, verdict, payment and slash of a bounty."""
    _run(bounty_id, None, None, rpc_url, deployment, replay, seed, as_json)


@audit_app.command("task")
def audit_task(
    task_id: Annotated[str, typer.Argument(help="Task: bounty.round.shard (1.0.3), or its number, decimal or 0x-hex.")],
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    replay: ReplayOpt = 0,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One task's attempts and what became of each."""
    from cli.common import fail_on_user_errors
    from ledger.market import parse_task_id

    with fail_on_user_errors(as_json):
        parsed = parse_task_id(task_id)
    _run(None, parsed, None, rpc_url, deployment, replay, seed, as_json)


@audit_app.command("node")
def audit_node(
    address: str,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    replay: ReplayOpt = 0,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything one account did: claims, commits, verdicts, rewards, slashes."""
    from cli.common import fail_on_user_errors

    with fail_on_user_errors(as_json):
        checked = parse_address(address)
    _run(None, None, checked, rpc_url, deployment, replay, seed, as_json)


@audit_app.command("index")
def audit_index(rpc_url: RpcOpt = None, deployment: DeploymentOpt = None, as_json: JsonOpt = False) -> None:
    """Sync the local event index and re-read every indexed block from the chain to prove it matches."""
    from cli.common import fail_on_user_errors

    with fail_on_user_errors(as_json):
        from ledger.index import EventIndex

        session = open_session(rpc_url, deployment)
        index = EventIndex(session.settings.index, session.market)
        added = index.sync()
        problems = index.revalidate()
        if as_json:
            emit_json({"added": added, "synced_to": index.synced_to, "problems": problems})
        else:
            typer.echo(
                f"index {session.settings.index}: +{added} events, synced to block {index.synced_to}; "
                f"{'matches the chain' if not problems else f'{len(problems)} differences'}"
            )
            for p in problems[:20]:
                typer.echo(f"  {p}")
        if problems:
            raise typer.Exit(FINDINGS_EXIT)
