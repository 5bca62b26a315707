"""The real stack on loopback, as separate processes: anvil, Redis, an IPFS daemon (js-ipfs, Kubo RPC API),
Celery worker and beat, and the FastAPI coordinator. Each runs in its own session, logs to <home>/logs and
is recorded in <home>/stack.json, so `down` stops exactly what `up` started, by process group.

  python -m devtools.localstack up|down|status|env [--home .shardwork/stack]

`env` prints the exports that point the `shardwork` commands at the stack: eval "$(./scripts/stack env)".
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.anvil import ANVIL, ROOT, free_port, wait_for_port
from devtools.network import Host
from ledger.amounts import UNIT

if TYPE_CHECKING:  # web3 loads lazily: `stack status` needs none of it
    from web3 import Web3

    from ledger.deploy import Deployment

JSIPFS = ROOT / "node_modules" / ".bin" / "jsipfs"
PYTHON = sys.executable


@dataclass
class StackInfo:
    home: str
    rpc_url: str
    redis_url: str
    ipfs_api: str
    api_url: str
    deployment: str
    pids: dict[str, int]
    # Where every server listens: loopback, or this host's address on a test network (devtools.network).
    address: str = "127.0.0.1"

    def env(self) -> dict[str, str]:
        """What every coordinator process (and a test) needs to find the stack."""
        return {
            "SHARDWORK_COORD_RPC_URL": self.rpc_url,
            "SHARDWORK_COORD_REDIS_URL": self.redis_url,
            "SHARDWORK_COORD_STORE": f"ipfs:{self.ipfs_api}",
            "SHARDWORK_COORD_DEPLOYMENT": self.deployment,
            "SHARDWORK_COORD_INDEX": str(Path(self.home) / "api-index.sqlite"),
            "SHARDWORK_COORD_DEV_ACCOUNTS": "true",
        }


def _spawn(name: str, args: list[str], home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(home / "logs" / f"{name}.log", "ab")
    return subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )


def _configure_ipfs(repo: Path, api_port: int, address: str, bootstrap: list[str]) -> None:
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    config["Addresses"].update(
        {
            "Swarm": [f"/ip4/{address}/tcp/{free_port()}"],
            "API": f"/ip4/{address}/tcp/{api_port}",
            "Gateway": f"/ip4/{address}/tcp/{free_port()}",
            "RPC": f"/ip4/{address}/tcp/{free_port()}",
            "Delegates": [],
        }
    )
    # The peers it dials at start (and redials): the only way into the swarm, with no public bootstrap.
    config["Bootstrap"] = bootstrap
    config["Discovery"] = {"MDNS": {"Enabled": False, "Interval": 10}, "webRTCStar": {"Enabled": False}}
    config_path.write_text(json.dumps(config, indent=2))


def start_ipfs(
    home: Path, port: int | None = None, host: Host | None = None, bootstrap: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """An IPFS node with its repo in <home>/ipfs, on `host` (loopback when none), dialing `bootstrap`
    peers (`ipfs_peer_address` of others) to join their swarm."""
    host = host or Host("local", "127.0.0.1")
    repo = home / "ipfs"
    env = {"IPFS_PATH": str(repo)}
    if not (repo / "config").exists():
        subprocess.run(
            [str(JSIPFS), "init", "--empty-repo"], env={**os.environ, **env}, check=True, capture_output=True
        )
    port = port or free_port()
    _configure_ipfs(repo, port, host.address, bootstrap or [])
    proc = _spawn("ipfs", host.command([str(JSIPFS), "daemon", "--enable-preload=false"]), home, env)
    wait_for_port(port, proc, timeout=60, host=host.address)
    api_url = f"http://{host.address}:{port}"
    for peer in bootstrap or []:  # js-ipfs dials its bootstrap list lazily; a test network starts now
        _ipfs_rpc(api_url, "swarm/connect", arg=peer)
    return proc, api_url


def _ipfs_rpc(api_url: str, command: str, **params: str) -> dict[str, object]:
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{api_url}/api/v0/{command}?{query}", method="POST")
    reply: dict[str, object] = json.loads(urllib.request.urlopen(request, timeout=30).read())
    return reply


def ipfs_peer_address(api_url: str) -> str:
    """The node's swarm address with its peer id (/ip4/…/tcp/…/p2p/…), for another node to dial."""
    reply = _ipfs_rpc(api_url, "id")
    host = api_url.split("//", 1)[1].rsplit(":", 1)[0]
    for address in reply["Addresses"]:  # type: ignore[attr-defined]
        if address.startswith(f"/ip4/{host}/tcp/"):
            return str(address)
    raise RuntimeError(f"the IPFS node at {api_url} announces no swarm address on {host}: {reply['Addresses']}")


def start_redis(home: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """On loopback always: only the coordinator's own processes (on its host) use the broker."""
    port = port or free_port()
    proc = _spawn(
        "redis",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(home),
        ],
        home,
    )
    wait_for_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_anvil(home: Path, port: int | None = None, address: str = "127.0.0.1") -> tuple[subprocess.Popen[bytes], str]:
    """Loads <home>/anvil-state.json when it exists and dumps the chain there on SIGTERM: a restarted node
    keeps every block, hash and log (a SIGKILLed one loses what it mined since its last dump)."""
    port = port or free_port()
    proc = _spawn(
        "anvil",
        [
            str(ANVIL),
            "--host",
            address,
            "--port",
            str(port),
            "--hardfork",
            "cancun",
            "--chain-id",
            "31337",
            "--state",
            str(home / "anvil-state.json"),
            # A block every second, as a live chain has: spot-checks are drawn from the block
            # after a commit, which an idle automining node would never produce.
            "--block-time",
            "1",
        ],
        home,
    )
    wait_for_port(port, proc, host=address)
    return proc, f"http://{address}:{port}"


# The coordinator's Celery workers: worker0, worker1, … take the default and moves queues; MOVES_WORKER only the
# short steps (coordinator.worker.MOVES), so a ruling or a settlement never waits behind a commit check;
# PREPARE_WORKER only the close's preparation, so it runs while the round's last commits wait out their windows.
MOVES_WORKER = "worker-moves"
PREPARE_WORKER = "worker-prepare"


def start_worker(info: StackInfo, home: Path, name: str) -> subprocess.Popen[bytes]:
    from coordinator.worker import MOVES_QUEUE, PREPARE_QUEUE

    # The prepare queue is PREPARE_WORKER's alone: a preparation another worker took would wait behind its checks.
    queues = {MOVES_WORKER: MOVES_QUEUE, PREPARE_WORKER: PREPARE_QUEUE}.get(name, f"celery,{MOVES_QUEUE}")
    return _spawn(
        name,
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "coordinator.worker",
            "worker",
            "--loglevel=INFO",
            "--concurrency=1",
            f"--queues={queues}",
            f"--hostname={name}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        home,
        info.env(),
    )


def start_workers(info: StackInfo, home: Path, workers: int = 1) -> dict[str, int]:
    env = info.env()
    pids = {}
    for i in range(workers):
        pids[f"worker{i}"] = start_worker(info, home, f"worker{i}").pid
    pids[MOVES_WORKER] = start_worker(info, home, MOVES_WORKER).pid
    pids[PREPARE_WORKER] = start_worker(info, home, PREPARE_WORKER).pid
    beat = _spawn(
        "beat",
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "coordinator.worker",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(home / "beat-schedule"),
        ],
        home,
        env,
    )
    pids["beat"] = beat.pid
    return pids


def api_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The coordinator's read API on `address`:`port` (uvicorn, settings from the SHARDWORK_COORD_* environment)."""
    factory = "coordinator.api:app_from_settings"
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        address,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def start_api(info: StackInfo, home: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    proc = _spawn("api", api_command(port, info.address), home, info.env())
    wait_for_port(port, proc, timeout=60, host=info.address)
    return proc, f"http://{info.address}:{port}"


def _fund_coordinator_accounts(w3: Web3, deployment: Deployment) -> None:
    """The coordinator (#2, it posts challenge bonds) and verifiers (#3, #4) must hold free stake to act."""
    from ledger.chain import dev_accounts
    from ledger.market import Market
    from ledger.tx import Transactor

    for key in dev_accounts(w3, 5)[2:5]:
        market = Market(w3, deployment, Transactor(w3, key))
        market.faucet(key.address, 10_000 * UNIT)
        market.stake(5_000 * UNIT)


def up(home: Path, workers: int = 1, address: str = "127.0.0.1") -> StackInfo:
    """The stack with every server on `address` (a test network's gateway to serve its hosts)."""
    from ledger.chain import connect, dev_accounts
    from ledger.deploy import deploy
    from ledger.tx import Transactor

    home = home.resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    if (home / "stack.json").exists() and status(home)["running"]:
        raise SystemExit(f"a stack is already running from {home}: `down` it first")
    pids: dict[str, int] = {}
    try:
        anvil, rpc_url = start_anvil(home, address=address)
        pids["anvil"] = anvil.pid
        redis_proc, redis_url = start_redis(home)
        pids["redis"] = redis_proc.pid
        ipfs, ipfs_api = start_ipfs(home, host=Host("coordinator", address))
        pids["ipfs"] = ipfs.pid
        deployment_path = home / "deployment.json"
        w3 = connect(rpc_url)
        deployment = deploy(w3, Transactor(w3, dev_accounts(w3, 1)[0]), unbonding_delay_s=3600)
        deployment.save(deployment_path)
        _fund_coordinator_accounts(w3, deployment)
        info = StackInfo(str(home), rpc_url, redis_url, ipfs_api, "", str(deployment_path), pids, address)
        pids.update(start_workers(info, home, workers))
        api, info.api_url = start_api(info, home)
        pids["api"] = api.pid
    except BaseException:
        _kill(pids)
        raise
    (home / "stack.json").write_text(json.dumps(asdict(info), indent=2))
    return info


def _kill(pids: dict[str, int]) -> None:
    for name in reversed(list(pids)):  # API and workers first, the chain last
        try:
            os.killpg(pids[name], signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 15
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def stop(info: StackInfo, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> None:
    """Stops one component (its whole process group) and waits until it is gone: a fault, or half a restart."""
    pid = info.pids[name]
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name} (pid {pid}) still running {timeout}s after signal {sig.name}")


def start(info: StackInfo, name: str) -> None:
    """Starts a stopped component again on its old port, with its old data (chain state, Redis AOF, IPFS
    repo), so every other process reconnects to the same URL; stack.json records the new pid."""
    home = Path(info.home)
    if name == "anvil":
        proc, _ = start_anvil(home, _port(info.rpc_url), info.address)
    elif name == "redis":
        proc, _ = start_redis(home, _port(info.redis_url))
    elif name == "ipfs":
        proc, _ = start_ipfs(home, _port(info.ipfs_api), Host("coordinator", info.address))
    elif name == "api":
        proc, _ = start_api(info, home, _port(info.api_url))
    elif name.startswith("worker"):
        proc = start_worker(info, home, name)
    else:
        raise ValueError(f"no such stack component: {name}")
    info.pids[name] = proc.pid
    (home / "stack.json").write_text(json.dumps(asdict(info), indent=2))


def down(home: Path) -> None:
    path = home.resolve() / "stack.json"
    if not path.exists():
        print(f"no stack recorded in {home}")
        return
    _kill(json.loads(path.read_text())["pids"])
    path.unlink()


def status(home: Path) -> dict[str, object]:
    path = home.resolve() / "stack.json"
    if not path.exists():
        return {"running": False}
    info = json.loads(path.read_text())
    alive = {}
    for name, pid in info["pids"].items():
        try:
            os.killpg(pid, 0)
            alive[name] = True
        except ProcessLookupError:
            alive[name] = False
    api_ok = False
    try:
        api_ok = json.loads(urllib.request.urlopen(f"{info['api_url']}/health", timeout=2).read())["status"] == "ok"
    except OSError:
        pass
    return {"running": any(alive.values()), "processes": alive, "api_healthy": api_ok, **info}


def cli_env(home: Path) -> dict[str, str]:
    """What the `shardwork` commands need to use the running stack: its chain, deployment and IPFS daemon."""
    path = home.resolve() / "stack.json"
    if not path.exists():
        raise SystemExit(f"no stack at {home}: start one with ./scripts/stack up")
    info = json.loads(path.read_text())
    return {
        "SHARDWORK_RPC_URL": info["rpc_url"],
        "SHARDWORK_DEPLOYMENT": str(Path(info["deployment"]).resolve()),
        "SHARDWORK_STORE": f"ipfs:{info['ipfs_api']}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    # Beside the CLI's own home, so one SHARDWORK_HOME keeps a user's wallets, index and stack together.
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SHARDWORK_HOME", ".shardwork")) / "stack")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.command == "up":
        info = up(args.home, args.workers)
        print(json.dumps(asdict(info), indent=2))
        print(f"explorer: {info.api_url}/   logs: {args.home}/logs   stop: ./scripts/stack down", file=sys.stderr)
    elif args.command == "down":
        down(args.home)
    elif args.command == "env":  # eval "$(./scripts/stack env)"
        for key, value in cli_env(args.home).items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        print(json.dumps(status(args.home), indent=2))


if __name__ == "__main__":
    main()
