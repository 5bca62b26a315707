"""Local EVM nodes (anvil from npm) on a free loopback port, owned and stopped by PID.

Used by tests, benchmarks and `shardwork chain up`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ledger.errors import ChainError

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChainError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ChainError(f"nothing listening on {host}:{port} after {timeout}s")


class Anvil:
    """An anvil node (chain id 31337 unless told, the well-known dev mnemonic) owned by its creator."""

    def __init__(self, chain_id: int = 31337, port: int | None = None, state_file: Path | None = None) -> None:
        if not ANVIL.exists():
            raise ChainError(f"anvil not found at {ANVIL}: run `npm ci` in the repository")
        if port is not None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise ChainError(f"port {port} is taken: something already listens there")
        self.port = port or free_port()
        # --state loads the chain from the file if it exists and saves it there on exit: a restartable node.
        persist = ["--state", str(state_file)] if state_file is not None else []
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(ANVIL),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--silent",
                "--hardfork",
                "cancun",
                "--chain-id",
                str(chain_id),
                *persist,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
