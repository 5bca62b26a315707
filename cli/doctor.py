"""`shardwork doctor`: is this machine ready to volunteer, verify or post? One line per check, with the fix.

Each check reports ok, warn or FAIL; a check whose prerequisite failed (the deployment without a chain, the stake
without a deployment) is skipped rather than failed twice. The exit code is 1 when any check failed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DeploymentOpt, JsonOpt, RpcOpt, StoreOpt, emit_json, user_errors, wallet_path

TORCH_PIN_FALLBACK = "2.13.0"  # a checkout run without being installed has no metadata to read the pin from
DISK_FAIL_BYTES = 1 << 30
DISK_WARN_BYTES = 10 << 30


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn", "fail" or "skip"
    detail: str
    fix: str = ""


@dataclass
class _Context:
    settings: Any
    wallet: str | None
    w3: Any = None
    market: Any = None


def torch_pin() -> str:
    """The torch version pyproject.toml pins (verifiers replay bit for bit only within one torch build)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        pins = [r.split("==", 1)[1] for r in requires("shardwork") or [] if r.replace(" ", "").startswith("torch==")]
    except PackageNotFoundError:
        pins = []
    return pins[0] if pins else TORCH_PIN_FALLBACK


def _python_and_torch(ctx: _Context) -> Check:
    pin = torch_pin()
    try:
        import torch
    except ImportError as exc:
        return Check("torch", "fail", f"torch does not import ({exc})", f"pip install torch=={pin}")
    version = torch.__version__.split("+")[0]
    if version != pin:
        return Check(
            "torch",
            "fail",
            f"torch {torch.__version__}, not {pin}: replays would not match other volunteers'",
            f"pip install torch=={pin}",
        )
    return Check("torch", "ok", f"torch {torch.__version__}, {torch.get_num_threads()} threads available")


def _cpu_and_numeric_class(ctx: _Context) -> Check:
    from node.preflight import UnsupportedMachine, check_cpu

    try:
        check_cpu()
    except UnsupportedMachine as exc:
        return Check("cpu", "fail", str(exc), "volunteer from a machine with AVX2 and FMA (any x86-64 since 2013)")
    from protocol.numerics import environment
    from protocol.spec import ModelSpec, TrainingSpec

    # A small model of the built-in family: its fingerprint names this machine's numeric class for comparison
    # with other machines' doctor output (a bounty's own class is measured on its own model when a task starts).
    spec = TrainingSpec(model=ModelSpec(family="mnist-mlp", params={"hidden": 64}), batch_size=32)
    began = time.perf_counter()
    env = environment(spec)
    took = time.perf_counter() - began
    return Check(
        "cpu",
        "ok",
        f"{env.machine}, kernels {env.kernels}, numeric class {env.fingerprint[:14]}… on the probe model "
        f"(3 training steps in {took:.2f} s)",
    )


def _chain(ctx: _Context) -> Check:
    from ledger.chain import connect
    from protocol.errors import ShardworkError

    url = ctx.settings.rpc_url
    try:
        ctx.w3 = connect(url, timeout=5)
        chain_id, block = ctx.w3.eth.chain_id, ctx.w3.eth.block_number
    except (ShardworkError, OSError) as exc:
        return Check(
            "chain",
            "fail",
            str(exc) if isinstance(exc, ShardworkError) else f"no EVM node answers at {url} ({exc})",
            "start one (./scripts/stack up prints it; `./scripts/stack env` exports it) or pass --rpc-url",
        )
    return Check("chain", "ok", f"chain {chain_id} at {url}, block {block}")


def _deployment(ctx: _Context) -> Check:
    from ledger.deploy import Deployment
    from ledger.market import Market

    path = ctx.settings.deployment
    fix = "`shardwork chain deploy`, or point --deployment / SHARDWORK_DEPLOYMENT at the market's manifest"
    if not path.is_file():
        return Check("deployment", "fail", f"no deployment manifest at {path}", fix)
    try:
        deployment = Deployment.load(path)
    except ValueError as exc:
        return Check("deployment", "fail", f"{path} is not a deployment manifest ({exc.__class__.__name__})", fix)
    chain_id = ctx.w3.eth.chain_id
    if deployment.chain_id != chain_id:
        return Check("deployment", "fail", f"{path} is for chain {deployment.chain_id}, the node is {chain_id}", fix)
    missing = [
        name
        for name, a in (("Token", deployment.token), ("BountyMarket", deployment.market))
        if not ctx.w3.eth.get_code(a)
    ]
    if missing:
        return Check(
            "deployment", "fail", f"no code at the manifest's {' and '.join(missing)} on chain {chain_id}", fix
        )
    ctx.market = Market(ctx.w3, deployment)
    return Check("deployment", "ok", f"BountyMarket {deployment.market} ({path})")


def _content_store(ctx: _Context) -> Check:
    from content.ipfs import open_store
    from protocol.errors import ContentError, StoreUnavailable

    location = ctx.settings.store
    probe = b"shardwork doctor probe\n"  # the same bytes every run: one small object, never a pile of them
    try:
        store = open_store(location)
        cid = store.put(probe)
        if store.get(cid) != probe:
            raise ContentError("read back different bytes")
    except (ContentError, StoreUnavailable, OSError) as exc:  # StoreUnavailable: a daemon down is no ContentError
        fix = (
            "start the IPFS daemon (./scripts/stack up) or check the URL"
            if location.startswith("ipfs:")
            else ("pass --store DIR with a writable directory")
        )
        return Check("content store", "fail", f"{location}: {exc}", fix)
    kind = "IPFS daemon" if location.startswith("ipfs:") else "embedded store"
    return Check("content store", "ok", f"{kind} {location}: stores and reads back")


def _disk(ctx: _Context) -> Check:
    location = ctx.settings.store
    directory = Path(location) if not location.startswith("ipfs:") else Path(".")
    while not directory.exists():
        directory = directory.parent if directory != directory.parent else Path(".")
    free = shutil.disk_usage(directory).free
    detail = f"{free / (1 << 30):.1f} GiB free at {directory.resolve()}"
    fix = "free disk space: each task keeps its checkpoints until its challenge window closes"
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", detail, fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", detail + " (a 26M-parameter task keeps about 1.3 GB)", fix)
    return Check("disk", "ok", detail)


def _wallet(ctx: _Context) -> Check:
    from ledger.amounts import format_amount
    from ledger.chain import LOCAL_CHAIN_IDS
    from ledger.wallet import WalletError, recorded_address

    try:
        path = wallet_path(ctx.settings.wallets, str(ctx.wallet))
    except WalletError as exc:
        return Check("wallet", "fail", str(exc), "`shardwork wallet list`, or `shardwork wallet new NAME`")
    address = recorded_address(path)
    if address is None:
        return Check("wallet", "warn", f"{path} records no address; `shardwork balance --wallet {ctx.wallet}` reads it")
    m = ctx.market
    gas, tokens, stake = m.w3.eth.get_balance(address), m.balance(address), m.stake_of(address)
    local = m.deployment.chain_id in LOCAL_CHAIN_IDS
    detail = (
        f"{address}: {m.w3.from_wei(gas, 'ether')} ETH for gas, {format_amount(tokens)} tokens, "
        f"{format_amount(stake.bonded)} staked ({format_amount(stake.free)} free)"
    )
    if gas == 0:
        fix = f"`shardwork faucet 100 --wallet {ctx.wallet}`" if local else "send the account some ETH for gas"
        return Check("wallet", "fail", detail + ": it cannot pay for any transaction", fix)
    if stake.free == 0:
        fix = f"`shardwork stake AMOUNT --wallet {ctx.wallet}`" + (" (tokens: `shardwork faucet`)" if local else "")
        return Check("wallet", "warn", detail + ": no free stake, so no task or verifier seat can be taken", fix)
    return Check("wallet", "ok", detail)


def run_checks(settings: Any, wallet: str | None) -> list[Check]:
    ctx = _Context(settings, wallet)
    plan: list[tuple[str, Callable[[_Context], Check], Callable[[], bool]]] = [
        ("torch", _python_and_torch, lambda: True),
        ("cpu", _cpu_and_numeric_class, lambda: True),
        ("chain", _chain, lambda: True),
        ("deployment", _deployment, lambda: ctx.w3 is not None),
        ("content store", _content_store, lambda: True),
        ("disk", _disk, lambda: True),
    ]
    if wallet is not None:
        plan.append(("wallet", _wallet, lambda: ctx.market is not None))
    checks = []
    for name, check, ready in plan:
        checks.append(check(ctx) if ready() else Check(name, "skip", "needs the checks above"))
    return checks


def register_doctor_command(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def doctor(
        wallet: Annotated[
            str | None, typer.Option("--wallet", "-w", help="Also check this wallet's gas, tokens and stake.")
        ] = None,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check this machine before volunteering, verifying or posting: torch build, CPU and numeric class, chain,
        deployment, content store, disk, and (with --wallet) gas, tokens and stake. One line per check, with the
        fix; exit 1 when any check fails."""
        from config.settings import load_settings

        settings = load_settings(rpc_url=rpc_url, deployment=deployment, store=store)
        checks = run_checks(settings, wallet)
        failed = any(c.status == "fail" for c in checks)
        if as_json:
            emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
        else:
            for c in checks:
                typer.echo(f"{c.status.upper() if c.status == 'fail' else c.status:<5} {c.name:<14} {c.detail}")
                if c.fix:
                    typer.echo(f"{'':<20} fix: {c.fix}")
        if failed:
            raise typer.Exit(1)
