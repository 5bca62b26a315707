"""Soak of the real stack (issue 7): several bounties and many volunteers at once, for a bounded time.

The stack is the one `./scripts/stack up` runs (anvil with a block a second, Redis, js-ipfs, a Celery worker
and beat, the API). Each volunteer is a real node daemon process (tests/support/adversary_node, honest) with its
own development key. Bounties have more rounds than the soak can finish, so work never runs out. Every
`--sample-s` seconds: tasks paid so far, the verification backlog (tasks of the current rounds committed but
not yet settled, at most bounties × shards, and Celery's waiting queue in Redis, which is where work piles
up without bound) and the memory of each stack component (PSS of its whole process group).

Memory is judged bounded when the mean of the last third of the samples is within 10% (+20 MB) of the mean
of the middle third: start-up growth (imports, caches filling) is excluded, a leak shows as a steady rise.

  ./scripts/bench soak [--json] [--minutes 5] [--volunteers 6] [--bounties 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

import redis
from web3.types import RPCEndpoint

from content.ipfs import IpfsStore
from devtools.localstack import StackInfo, down, up
from ledger.amounts import UNIT
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.market import Market, TaskStatus, task_id_of
from ledger.terms import load_bounty_file
from ledger.tx import Transactor
from tests.support.specs import bounty_toml

FIRST_VOLUNTEER = 5  # development keys 0-4 are the deployer, poster, coordinator and two verifiers
COMPONENTS = ("anvil", "redis", "ipfs", "worker0", "beat", "api")


class Sample(TypedDict):
    t_s: float
    tasks_paid: int
    backlog_tasks: int
    celery_queue: int
    pss_mb: dict[str, float]
    nodes_alive: int


def group_pss_mb(pgid: int) -> float:
    """Proportional resident memory (PSS) of every process in a process group: a component may fork helpers
    (Celery's pool), whose copy-on-write pages RSS would count once per process."""
    total_kb = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            with open(f"/proc/{entry.name}/smaps_rollup") as f:
                total_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue  # the process exited between the listing and the read
    return total_kb / 1024


def post_bounties(info: StackInfo, work: Path, count: int) -> tuple[Market, list[int], int]:
    w3 = connect(info.rpc_url)
    deployment = Deployment.load(Path(info.deployment))
    keys = dev_accounts(w3, 3)
    poster = Market(w3, deployment, Transactor(w3, keys[1]))
    spec_file = work / "spec.toml"
    spec_file.write_text(bounty_toml(keys[2].address, name="soak", rounds=100, verify_window_s=60))
    spec, terms = load_bounty_file(spec_file)
    store = IpfsStore(info.ipfs_api)
    tasks = spec.data.shards * spec.rounds
    needed = count * terms.escrow(tasks)
    while poster.balance(poster.address) < needed:
        poster.faucet(poster.address, 10_000 * UNIT)  # the faucet's per-call limit
    poster.ensure_allowance(needed)
    ids = [
        poster.post_bounty(terms.posting(spec, store.put(spec.canonical_bytes()), poster.now())) for _ in range(count)
    ]
    return poster, ids, spec.data.shards


def start_volunteers(info: StackInfo, work: Path, count: int) -> list[subprocess.Popen[bytes]]:
    w3 = connect(info.rpc_url)
    deployment = Deployment.load(Path(info.deployment))
    keys = dev_accounts(w3, FIRST_VOLUNTEER + count)
    nodes = []
    for index in range(FIRST_VOLUNTEER, FIRST_VOLUNTEER + count):
        # Keys past anvil's ten funded accounts come from the same mnemonic; give them gas money.
        w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [keys[index].address, hex(100 * UNIT)])
        volunteer = Market(w3, deployment, Transactor(w3, keys[index]))
        volunteer.faucet(volunteer.address, 1_000 * UNIT)
        volunteer.stake(1_000 * UNIT)
        nodes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.adversary_node",
                    info.rpc_url,
                    info.deployment,
                    str(index),
                    f"ipfs:{info.ipfs_api}",
                    str(work / f"node{index}"),
                    "honest",
                ],
                stderr=open(work / f"node{index}.log", "w"),
                start_new_session=True,
            )
        )
    return nodes


def backlog(poster: Market, bounty_ids: list[int], shards: int) -> int:
    """Tasks of the current rounds committed or challenged but not yet settled."""
    waiting = 0
    for bounty_id in bounty_ids:
        current = poster.bounty(bounty_id).current_round
        for shard in range(shards):
            status = poster.task(task_id_of(bounty_id, current, shard)).status
            waiting += status in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED)
    return waiting


def bounded(series: list[float]) -> tuple[bool, float, float]:
    third = max(len(series) // 3, 1)
    middle = statistics.fmean(series[third : 2 * third] or series)
    last = statistics.fmean(series[-third:])
    return last <= middle * 1.10 + 20, round(middle, 1), round(last, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--volunteers", type=int, default=6)
    parser.add_argument("--bounties", type=int, default=3)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the stack's and the nodes' logs (path printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shardwork-soak-"))
    info = up(work / "stack")
    nodes: list[subprocess.Popen[bytes]] = []
    samples: list[Sample] = []
    try:
        poster, bounty_ids, shards = post_bounties(info, work, args.bounties)
        nodes = start_volunteers(info, work, args.volunteers)
        queue = redis.Redis.from_url(info.redis_url)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            paid = len(poster.market.events.TaskAccepted().get_logs(from_block=0))
            sample: Sample = {
                "t_s": round(elapsed, 1),
                "tasks_paid": paid,
                "backlog_tasks": backlog(poster, bounty_ids, shards),
                "celery_queue": int(queue.llen("celery")),
                "pss_mb": {name: round(group_pss_mb(info.pids[name]), 1) for name in COMPONENTS},
                "nodes_alive": sum(n.poll() is None for n in nodes),
            }
            samples.append(sample)
            if not args.json:
                print(json.dumps(sample), flush=True)
            time.sleep(args.sample_s)
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        down(work / "stack")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not samples:
        raise SystemExit("no sample was taken: --minutes is shorter than the set-up")
    memory = {}
    for name in COMPONENTS:
        series = [float(s["pss_mb"][name]) for s in samples]
        ok, middle, last = bounded(series)
        memory[name] = {
            "first_mb": series[0],
            "max_mb": max(series),
            "middle_third_mean_mb": middle,
            "last_third_mean_mb": last,
            "bounded": ok,
        }
    minutes = samples[-1]["t_s"] / 60 if samples else 0
    result = {
        "minutes": round(minutes, 2),
        "volunteers": args.volunteers,
        "bounties": args.bounties,
        "tasks_completed": samples[-1]["tasks_paid"] if samples else 0,
        "tasks_per_minute": round(samples[-1]["tasks_paid"] / minutes, 1) if minutes else 0,
        "backlog_tasks_max": max(int(s["backlog_tasks"]) for s in samples),
        "backlog_tasks_final": samples[-1]["backlog_tasks"],
        "celery_queue_max": max(int(s["celery_queue"]) for s in samples),
        "nodes_alive_at_end": samples[-1]["nodes_alive"],
        "memory": memory,
        "memory_bounded": all(m["bounded"] for m in memory.values()),
        "samples": len(samples),
        **({"logs": str(work)} if args.keep else {}),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
