"""The demo's scenario across real processes and separate hosts: the coordinator's host (anvil, Redis, its
js-ipfs node, Celery worker + beat, the FastAPI coordinator), and one host each for the poster, two honest
node daemons (`shardwork node run`), a partial faker and three independent verifier daemons
(`shardwork verify run`). A host is a network namespace with its own address on a private bridge where this
machine allows one (devtools.network), else loopback; every party has its own keys and its own IPFS node,
so the spec, round models, traces and checkpoints move between parties only through the IPFS swarm.

Two numeric classes meet: one honest volunteer and the independent verifier run on another CPU, an emulated
AMD EPYC-Rome (qemu-user) with native kernels; the other volunteer and the coordinator's verifiers run here,
pinned. The bounty's quorum is 5, so every verdict needs all five verifiers, of both classes: each judges its
own class bit for bit and the other by the tolerance measured at intake. Checked at the end: final on-chain
state, balances and conservation, and the explorer page in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from content.ipfs import open_store
from devtools.localstack import StackInfo, down, ipfs_peer_address, start_ipfs, up
from devtools.network import Network
from ledger.amounts import UNIT
from ledger.chain import connect, mnemonic_accounts
from ledger.deploy import Deployment
from ledger.market import BountyStatus, Market
from ledger.tx import Transactor
from protocol.manifests import TraceManifest
from protocol.pins import ENV_SWITCH, NATIVE, PINNED_ENV
from tests.support.specs import bounty_toml

SHARDWORK = str(Path(sys.executable).with_name("shardwork"))
PASSWORD = "e2e-password-123"


PARTIES = ["poster", "honest1", "honest2", "faker", "verifier", "verifier2", "verifier3"]


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with Network(PARTIES) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def stack(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    home = tmp_path_factory.mktemp("stack")
    info = up(home, address=network.gateway)
    yield info
    down(home)


@pytest.fixture(scope="module")
def party_stores(
    network: Network, stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Each party's own IPFS node on its own host (`ipfs:` store locations), dialing the coordinator's node
    and every node started before it: the swarm is the only way content moves between parties."""
    peers = [ipfs_peer_address(stack.ipfs_api)]
    procs: list[subprocess.Popen[bytes]] = []
    stores = {}
    try:
        for name in PARTIES:
            home = tmp_path_factory.mktemp(f"ipfs-{name}")
            (home / "logs").mkdir()
            proc, api = start_ipfs(home, host=network[name], bootstrap=peers)
            procs.append(proc)
            peers.append(ipfs_peer_address(api))
            stores[name] = f"ipfs:{api}"
        yield stores
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # not a process, or it exited meanwhile
    return lines


# A volunteer on another CPU and in another numeric class: qemu-user's AMD EPYC-Rome (AVX2, no AVX-512)
# running the same venv with its native kernels (no pins), so the coordinator's verifiers on this machine
# judge it by the cross-class tolerance measured at intake, not bit for bit.
EMULATED_AMD = ["qemu-x86_64", "-cpu", "EPYC-Rome", sys.executable]


def emulated_amd_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PINNED_ENV} | {ENV_SWITCH: NATIVE}


def _wait_for_commit(market: Market, volunteer: str, nodes: list[subprocess.Popen[bytes]], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not [
        e for e in market.market.events.TaskCommitted().get_logs(from_block=0) if e["args"]["volunteer"] == volunteer
    ]:
        assert time.monotonic() < deadline, f"{volunteer} committed nothing in {deadline_s} s"
        assert all(n.poll() is None for n in nodes), "a node daemon died"
        time.sleep(1)


def _bitswap_blocks_sent(store: str) -> int:
    request = urllib.request.Request(f"{store.removeprefix('ipfs:')}/api/v0/bitswap/stat", method="POST")
    return int(json.loads(urllib.request.urlopen(request, timeout=10).read())["BlocksSent"])


def get(url: str) -> dict[str, Any]:
    """A JSON object from the read API."""
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def test_bounty_completes_on_the_real_stack_with_the_faker_slashed(
    network: Network, stack: StackInfo, party_stores: dict[str, str], tmp_path: Path
) -> None:
    w3 = connect(stack.rpc_url)
    deployment = Deployment.load(Path(stack.deployment))
    keys = mnemonic_accounts(12)  # anvil funds the first ten with ETH; the last two get theirs below
    for extra in keys[10:]:
        w3.provider.make_request("anvil_setBalance", [extra.address, hex(10**20)])  # type: ignore[arg-type]
    env = {
        **os.environ,
        "SHARDWORK_HOME": str(tmp_path),
        "SHARDWORK_PASSWORD": PASSWORD,
        "SHARDWORK_RPC_URL": stack.rpc_url,
        "SHARDWORK_DEPLOYMENT": stack.deployment,
    }

    def party_env(name: str) -> dict[str, str]:
        return env | {"SHARDWORK_STORE": party_stores[name]}

    def cli(name: str, *args: str) -> str:
        """`shardwork ARGS` on `name`'s host, with its IPFS node."""
        command = network[name].command([SHARDWORK, *args])
        run = subprocess.run(command, capture_output=True, text=True, env=party_env(name), timeout=120)
        assert run.returncode == 0, f"{args}: {run.stderr}"
        return run.stdout

    wallets = {"poster": 1, "honest1": 5, "honest2": 6, "verifier": 8, "verifier2": 10, "verifier3": 11}
    for name, index in wallets.items():
        key_file = tmp_path / f"{name}.key"
        key_file.write_text(keys[index].key.hex())
        cli(name, "wallet", "import", name, "--private-key-file", str(key_file))
        cli(name, "faucet", "5000", "--wallet", name, "--yes")
        if name != "poster":
            cli(name, "stake", "1000", "--wallet", name, "--yes")
    faker = Market(w3, deployment, Transactor(w3, keys[7]))
    faker.faucet(faker.address, 5000 * UNIT)
    faker.stake(1000 * UNIT)
    coordinator_address = keys[2].address
    # Quorum 5: the coordinator's two verifiers and the three independent ones must all attest every verdict.
    (tmp_path / "spec.toml").write_text(bounty_toml(coordinator_address, quorum=5, verify_window_s=120))
    posted = json.loads(
        cli("poster", "bounty", "post", str(tmp_path / "spec.toml"), "--wallet", "poster", "--yes", "--json")
    )
    bounty_id = posted["bounty_id"]

    logs = tmp_path / "logs"
    logs.mkdir()
    faker_command = [sys.executable, "-m", "tests.support.adversary_node", stack.rpc_url, stack.deployment, "7"]
    nodes = [
        subprocess.Popen(
            network["faker"].command([*faker_command, party_stores["faker"], str(tmp_path / "faker"), "faker"]),
            stderr=open(logs / "faker.log", "w"),
            env=env,
        )
    ]
    for name in ("verifier", "verifier2", "verifier3"):
        on_amd = name == "verifier"
        nodes.append(
            subprocess.Popen(
                network[name].command(
                    [
                        *(EMULATED_AMD if on_amd else []),
                        SHARDWORK,
                        "verify",
                        "run",
                        "--keystore",
                        str(tmp_path / "wallets" / f"{name}.json"),
                        "--rpc-url",
                        stack.rpc_url,
                        "--deployment",
                        stack.deployment,
                        "--store",
                        party_stores[name],
                        "--poll-interval",
                        "0.5",
                    ]
                ),
                stderr=open(logs / f"{name}.log", "w"),
                env=emulated_amd_env(env) if on_amd else env,
            )
        )
    time.sleep(3)  # the faker gets a head start, so it surely takes tasks
    for name in ("honest1", "honest2"):
        if name == "honest2":  # the emulated volunteer commits honest work before this machine's competes
            _wait_for_commit(Market(w3, deployment), keys[5].address, nodes, deadline_s=300)
        nodes.append(
            subprocess.Popen(
                network[name].command(
                    [
                        *(EMULATED_AMD if name == "honest1" else []),
                        SHARDWORK,
                        "node",
                        "run",
                        "--keystore",
                        str(tmp_path / "wallets" / f"{name}.json"),
                        "--rpc-url",
                        stack.rpc_url,
                        "--deployment",
                        stack.deployment,
                        "--store",
                        party_stores[name],
                        "--work-dir",
                        str(tmp_path / name),
                        "--poll-interval",
                        "0.5",
                        "--auto-claim",
                    ]
                ),
                stderr=open(logs / f"{name}.log", "w"),
                env=emulated_amd_env(env) if name == "honest1" else env,
            )
        )
    secrets = [PASSWORD, *(k.key.hex() for k in keys), *(k.key.hex().removeprefix("0x") for k in keys)]
    try:
        deadline = time.monotonic() + 420
        while True:
            # No key or password on any command line while everything runs (what `ps` shows every user).
            assert not any(secret in cmdline for cmdline in _command_lines() for secret in secrets)
            bounty = get(f"{stack.api_url}/api/bounties/{bounty_id}")
            if bounty.get("status") == "finalized":
                break
            assert time.monotonic() < deadline, f"bounty not finalized in time: {bounty}"
            assert all(n.poll() is None for n in nodes), "a node daemon died"
            time.sleep(1)
    finally:
        for n in nodes:
            n.send_signal(signal.SIGTERM)
        for n in nodes:
            n.wait(timeout=60)

    market = Market(w3, deployment)
    b = market.bounty(bounty_id)
    assert b.status == BountyStatus.FINALIZED
    slashed = {e["args"]["volunteer"] for e in market.market.events.TaskSlashed().get_logs(from_block=0)}
    assert slashed == {faker.address}  # never the volunteer on the other CPU
    accepted = market.market.events.TaskAccepted().get_logs(from_block=0, argument_filters={"bountyId": bounty_id})
    assert len(accepted) == 3 * 2
    honest = {keys[5].address, keys[6].address}
    assert sum(1 for e in accepted if e["args"]["volunteer"] in honest) >= 1
    assert any(e["args"]["volunteer"] == keys[5].address for e in accepted)  # the emulated AMD volunteer was paid
    emulated = [
        e
        for e in market.market.events.TaskCommitted().get_logs(from_block=0)
        if e["args"]["volunteer"] == keys[5].address
    ]
    trace = TraceManifest.parse(open_store(f"ipfs:{stack.ipfs_api}").get(emulated[0]["args"]["traceCid"]))
    assert (trace.numerics.profile, trace.numerics.kernels) == (NATIVE, "AVX2")  # another class than ours
    # The emulated verifier judged both classes: its own volunteer's commits and this machine's.
    verdicts = market.market.events.VerdictAttested().get_logs(
        from_block=0, argument_filters={"verifier": keys[8].address}
    )
    committed_by = {
        int(e["args"]["taskId"]): e["args"]["volunteer"]
        for e in market.market.events.TaskCommitted().get_logs(from_block=0)
    }
    judged = {committed_by[int(v["args"]["taskId"])] for v in verdicts if v["args"]["passed"]}
    assert {keys[5].address, keys[6].address} <= judged
    assert any(not v["args"]["passed"] for v in verdicts)  # and failed the faker
    for independent in (keys[10], keys[11]):  # the other independent verifiers attested too
        assert market.market.events.VerdictAttested().get_logs(
            from_block=0, argument_filters={"verifier": independent.address}
        )
    # Content crossed hosts only through the swarm: the poster's node served the spec, each volunteer's node
    # served its traces and checkpoints to the others.
    for name in ("poster", "honest1", "honest2", "faker"):
        assert _bitswap_blocks_sent(party_stores[name]) > 0, f"{name}'s IPFS node served nothing"
    # Conservation: every token the market holds is escrow, stake or claimable.
    accounts = [k.address for k in keys]
    held = market.balance(deployment.market)
    stakes = sum(market.stake_of(a).bonded + market.stake_of(a).unbonding for a in accounts)
    claimable = sum(market.claimable(a) for a in accounts)
    assert held == b.escrow + stakes + claimable

    detail = get(f"{stack.api_url}/api/bounties/{bounty_id}")
    metrics = [r["metric"] for r in detail["round_history"]]
    assert len(metrics) == 3 and all(m is not None for m in metrics) and metrics[-1] > 0.5
    assert detail["slashes"] and detail["slashes"][0]["volunteer"] == faker.address

    # No private key or password in any log line of the whole run (stack processes and node daemons).
    for log in [*Path(stack.home, "logs").glob("*.log"), *logs.glob("*.log")]:
        text = log.read_text(errors="replace")
        # anvil's own start-up banner lists the public development keys it funds; ours must not appear anywhere.
        checked = [PASSWORD] if log.name == "anvil.log" else secrets
        assert not any(secret in text for secret in checked), f"a secret leaked into {log}"

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is required (scripts/test installs it)"
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=8000",
            "--dump-dom",
            f"{stack.api_url}/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert f'id="bounty-{bounty_id}"' in dom and "finalized" in dom
    assert "metric-chart" in dom and "<polyline" in dom
    assert faker.address in dom and 'class="slashed"' in dom
