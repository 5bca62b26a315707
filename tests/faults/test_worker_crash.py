"""Kill the Celery worker in the middle of the work (SIGKILL, no clean-up) and start a new one: the bounty
still completes from chain state, every task is paid exactly once, and no token is lost or stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coordinator.localstack import down, start_worker, up
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.market import BountyStatus, Market
from ledger.tx import Transactor
from protocol.ipfs import IpfsStore
from cli.bounty import load_bounty_file
from tests.e2e.test_real_stack import SPEC

UNIT = 10**18


def test_bounty_completes_after_the_worker_is_killed_mid_round(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("stack")
    info = up(home)
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        w3 = connect(info.rpc_url)
        deployment = Deployment.load(Path(info.deployment))
        keys = dev_accounts(w3, 10)
        poster = Market(w3, deployment, Transactor(w3, keys[1]))
        store = IpfsStore(info.ipfs_api)
        spec_file = home / "spec.toml"
        spec_file.write_text(SPEC.format(coordinator=keys[2].address))
        spec, terms = load_bounty_file(spec_file)
        poster.faucet(poster.address, 5_000 * UNIT)
        poster.ensure_allowance(terms.escrow(spec.data.shards * spec.rounds))
        bounty_id = poster.post_bounty(terms.params(store.put(spec.canonical_bytes()), spec.data.shards, spec.rounds,
                                                    spec.segments, poster.now()))  # fmt: skip
        for index in (5, 6):
            volunteer = Market(w3, deployment, Transactor(w3, keys[index]))
            volunteer.faucet(volunteer.address, 5_000 * UNIT)
            volunteer.stake(1_000 * UNIT)
            nodes.append(subprocess.Popen([sys.executable, "-m", "tests.e2e.adversary_node", info.rpc_url, info.deployment,
                                           str(index), f"ipfs:{info.ipfs_api}", str(home / f"node{index}"), "honest"],
                                          stderr=open(home / f"node{index}.log", "w")))  # fmt: skip
        # Kill the worker as soon as the first commit is being checked: verification is in flight.
        deadline = time.monotonic() + 120
        while not poster.market.events.TaskCommitted().get_logs(from_block=0):
            assert time.monotonic() < deadline, "no commit arrived"
            time.sleep(0.2)
        os.killpg(info.pids["worker0"], signal.SIGKILL)
        time.sleep(3)  # commits keep arriving while no worker runs
        replacement = start_worker(info, home, "worker1")
        info.pids["worker1"] = replacement.pid
        (home / "stack.json").write_text(json.dumps({**json.loads((home / "stack.json").read_text()), "pids": info.pids}))

        deadline = time.monotonic() + 300
        while poster.bounty(bounty_id).status != BountyStatus.FINALIZED:
            assert time.monotonic() < deadline, f"bounty not finalized after the crash: {poster.bounty(bounty_id)}"
            assert all(n.poll() is None for n in nodes), "a node daemon died"
            time.sleep(1)
        accepted = poster.market.events.TaskAccepted().get_logs(from_block=0, argument_filters={"bountyId": bounty_id})
        task_ids = [int(e["args"]["taskId"]) for e in accepted]
        assert len(task_ids) == len(set(task_ids)) == spec.data.shards * spec.rounds  # each paid exactly once
        held = poster.balance(deployment.market)
        accounts = [k.address for k in keys]
        b = poster.bounty(bounty_id)
        assert held == b.escrow + sum(poster.stake_of(a).bonded + poster.stake_of(a).unbonding for a in accounts) + sum(
            poster.claimable(a) for a in accounts
        )
        health = json.loads(urllib.request.urlopen(f"{info.api_url}/health", timeout=10).read())
        assert health["status"] == "ok"
    finally:
        for n in nodes:
            n.send_signal(signal.SIGTERM)
        for n in nodes:
            n.wait(timeout=60)
        down(home)
