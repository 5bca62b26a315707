"""A volunteer network on one machine, for the multi-host end-to-end test and `./scripts/bench network`.

The coordinator's host runs the stack (anvil, Redis on its loopback, its js-ipfs node, Celery worker and beat,
the API) on a private bridge's gateway address; every other party gets its own host (devtools.network: a
network namespace where this machine allows one, else loopback), its own keys and its own IPFS node dialing
the coordinator's node and every node started before it. Parties are real processes: `shardwork` commands
and daemons, a faker and a lying verifier from tests/support. `close()` stops all of it by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from devtools.localstack import StackInfo, down, ipfs_peer_address, start_ipfs, up
from devtools.network import Network
from ledger.amounts import UNIT
from ledger.chain import connect, mnemonic_accounts
from ledger.deploy import Deployment
from ledger.errors import CHAIN_TRANSIENT
from ledger.market import Market
from ledger.tx import Transactor
from protocol.pins import ENV_SWITCH, NATIVE, PINNED_ENV

SHARDWORK = str(Path(sys.executable).with_name("shardwork"))
PASSWORD = "testnet-password-123"

# A party on another CPU and in another numeric class: qemu-user's AMD EPYC-Rome (AVX2, no AVX-512) running
# the same venv with its native kernels (no pins), so parties on this machine judge it by the cross-class
# tolerance measured at intake, not bit for bit.
EMULATED_AMD = ["qemu-x86_64", "-cpu", "EPYC-Rome", sys.executable]


def emulated_amd_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PINNED_ENV} | {ENV_SWITCH: NATIVE}


class TestNet:
    """`TestNet(home, ["poster", "honest1", ...])`; use as a context manager."""

    __test__ = False  # not a pytest class

    def __init__(self, home: Path, parties: list[str], accounts: int = 12) -> None:
        self.home = home
        self.parties = parties
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._ipfs: list[subprocess.Popen[bytes]] = []
        self.stores: dict[str, str] = {}
        self.network = Network(parties)
        try:
            self.stack: StackInfo = up(home / "stack", address=self.network.gateway)
            self.w3 = connect(self.stack.rpc_url)
            self.deployment = Deployment.load(Path(self.stack.deployment))
            self.keys: list[LocalAccount] = mnemonic_accounts(accounts)
            for extra in self.keys[10:]:  # anvil funds the first ten with ETH
                self.w3.provider.make_request("anvil_setBalance", [extra.address, hex(10**20)])  # type: ignore[arg-type]
            self._start_ipfs_nodes()
        except BaseException:
            self.close()
            raise
        self.env = {
            **os.environ,
            "SHARDWORK_HOME": str(home / "client"),
            "SHARDWORK_PASSWORD": PASSWORD,
            "SHARDWORK_RPC_URL": self.stack.rpc_url,
            "SHARDWORK_DEPLOYMENT": self.stack.deployment,
        }

    def _start_ipfs_nodes(self) -> None:
        peers = [ipfs_peer_address(self.stack.ipfs_api)]
        for name in self.parties:
            home = self.home / f"ipfs-{name}"
            (home / "logs").mkdir(parents=True, exist_ok=True)
            proc, api = start_ipfs(home, host=self.network[name], bootstrap=peers)
            self._ipfs.append(proc)
            peers.append(ipfs_peer_address(api))
            self.stores[name] = f"ipfs:{api}"

    def market(self, index: int) -> Market:
        return Market(self.w3, self.deployment, Transactor(self.w3, self.keys[index]))

    def cli(self, name: str, *args: str, timeout_s: float = 120) -> str:
        """`shardwork ARGS` on `name`'s host, with its IPFS node."""
        env = self.env | {"SHARDWORK_STORE": self.stores[name]}
        run = subprocess.run(
            self.network[name].command([SHARDWORK, *args]), capture_output=True, text=True, env=env, timeout=timeout_s
        )
        if run.returncode != 0:
            raise RuntimeError(f"shardwork {' '.join(args)} failed: {run.stderr[-2000:]}")
        return run.stdout

    def wallet(self, name: str, index: int, stake: int | None = 1000, verifier: bool = False) -> None:
        """Imports development key `index` as wallet `name`, gets test tokens and stakes, with the CLI; a verifier
        also takes its seat now, so it is drawn for every commit to come (its daemon would, but only once it
        has started, which under emulation takes longer than the first commit)."""
        key_file = self.home / f"{name}.key"
        key_file.write_text(self.keys[index].key.hex())
        self.cli(name, "wallet", "import", name, "--private-key-file", str(key_file))
        key_file.unlink()
        self.cli(name, "faucet", "5000", "--wallet", name, "--yes")
        if stake:
            self.cli(name, "stake", str(stake), "--wallet", name, "--yes")
        if verifier:
            self.cli(name, "verify", "join", "--wallet", name, "--yes")

    def keystore(self, name: str) -> str:
        return str(self.home / "client" / "wallets" / f"{name}.json")

    def spawn(self, name: str, argv: list[str], emulated: bool = False) -> subprocess.Popen[bytes]:
        """A long-running process of party `name` on its host; stderr goes to logs/<name>.log."""
        command = self.network[name].command([*(EMULATED_AMD if emulated else []), *argv])
        env = emulated_amd_env(self.env) if emulated else self.env
        proc = subprocess.Popen(command, stderr=open(self.logs / f"{name}.log", "w"), env=env)
        self.procs.append(proc)
        return proc

    def node(self, name: str, emulated: bool = False) -> subprocess.Popen[bytes]:
        return self.spawn(
            name,
            [
                SHARDWORK,
                "node",
                "run",
                *self._daemon_args(name),
                "--work-dir",
                str(self.home / name),
                "--auto-claim",
            ],
            emulated,
        )

    def verifier(self, name: str, emulated: bool = False) -> subprocess.Popen[bytes]:
        return self.spawn(name, [SHARDWORK, "verify", "run", *self._daemon_args(name)], emulated)

    def faker(self, name: str, index: int) -> subprocess.Popen[bytes]:
        """A partial faker whose faked segments keep their step counters: only a replay (and a game) tells."""
        market = self.market(index)
        market.faucet(market.address, 5000 * UNIT)
        market.stake(1000 * UNIT)
        module = [sys.executable, "-m", "tests.support.adversary_node"]
        args = [self.stack.rpc_url, self.stack.deployment, str(index), self.stores[name], str(self.home / name)]
        return self.spawn(name, [*module, *args, "faker"])

    def liar(self, name: str, index: int, target: str) -> subprocess.Popen[bytes]:
        """A verifier that contests `target`'s first commit and disagrees with every midpoint."""
        market = self.market(index)
        market.faucet(market.address, 5000 * UNIT)
        market.stake(1000 * UNIT)
        module = [sys.executable, "-m", "tests.support.adversary_verifier"]
        return self.spawn(
            name, [*module, self.stack.rpc_url, self.stack.deployment, str(index), self.stores[name], target]
        )

    def _daemon_args(self, name: str) -> list[str]:
        return [
            "--keystore",
            self.keystore(name),
            "--rpc-url",
            self.stack.rpc_url,
            "--deployment",
            self.stack.deployment,
            "--store",
            self.stores[name],
            "--poll-interval",
            "0.5",
        ]

    def wait_finalized(
        self,
        bounty_id: int,
        started: float,
        timeout_s: float,
        ignore: tuple[subprocess.Popen[bytes], ...] = (),
        poll_s: float = 2,
    ) -> Market:
        """Waits until the bounty is finalized (SystemExit past `timeout_s` from `started`, a time.monotonic(), or
        when a party's process, those in `ignore` aside, has died); returns a read-only market client."""
        market = Market(self.w3, self.deployment)
        while not self._finalized(market, bounty_id):
            if time.monotonic() - started > timeout_s:
                raise SystemExit(f"bounty {bounty_id} not finalized in {timeout_s:.0f} s; logs in {self.logs}")
            if any(p.poll() is not None for p in self.procs if p not in ignore):
                raise SystemExit(f"a party's process died; logs in {self.logs}")
            time.sleep(poll_s)
        return market

    @staticmethod
    def _finalized(market: Market, bounty_id: int) -> bool:
        try:
            return bool(market.logs("BountyFinalized", 0, filters={"bountyId": bounty_id}))
        except CHAIN_TRANSIENT:  # a node slow to answer on a loaded machine: asked again on the next poll
            return False

    def bitswap_blocks_sent(self, name: str) -> int:
        return int(self.bitswap_stat(name)["BlocksSent"])

    def bitswap_stat(self, name: str) -> dict[str, Any]:
        """What `name`'s IPFS node exchanged with its peers so far (BlocksSent, DataSent, DataReceived, … bytes)."""
        api = self.stores[name].removeprefix("ipfs:")
        request = urllib.request.Request(f"{api}/api/v0/bitswap/stat", method="POST")
        return dict(json.loads(urllib.request.urlopen(request, timeout=10).read()))

    def get(self, path: str) -> dict[str, Any]:
        """A JSON object from the coordinator's read API."""
        return dict(json.loads(urllib.request.urlopen(f"{self.stack.api_url}{path}", timeout=10).read()))

    def close(self) -> None:
        for proc in [*self.procs, *self._ipfs]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.procs, *self._ipfs]:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if hasattr(self, "stack"):
            down(self.home / "stack")
        self.network.close()

    def __enter__(self) -> TestNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
