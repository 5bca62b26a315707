"""`shardwork demo`: the main job on embedded defaults.

Today it deploys the marketplace contracts to an in-process py-evm chain and, where the repository's
compiler toolchain is present, verifies the deployed runtime bytecode against contracts/. The training
marketplace scenario (poster, volunteers, cheaters, rounds) will run here once the trainer and
coordinator exist.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_demo(*, as_json: bool) -> None:
    from ledger.chain import connect, dev_accounts
    from ledger.compiler import CompilerUnavailable
    from ledger.deploy import deploy
    from ledger.tx import Transactor
    from ledger.verify import verify_deployment

    started = time.monotonic()
    w3 = connect(None)
    deployer = Transactor(w3, dev_accounts(w3, 1)[0])
    deployment = deploy(w3, deployer)
    try:
        checks = [c.model_dump() for c in verify_deployment(w3, deployment, REPO_ROOT)]
    except CompilerUnavailable as exc:
        checks = [{"skipped": str(exc)}]
    summary = {
        "seconds": round(time.monotonic() - started, 2),
        "chain_id": deployment.chain_id,
        "contracts": {"Token": deployment.token, "BountyMarket": deployment.market},
        "deploy_gas": deployment.gas_used,
        "bytecode_verified": checks,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"embedded chain {deployment.chain_id} (py-evm, in-process)")
    for name, address in summary["contracts"].items():
        typer.echo(f"  {name:<13} {address}   deploy gas {deployment.gas_used[name]:,}")
    for check in checks:
        if "skipped" in check:
            typer.echo(f"  bytecode check skipped: {check['skipped']}")
        else:
            state = "matches" if check["matches"] else "DOES NOT MATCH"
            typer.echo(f"  {check['contract']:<13} runtime bytecode {state} contracts/ ({check['onchain_bytes']:,} bytes)")
    typer.echo(f"done in {summary['seconds']} s")
