"""`shardwork demo`: the main job on embedded defaults (no servers), printed as it happens."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import typer


def run_demo(*, workload: str, as_json: bool, seed: int = 0) -> None:
    started = time.monotonic()  # the reported time includes loading torch, web3 and the data
    from devtools.scenario import TOKEN, run_scenario

    say = (lambda _: None) if as_json else typer.echo
    # The embedded chain ends with this process, and its content store with it: a demo leaves nothing behind
    # (each run's store holds about 100 MB of checkpoints).
    with tempfile.TemporaryDirectory(prefix="shardwork-demo-") as home:
        s = run_scenario(workload, say, seed=seed, home=Path(home))
    seconds = round(time.monotonic() - started, 2)
    summary = {
        "seconds": seconds,
        "metric_name": s.metric_name,
        "final_metric": round(s.final_metric, 4),
        "baseline_metric": round(s.baseline_metric, 4),
        "slashed": s.slashed,
        "rewards": {address: amount for address, amount in s.rewards.items()},
        "bounty_id": s.bounty_id,
        "workload": s.workload,
        "gas_used": s.gas_used,
        "final_model_cid": s.final_model_cid,
        "seed": seed,
        "replayed_segments": s.replayed_segments,
        "roles": s.names,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo("")
    typer.echo(
        f"final model ({s.final_model_cid}): {s.metric_name} {s.final_metric:.4f}   "
        f"centralized baseline, same data and steps: {s.baseline_metric:.4f}"
    )
    typer.echo(f"{'account':<12} {'address':<43} {'credited':>10}  slashed")
    for address, name in s.names.items():
        if name == "poster":
            continue
        credited = s.rewards.get(address, 0) / TOKEN
        typer.echo(f"{name:<12} {address:<43} {credited:>10.2f}  {'yes' if address in s.slashed else ''}")
    typer.echo(f"gas spent: {s.gas_used:,}; segments replayed by verifiers: {s.replayed_segments}")
    typer.echo(f"audit it: shardwork audit bounty {s.bounty_id}   ({seconds:.1f} s)")
