"""1,000 simulated volunteers polling the coordinator API and the chain (issue 5).

A real anvil node with three open bounties, the real API server (uvicorn, one process), and one
asyncio process simulating the volunteers: each, every `--interval` seconds (random phase), asks the API
for open tasks of its model family (task discovery, timed) and reads one task's state from the chain
(`taskOf`, as a daemon does before claiming). Both processes share this 2-core machine.

  ./scripts/bench coordinator-load [--json] [--volunteers 1000] [--seconds 15] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from eth_utils import keccak

from content.store import LocalStore
from coordinator.rounds import Coordinator
from devtools.anvil import Anvil, free_port, wait_for_port
from devtools.localstack import api_command
from ledger.amounts import UNIT
from ledger.chain import connect, dev_accounts
from ledger.deploy import deploy
from ledger.market import Market
from ledger.terms import BountyTerms
from ledger.tx import Transactor
from protocol.spec import TrainingSpec


def setup(root: Path, url: str) -> dict[str, str]:
    w3 = connect(url)
    keys = dev_accounts(w3, 3)
    deployment = deploy(w3, Transactor(w3, keys[0]))
    deployment.save(root / "deployment.json")
    poster, coord = (Market(w3, deployment, Transactor(w3, k)) for k in keys[1:3])
    store = LocalStore(root / "store")
    quiet = logging.getLogger("bench")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    coordinator = Coordinator(coord, store, quiet)
    poster.faucet(poster.address, 10_000 * UNIT)
    poster.ensure_allowance(10_000 * UNIT)
    for shards in (4, 8, 16):
        spec = TrainingSpec.model_validate({"model": {"family": "mnist-mlp"}, "data": {"shards": shards}, "rounds": 2})
        terms = BountyTerms(coordinator=coord.address)
        spec_cid = store.put(spec.canonical_bytes())
        bounty_id = poster.post_bounty(terms.params(spec_cid, shards, spec.rounds, spec.segments, poster.now()))
        coordinator.intake(bounty_id)
    return {
        "SHARDWORK_COORD_RPC_URL": url,
        "SHARDWORK_COORD_DEPLOYMENT": str(root / "deployment.json"),
        "SHARDWORK_COORD_STORE": str(root / "store"),
        "SHARDWORK_COORD_INDEX": str(root / "index.sqlite"),
        "market": deployment.market,
    }


async def volunteers(api: str, rpc: str, market: str, count: int, seconds: float, interval: float) -> dict[str, object]:
    discovery: list[float] = []
    chain: list[float] = []
    errors = 0
    requests = 0
    # A raw eth_call of taskOf(uint256), as a light volunteer client makes it.
    deadline = time.monotonic() + seconds
    task_of = "0x" + keccak(text="taskOf(uint256)")[:4].hex()
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with (
        httpx.AsyncClient(base_url=api, limits=limits, timeout=10) as client,
        httpx.AsyncClient(limits=limits, timeout=10) as rpc_client,
    ):

        async def one(i: int) -> None:
            nonlocal errors, requests
            await asyncio.sleep(random.uniform(0, interval))
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get("/api/open-tasks", params={"family": "mnist-mlp", "limit": 20})
                    requests += 1
                    if response.status_code != 200:
                        errors += 1
                    tasks = response.json()
                except httpx.HTTPError:
                    errors += 1
                    tasks = []
                discovery.append(time.perf_counter() - started)
                if tasks:
                    task_id = random.choice(tasks)["task_id"]
                    started = time.perf_counter()
                    data = task_of + task_id.to_bytes(32, "big").hex()
                    await rpc_client.post(
                        rpc,
                        json={
                            "jsonrpc": "2.0",
                            "id": i,
                            "method": "eth_call",
                            "params": [{"to": market, "data": data}, "latest"],
                        },
                    )
                    chain.append(time.perf_counter() - started)
                await asyncio.sleep(interval)

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.monotonic() - began

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1] * 1e3, 2) if len(values) > 1 else float("nan")

    return {
        "volunteers": count,
        "p50_ms": pct(discovery, 50),
        "p99_ms": pct(discovery, 99),
        "requests_per_s": round(requests / elapsed, 1),
        "chain_p50_ms": pct(chain, 50),
        "chain_p99_ms": pct(chain, 99),
        "errors": errors,
        "seconds": round(elapsed, 1),
        "interval_s": interval,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--volunteers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    # 1,000 volunteers polling every 10 s offer ~100 discovery requests/s plus as many chain reads. At 2 s
    # (500/s) this 2-core machine saturates: the load generator, the API and anvil share the two cores.
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    node = Anvil()
    api_proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = setup(Path(tmp), node.url)
            market = env.pop("market")
            port = free_port()
            api_proc = subprocess.Popen(
                api_command(port),
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port(port, api_proc, timeout=60)
            result = asyncio.run(
                volunteers(f"http://127.0.0.1:{port}", node.url, market, args.volunteers, args.seconds, args.interval)
            )
    finally:
        if api_proc is not None:
            api_proc.terminate()
            api_proc.wait(timeout=10)
        node.stop()
    print(json.dumps(result) if args.json else "\n".join(f"{k:>16}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
