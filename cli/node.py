"""`shardwork node …`: the volunteer daemon's command line (heavy imports happen inside the command)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DeploymentOpt, JsonOpt, RpcOpt, StoreOpt, cli_app, emit_json

node_app = cli_app(
    help="Run a volunteer node: claim tasks, train them with a proof-of-learning trace, commit.", no_args_is_help=True
)


@node_app.command("run")
def node_run(
    keystore: Annotated[
        Path | None, typer.Option(help="Keystore of the volunteer's wallet (stake must already be bonded).")
    ] = None,
    wallet: Annotated[
        str | None, typer.Option("--wallet", "-w", help="The volunteer's wallet by name (instead of --keystore).")
    ] = None,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: Annotated[
        Path | None, typer.Option(help="File holding the keystore password (else $SHARDWORK_PASSWORD, else a prompt).")
    ] = None,
    store: StoreOpt = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where training journals live (default <home>/node-<address>).")
    ] = None,
    family: Annotated[
        list[str] | None, typer.Option(help="Model families this node trains (repeatable; default all).")
    ] = None,
    bounty: Annotated[
        list[int] | None, typer.Option(help="Only work on these bounty ids (repeatable; default any).")
    ] = None,
    max_tasks: Annotated[int | None, typer.Option(help="Exit after committing this many tasks.", min=1)] = None,
    once: Annotated[bool, typer.Option(help="Take what is open now, then exit instead of waiting for more.")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between looks at the chain when idle.", min=0.1)] = 2.0,
    auto_claim: Annotated[bool, typer.Option(help="Pull credited rewards to the wallet as they arrive.")] = False,
    max_memory_mb: Annotated[
        int | None, typer.Option(help="Skip bounties whose estimated training memory exceeds this (MiB).", min=1)
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /health and /metrics on 127.0.0.1 at this port (0: any free port).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar (logs only).")] = False,
    duty_cycle: Annotated[
        float,
        typer.Option(
            help="Fraction of the time spent training: 0.5 rests as long as each step took (threads are the spec's).",
            min=0.01,
            max=1.0,
        ),
    ] = 1.0,
    hours: Annotated[
        str | None,
        typer.Option(help="Claim new tasks only in these hours of local time, e.g. 22-7 (a task under way finishes)."),
    ] = None,
    nice: Annotated[
        int, typer.Option(help="Run at this niceness: other programs get the CPU first.", min=0, max=19)
    ] = 0,
    pause_when_busy: Annotated[
        float | None,
        typer.Option(
            metavar="PCT",
            help="Hold training and claim nothing while other programs use over PCT% of the machine's CPU (all "
            "cores); a task in hand trains on when its lease needs the rest of its time.",
            min=0,
            max=99,
        ),
    ] = None,
    max_disk: Annotated[
        float | None,
        typer.Option(
            metavar="GB",
            help="Keep the node's content under this many GB: claim no task whose trace would not fit, and free "
            "each trace's checkpoints once its round has closed (nobody can check it any more).",
            min=0.001,
        ),
    ] = None,
    max_upload: Annotated[
        float | None,
        typer.Option(
            metavar="GB",
            help="Claim nothing new while the node's IPFS daemon sent over this many GB in the last 24 hours "
            "(committed traces are always served: withholding one would cost the stake).",
            min=0.001,
        ),
    ] = None,
    carry_patience: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="How long to wait for a shard's carried optimizer state (held by the shard's previous volunteer) "
            "before training the task from a fresh optimizer instead; the trace says so, and it is judged as such.",
            min=0,
        ),
    ] = 600.0,
) -> None:
    """Run until stopped (Ctrl-C or SIGTERM stop between steps; a restart resumes from the last checkpoint).

    `shardwork node pause` holds a running node between two steps (and claims nothing new) until
    `shardwork node resume`; games over earlier commits are still answered while paused. --pause-when-busy does
    the same by itself while other programs load the machine. --max-disk and --max-upload cap what the node keeps
    and sends (node/caps.py); a bounty whose task this machine could not finish within its lease is skipped.

    Logs are JSON lines on stderr. Example:

        SHARDWORK_PASSWORD=… shardwork node run --keystore alice.json --rpc-url http://127.0.0.1:8545

    --rpc-url, --deployment and --store fall back to SHARDWORK_RPC_URL, SHARDWORK_DEPLOYMENT, SHARDWORK_STORE,
    then to $SHARDWORK_HOME/config.toml.
    """
    from cli.common import fail_on_user_errors

    with fail_on_user_errors():
        _run(
            _keystore_of(keystore, wallet),
            rpc_url,
            deployment,
            password_file,
            store,
            work_dir,
            family,
            bounty,
            max_tasks,
            once,
            poll_interval,
            auto_claim,
            max_memory_mb,
            metrics_port,
            quiet,
            (duty_cycle, hours, nice, pause_when_busy),
            (max_disk, max_upload),
            carry_patience,
        )


def _run(
    keystore: Path,
    rpc_url: str | None,
    deployment_path: Path | None,
    password_file: Path | None,
    store_dir: str | None,
    work_dir: Path | None,
    families: list[str] | None,
    bounties: list[int] | None,
    max_tasks: int | None,
    once: bool,
    poll_interval: float,
    auto_claim: bool,
    max_memory_mb: int | None,
    metrics_port: int | None,
    quiet: bool,
    preferences: tuple[float, str | None, int, float | None],
    caps_gb: tuple[float | None, float | None],
    carry_patience_s: float,
) -> None:
    from node.preflight import check_cpu

    check_cpu()  # before anything here loads torch: an unsupported CPU is one line, not a crash

    from node.controls import Hours

    duty_cycle, hours_text, nice, busy_above_pct = preferences
    try:
        hours = Hours.parse(hours_text) if hours_text is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--hours") from None
    if nice:
        os.nice(nice)

    from config.settings import load_settings
    from content.ipfs import open_store
    from ledger.chain import connect
    from ledger.deploy import Deployment
    from ledger.market import Market
    from ledger.tx import Transactor
    from ledger.wallet import load_account, read_password
    from node.caps import GB, Caps
    from node.daemon import NodeDaemon, NodeOptions
    from protocol.errors import ShardworkError
    from protocol.workloads import REGISTRY
    from telemetry.health import HealthServer
    from telemetry.logs import json_logger, log

    settings = load_settings(rpc_url=rpc_url, deployment=deployment_path, store=store_dir)
    unknown = sorted(set(families or []) - set(REGISTRY))
    if unknown:
        raise ShardworkError(
            f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {sorted(REGISTRY)}"
        )
    if not settings.deployment.is_file():
        raise ShardworkError(
            f"no deployment manifest at {settings.deployment}: run `shardwork chain deploy` or pass --deployment"
        )
    account = load_account(keystore, read_password(password_file))
    address = account.address
    w3 = connect(settings.rpc_url)
    market = Market(w3, Deployment.load(settings.deployment), Transactor(w3, account))
    options = NodeOptions(
        work_dir=work_dir or _default_dir(address),
        families=frozenset(families or REGISTRY),
        max_tasks=max_tasks,
        once=once,
        poll_interval_s=poll_interval,
        auto_claim_rewards=auto_claim,
        max_memory_mb=max_memory_mb,
        bounties=frozenset(bounties) if bounties else None,
        duty_cycle=duty_cycle,
        hours=hours,
        busy_above_pct=busy_above_pct,
        caps=Caps(
            max_disk_bytes=None if caps_gb[0] is None else int(caps_gb[0] * GB),
            max_upload_bytes_per_day=None if caps_gb[1] is None else int(caps_gb[1] * GB),
        ),
        carry_patience_s=carry_patience_s,
    )
    logger = json_logger(f"shardwork.node.{address[:10]}")
    progress, on_progress = _progress_bar(quiet)
    daemon = NodeDaemon(market, open_store(settings.store), options, logger, on_progress=on_progress)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: daemon.stop())
    server = None
    if metrics_port is not None:
        server = HealthServer(metrics_port, daemon.metrics.registry, daemon.status.as_dict)
        log(logger, "serving /health and /metrics", url=f"http://127.0.0.1:{server.port}")
    try:
        if progress is not None:
            with progress:
                daemon.run()
        else:
            daemon.run()
    finally:
        if server is not None:
            server.close()


def _progress_bar(quiet: bool) -> tuple[Any, Any]:
    import sys

    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} steps/s"),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    bars: dict[str, Any] = {}
    started: dict[str, float] = {}

    def on_progress(name: str, done: int, total: int, loss: float) -> None:
        import time

        if name not in bars:
            bars[name] = progress.add_task(name, total=total, rate="-", loss="-")
            started[name] = time.monotonic() - 1e-9
        rate = done / (time.monotonic() - started[name])
        progress.update(bars[name], completed=done, rate=f"{rate:.1f}", loss=f"{loss:.4f}")

    return progress, on_progress


WorkDirOpt = Annotated[Path | None, typer.Option(help="The node's work directory (default <home>/node-<address>).")]
NodeWalletOpt = Annotated[str | None, typer.Option("--wallet", "-w", help="The node's wallet by name.")]
NodeKeystoreOpt = Annotated[
    Path | None, typer.Option(help="The node's keystore: its address names the default work directory.")
]


def _keystore_of(keystore: Path | None, wallet: str | None) -> Path:
    from cli.common import wallet_path
    from config.settings import load_settings
    from protocol.errors import ShardworkError

    if (keystore is None) == (wallet is None):
        raise ShardworkError("name the volunteer's wallet: --keystore PATH or --wallet NAME (one of them)")
    return keystore if keystore is not None else wallet_path(load_settings().wallets, str(wallet))


def _node_dir(keystore: Path | None, work_dir: Path | None, wallet: str | None = None) -> Path:
    from ledger.wallet import recorded_address
    from protocol.errors import ShardworkError

    if work_dir is not None:
        return work_dir
    if keystore is None and wallet is None:
        raise ShardworkError("name the node: --wallet or --keystore (as given to `node run`), or --work-dir")
    keystore = _keystore_of(keystore, wallet)
    address = recorded_address(keystore)
    if address is None:
        raise ShardworkError(f"{keystore} records no address: pass the node's --work-dir")
    return _default_dir(address)


@node_app.command("pause")
def node_pause(keystore: NodeKeystoreOpt = None, wallet: NodeWalletOpt = None, work_dir: WorkDirOpt = None) -> None:
    """Pause a running node: it claims nothing and holds its training between two steps until `node resume`.
    It still answers games over its earlier commits. A held task's lease keeps running."""
    from cli.common import fail_on_user_errors
    from node.controls import pause

    with fail_on_user_errors():
        directory = _node_dir(keystore, work_dir, wallet)
        if not directory.is_dir():
            from protocol.errors import ShardworkError

            raise ShardworkError(f"no node work directory at {directory}: has `node run` been started with it?")
        pause(directory, reason="shardwork node pause")
        typer.echo(f"paused the node at {directory} (takes effect after its current step); `node resume` undoes it")


@node_app.command("resume")
def node_resume(keystore: NodeKeystoreOpt = None, wallet: NodeWalletOpt = None, work_dir: WorkDirOpt = None) -> None:
    """Resume a paused node."""
    from cli.common import fail_on_user_errors
    from node.controls import resume

    with fail_on_user_errors():
        directory = _node_dir(keystore, work_dir, wallet)
        typer.echo(
            f"resumed the node at {directory}" if resume(directory) else f"the node at {directory} was not paused"
        )


@node_app.command("status")
def node_status(
    who: Annotated[
        str | None, typer.Argument(help="The volunteer's address; default: --keystore's or --wallet's.")
    ] = None,
    keystore: NodeKeystoreOpt = None,
    wallet: Annotated[str | None, typer.Option("--wallet", "-w", help="Wallet name or keystore path.")] = None,
    work_dir: WorkDirOpt = None,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A volunteer's standing: stake (bonded, locked by its tasks: at risk, free), rewards to claim, and per bounty
    its tasks (claimed, in flight, pending a verdict, accepted, slashed, expired), task rewards earned and tokens
    per hour of taking part; whether its node is paused."""
    from cli.common import fail_on_user_errors, open_session, parse_address

    with fail_on_user_errors(as_json):
        from ledger.amounts import UNIT, format_amount
        from ledger.index import EventIndex
        from ledger.volunteering import volunteer_record
        from ledger.wallet import recorded_address
        from node.controls import pause_file
        from protocol.errors import ShardworkError

        session = open_session(rpc_url, deployment, wallet)
        if who is not None:
            address = parse_address(who)
        elif keystore is not None:
            address = recorded_address(keystore) or ""
            if not address:
                raise ShardworkError(f"{keystore} records no address: give the ADDRESS")
        elif wallet is not None:
            address = session.signer
        else:
            raise ShardworkError("give an ADDRESS, --keystore or --wallet")
        market = session.market
        index = EventIndex(session.settings.index, market)
        index.sync()
        times: dict[int, int] = {}

        def block_time(number: int) -> int:
            if number not in times:
                times[number] = int(market.w3.eth.get_block(number)["timestamp"])
            return times[number]

        records = volunteer_record(index, address, block_time)
        stake = market.stake_of(address)
        directory = work_dir if work_dir is not None else _default_dir(address)
        paused = pause_file(directory).exists()
        if as_json:
            emit_json(
                {
                    "address": address,
                    "stake": {"bonded": stake.bonded, "locked": stake.locked, "free": stake.free},
                    "claimable": market.claimable(address),
                    "paused": paused,
                    "bounties": [r.as_dict() for r in records],
                }
            )
            return
        typer.echo(
            f"{address}: bonded {format_amount(stake.bonded)}, at risk in its tasks {format_amount(stake.locked)}, "
            f"free {format_amount(stake.free)}; {format_amount(market.claimable(address))} to claim"
            + ("; node paused (`shardwork node resume`)" if paused else "")
        )
        if not records:
            typer.echo("  no tasks taken yet")
        for r in records:
            rate = f"{r.earned_per_hour / UNIT:,.2f} per hour" if r.earned_per_hour is not None else "-"
            slashed = f"{r.slashed} slashed ({format_amount(r.slashed_amount)})" if r.slashed else "0 slashed"
            typer.echo(
                f"  bounty {r.bounty_id:<4} {r.claimed} claimed, {r.in_flight} in flight, {r.pending} pending, "
                f"{r.accepted} accepted, {slashed}, {r.expired} expired; earned {format_amount(r.earned)} "
                f"over {r.hours:.2f} h ({rate})"
            )


def _default_dir(address: str) -> Path:
    from config.settings import home

    return home() / f"node-{address.lower()}"


@node_app.command("estimate")
def node_estimate(
    bounty: Annotated[
        list[int] | None, typer.Option(help="Only these bounty ids (repeatable; default every open one).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps timed per bounty (after one warm-up step).", min=1)] = 3,
    duty_cycle: Annotated[
        float,
        typer.Option(
            help="The fraction of the time the node would train (`node run --duty-cycle`).", min=0.01, max=1.0
        ),
    ] = 1.0,
    store: StoreOpt = None,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Before joining: what this machine would earn per hour on each open bounty. A few steps of each bounty's own
    model are timed here (synthetic data of its shapes, nothing downloaded but the spec); a task's time follows
    (stretched by --duty-cycle), and a task that would not be committed within the bounty's lease is flagged:
    `node run` claims none of that bounty's tasks."""
    from cli.common import fail_on_user_errors, open_session

    with fail_on_user_errors(as_json):
        from content.ipfs import open_store
        from ledger.amounts import UNIT, format_amount
        from ledger.index import EventIndex
        from ledger.market import BountyStatus
        from node.estimate import estimate
        from node.preflight import check_cpu
        from protocol.errors import ContentError
        from protocol.spec import MAX_SPEC_BYTES, TrainingSpec

        check_cpu()
        session = open_session(rpc_url, deployment)
        market, content = session.market, open_store(store if store is not None else session.settings.store)
        index = EventIndex(session.settings.index, market)
        index.sync()
        ids = bounty or [int(e.args["bountyId"]) for e in index.events(names=("BountyPosted",))]
        rows, skipped = [], []
        for bounty_id in ids:
            b = market.bounty(bounty_id)
            if b.status != BountyStatus.ACTIVE or not b.round_open:
                skipped.append({"bounty_id": bounty_id, "reason": f"not open ({b.status.name.lower()})"})
                continue
            try:
                spec = TrainingSpec.from_bytes(content.get(market.spec_cid(bounty_id), MAX_SPEC_BYTES))
            except ContentError as exc:  # one bounty's spec not served is no reason to estimate none
                skipped.append({"bounty_id": bounty_id, "reason": f"spec not readable: {exc}"})
                continue
            lease = int(b.raw["leaseDuration"])
            rows.append(estimate(bounty_id, spec, b.reward_per_task, lease, steps, duty_cycle))
        if as_json:
            emit_json({"estimates": [r.as_dict() for r in rows], "skipped": skipped})
            return
        for skip in skipped:
            typer.echo(f"bounty {skip['bounty_id']:<4} skipped: {skip['reason']}")
        if not rows and not skipped:
            typer.echo("no open bounty to estimate")
        for r in rows:
            verdict = "fits its lease" if r.fits_lease else f"TOO SLOW: over its {r.lease_seconds} s lease"
            duty = f" at duty cycle {r.duty_cycle:g}" if r.duty_cycle < 1 else ""
            typer.echo(
                f"bounty {r.bounty_id:<4} {r.family} ({r.params:,} params): {r.step_seconds:.3f} s/step, a task "
                f"≈ {r.task_seconds:,.0f} s{duty} ({verdict}), {r.memory_mb} MB; {format_amount(r.reward_per_task)} per "
                f"task ≈ {r.earned_per_hour / UNIT:,.2f} per hour"
            )
