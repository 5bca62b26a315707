"""The wallet, money, bounty and audit commands through the CLI (Typer's runner) against a real anvil node."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from typer.testing import CliRunner
from web3.types import RPCEndpoint

from cli.main import app
from content.store import LocalStore
from devtools.anvil import Anvil
from ledger.amounts import UNIT
from ledger.chain import advance_time, connect, mnemonic_accounts
from ledger.deploy import Deployment
from ledger.market import Market, TaskStatus, task_id_of
from ledger.terms import BountyTerms
from ledger.tx import Transactor
from protocol.cid import cid_of
from protocol.tensors import to_bytes
from protocol.training import initial_weights
from tests.support.specs import bounty_toml, small_spec

PASSWORD = "hunter2-but-longer"


class Cli:
    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url
        self.runner = CliRunner()
        self.env = {
            "SHARDWORK_HOME": str(home),
            "SHARDWORK_PASSWORD": PASSWORD,
            "SHARDWORK_RPC_URL": url,
            "COLUMNS": "200",
        }
        self.w3 = connect(url)

    def __call__(self, *args: str, code: int = 0, env: Mapping[str, str | None] | None = None) -> str:
        result = self.runner.invoke(app, list(args), env={**self.env, **(env or {})})
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        # A user's mistake is one line and an exit code, never a traceback.
        assert not (code and result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
        return result.output

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self(*args, "--json").strip().splitlines()[-1])

    def nonce(self, address: ChecksumAddress) -> int:
        return self.w3.eth.get_transaction_count(address)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    node = Anvil()
    home = tmp_path_factory.mktemp("home")
    c = Cli(home, node.url)
    c("chain", "deploy", "--rpc-url", node.url, "--out", str(home / "deployment.json"))
    key_file = home / "alice.key"
    key_file.write_text(mnemonic_accounts(4)[3].key.hex())
    c("wallet", "import", "alice", "--private-key-file", str(key_file))
    c("wallet", "new", "bob")
    yield c
    node.stop()


def test_wallets_are_standard_encrypted_keystores_readable_without_the_password(cli: Cli) -> None:
    listed = cli.json("wallet", "list")["wallets"]
    assert [w["name"] for w in listed] == ["alice", "bob"]
    shown = cli.json("wallet", "show", "alice")
    assert shown["kdf"] == "scrypt" and shown["mode"] == "0o600"
    assert shown["address"] == mnemonic_accounts(4)[3].address
    assert cli("wallet", "export-address", "bob", env={"SHARDWORK_PASSWORD": ""}).strip() == listed[1]["address"]
    salts = {json.loads(Path(w["path"]).read_text())["crypto"]["kdfparams"]["salt"] for w in listed}
    assert len(salts) == 2  # a salt per file
    assert PASSWORD not in Path(listed[0]["path"]).read_text()


def test_a_keystore_that_records_no_address_is_read_by_unlocking_it(cli: Cli) -> None:
    """Foundry's `cast wallet new` writes V3 keystores without the optional address field."""
    wallets = Path(cli.json("wallet", "show", "alice")["path"]).parent
    account = mnemonic_accounts(6)[5]
    keystore = Account.encrypt(account.key, PASSWORD, kdf="scrypt")
    del keystore["address"]
    (wallets / "carol.json").write_text(json.dumps(keystore))
    try:
        assert {w["name"]: w["address"] for w in cli.json("wallet", "list")["wallets"]}["carol"] is None
        assert "not recorded" in cli("wallet", "show", "carol")
        assert cli("wallet", "export-address", "carol").strip() == account.address
        assert cli.json("balance", "--wallet", "carol")["address"] == account.address
        cli("faucet", "5", "--wallet", "carol", "--yes")
        assert cli.json("balance", "--wallet", "carol")["balance"] == 5 * UNIT
        out = cli("balance", "--wallet", "carol", code=1, env={"SHARDWORK_PASSWORD": "not-the-password"})
        assert "wrong password" in out
        # A recorded address that is not the key's is refused when unlocked: funds would go where nobody signs.
        keystore["address"] = mnemonic_accounts(4)[3].address[2:].lower()
        (wallets / "carol.json").write_text(json.dumps(keystore))
        assert "records the address" in cli("faucet", "5", "--wallet", "carol", "--yes", code=1)
    finally:
        (wallets / "carol.json").unlink()


def test_faucet_stake_unstake_withdraw_and_claim_show_balances_before_and_after(cli: Cli) -> None:
    cli("faucet", "1000", "--wallet", "alice", "--yes")
    out = cli("stake", "250.5", "--wallet", "alice", "--yes")
    assert "balance" in out and "1,000 -> 749.5" in out and "bonded" in out and "0 -> 250.5" in out
    result = cli.json("unstake", "50", "--wallet", "alice", "--yes")
    assert result["after"]["bonded"] == 200_500_000_000_000_000_000 and result["after"]["unbonding"] == 50 * UNIT
    now = int(cli.w3.eth.get_block("latest")["timestamp"])
    assert result["withdrawable_at"] == now + 7 * 24 * 3600  # the unbonding delay from the request's block
    assert "withdrawable at " in cli("unstake", "0.5", "--wallet", "alice", "--yes")
    cli("withdraw", "--wallet", "alice", "--yes", code=1)
    advance_time(cli.w3, 7 * 24 * 3600 + 1)
    result = cli.json("withdraw", "--wallet", "alice", "--yes")
    assert result["after"]["balance"] - result["before"]["balance"] == 50_500_000_000_000_000_000
    balance = cli.json("balance", "--wallet", "alice")
    assert balance["bonded"] == 200 * UNIT and balance["claimable"] == 0
    assert cli.json("rewards", balance["address"])["claimable"] == 0


def test_confirmation_can_be_declined_and_then_nothing_is_sent(cli: Cli) -> None:
    address = cli.json("wallet", "show", "alice")["address"]
    before = cli.nonce(address)
    result = cli.runner.invoke(app, ["stake", "1", "--wallet", "alice"], input="n\n", env=cli.env)
    assert result.exit_code == 1 and "stake 1 tokens" in result.output and "network fee" in result.output
    assert cli.nonce(address) == before


def cli_spec(coordinator: str, stake: str = "100") -> str:
    return bounty_toml(
        coordinator, name="cli-test", rounds=1, shards=2, steps=10, hidden=16, stake=stake, fast=False, batch_size=None
    )


def test_bounty_post_list_show_and_audit(cli: Cli) -> None:
    coordinator = mnemonic_accounts(3)[2].address
    spec = cli.home / "spec.toml"
    spec.write_text(cli_spec(coordinator, stake="100"))
    posted = cli.json("bounty", "post", str(spec), "--wallet", "alice", "--yes")
    assert posted["bounty_id"] == 1
    # The cross-CPU calibration of this spec: a skipped training step lands far beyond its tolerance.
    cross = posted["cross_class"]
    assert 0 <= cross["honest_distance"] <= cross["tolerance"] < cross["skipped_step"] <= 1
    listed = cli.json("bounty", "list")["bounties"]
    assert listed[0]["bounty_id"] == 1 and listed[0]["escrow"] == 2 * (10 + 2) * UNIT
    shown = cli.json("bounty", "show", "1")
    assert shown["status"] == "active" and len(shown["tasks"]) == 2 and shown["tasks"][0]["status"] == "open"
    assert shown["tasks"][0]["next"] is None  # an open task waits for no one
    assert [t["task"] for t in shown["tasks"]] == ["1.0.0", "1.0.1"]  # the one human form of a task id
    assert "task 1.0.1 " in cli("bounty", "show", "1")
    report = cli.json("audit", "bounty", "1")
    assert report["disagreements"] == 0 and [e["name"] for e in report["events"]] == ["BountyPosted"]
    assert cli.json("audit", "index")["problems"] == []


def detecting_spec(within_tasks: int) -> str:
    """cli_spec with a detection target in place of its floor check rate and segments per check."""
    text = cli_spec(mnemonic_accounts(3)[2].address, stake="100")
    text = re.sub(r"(?m)^(min_check_probability|segments_per_check) = .*\n", "", text)
    return text.replace("[bounty]", f"[bounty]\ndetection = {{ within_tasks = {within_tasks} }}")


def test_bounty_post_derives_spot_checks_from_a_detection_target(cli: Cli) -> None:
    spec = cli.home / "detect.toml"
    spec.write_text(detecting_spec(within_tasks=400))
    posted = cli.json("bounty", "post", str(spec), "--wallet", "alice", "--yes")
    target = {"cheat_fraction": 0.1, "probability": 0.99, "within_tasks": 400}
    assert posted["spot_checks"] == {
        "check_probability": 1.0,
        "min_check_probability": 0.1145,
        "segments_per_check": 1,
        "detection": target,
    }
    bounty = cli.json("bounty", "show", str(posted["bounty_id"]))
    assert (bounty["min_check_bps"], bounty["segments_per_check"]) == (1145, 1)


def test_bounty_post_shows_and_refuses_unsound_economics_before_sending(cli: Cli) -> None:
    spec = cli.home / "unsound.toml"
    spec.write_text(cli_spec(mnemonic_accounts(3)[2].address, stake="15"))
    out = cli("bounty", "post", str(spec), "--wallet", "alice", "--yes", code=1)
    assert "UNSOUND" in out and "raise stake" in out


def test_dispute_posts_the_bond_and_forces_a_check_but_never_from_the_volunteer_itself(cli: Cli) -> None:
    accounts = mnemonic_accounts(7)
    deployment = Deployment.load(cli.home / "deployment.json")
    poster, coordinator, volunteer = (Market(cli.w3, deployment, Transactor(cli.w3, accounts[i])) for i in (4, 5, 6))
    spec = small_spec(data={"shards": 1}, rounds=1)
    terms = BountyTerms(coordinator=coordinator.address, check_probability=0.5, min_check_probability=0.5)
    poster.faucet(poster.address, 1_000 * UNIT)
    poster.ensure_allowance(terms.escrow(1))
    bounty_id = poster.post_bounty(terms.posting(spec, cid_of(spec.canonical_bytes()), poster.now()))
    coordinator.open_round(bounty_id, cid_of(b"round 0"))  # only opened: nobody here reads the manifest
    volunteer.faucet(volunteer.address, 1_000 * UNIT)
    volunteer.stake(500 * UNIT)
    task_id = task_id_of(bounty_id, 0, 0)
    volunteer.claim(task_id)
    volunteer.commit(task_id, b"\x11" * 32, b"\x22" * 32, cid_of(b"trace"), cid_of(b"update"))

    key_file = cli.home / "volunteer.key"
    key_file.write_text(accounts[6].key.hex())
    cli("wallet", "import", "volunteer", "--private-key-file", str(key_file))
    cli("faucet", "200", "--wallet", "alice", "--yes")
    unstaked = cli("dispute", hex(task_id), "--segment", "1", "--wallet", "bob", "--yes", code=1)
    assert "free stake" in unstaked  # a challenger is staked like a verifier: bob never staked
    bob = cli.json("wallet", "show", "bob")["address"]
    cli.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [bob, "0x0"])
    assert "ETH sent to" in cli("faucet", "1", "--wallet", "bob", "--yes")  # a local faucet tops gas up first
    assert cli.w3.eth.get_balance(bob) > 0
    cli.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [bob, "0x0"])
    no_gas = cli("stake", "1", "--wallet", "bob", "--yes", code=1)  # no ETH for gas: one line, not a traceback
    assert "gas" in no_gas and cli.json("balance", "--wallet", "bob")["bonded"] == 0
    cli("stake", "100", "--wallet", "alice", "--yes")  # free stake covering the bounty's stake per task
    before = cli.nonce(volunteer.address)
    refused = cli("dispute", hex(task_id), "--segment", "0", "--wallet", "volunteer", "--yes", code=1)
    assert "cannot dispute its own work" in refused and cli.nonce(volunteer.address) == before  # nothing sent
    out_of_range = cli("dispute", hex(task_id), "--segment", "99", "--wallet", "alice", "--yes", code=1)
    assert "segment 99 does not exist" in out_of_range

    label = f"{bounty_id}.0.0"  # bounty.round.shard: what `bounty show` prints, accepted wherever a task is named
    disputed = cli.json("dispute", label, "--segment", "1", "--wallet", "alice", "--yes")
    assert disputed["before"]["balance"] - disputed["after"]["balance"] == 20 * UNIT  # the challenge bond
    assert volunteer.task(task_id).status == TaskStatus.CHALLENGED
    checked, segments = volunteer.challenge(task_id)
    assert checked and 1 in segments  # checked now, whatever the draw said, and the disputed segment is replayed
    again = cli("dispute", str(task_id), "--segment", "2", "--wallet", "alice", "--yes", code=1)
    assert f"task {label} is challenged: only a committed task can be disputed" in again


def post_case(case: str, spec_file: str, message: str) -> tuple[str, list[str], dict[str, str], str]:
    """A `bounty post` of one of the test's spec files that must be refused with `message`."""
    return (case, ["bounty", "post", f"SPEC:{spec_file}", "--wallet", "alice", "--yes"], {}, message)


BAD_INPUT = [
    (
        "wrong password",
        ["stake", "1", "--wallet", "alice", "--yes"],
        {"SHARDWORK_PASSWORD": "not-the-password"},
        "wrong password for keystore",
    ),
    ("unknown wallet", ["stake", "1", "--wallet", "nobody", "--yes"], {}, "no wallet named 'nobody'"),
    ("malformed address", ["balance", "0x1234"], {}, "'0x1234' is not an address"),
    (
        "too many decimals",
        ["stake", "0.0000000000000000001", "--wallet", "alice", "--yes"],
        {},
        "more than 18 decimal places",
    ),
    (
        "decimals past the 28th digit",  # once rounded silently to 1 by Decimal's default precision
        ["stake", "1.000000000000000000000000000001", "--wallet", "alice", "--yes"],
        {},
        "more than 18 decimal places",
    ),
    ("misgrouped thousands", ["stake", "1,00", "--wallet", "alice", "--yes"], {}, "a comma may only group thousands"),
    ("astronomical amount", ["stake", "1e100", "--wallet", "alice", "--yes"], {}, "larger than any token balance"),
    ("negative amount", ["stake", "--wallet", "alice", "--yes", "--", "-5"], {}, "is negative"),
    ("not a number", ["stake", "lots", "--wallet", "alice", "--yes"], {}, "is not an amount"),
    ("insufficient balance", ["stake", "99999999", "--wallet", "alice", "--yes"], {}, "is less than 99,999,999"),
    ("unstake beyond stake", ["unstake", "99999999", "--wallet", "alice", "--yes"], {}, "is bonded"),
    ("withdraw before delay", ["withdraw", "--wallet", "bob", "--yes"], {}, "nothing can be withdrawn yet"),
    ("nothing to claim", ["claim", "--wallet", "bob", "--yes"], {}, "has no rewards to claim yet"),
    ("faucet limit", ["faucet", "20000", "--wallet", "bob", "--yes"], {}, "at most 10,000 per request"),
    ("nonexistent bounty", ["bounty", "show", "999"], {}, "bounty 999 does not exist"),
    ("refund not poster", ["bounty", "refund", "1", "--wallet", "bob", "--yes"], {}, "only the poster"),
    ("refund too early", ["bounty", "refund", "1", "--wallet", "alice", "--yes"], {}, "is still running"),
    (
        "unreachable rpc",
        ["balance", "--wallet", "alice", "--rpc-url", "http://127.0.0.1:9"],
        {},
        "cannot reach an EVM node",
    ),
    (
        "missing deployment",
        ["balance", "--wallet", "alice", "--deployment", "/nonexistent.json"],
        {},
        "no deployment manifest",
    ),
    post_case("malformed spec", "bad.toml", "is not valid TOML"),
    post_case("spec without terms", "noterms.toml", "has no [bounty] table"),
    post_case("bad spec value", "badvalue.toml", "steps_per_task"),
    post_case("spec over memory budget", "huge.toml", "over the protocol's 8192 MB budget"),
    post_case(
        "tolerance tighter than honest cpus",
        "tight.toml",
        "replay.tolerance 1e-09 is tighter than honest training of this model on other CPUs lands",
    ),
    post_case("dataset that is not a dataset", "notdata.toml", "malformed DatasetManifest"),
    post_case("dataset not in the store", "nodata.toml", "(publish it there with `shardwork dataset add`)"),
    post_case("base model of another shape", "wrongbase.toml", "is not a mnist-mlp model of these params"),
    post_case("detection target a task cannot meet", "detect.toml", "needs 44 segments replayed per check"),
    ("bad task id", ["audit", "task", "twelve"], {}, "is not a task id"),
    (  # a typo'd coordinator: 12 tokens would wait 30 days for a round nobody opens
        "never-seen coordinator",
        ["bounty", "post", "SPEC:stranger.toml", "--wallet", "alice"],
        {},
        "has never sent a transaction on this chain",
    ),
    # The live market's manifest is never replaced by accident: its addresses would be lost.
    ("deploy over a manifest", ["chain", "deploy"], {}, "already holds a deployment manifest"),
    ("deploy from an unknown wallet", ["chain", "deploy", "--wallet", "nobody", "--yes"], {}, "no wallet named"),
]


@pytest.mark.parametrize(("case", "args", "env", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_nonzero_and_sends_nothing(
    cli: Cli, case: str, args: list[str], env: dict[str, str], message: str
) -> None:
    files = {
        "bad.toml": "model = {",
        "noterms.toml": 'model = { family = "mnist-mlp" }',
        "badvalue.toml": cli_spec(mnemonic_accounts(3)[2].address, stake="100").replace(
            "steps_per_task = 10", "steps_per_task = 7"
        ),
        "huge.toml": cli_spec(mnemonic_accounts(3)[2].address, stake="100")
        .replace("checkpoint_interval = 5", "checkpoint_interval = 5\nbatch_size = 4096")
        .replace('family = "mnist-mlp"\nparams = { hidden = 16 }', 'family = "mnist-cnn"\nparams = { channels = 256 }'),
        "tight.toml": cli_spec(mnemonic_accounts(3)[2].address, stake="100").replace(
            "[bounty]", '[replay]\nmode = "tolerance"\ntolerance = 1e-9\n[bounty]'
        ),
    }
    store = LocalStore(cli.home / "store")
    stored = store.put(b"these bytes are no dataset manifest")
    wider = store.put(to_bytes(initial_weights(small_spec(model={"family": "mnist-mlp", "params": {"hidden": 17}}))))
    names = {"notdata.toml": f'dataset = "{stored}"', "nodata.toml": f'dataset = "{cid_of(b"absent")}"'}
    for name, line in names.items():
        files[name] = cli_spec(mnemonic_accounts(3)[2].address).replace("shards = 2", f"shards = 2\n{line}")
    files["wrongbase.toml"] = f'base_model = "{wider}"\n' + cli_spec(mnemonic_accounts(3)[2].address)
    files["stranger.toml"] = cli_spec("0x5a5A5a5a5A5a5a5a5a5A5a5A5A5a5a5A5A5A5A5A")
    files["detect.toml"] = detecting_spec(within_tasks=1)
    for name, text in files.items():
        (cli.home / name).write_text(text)
    args = [str(cli.home / a[5:]) if a.startswith("SPEC:") else a for a in args]
    if case == "refund not poster" or case == "refund too early":
        if not cli.json("bounty", "list")["bounties"]:
            test_bounty_post_list_show_and_audit(cli)
    senders = [cli.json("wallet", "show", w)["address"] for w in ("alice", "bob")]
    nonces = [cli.nonce(a) for a in senders]
    out = cli(*args, code=1, env=env)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out
    assert "Traceback" not in out
    assert [cli.nonce(a) for a in senders] == nonces


JSON_REFUSALS = [
    ("nonexistent bounty", ["bounty", "show", "999"], {}, "bounty 999 does not exist", "MarketUnknownBounty"),
    (
        "wrong password",
        ["stake", "1", "--wallet", "alice", "--yes"],
        {"SHARDWORK_PASSWORD": "not-the-password"},
        "wrong password for keystore",
        "WalletError",
    ),
    ("insufficient balance", ["stake", "99999999", "--wallet", "alice", "--yes"], {}, "is less than", None),
    ("json without yes", ["stake", "1", "--wallet", "alice"], {}, "--json needs --yes", "ShardworkError"),
]


@pytest.mark.parametrize(("case", "args", "env", "message", "kind"), JSON_REFUSALS, ids=[c[0] for c in JSON_REFUSALS])
def test_with_json_a_refusal_is_one_json_object_on_stdout_and_the_exit_code(
    cli: Cli, case: str, args: list[str], env: dict[str, str], message: str, kind: str | None
) -> None:
    result = cli.runner.invoke(app, [*args, "--json"], env={**cli.env, **env})
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # a script parses stdout whatever happened
    refusal = json.loads(lines[0])
    assert message in refusal["error"] and (kind is None or refusal["kind"] == kind), refusal
    assert result.stderr.startswith("error: ")  # and a person still reads the one line


def test_version_and_help_say_everything_they_hold(cli: Cli) -> None:
    version = cli("--version")
    assert version.startswith("shardwork ") and "contracts " in version and "torch 2.13.0" in version
    # Help text is plain: bracketed hints are kept, not swallowed as markup.
    assert "[env SHARDWORK_RPC_URL]" in " ".join(cli("stake", "--help").split())
    assert "a [bounty] table" in " ".join(cli("bounty", "post", "--help").split())


def test_settings_come_from_flags_then_environment_then_the_config_file(cli: Cli) -> None:
    (cli.home / "config.toml").write_text('rpc_url = "http://127.0.0.1:9"\n')
    try:
        env_wins = cli("balance", "--wallet", "alice")  # SHARDWORK_RPC_URL (the live node) beats the file
        assert "bonded" in env_wins
        out = cli("balance", "--wallet", "alice", env={"SHARDWORK_RPC_URL": None}, code=1)  # unset: the file's dead URL
        assert "cannot reach an EVM node at http://127.0.0.1:9" in out
        flag_wins = cli("balance", "--wallet", "alice", "--rpc-url", cli.url, env={"SHARDWORK_RPC_URL": None})
        assert "bonded" in flag_wins
    finally:
        (cli.home / "config.toml").unlink()


def test_wrong_chain_for_the_deployment_manifest_is_refused(cli: Cli, tmp_path: Path) -> None:
    manifest = json.loads((cli.home / "deployment.json").read_text())
    manifest["chain_id"] = 1
    wrong = tmp_path / "mainnet.json"
    wrong.write_text(json.dumps(manifest))
    out = cli("balance", "--wallet", "alice", "--deployment", str(wrong), code=1)
    assert "the node is chain 31337 but the deployment manifest is for chain 1" in out


def test_a_verifier_joins_and_leaves_the_registry_with_clear_refusals(cli: Cli) -> None:
    cli("wallet", "new", "vic")
    vic = cli.json("wallet", "show", "vic")["address"]
    cli.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [vic, hex(10**18)])  # gas money
    before = cli.nonce(vic)
    unstaked = cli("verify", "join", "--wallet", "vic", "--yes", code=1)
    assert "no bonded stake" in unstaked and cli.nonce(vic) == before  # refused at estimation: nothing sent
    cli("faucet", "50", "--wallet", "vic", "--yes")
    cli("stake", "10", "--wallet", "vic", "--yes")
    joined = cli.json("verify", "join", "--wallet", "vic", "--yes")
    assert joined["action"] == "verify join" and joined["after"]["bonded"] == 10 * UNIT
    market = Market(cli.w3, Deployment.load(cli.home / "deployment.json"))
    assert market.seat_of(vic) is not None
    assert "already holds a verifier seat" in cli("verify", "join", "--wallet", "vic", "--yes", code=1)
    cli("verify", "leave", "--wallet", "vic", "--yes")
    assert market.seat_of(vic) is None
    assert "nothing to leave" in cli("verify", "leave", "--wallet", "vic", "--yes", code=1)
    assert "drawn for commits made after you join" in " ".join(cli("verify", "join", "--help").split())
