"""`shardwork node run` as its own process against a real anvil node and the embedded content store."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from judge.context import ChainView
from ledger.market import TaskStatus, task_id_of
from node.busy import BusyProbe, CpuReading
from node.controls import Controls
from node.daemon import NodeDaemon, NodeOptions
from node.trainer import read_journal
from protocol import datasets
from protocol.manifests import RoundManifest, TraceManifest
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.tensors import to_bytes
from protocol.verify import verify_segment
from protocol.workloads import resolve
from tests.support.marketplace import PASSWORD, Marketplace
from tests.support.specs import small_spec

SHARDWORK = str(Path(sys.executable).with_name("shardwork"))


def node_args(m: Marketplace, keystore: Path, work_dir: Path, *extra: str) -> list[str]:
    password_file = m.root / "password.txt"
    password_file.write_text(PASSWORD)
    return [
        SHARDWORK,
        "node",
        "run",
        "--keystore",
        str(keystore),
        "--rpc-url",
        m.rpc_url,
        "--deployment",
        str(m.deployment_path),
        "--password-file",
        str(password_file),
        "--store",
        str(m.store_dir),
        "--work-dir",
        str(work_dir),
        "--poll-interval",
        "0.2",
        *extra,
    ]


def _url_once_training(proc: subprocess.Popen[str]) -> str:
    """The node's /health URL, read from its logs, once it logs that it started training."""
    url = None
    assert proc.stderr is not None  # piped
    for line in proc.stderr:
        entry = json.loads(line)
        url = entry.get("url", url)
        if entry["msg"] == "training":
            break
    assert url is not None, "the node logged no /health URL before training"
    return str(url)


def assert_trace_verifies(m: Marketplace, spec: TrainingSpec, bounty_id: int, shard: int, segment: int) -> None:
    """The committed trace replays, checked the verifier's way from on-chain data alone."""
    task_id = task_id_of(bounty_id, 0, shard)
    event = m.poster.commit_event(task_id)
    assert event is not None
    trace = TraceManifest.parse(m.store.get(event["traceCid"]))
    (opened,) = m.poster.opened_rounds(bounty_id=bounty_id)
    workload = resolve(spec.model)
    shards, _ = datasets.split(workload.dataset, spec.data)
    verdict = verify_segment(
        spec,
        workload,
        shards[shard],
        task_seed(bounty_id, 0, shard, opened.block_hash),
        trace,
        bytes(event["traceRoot"]),
        segment,
        # Checkpoint 0 is the round's start, which a verifier builds (node.trainer.start_ref: never stored).
        to_bytes(ChainView(m.poster, m.store).start_state(task_id))
        if segment == 0
        else m.store.get(trace.checkpoints[segment].cid),
        m.store.get(trace.checkpoints[segment + 1].cid),
    )
    assert verdict.passed, verdict


def test_node_claims_trains_and_commits_every_open_task_with_a_verifiable_trace(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    spec = small_spec()
    bounty_id = m.post_and_open(spec)
    volunteer, keystore = m.volunteer(0)
    run = subprocess.run(
        node_args(m, keystore, tmp_path / "node", "--once"), capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert [e["task_id"] for e in logs if e["msg"] == "task committed"] == [task_id_of(bounty_id, 0, s) for s in (0, 1)]
    for shard in (0, 1):
        task = volunteer.task(task_id_of(bounty_id, 0, shard))
        assert task.status == TaskStatus.COMMITTED and task.volunteer == volunteer.address
    assert_trace_verifies(m, spec, bounty_id, shard=1, segment=2)
    assert PASSWORD not in run.stderr + run.stdout


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_or_killed_node_commits_nothing_partial_and_a_restart_resumes_to_a_verifiable_commit(
    marketplace: Marketplace, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    m = marketplace
    spec = small_spec(
        model={"family": "mnist-cnn", "params": {}}, steps_per_task=240, checkpoint_interval=20, data={"shards": 1}
    )
    bounty_id = m.post_and_open(spec)
    volunteer, keystore = m.volunteer(1 if stop_signal == signal.SIGTERM else 2)
    task_id = task_id_of(bounty_id, 0, 0)
    work = tmp_path / "node"
    proc = subprocess.Popen(node_args(m, keystore, work, "--metrics-port", "0"), stderr=subprocess.PIPE, text=True)
    try:
        url = _url_once_training(proc)
        journal = work / "journals" / f"task-{task_id}.journal.json"
        deadline = time.monotonic() + 60
        while len(read_journal(journal)) < 3:
            assert time.monotonic() < deadline, "no checkpoints journaled"
            time.sleep(0.05)
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
        assert health["state"] == "training" and health["current_task"] == task_id
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert "shardwork_node_training_steps_total" in metrics
        proc.send_signal(stop_signal)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    if stop_signal == signal.SIGTERM:
        assert proc.returncode == 0 and "stopped mid-training" in rest, rest
    else:
        assert proc.returncode == -signal.SIGKILL
    assert volunteer.task(task_id).status == TaskStatus.CLAIMED  # nothing partial was committed
    done = len(read_journal(journal))
    assert 3 <= done < spec.segments + 1

    run = subprocess.run(node_args(m, keystore, work, "--once"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    training = [json.loads(line) for line in run.stderr.splitlines() if '"training"' in line]
    assert training and training[0]["resumed"] is True
    assert volunteer.task(task_id).status == TaskStatus.COMMITTED
    assert_trace_verifies(m, spec, bounty_id, shard=0, segment=done - 1)  # the segment that crossed the restart


def test_several_nodes_on_one_machine_share_a_bounty_without_double_claims(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    spec = small_spec(data={"shards": 4})
    bounty_id = m.post_and_open(spec)
    nodes = [m.volunteer(i) for i in (3, 4)]
    procs = [
        subprocess.Popen(node_args(m, keystore, tmp_path / f"node{i}", "--once"), stderr=subprocess.PIPE, text=True)
        for i, (_, keystore) in enumerate(nodes)
    ]
    outputs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    committed = [
        json.loads(line)["task_id"] for out in outputs for line in out.splitlines() if '"task committed"' in line
    ]
    assert sorted(committed) == [task_id_of(bounty_id, 0, s) for s in range(4)]  # each task exactly once
    owners = {m.poster.task(t).volunteer for t in committed}
    assert owners <= {market.address for market, _ in nodes}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("password", "wrong password for keystore"),
        ("deployment", "no deployment manifest at"),
        ("family", "unknown model family ['resnet']"),
        ("rpc", "cannot reach an EVM node at http://127.0.0.1:9"),
        ("keystore", "no keystore at"),
    ],
)
def test_node_run_refuses_bad_input_with_one_line(
    marketplace: Marketplace, tmp_path: Path, change: str, message: str
) -> None:
    m = marketplace
    _, keystore = m.volunteer(0)
    args = node_args(m, keystore, tmp_path / "node", "--once")
    if change == "password":
        (m.root / "password.txt").write_text("not the password")
    elif change == "deployment":
        args[args.index("--deployment") + 1] = str(tmp_path / "missing.json")
    elif change == "family":
        args += ["--family", "resnet"]
    elif change == "rpc":
        args[args.index("--rpc-url") + 1] = "http://127.0.0.1:9"
    elif change == "keystore":
        args[args.index("--keystore") + 1] = str(tmp_path / "nobody.json")
    run = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and message in run.stderr, run.stderr


def test_node_skips_bounties_beyond_its_memory_limit_or_model_families(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    bounty_id = m.post_and_open(small_spec(data={"shards": 1}))
    _, keystore = m.volunteer(5)
    for extra, reason in (
        (["--max-memory-mb", "1"], "needs more memory"),
        (["--family", "mnist-cnn"], "not supported"),
    ):
        run = subprocess.run(
            node_args(m, keystore, tmp_path / "node", "--once", *extra), capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert reason in run.stderr and "task claimed" not in run.stderr
    assert m.poster.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.OPEN


def test_a_round_model_not_served_yet_is_waited_for_before_claiming_and_the_task_then_committed(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    """The round's inputs come from the coordinator's node; one not served (a large model over a busy swarm, an
    outage) must neither stop the daemon nor put a lease at risk: it claims only what it could fetch."""
    m = marketplace
    bounty_id = m.post_and_open(small_spec())
    (opened,) = m.poster.opened_rounds(bounty_id=bounty_id)
    model_cid = RoundManifest.parse(m.store.get(opened.model_cid)).model_cid
    served, withheld = m.store_dir / model_cid, tmp_path / "withheld"
    served.rename(withheld)
    volunteer, keystore = m.volunteer(0)
    log_path = tmp_path / "node.log"
    with log_path.open("w") as log_file:
        args = node_args(m, keystore, tmp_path / "node", "--max-tasks", "1", "--bounty", str(bounty_id))
        node = subprocess.Popen(args, stderr=log_file)
    task_id = task_id_of(bounty_id, 0, 0)
    try:
        deadline = time.monotonic() + 120
        while "round inputs not served yet; not claiming" not in log_path.read_text():
            assert node.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, "the node never asked for the round's model"
            time.sleep(0.2)
        assert volunteer.task(task_id).status == TaskStatus.OPEN  # no lease taken on inputs it could not fetch
        withheld.rename(served)
        assert node.wait(timeout=180) == 0, log_path.read_text()[-2000:]
    finally:
        if node.poll() is None:
            node.kill()
    assert volunteer.task(task_id).status == TaskStatus.COMMITTED


def _steps(url: str) -> float:
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    line = next(m for m in metrics.splitlines() if m.startswith("shardwork_node_training_steps_total"))
    return float(line.split()[-1])


def _health(url: str) -> dict[str, object]:
    return dict(json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read()))


def _health_or_log(url: str, proc: subprocess.Popen[str]) -> dict[str, object]:
    try:
        return _health(url)
    except OSError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None


def _long_task(m: Marketplace) -> tuple[TrainingSpec, int]:
    """A one-shard bounty of 120 mnist-cnn steps: at a 5% duty cycle (19 step-times of rest after each step) its
    task lasts long enough to be held mid-way."""
    spec = small_spec(
        model={"family": "mnist-cnn", "params": {}}, steps_per_task=120, checkpoint_interval=20, data={"shards": 1}
    )
    return spec, m.post_and_open(spec)


def _assert_held(url: str, proc: subprocess.Popen[str], state: str) -> None:
    """The node reaches `state` within a minute and, held there, counts no step."""
    deadline = time.monotonic() + 60
    while _health_or_log(url, proc)["state"] != state:
        assert time.monotonic() < deadline, f"the node never reached {state!r}"
        time.sleep(0.1)
    held = _steps(url)
    time.sleep(1.5)  # several steps' time: a node that kept training would have counted them
    assert _steps(url) == held


def test_node_pause_holds_training_between_steps_and_resume_finishes_the_task(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    spec, bounty_id = _long_task(m)
    volunteer, keystore = m.volunteer(6)
    task_id = task_id_of(bounty_id, 0, 0)
    work = tmp_path / "node"
    # A duty cycle of 5% rests 19 step-times after each step: the task lasts long enough to be paused mid-way.
    args = node_args(
        m, keystore, work, "--metrics-port", "0", "--max-tasks", "1", "--duty-cycle", "0.05", "--bounty", str(bounty_id)
    )
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    control = [SHARDWORK, "node"]
    try:
        url = _url_once_training(proc)
        out = subprocess.run([*control, "pause", "--work-dir", str(work)], capture_output=True, text=True, check=True)
        assert "paused the node" in out.stdout
        _assert_held(url, proc, "paused")
        assert _health(url)["current_task"] == task_id and volunteer.task(task_id).status == TaskStatus.CLAIMED
        out = subprocess.run([*control, "resume", "--work-dir", str(work)], capture_output=True, text=True, check=True)
        assert "resumed the node" in out.stdout
        rest = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    messages = [json.loads(line)["msg"] for line in rest.splitlines() if line.startswith("{")]
    assert "resumed" in messages and "task committed" in messages
    assert volunteer.task(task_id).status == TaskStatus.COMMITTED
    assert_trace_verifies(m, spec, bounty_id, shard=0, segment=2)


def test_a_paused_node_or_one_outside_its_hours_claims_nothing(marketplace: Marketplace, tmp_path: Path) -> None:
    m = marketplace
    bounty_id = m.post_and_open(small_spec(data={"shards": 1}))
    volunteer, keystore = m.volunteer(0)  # it claims nothing here: any staked volunteer will do
    work = tmp_path / "node"
    refused = subprocess.run([SHARDWORK, "node", "pause", "--work-dir", str(work)], capture_output=True, text=True)
    assert refused.returncode == 1 and "has `node run` been started" in refused.stderr  # no such node yet
    work.mkdir()
    subprocess.run([SHARDWORK, "node", "pause", "--work-dir", str(work)], check=True, capture_output=True)
    once = ("--once", "--bounty", str(bounty_id))
    run = subprocess.run(node_args(m, keystore, work, *once), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "paused: claiming no new task" in run.stderr, run.stderr
    assert volunteer.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.OPEN

    subprocess.run([SHARDWORK, "node", "resume", "--work-dir", str(work)], check=True, capture_output=True)
    hour = time.localtime().tm_hour
    window = f"{(hour + 2) % 24}-{(hour + 3) % 24}"  # excludes this hour and the next, whenever the test runs
    run = subprocess.run(node_args(m, keystore, work, *once, "--hours", window), capture_output=True, text=True)
    assert run.returncode == 0 and "outside hours: claiming no new task" in run.stderr, run.stderr
    assert volunteer.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.OPEN

    bad = subprocess.run(node_args(m, keystore, work, *once, "--hours", "25-3"), capture_output=True, text=True)
    assert bad.returncode != 0 and "is not a window" in bad.stderr and "Traceback" not in bad.stderr


def test_a_node_claims_no_task_whose_trace_would_break_its_disk_cap(marketplace: Marketplace, tmp_path: Path) -> None:
    m = marketplace
    bounty_id = m.post_and_open(small_spec(data={"shards": 1}))  # a trace of megabytes
    volunteer, keystore = m.volunteer(0)  # it claims nothing here: any staked volunteer will do
    work = tmp_path / "node"
    once = ("--once", "--bounty", str(bounty_id))
    run = subprocess.run(node_args(m, keystore, work, *once, "--max-disk", "0.001"), capture_output=True, text=True)
    assert run.returncode == 0 and "disk cap: one more of this bounty's traces would not fit" in run.stderr, run.stderr
    assert volunteer.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.OPEN
    # A store directory uploads nothing: an upload cap on one is a mistake, said in one line before anything runs.
    bad = subprocess.run(node_args(m, keystore, work, *once, "--max-upload", "1"), capture_output=True, text=True)
    assert bad.returncode == 1 and "--max-upload needs an IPFS store" in bad.stderr and "Traceback" not in bad.stderr


def test_node_estimate_times_each_open_bountys_steps_and_flags_a_lease_too_short_and_the_node_claims_none(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    roomy = m.post_and_open(small_spec(data={"shards": 1}))
    tight = m.post_and_open(
        small_spec(data={"shards": 1}, steps_per_task=4000, checkpoint_interval=100), leaseDuration=1
    )
    env = {**os.environ, "SHARDWORK_HOME": str(tmp_path)}
    args = ["node", "estimate", "--rpc-url", m.rpc_url, "--deployment", str(m.deployment_path)]
    args += ["--store", str(m.store_dir), "--bounty", str(roomy), "--bounty", str(tight)]
    run = subprocess.run([SHARDWORK, *args, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = {r["bounty_id"]: r for r in json.loads(run.stdout.strip().splitlines()[-1])["estimates"]}
    for bounty_id, steps in ((roomy, 20), (tight, 4000)):
        r = rows[bounty_id]
        assert r["step_seconds"] > 0 and r["task_seconds"] == pytest.approx(r["step_seconds"] * steps * 1.1)
        assert r["earned_per_hour"] == pytest.approx(r["reward_per_task"] * 3600 / r["task_seconds"], rel=0.01)
        assert r["family"] == "mnist-mlp" and r["memory_mb"] > 0
    assert rows[roomy]["fits_lease"] is True and rows[tight]["fits_lease"] is False
    text = subprocess.run([SHARDWORK, *args], capture_output=True, text=True, env=env, timeout=300).stdout
    assert "TOO SLOW: over its 1 s lease" in text and "fits its lease" in text
    # A node training a quarter of the time takes four times as long per task.
    run = subprocess.run([SHARDWORK, *args, "--duty-cycle", "0.25", "--json"], capture_output=True, text=True, env=env)
    slow = {r["bounty_id"]: r for r in json.loads(run.stdout.strip().splitlines()[-1])["estimates"]}[roomy]
    assert slow["duty_cycle"] == 0.25
    assert slow["task_seconds"] == pytest.approx(slow["step_seconds"] * 20 * 1.1 / 0.25)
    text = subprocess.run([SHARDWORK, *args, "--duty-cycle", "0.25"], capture_output=True, text=True, env=env).stdout
    assert "at duty cycle 0.25" in text

    # The daemon weighs the same before claiming: the bounty it cannot finish in time keeps its task open for a
    # faster volunteer, and costs this one no lease penalty.
    volunteer, keystore = m.volunteer(0)
    once = node_args(m, keystore, tmp_path / "node", "--once", "--bounty", str(tight))
    node = subprocess.run(once, capture_output=True, text=True, timeout=300)
    assert node.returncode == 0 and "too slow for this bounty's lease" in node.stderr, node.stderr
    assert volunteer.task(task_id_of(tight, 0, 0)).status == TaskStatus.OPEN


def _burn_every_core() -> list[subprocess.Popen[bytes]]:
    """Other programs keeping every core of the machine busy."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        p.kill()
        p.wait()


def test_a_node_holds_while_other_programs_keep_the_machine_busy_and_trains_on_when_they_stop(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    m = marketplace
    spec, bounty_id = _long_task(m)
    volunteer, keystore = m.volunteer(7)
    task_id = task_id_of(bounty_id, 0, 0)
    work = tmp_path / "node"
    busy = ("--pause-when-busy", "60", "--bounty", str(bounty_id))
    burners = _burn_every_core()
    try:  # busy before it starts: it claims nothing
        run = subprocess.run(node_args(m, keystore, work, "--once", *busy), capture_output=True, text=True, timeout=120)
    finally:
        _stop(burners)
    assert run.returncode == 0 and "machine busy: claiming no new task" in run.stderr, run.stderr
    assert volunteer.task(task_id).status == TaskStatus.OPEN

    # Busy mid-task: held between two steps, then trained on once the other programs stop.
    args = node_args(m, keystore, work, "--metrics-port", "0", "--max-tasks", "1", "--duty-cycle", "0.05", *busy)
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        url = _url_once_training(proc)
        burners = _burn_every_core()
        try:
            _assert_held(url, proc, "busy")
            assert volunteer.task(task_id).status == TaskStatus.CLAIMED
        finally:
            _stop(burners)
        rest = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    messages = [json.loads(line)["msg"] for line in rest.splitlines() if line.startswith("{")]
    assert "machine busy: holding training" in messages and "machine no longer busy: training on" in messages
    assert volunteer.task(task_id).status == TaskStatus.COMMITTED
    assert_trace_verifies(m, spec, bounty_id, shard=0, segment=2)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_busy_hold_ends_when_the_lease_needs_the_rest_of_its_time(marketplace: Marketplace, tmp_path: Path) -> None:
    """A busy machine never costs the volunteer its lease: the node trains on, busy or not, once the time left
    is what the rest of the task needs (in-process, with a probe that reads the machine idle at the claim and
    fully busy from then on)."""
    m = marketplace
    bounty_id = m.post_and_open(small_spec(data={"shards": 1}), leaseDuration=20)
    volunteer, _ = m.volunteer(8)
    work = tmp_path / "node"
    loads = iter([0.0, *[100.0] * 100_000])
    machine = {"at": 0.0, "busy": 0.0}

    def read() -> CpuReading:  # one core, each reading a second after the last, at the next load
        reading = CpuReading(busy_s=machine["busy"], total_s=machine["at"], own_s=0.0, at=machine["at"])
        machine["at"] += 1
        machine["busy"] += next(loads) / 100
        return reading

    logger = logging.getLogger(f"test.busy.{bounty_id}")
    logger.propagate, handler = False, _Messages()
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    options = NodeOptions(work_dir=work, once=True, bounties=frozenset({bounty_id}), busy_above_pct=50)
    daemon = NodeDaemon(volunteer, m.store, options, logger)
    daemon.controls = Controls(work, busy_probe=BusyProbe(50, read=read, sleep=lambda _: None))
    started = time.monotonic()
    assert daemon.run() == 1
    assert "machine busy: holding training" in handler.messages
    assert "training on although the machine is busy: the lease needs the rest of its time" in handler.messages
    assert volunteer.task(task_id_of(bounty_id, 0, 0)).status == TaskStatus.COMMITTED
    assert time.monotonic() - started < 20  # it did not wait the lease out
