"""One real stack (anvil, Redis, js-ipfs, Celery worker + beat, API) shared by the fault scenarios, and the
checks every scenario must pass after its fault: the bounty finalizes, every task is paid exactly once, no
honest volunteer is slashed, no escrow or stake is stuck, tokens are conserved, and the API's event index
is exactly what a fresh rebuild from the chain gives.

Each scenario posts its own bounty and starts its own honest node daemons, so a fault's effects are judged
on that bounty alone; the stack is shared to keep the suite short (starting one costs ~15 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import redis

from content.ipfs import IpfsStore
from devtools.localstack import MOVES_WORKER, PREPARE_WORKER, StackInfo
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.errors import error_class
from ledger.index import EventIndex
from ledger.market import BountyStatus, Market, TaskStatus
from ledger.terms import BountyTerms, load_bounty_file
from ledger.tx import Transactor
from tests.support.specs import bounty_toml

UNIT = 10**18
VOLUNTEERS = (5, 6)  # development-account indexes of the honest node daemons
COORDINATOR_ACCOUNTS = (2, 3, 4)  # the stack's coordinator and its two verifiers (devtools/localstack.py)
VERIFIERS = 2
ENDED = ("succeeded", "retry", "raised", "reject", "ignored")  # how Celery logs the end of one run of a task
_CELERY_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[\w-]+\] (.*)$")
_TASK_EVENT = re.compile(r"^Task shardwork\.(\w+)\[([^\]]+)\] (received|succeeded|retry|raised|reject|ignored)\b")
T = TypeVar("T")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(every)


def log_has(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text(errors="replace")


@dataclass(frozen=True)
class WorkerLine:
    """One line of a Celery worker's log: a task's life-cycle event, one of the coordinator's JSON lines, or any
    other line Celery wrote (the broker's connection lost, an HTTP request)."""

    worker: str  # the stack component: worker0, worker1, ...
    ts: float  # Unix time
    text: str
    task: str | None = None  # the task's name without "shardwork.", for a life-cycle event
    celery_id: str | None = None
    event: str | None = None  # received, succeeded, retry or raised
    fields: dict[str, Any] = field(default_factory=dict)  # of a JSON line

    @property
    def msg(self) -> str | None:
        return self.fields.get("msg")

    @property
    def chain_task(self) -> int | None:
        """The on-chain task the line is about: a JSON line's task_id, or the one a commit check's Celery id
        names (beat queues them as check-<task>-<attempt>-<block>)."""
        if "task_id" in self.fields:
            return int(self.fields["task_id"])
        if self.task == "check_commit" and self.celery_id and self.celery_id.startswith("check-"):
            return int(self.celery_id.split("-")[1])
        return None


def parse_worker_log(worker: str, text: str) -> list[WorkerLine]:
    """The lines of a worker's log, in the order written (its banner and tracebacks' continuations left out)."""
    lines = []
    for raw in text.splitlines():
        match = _CELERY_LINE.match(raw)
        if match is None:
            continue
        ts = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the worker's local time
        body = match[2]
        if body.startswith("{"):
            try:
                fields = json.loads(body)
            except ValueError:
                continue
            lines.append(WorkerLine(worker, float(fields.get("ts", ts)), body, fields=fields))
        elif event := _TASK_EVENT.match(body):
            lines.append(WorkerLine(worker, ts, body, event[1], event[2], event[3]))
        else:
            lines.append(WorkerLine(worker, ts, body))
    return lines


def _group_stopped(pgid: int) -> bool:
    """Whether every process of the group is stopped (or gone): SIGSTOP is delivered asynchronously."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state not in "TtZX":
            return False
    return True


@dataclass
class Scenario:
    """One bounty on the shared stack, its honest nodes, and what happened to it."""

    info: StackInfo
    name: str
    work: Path
    nodes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0
    # What the fault was seen to hit (reported with the outcome), and the checks of it that can only run once
    # the bounty has finalized.
    evidence: dict[str, object] = field(default_factory=dict)
    afterwards: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Logs of the shared worker processes are read from where they stood when this scenario began.
        self.log_offsets = {p: p.stat().st_size for p in (Path(self.info.home) / "logs").glob("worker*.log")}
        self.w3 = connect(self.info.rpc_url)
        self.deployment = Deployment.load(Path(self.info.deployment))
        self.keys = dev_accounts(self.w3, 10)
        self.poster = Market(self.w3, self.deployment, Transactor(self.w3, self.keys[1]))

    # ------------------------------------------------------------------ set-up

    def post_bounty(self, **terms_overrides: object) -> None:
        """Posts the scenario's bounty; `terms_overrides` replace terms of the spec file's [bounty] table."""
        spec_file = self.work / "spec.toml"
        spec_file.write_text(bounty_toml(self.keys[2].address))
        self.spec, terms = load_bounty_file(spec_file)
        terms = BountyTerms.model_validate({**terms.model_dump(), **terms_overrides})
        self.tasks = self.spec.data.shards * self.spec.rounds
        store = IpfsStore(self.info.ipfs_api)
        self.poster.faucet(self.poster.address, 5_000 * UNIT)
        self.poster.ensure_allowance(terms.escrow(self.tasks))
        self.from_block = self.w3.eth.block_number
        self.bounty_id = self.poster.post_bounty(
            terms.posting(self.spec, store.put(self.spec.canonical_bytes()), self.poster.now())
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

    def events(self, name: str) -> list[dict[str, Any]]:
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

    def event_logs(self, name: str, **filters: object) -> list[Any]:
        """This bounty's `name` events with where they were mined (block, transaction)."""
        logs = getattr(self.poster.market.events, name)().get_logs(
            from_block=self.from_block, argument_filters=filters or None
        )
        return [e for e in logs if int(e["args"].get("bountyId", self.bounty_id)) == self.bounty_id]

    def ours(self, task_id: int | None) -> bool:
        return task_id is not None and task_id >> 64 == self.bounty_id

    def worker_lines(self, worker: str) -> list[WorkerLine]:
        """What `worker` logged since this scenario began, in the order written."""
        path = Path(self.info.home) / "logs" / f"{worker}.log"
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(self.log_offsets.get(path, 0))
            return parse_worker_log(worker, f.read().decode(errors="replace"))

    def live_worker(self) -> str:
        """A running worker that takes commit checks (the moves and prepare workers take only their queues)."""
        for name, pid in self.info.pids.items():
            if name.startswith("worker") and name not in (MOVES_WORKER, PREPARE_WORKER):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, 0)
                    return name
        raise AssertionError("no Celery worker is running")

    def check_in_progress(self, worker: str) -> WorkerLine | None:
        """The "commit check started" line of the check of this bounty that `worker` is running now, if any: its
        start is logged and its end is not. The worker runs one task at a time (--concurrency=1), so that can
        only be the last check it started."""
        lines = self.worker_lines(worker)
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].msg == "commit check started":
                start, celery_id = lines[i], lines[i].fields["celery_id"]
                if not self.ours(start.chain_task):
                    return None
                ended = any(line.celery_id == celery_id and line.event in ENDED for line in lines[i + 1 :])
                return None if ended else start
        return None

    def needs_check(self, task_id: int) -> bool:
        """Whether commit checks still have work on `task_id`, so that one must run (and fetch its trace) before
        it can settle: when it is checked, a verifier's verdict to give. Before the draw's block is mined there
        is none: a check then ends at once, with nothing sent."""
        if self.poster.task(task_id).status not in (TaskStatus.COMMITTED, TaskStatus.CHALLENGED):
            return False
        try:
            checked, _ = self.poster.challenge(task_id)
        except error_class("MarketChallengeNotDrawnYet"):
            # The draw's block is not mined yet: a check now can neither record it nor vote, and ends at once.
            return False
        return checked and len(self.event_logs("VerdictAttested", taskId=task_id)) < VERIFIERS

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.info.redis_url, socket_timeout=5)

    def transaction_under_way(self) -> bool:
        """Whether a coordinator process holds an account's nonce lock: it is between building a transaction
        and its receipt (coordinator/service.py, LockedTransactor)."""
        with self.redis_client() as client:
            return bool(client.keys("shardwork:nonce:*"))

    def unacked(self) -> dict[str, str]:
        """Celery id -> task name of each message Redis has delivered to a worker and not yet seen acknowledged
        (task_acks_late: a task is acknowledged when it ends)."""
        with self.redis_client() as client:
            payloads = [json.loads(raw)[0] for raw in client.hvals("unacked")]
        return {p["headers"]["id"]: p["headers"]["task"] for p in payloads}

    def coordinator_nonces(self) -> dict[str, int]:
        """The next nonce of each coordinator account, counting transactions still pending."""
        addresses = [self.keys[i].address for i in COORDINATOR_ACCOUNTS]
        return {a: self.w3.eth.get_transaction_count(a, "pending") for a in addresses}

    @contextlib.contextmanager
    def frozen_when(self, name: str, find: Callable[[], T | None], what: str, timeout: float = 120) -> Iterator[T]:
        """Waits for a moment when `find` finds something, and yields it with component `name` stopped (SIGSTOP to
        its process group), so that what was found still holds when the fault lands; resumes `name` afterwards
        unless it is gone. `find` is asked again once `name` is stopped: it may have moved on meanwhile."""
        deadline = time.monotonic() + timeout
        pid = self.info.pids[name]
        while True:
            if find() is not None:
                os.killpg(pid, signal.SIGSTOP)
                try:
                    wait_until(lambda: _group_stopped(pid), f"{name} to stop", 10, 0.01)
                    found = find()
                except BaseException:
                    os.killpg(pid, signal.SIGCONT)
                    raise
                if found is not None:
                    break
                os.killpg(pid, signal.SIGCONT)
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
            time.sleep(0.1)
        try:
            yield found
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)

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
            **({"fault_hit": self.evidence} if self.evidence else {}),
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
        problems = live.revalidate()
        assert problems == [], f"the API's index differs from the chain: {problems[:10]}"
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
