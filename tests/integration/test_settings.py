"""Settings precedence, command by command: flags > SHARDWORK_* environment > $SHARDWORK_HOME/config.toml.

For every command that reads the chain, store, index or wallet settings, and for each level L, two kinds of case
run against one real anvil node with a deployment:

- "L wins": L holds the real values, every lower level holds dead ones (an RPC URL on a closed loopback port, a
  deployment manifest that does not exist, a wallets directory without the wallet), higher levels hold nothing.
  The command must do its real work, and directories and files it creates (store, index, deployment output)
  must appear only where L points.
- "L is read": one setting at L is dead while every lower level holds the real value. The command must fail with
  the error that names L's dead value: a lower level that works does not rescue it.

A setting a command has no flag for (store of `bounty post` and `audit`, index, wallets) starts at the
environment. The coordinator's CoordinatorSettings (SHARDWORK_COORD_* > [coordinator] table) is checked last.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from web3 import Web3

from cli.main import app
from devtools.anvil import Anvil
from ledger.chain import advance_time, connect, mnemonic_accounts
from ledger.deploy import Deployment, deploy
from ledger.market import Market, task_id_of
from ledger.tx import Transactor
from ledger.wallet import create_keystore
from tests.support.chain import TOKEN, default_params
from tests.support.specs import bounty_toml

PASSWORD = "settings-test-password"
LEVELS = ("flag", "env", "config")  # highest first
ENV = {
    "rpc_url": "SHARDWORK_RPC_URL",
    "deployment": "SHARDWORK_DEPLOYMENT",
    "store": "SHARDWORK_STORE",
    "index": "SHARDWORK_INDEX",
    "wallets": "SHARDWORK_WALLETS",
}
VERIFY_CHAIN_IDS = {"flag": 901, "env": 902, "config": 903}  # `contracts verify` is told a chain id per level


@dataclass
class World:
    """The real chain every winning level points at."""

    url: str
    dead_port: int
    deployment_path: Path
    deployment: Deployment
    wallets: Path
    keystore: Path
    alice: str
    spec: Path
    bounty_id: int
    key_file: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node = Anvil()
    dead = socket.socket()  # bound and never listening: its port refuses connections, and no one else can take it
    dead.bind(("127.0.0.1", 0))
    try:
        root = tmp_path_factory.mktemp("settings-world")
        w3 = connect(node.url)
        accounts = mnemonic_accounts(4)
        deployment = deploy(w3, Transactor(w3, accounts[0]), unbonding_delay_s=60)
        deployment.save(root / "deployment.json")
        wallets = root / "wallets"
        keystore = wallets / "alice.json"
        create_keystore(keystore, PASSWORD, bytes(accounts[3].key))
        alice = Market(w3, deployment, Transactor(w3, accounts[3]))
        alice.faucet(alice.address, 10_000 * TOKEN)
        alice.stake(1_000 * TOKEN)
        alice.request_unstake(10 * TOKEN)  # matures below: `withdraw` has something to take
        alice.ensure_allowance(5_000 * TOKEN)
        bounty_id = alice.post_bounty(
            default_params(coordinator=accounts[2].address, deadline=alice.now() + 3600, shards=1, rounds=1)
        )
        advance_time(w3, 2 * 3600)  # past the bounty's deadline: `bounty refund` has something to take back
        key_file = root / "carol.key"
        key_file.write_text(bytes(mnemonic_accounts(6)[5].key).hex())
        spec = root / "spec.toml"
        spec.write_text(
            bounty_toml(
                accounts[2].address,
                name="settings",
                rounds=1,
                shards=1,
                steps=10,
                hidden=16,
                fast=False,
                batch_size=None,
            )
        )
        yield World(
            node.url,
            dead.getsockname()[1],
            root / "deployment.json",
            deployment,
            wallets,
            keystore,
            alice.address,
            spec,
            bounty_id,
            key_file,
        )
    finally:
        dead.close()
        node.stop()


# ------------------------------------------------------------------------------------------- the commands


@dataclass(frozen=True)
class Command:
    """A command line; `args` and `says` are templates over World's fields, `verify_chain_id` and `deployment`."""

    name: str
    args: tuple[str, ...]
    reads: tuple[str, ...]  # the settings it reads
    says: str  # what a real run prints
    code: int = 0  # exit code of a real run
    flags: tuple[tuple[str, str], ...] = (("rpc_url", "--rpc-url"), ("deployment", "--deployment"))
    creates: tuple[str, ...] = ("store", "index")  # settings naming a place it creates: only the winner's appears
    answer: str | None = None  # stdin: "n" declines the confirmation the command shows after reading the chain


DECLINED = "cancelled; nothing was sent"
WALLET = ("rpc_url", "deployment", "wallets")
AUDIT = ("rpc_url", "deployment", "index", "store")
COMMANDS = [
    Command("balance", ("balance", "--wallet", "alice"), WALLET, "bonded"),
    Command("rewards", ("rewards", "{alice}"), ("rpc_url", "deployment"), "claimable"),
    Command("faucet", ("faucet", "1", "--wallet", "alice"), WALLET, DECLINED, 1, answer="n\n"),
    Command("stake", ("stake", "1", "--wallet", "alice"), WALLET, DECLINED, 1, answer="n\n"),
    Command("unstake", ("unstake", "1", "--wallet", "alice"), WALLET, DECLINED, 1, answer="n\n"),
    Command("withdraw", ("withdraw", "--wallet", "alice"), WALLET, DECLINED, 1, answer="n\n"),
    Command("claim", ("claim", "--wallet", "alice"), WALLET, "{alice} has no rewards to claim yet", 1),
    Command("bounty-post", ("bounty", "post", "{spec}", "--wallet", "alice", "--yes"), (*WALLET, "store"), "posted"),
    Command("bounty-list", ("bounty", "list"), ("rpc_url", "deployment", "index"), "{alice}"),
    Command("bounty-show", ("bounty", "show", "{bounty_id}"), ("rpc_url", "deployment", "index"), "bounty {bounty_id}"),
    Command(
        "bounty-refund", ("bounty", "refund", "{bounty_id}", "--wallet", "alice"), WALLET, DECLINED, 1, answer="n\n"
    ),
    Command("audit-bounty", ("audit", "bounty", "{bounty_id}"), AUDIT, "audit of bounty {bounty_id}"),
    Command("audit-task", ("audit", "task", "{task_id}"), AUDIT, "task {task_id} has no history", 1),
    Command("audit-node", ("audit", "node", "{alice}"), AUDIT, "audit of"),
    Command("audit-index", ("audit", "index"), ("rpc_url", "deployment", "index"), "matches the chain"),
    Command(
        "node-run",
        ("node", "run", "--keystore", "{keystore}", "--once", "--quiet"),
        ("rpc_url", "deployment", "store"),
        "node stopped",
        flags=(("rpc_url", "--rpc-url"), ("deployment", "--deployment"), ("store", "--store")),
    ),
    # No 30 s recompile: each level's manifest names a chain id of its own, so the refusal names the manifest
    # that was read and the chain id of the node that was reached.
    Command(
        "contracts-verify",
        ("contracts", "verify"),
        ("rpc_url", "deployment"),
        "the node is chain 31337 but the manifest is for chain {verify_chain_id}",
        1,
    ),
    Command(
        "chain-deploy",
        ("chain", "deploy"),
        ("rpc_url", "deployment"),
        "manifest written to {deployment}",
        flags=(("rpc_url", "--rpc-url"), ("deployment", "--out")),
        creates=("deployment",),
    ),
    Command("wallet-list", ("wallet", "list"), ("wallets",), "{alice}"),
    Command("wallet-show", ("wallet", "show", "alice"), ("wallets",), "{alice}"),
    Command("wallet-export-address", ("wallet", "export-address", "alice"), ("wallets",), "{alice}"),
    Command("wallet-new", ("wallet", "new", "bob"), ("wallets",), "wallet bob", creates=("wallets",)),
    Command(
        "wallet-import",
        ("wallet", "import", "carol", "--private-key-file", "{key_file}"),
        ("wallets",),
        "wallet carol",
        creates=("wallets",),
    ),
]


def levels_of(cmd: Command, key: str) -> tuple[str, ...]:
    return tuple(level for level in LEVELS if level != "flag" or key in dict(cmd.flags))


def winner(cmd: Command, key: str, level: str) -> str:
    """The level that holds `key` when `level` is the highest one given: a setting without a flag starts at env."""
    available = levels_of(cmd, key)
    return level if level in available else available[0]


def below(cmd: Command, key: str, level: str) -> tuple[str, ...]:
    available = levels_of(cmd, key)
    return available[available.index(level) + 1 :]


class Places:
    """Every level's real ("good") and dead value of every setting, under one test's tmp dir."""

    def __init__(self, world: World, cmd: Command, root: Path) -> None:
        self.world, self.cmd, self.root = world, cmd, root
        for level in LEVELS:
            (root / level).mkdir(parents=True)
        if cmd.name == "contracts-verify":
            for level, chain_id in VERIFY_CHAIN_IDS.items():
                world.deployment.model_copy(update={"chain_id": chain_id}).save(root / level / "deployment.json")

    def good(self, key: str, level: str) -> str:
        w, place = self.world, self.root / level
        if key in self.cmd.creates:
            return str(place / {"store": "store", "index": "index.sqlite", "deployment": "out.json"}.get(key, key))
        if key == "rpc_url":
            return w.url
        if key == "deployment":
            return str(place / "deployment.json" if self.cmd.name == "contracts-verify" else w.deployment_path)
        if key == "wallets":
            return str(w.wallets)
        raise AssertionError(key)

    def dead(self, key: str, level: str) -> str:
        if key in self.cmd.creates:
            return self.good(key, level)  # its own place per level: only the winner's may appear
        place = self.root / level
        return {
            "rpc_url": f"http://127.0.0.1:{self.world.dead_port}/{level}",  # nothing listens: refused at once
            "deployment": str(place / "missing-deployment.json"),
            "wallets": str(place / "no-wallets"),
        }[key]

    def refusal(self, key: str, level: str) -> str:
        """The error a command gives when it reads the dead value of `key` at `level`."""
        value = self.dead(key, level)
        return {
            "rpc_url": f"cannot reach an EVM node at {value}",
            "deployment": f"no deployment manifest at {value}",
            "wallets": f"no wallets in {value}"
            if self.cmd.name == "wallet-list"
            else f"no wallet named 'alice' in {value}",
        }[key]


def invoke(cmd: Command, root: Path, values: dict[str, dict[str, str]], fields: dict[str, object]) -> Result:
    """Runs `cmd` with values[level][setting] given as flags, SHARDWORK_* variables and config.toml."""
    home = root / "home"
    home.mkdir()
    (home / "config.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values["config"].items()))
    env = {"SHARDWORK_HOME": str(home), "SHARDWORK_PASSWORD": PASSWORD, "COLUMNS": "200"}
    env.update({ENV[k]: v for k, v in values["env"].items()})
    args = [a.format(**fields) for a in cmd.args]
    flags = dict(cmd.flags)
    for key, value in values["flag"].items():
        args += [flags[key], value]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    node_logs()
    try:
        return CliRunner().invoke(app, args, env=env, input=cmd.answer)
    finally:
        for sig, handler in handlers.items():  # `node run` installs its own
            signal.signal(sig, handler)
        node_logs()


def node_logs() -> None:
    """`node run` logs to the stderr of the first runner that created its logger, unless the logger has handlers
    already (pytest adds its own to non-propagating loggers): each run starts with none."""
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("shardwork.node.")]:
        logging.getLogger(name).handlers.clear()


def show(result: Result) -> str:
    return f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SHARDWORK_"):
            monkeypatch.delenv(name)


def cases() -> Iterator[object]:
    for cmd in COMMANDS:
        for level in LEVELS:
            yield pytest.param(cmd, level, None, id=f"{cmd.name}-{level}-wins")
        for key in cmd.reads:
            if key in cmd.creates:
                continue
            for level in levels_of(cmd, key):
                yield pytest.param(cmd, level, key, id=f"{cmd.name}-{level}-{key}-is-read")


@pytest.mark.parametrize(("cmd", "level", "dead_key"), list(cases()))
def test_each_command_uses_the_highest_level_that_holds_a_setting(
    world: World, tmp_path: Path, cmd: Command, level: str, dead_key: str | None
) -> None:
    places = Places(world, cmd, tmp_path / "places")
    values: dict[str, dict[str, str]] = {lv: {} for lv in LEVELS}
    winners = {key: winner(cmd, key, level) for key in cmd.reads}
    for key, top in winners.items():
        if dead_key is None:  # the top level holds the real value, every lower level a dead one
            values[top][key] = places.good(key, top)
            for lower in below(cmd, key, top):
                values[lower][key] = places.dead(key, lower)
        else:  # every level up to the top holds the real value, except the dead one at the top
            for lv in (top, *below(cmd, key, top)):
                values[lv][key] = places.dead(key, lv) if (key, lv) == (dead_key, top) else places.good(key, lv)
    deployment = values[winners["deployment"]]["deployment"] if "deployment" in winners else None
    fields = {
        "alice": world.alice,
        "spec": world.spec,
        "keystore": world.keystore,
        "key_file": world.key_file,
        "bounty_id": world.bounty_id,
        "task_id": hex(task_id_of(world.bounty_id, 0, 0)),
        "deployment": deployment,
        "verify_chain_id": VERIFY_CHAIN_IDS[winners["deployment"]] if deployment else None,
    }
    result = invoke(cmd, tmp_path, values, fields)
    if dead_key is not None:
        assert result.exit_code == (0 if cmd.name == "wallet-list" else 1), show(result)
        assert places.refusal(dead_key, level) in result.output, show(result)
        return
    assert result.exit_code == cmd.code and cmd.says.format(**fields) in result.output, show(result)
    for key in set(cmd.reads) & set(cmd.creates):
        made = {lv for lv in levels_of(cmd, key) if Path(places.good(key, lv)).exists()}
        assert made == {winners[key]}, f"{key}: created at {made}, expected only at {winners[key]}\n{show(result)}"
    if cmd.name == "bounty-post":
        (cid,) = [p.name for p in Path(values[winners["store"]]["store"]).iterdir()]  # the spec, in the winner's store
        assert cid in result.output
    if cmd.name == "chain-deploy":
        deployed = Deployment.load(Path(values[winners["deployment"]]["deployment"]))
        assert connect(world.url).eth.get_code(Web3.to_checksum_address(deployed.market)) != b""


# ------------------------------------------------------------------------------------------- the coordinator

COORD_FIELDS = ("rpc_url", "deployment", "store", "index")


def coordinator_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: dict[str, str], table: dict[str, str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    lines = [f"{k} = {json.dumps(v)}\n" for k, v in top.items()] + ["[coordinator]\n"]
    lines += [f"{k} = {json.dumps(v)}\n" for k, v in table.items()]
    (home / "config.toml").write_text("".join(lines))
    monkeypatch.setenv("SHARDWORK_HOME", str(home))


def coordinator_values(world: World, tmp_path: Path, where: str, good: bool) -> dict[str, str]:
    place = tmp_path / where
    return {
        "rpc_url": world.url if good else f"http://127.0.0.1:{world.dead_port}/{where}",
        "deployment": str(world.deployment_path if good else place / "missing-deployment.json"),
        "store": str(place / "store"),
        "index": str(place / "index.sqlite"),
    }


@pytest.mark.parametrize("level", ["env", "config"])
def test_the_coordinator_reads_its_own_environment_then_its_config_table(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    """The API built from CoordinatorSettings serves the real chain when only the winning level is real; the
    CLI's SHARDWORK_* variables and config.toml's top level are dead and must not leak into it."""
    from fastapi.testclient import TestClient

    from coordinator.api import app_from_settings

    cli_dead = coordinator_values(world, tmp_path, "cli", good=False)
    table = coordinator_values(world, tmp_path, "table", good=level == "config")
    coordinator_home(tmp_path, monkeypatch, cli_dead, table)
    for key, value in cli_dead.items():
        monkeypatch.setenv(ENV[key], value)
    if level == "env":
        for key, value in coordinator_values(world, tmp_path, "env", good=True).items():
            monkeypatch.setenv(f"SHARDWORK_COORD_{key.upper()}", value)
    with TestClient(app_from_settings()) as client:
        assert world.bounty_id in [b["bounty_id"] for b in client.get("/api/bounties").json()]
    for key in ("store", "index"):
        made = {where for where in ("cli", "table", "env") if (tmp_path / where / Path(table[key]).name).exists()}
        assert made == {"table" if level == "config" else "env"}, f"{key} created at {made}"


@pytest.mark.parametrize(("level", "key"), [(lv, k) for lv in ("env", "config") for k in ("rpc_url", "deployment")])
def test_the_coordinator_fails_on_its_highest_level_even_when_a_lower_one_works(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str, key: str
) -> None:
    from coordinator.api import app_from_settings
    from protocol.errors import ShardworkError

    good = coordinator_values(world, tmp_path, "good", good=True)
    dead = coordinator_values(world, tmp_path, level, good=False)
    # config is read over the defaults: the default deployment is <home>/deployment.json, so put a real one there
    coordinator_home(tmp_path, monkeypatch, good, {**good, key: dead[key]})
    Path(tmp_path / "home" / "deployment.json").write_text(world.deployment_path.read_text())
    for name, value in good.items():
        monkeypatch.setenv(ENV[name], value)  # the CLI's variables work, and must not rescue the coordinator
    if level == "env":
        monkeypatch.setenv(f"SHARDWORK_COORD_{key.upper()}", dead[key])
    with pytest.raises((ShardworkError, OSError)) as raised:
        app_from_settings()
    assert dead[key] in str(raised.value)


def test_every_coordinator_field_follows_init_then_env_then_table_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import CoordinatorSettings, Settings

    table = {
        "redis_url": "redis://table:1/0",
        "dev_accounts": True,
        "housekeeping_interval_s": 7.5,
        "trace_timeout_s": 33,
        "coordinator_keystore": "/table/coordinator.json",
        "verifier_keystores": ["/table/v1.json", "/table/v2.json"],
        "rpc_url": "http://table:1",
    }
    home = tmp_path / "home"
    home.mkdir()
    body = 'rpc_url = "http://top:1"\n[coordinator]\n'
    body += "".join(
        f"{k} = {json.dumps(v).lower() if isinstance(v, bool) else json.dumps(v)}\n" for k, v in table.items()
    )
    (home / "config.toml").write_text(body)
    monkeypatch.setenv("SHARDWORK_HOME", str(home))
    from_table = CoordinatorSettings()
    assert from_table.model_dump(mode="json", include=set(table)) == table
    assert from_table.deployment == home / "deployment.json" and from_table.index == home / "coordinator-index.sqlite"
    assert Settings().rpc_url == "http://top:1"  # the CLI reads the top level, never the coordinator's table
    env = {
        "redis_url": "redis://env:2/0",
        "dev_accounts": False,
        "housekeeping_interval_s": 0.5,
        "trace_timeout_s": 9,
        "coordinator_keystore": "/env/coordinator.json",
        "verifier_keystores": ["/env/v.json"],
        "rpc_url": "http://env:2",
    }
    for key, value in env.items():
        raw = json.dumps(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value
        monkeypatch.setenv(f"SHARDWORK_COORD_{key.upper()}", str(raw))
    monkeypatch.setenv("SHARDWORK_RPC_URL", "http://cli-env:3")
    assert CoordinatorSettings().model_dump(mode="json", include=set(env)) == env
    assert CoordinatorSettings(redis_url="redis://init:3/0").redis_url == "redis://init:3/0"
    assert Settings().rpc_url == "http://cli-env:3"
