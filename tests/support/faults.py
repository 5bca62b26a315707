"""One real stack (anvil, Redis, js-ipfs, Celery worker + beat, API) shared by the fault scenarios, and the
checks every scenario must pass after its fault: the bounty finalizes, every task is paid exactly once, no
honest volunteer is slashed, no escrow or stake is stuck, tokens are conserved, and the API's event index
is exactly what a fresh rebuild from the chain gives.

Each scenario posts its own bounty and starts its own honest node daemons, so a fault's effects are judged
on that bounty alone; the stack is shared to keep the suite short (starting one costs ~15 s).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cli.bounty import load_bounty_file
from content.ipfs import IpfsStore
from devtools.localstack import StackInfo
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.index import EventIndex
from ledger.market import BountyStatus, Market
from ledger.tx import Transactor
from tests.support.specs import bounty_toml

UNIT = 10**18
VOLUNTEERS = (5, 6)  # development-account indexes of the honest node daemons


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(every)


def log_has(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text(errors="replace")


@dataclass
class Scenario:
    """One bounty on the shared stack, its honest nodes, and what happened to it."""

    info: StackInfo
    name: str
    work: Path
    nodes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0

    def __post_init__(self) -> None:
        # Logs of the shared worker processes are read from where they stood when this scenario began.
        self.log_offsets = {p: p.stat().st_size for p in (Path(self.info.home) / "logs").glob("worker*.log")}
        self.w3 = connect(self.info.rpc_url)
        self.deployment = Deployment.load(Path(self.info.deployment))
        self.keys = dev_accounts(self.w3, 10)
        self.poster = Market(self.w3, self.deployment, Transactor(self.w3, self.keys[1]))

    # ------------------------------------------------------------------ set-up

    def post_bounty(self) -> None:
        spec_file = self.work / "spec.toml"
        spec_file.write_text(bounty_toml(self.keys[2].address))
        self.spec, terms = load_bounty_file(spec_file)
        self.tasks = self.spec.data.shards * self.spec.rounds
        store = IpfsStore(self.info.ipfs_api)
        self.poster.faucet(self.poster.address, 5_000 * UNIT)
        self.poster.ensure_allowance(terms.escrow(self.tasks))
        self.from_block = self.w3.eth.block_number
        self.bounty_id = self.poster.post_bounty(
            terms.params(
                store.put(self.spec.canonical_bytes()),
                self.spec.data.shards,
                self.spec.rounds,
                self.spec.segments,
                self.poster.now(),
            )
        )

    def fund_volunteers(self) -> None:
        for index in VOLUNTEERS:
            volunteer = Market(self.w3, self.deployment, Transactor(self.w3, self.keys[index]))
            if volunteer.stake_of(volunteer.address).free < 200 * UNIT:
                volunteer.faucet(volunteer.address, 1_000 * UNIT)
                volunteer.stake(1_000 * UNIT)

    def node_log(self, index: int) -> Path:
        return self.work / f"node{index}.log"

    def start_node(self, index: int) -> None:
        """`tests.support.adversary_node ... honest`: the real daemon, keyed by a development account."""
        with open(self.node_log(index), "a") as log:  # the child keeps its own descriptor
            self.nodes[index] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.adversary_node",
                    self.info.rpc_url,
                    self.info.deployment,
                    str(index),
                    f"ipfs:{self.info.ipfs_api}",
                    str(self.work / f"node{index}"),
                    "honest",
                ],
                stderr=log,
                start_new_session=True,
            )

    def kill_node(self, index: int) -> None:
        self.nodes[index].send_signal(signal.SIGKILL)
        self.nodes[index].wait(timeout=30)

    def stop_nodes(self) -> None:
        for node in self.nodes.values():
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()

    # ------------------------------------------------------------------ observation

    def events(self, name: str) -> list[dict]:  # type: ignore[type-arg]
        logs = getattr(self.poster.market.events, name)().get_logs(from_block=self.from_block)
        return [dict(e["args"]) for e in logs if int(e["args"].get("bountyId", self.bounty_id)) == self.bounty_id]

    def has_commit(self) -> bool:
        return bool(self.events("TaskCommitted"))

    def worker_log_has(self, needle: str) -> bool:
        for path in (Path(self.info.home) / "logs").glob("worker*.log"):
            with open(path, "rb") as f:
                f.seek(self.log_offsets.get(path, 0))
                if needle.encode() in f.read():
                    return True
        return False

    # ------------------------------------------------------------------ the verdict

    def finish(self, timeout: float = 420) -> dict[str, object]:
        """Waits for the bounty to finalize, then checks everything a fault must not break."""

        def finalized() -> bool:
            for index, node in self.nodes.items():
                assert node.poll() is None, f"node {index} died: {self.node_log(index).read_text()[-2000:]}"
            return self.poster.bounty(self.bounty_id).status == BountyStatus.FINALIZED

        wait_until(finalized, f"bounty {self.bounty_id} to finalize after the fault", timeout=timeout, every=1)
        self.stop_nodes()
        accepted = [int(e["taskId"]) for e in self.events("TaskAccepted")]
        assert sorted(accepted) == sorted(set(accepted)) and len(accepted) == self.tasks, accepted  # each paid once
        assert self.events("TaskSlashed") == [], "an honest volunteer was slashed"
        volunteers = [self.keys[i].address for i in VOLUNTEERS]
        assert all(self.poster.stake_of(v).locked == 0 for v in volunteers), "stake stuck in a lock"
        escrow = self.poster.bounty(self.bounty_id).escrow
        if escrow:
            self.poster.refund(self.bounty_id)  # what the poster did not spend comes back at once
        assert self.poster.bounty(self.bounty_id).escrow == 0, "escrow stuck"
        self._assert_tokens_conserved()
        index_events = self._assert_index_matches_a_rebuild()
        health = json.loads(urllib.request.urlopen(f"{self.info.api_url}/health", timeout=10).read())
        assert health["status"] == "ok", health
        return {
            "scenario": self.name,
            "bounty": self.bounty_id,
            "tasks_paid": len(accepted),
            "slashed": 0,
            "node_restarts": self.restarts,
            "indexed_events": index_events,
        }

    def _assert_tokens_conserved(self) -> None:
        p = self.poster
        accounts = [k.address for k in self.keys]
        escrow = sum(
            p.bounty(b).escrow for b in range(1, p.market.functions.nextBountyId().call())
        )  # every bounty so far
        held = p.balance(self.deployment.market)
        staked = sum(p.stake_of(a).bonded + p.stake_of(a).unbonding for a in accounts)
        assert held == escrow + staked + sum(p.claimable(a) for a in accounts), "tokens not conserved"

    def _assert_index_matches_a_rebuild(self) -> int:
        """The API's index lived through the fault; a fresh one is rebuilt from the chain alone."""
        api_index = Path(self.info.home) / "api-index.sqlite"
        wait_until(lambda: _api_synced_to(self.info.api_url) >= self.w3.eth.block_number - 1, "the API to sync", 60)
        live = EventIndex(api_index, self.poster)
        assert live.revalidate() == [], "the API's index differs from the chain"
        # The API keeps indexing new blocks meanwhile (the refund above, beat's work): compare up to one block.
        synced = live.synced_to
        indexed = [e for e in live.events() if e.block <= synced]
        with tempfile.TemporaryDirectory() as tmp:
            fresh = EventIndex(Path(tmp) / "rebuilt.sqlite", self.poster)
            fresh.sync()
            rebuilt = [e for e in fresh.events() if e.block <= synced]
        assert indexed == rebuilt, "the API's index differs from a rebuild"
        return len(rebuilt)


def _api_synced_to(api_url: str) -> int:
    try:
        health = json.loads(urllib.request.urlopen(f"{api_url}/health", timeout=5).read())
    except (OSError, urllib.error.URLError):
        return -1
    return int(health["block"])
