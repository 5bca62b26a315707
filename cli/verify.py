"""`shardwork verify …`: the verifier daemon's command line (heavy imports happen inside the command)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DeploymentOpt, JsonOpt, PasswordFileOpt, RpcOpt, StoreOpt, WalletOpt, YesOpt, cli_app

verify_app = cli_app(
    help=(
        "Run a verifier: take a seat in the market's verifier registry, replay the segments the chain sampled of "
        "the commits whose committee it drew you onto, and attest."
    ),
    no_args_is_help=True,
)


@verify_app.command("run")
def verify_run(
    keystore: Annotated[
        Path,
        typer.Option(help="Keystore of the verifier's wallet (its free stake must cover a bounty's stake per task)."),
    ],
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: PasswordFileOpt = None,
    store: StoreOpt = None,
    bounty: Annotated[
        list[int] | None, typer.Option(help="Only judge commits of these bounty ids (repeatable; default any).")
    ] = None,
    once: Annotated[bool, typer.Option(help="Judge what is judgeable now, then exit instead of waiting.")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between looks at the chain when idle.", min=0.1)] = 2.0,
    trace_timeout: Annotated[
        int, typer.Option(help="Seconds past a task's deadline a missing trace is waited for before it fails.", min=1)
    ] = 120,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /health and /metrics on 127.0.0.1 at this port (0: any free port).")
    ] = None,
    watch_all: Annotated[
        bool,
        typer.Option(
            help=(
                "Also replay the sampled segments of commits the chain did not draw you for (unchecked ones "
                "included) and contest any that diverged in your numeric class. No fee: a won game pays half the "
                "volunteer's slashed stake, a lost one costs yours. Costs the replays."
            )
        ),
    ] = False,
) -> None:
    """Run until stopped (Ctrl-C or SIGTERM stop between commits; a restart replays nothing it attested).

    Watches every bounty on the market, whoever coordinates it. For each commit the chain checks, the daemon
    records the draw, replays the sampled segments and attests PASS or FAIL; a correct verdict earns the
    bounty's verifier fee. Within its own numeric class it compares bit for bit; across classes it judges by
    the round's calibrated tolerance, and abstains where it cannot attribute a difference to cheating.

    Logs are JSON lines on stderr. Example:

        SHARDWORK_PASSWORD=… shardwork verify run --keystore bob.json --rpc-url http://127.0.0.1:8545

    --rpc-url, --deployment and --store fall back to SHARDWORK_RPC_URL, SHARDWORK_DEPLOYMENT, SHARDWORK_STORE,
    then to $SHARDWORK_HOME/config.toml.
    """
    from cli.common import fail_on_user_errors

    with fail_on_user_errors():
        _run(
            keystore,
            rpc_url,
            deployment,
            password_file,
            store,
            bounty,
            once,
            poll_interval,
            trace_timeout,
            metrics_port,
            watch_all,
        )


def _run(
    keystore: Path,
    rpc_url: str | None,
    deployment_path: Path | None,
    password_file: Path | None,
    store_location: str | None,
    bounties: list[int] | None,
    once: bool,
    poll_interval: float,
    trace_timeout: int,
    metrics_port: int | None,
    watch_all: bool,
) -> None:
    from node.preflight import check_cpu

    check_cpu()  # before anything here loads torch: an unsupported CPU is one line, not a crash

    from config.settings import load_settings
    from content.ipfs import open_store
    from ledger.chain import connect
    from ledger.deploy import Deployment
    from ledger.market import Market
    from ledger.tx import Transactor
    from ledger.wallet import load_account, read_password
    from protocol.errors import ShardworkError
    from telemetry.health import HealthServer
    from telemetry.logs import json_logger, log
    from verifier.daemon import VerifierDaemon, VerifierOptions

    settings = load_settings(rpc_url=rpc_url, deployment=deployment_path, store=store_location)
    if not settings.deployment.is_file():
        raise ShardworkError(
            f"no deployment manifest at {settings.deployment}: run `shardwork chain deploy` or pass --deployment"
        )
    account = load_account(keystore, read_password(password_file))
    address = account.address
    w3 = connect(settings.rpc_url)
    market = Market(w3, Deployment.load(settings.deployment), Transactor(w3, account))
    options = VerifierOptions(
        poll_interval_s=poll_interval,
        once=once,
        bounties=frozenset(bounties) if bounties else None,
        trace_timeout_s=trace_timeout,
        watch_all=watch_all,
    )
    logger = json_logger(f"shardwork.verifier.{address[:10]}")
    daemon = VerifierDaemon(market, open_store(settings.store), options, logger)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: daemon.stop())
    server = None
    if metrics_port is not None:
        server = HealthServer(metrics_port, daemon.metrics.registry, daemon.status.as_dict)
        log(logger, "serving /health and /metrics", url=f"http://127.0.0.1:{server.port}")
    try:
        daemon.run()
    finally:
        if server is not None:
            server.close()


@verify_app.command("join")
def verify_join(
    wallet: WalletOpt,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: PasswordFileOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Take a seat in the verifier registry (needs bonded stake; `verify run` does this by itself).

    Each checked task's committee (quorum × 2 seats) is drawn with the task's challenge seed among the seats
    taken before its commit: you are drawn for commits made after you join, never for ones you have seen."""
    _seat(wallet, rpc_url, deployment, password_file, yes, as_json, join=True)


@verify_app.command("leave")
def verify_leave(
    wallet: WalletOpt,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: PasswordFileOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Give up your verifier seat: you are no longer drawn, and votes on committees you sat on are refused.
    Your stake stays bonded (`shardwork unstake` to unbond it). Stop `verify run` first: it takes the seat back
    when it starts. Joining again reactivates your seat for commits made after that."""
    _seat(wallet, rpc_url, deployment, password_file, yes, as_json, join=False)


def _seat(
    wallet: str | None,
    rpc_url: str | None,
    deployment: Path | None,
    password_file: Path | None,
    yes: bool,
    as_json: bool,
    *,
    join: bool,
) -> None:
    from cli.common import fail_on_user_errors, open_session
    from cli.money import Transfer, execute

    with fail_on_user_errors(as_json):
        session = open_session(rpc_url, deployment, wallet, password_file)
        m, address = session.market, session.signer
        fn = m.market.functions.registerVerifier() if join else m.market.functions.deregisterVerifier()
        action = "join" if join else "leave"
        line = (
            f"take a verifier seat for {address} (drawn for commits after this block)"
            if join
            else f"give up {address}'s verifier seat"
        )

        def send(signer: Any) -> Any:  # the unlocked Market
            return signer.register_verifier() if join else signer.deregister_verifier()

        execute(
            session,
            Transfer(f"verify {action}", [line], fn, send, ("bonded", "free_stake")),
            password_file=password_file,
            yes=yes,
            as_json=as_json,
        )
