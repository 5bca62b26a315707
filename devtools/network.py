"""Several hosts on one machine: each party of a test network gets its own network namespace (`ip netns`)
with one address on a private bridge, so its processes and its IPFS node reach other parties only across
that bridge, as separate machines would. Where namespaces cannot be made (not root, no `ip`), every host
falls back to loopback: its own processes and IPFS node, one shared network.

The bridge lives in the calling namespace with the subnet's first address, so a test (or the chain and
coordinator it starts there) reaches every host and every host reaches it. Everything created here is
named after this process's pid and deleted by `close()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from types import TracebackType

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Host:
    """One machine of the test network: `address` is where its servers listen and others reach them."""

    name: str
    address: str
    namespace: str | None = None

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host. `ip netns exec` execs the command itself, so the PID a caller gets from
        Popen is the program's own, to signal and stop by."""
        return ["ip", "netns", "exec", self.namespace, *argv] if self.namespace else list(argv)


def namespaces_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"swprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


def _ip(*args: str, namespace: str | None = None) -> None:
    argv = ["ip", *(("-n", namespace) if namespace else ()), *args]
    run = subprocess.run(argv, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {run.stderr.strip()}")


@dataclass
class Network:
    """`Network(["coordinator", "volunteer1", ...])`: one Host per name, plus `gateway`, the bridge's own
    address in the calling namespace (loopback in the fallback)."""

    names: list[str]
    isolated: bool | None = None
    hosts: dict[str, Host] = field(default_factory=dict)
    gateway: str = LOOPBACK
    _tag: str = ""
    _namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.isolated is None:
            self.isolated = namespaces_available()
        self._tag = f"sw{os.getpid() % 100_000}"
        if not self.isolated:
            self.hosts = {name: Host(name, LOOPBACK) for name in self.names}
            return
        if len(self.names) > 250:
            raise ValueError("at most 250 hosts fit the bridge's /24")
        subnet = f"10.{77 + os.getpid() % 100}.{os.getpid() // 100 % 250}"
        self.gateway = f"{subnet}.1"
        bridge = f"{self._tag}br"
        try:
            _ip("link", "add", bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
            for index, name in enumerate(self.names, start=2):
                namespace = f"{self._tag}-{index}"
                outside, inside = f"{self._tag}o{index}", f"{self._tag}i{index}"
                _ip("netns", "add", namespace)
                self._namespaces.append(namespace)
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                _ip("link", "set", inside, "netns", namespace)
                _ip("link", "set", outside, "master", bridge)
                _ip("link", "set", outside, "up")
                _ip("addr", "add", f"{subnet}.{index}/24", "dev", inside, namespace=namespace)
                _ip("link", "set", inside, "up", namespace=namespace)
                _ip("link", "set", "lo", "up", namespace=namespace)
                self.hosts[name] = Host(name, f"{subnet}.{index}", namespace)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def close(self) -> None:
        """Deletes the namespaces (their veth ends go with them) and the bridge; safe to call twice."""
        if not self.isolated:
            return
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            # The namespace's veth end dies with it, and its pair with that; a namespace something still
            # holds open would keep both, so the outer end goes explicitly.
            subprocess.run(["ip", "link", "del", f"{self._tag}o{namespace.rsplit('-', 1)[1]}"], capture_output=True)
        self._namespaces, self.hosts = [], {}
        subprocess.run(["ip", "link", "del", f"{self._tag}br"], capture_output=True)

    def __enter__(self) -> Network:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
