"""The auditor agrees with every on-chain verdict of the demo's bounty, and flags an injected wrong one (a
referee colluding with lying verifiers)."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner
from web3.types import RPCEndpoint

from cli.main import app
from content.store import LocalStore
from coordinator.api import Explorer, create_app
from coordinator.api_models import BountyOut, VolunteerOut
from coordinator.referee import Referee
from coordinator.rounds import Coordinator
from devtools.adversaries import partial_faker
from devtools.anvil import Anvil, free_port
from devtools.scenario import Summary, run_scenario
from judge.context import ChainView
from ledger.amounts import UNIT
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.market import Market, TaskStatus, task_id_of
from ledger.tx import Transactor
from node.daemon import NodeDaemon, NodeOptions
from telemetry.logs import json_logger
from tests.support.marketplace import Marketplace
from tests.support.specs import small_spec
from verifier.worker import VerifierWorker

DemoRun = tuple[Anvil, Path, Summary]  # the chain node, the demo's home, what the demo did


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    node = Anvil()
    home = tmp_path_factory.mktemp("demo-home")
    summary = run_scenario("mnist", rpc_url=node.url, home=home)
    yield node, home, summary
    node.stop()


def audit(home: Path, url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", *args, "--json", "--rpc-url", url], env={"SHARDWORK_HOME": str(home)})
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def on_demo_chain(demo_run: DemoRun) -> Marketplace:
    """A marketplace on the demo's chain and content store, for bounties the demo did not post."""
    node, home, _ = demo_run
    w3 = connect(node.url)
    deployment = Deployment.load(home / "deployment.json")
    return Marketplace(
        w3, node.url, deployment, home / "deployment.json", LocalStore(home / "store"), home / "store", home
    )


def referee(m: Marketplace) -> Referee:
    """The demo coordinator's referee (the demo's processes have stopped; the tests play its part)."""
    market = Market(m.w3, m.deployment, Transactor(m.w3, dev_accounts(m.w3, 10)[2]))
    return Referee(market, ChainView(market, m.store), json_logger("test"))


def test_audit_replays_agree_with_every_on_chain_verdict_of_the_demo(demo_run: DemoRun) -> None:
    node, home, summary = demo_run
    code, report = audit(home, node.url, "bounty", str(summary.bounty_id), "--replay", "40", "--seed", "1")
    checked = [r for r in report["replays"] if r["checked"]]
    assert checked and all(r["agrees"] for r in checked), [r for r in checked if not r["agrees"]]
    # The faker's unchecked tasks were accepted; a replay that lands on one of its faked segments is a
    # finding (exit 3), and only the faker may be the subject of one.
    cheats = [r for r in report["replays"] if not r["agrees"]]
    assert {summary.names[r["volunteer"]] for r in cheats} <= {"faker"}
    assert report["unchecked_cheats"] == len(cheats) and code == (3 if cheats else 0)
    replayed = sum(len(r["segments"]) for r in report["replays"])
    assert report["disagreements"] == 0 and replayed <= 40
    # Replaying stops when the next commit's segments (at most a task's 8) no longer fit the budget, or when
    # every commit was replayed: how many the demo's draws checked decides which.
    settled = [c for c in report["commits"] if c["outcome"] in ("accepted", "slashed")]
    assert replayed > 40 - 8 or len(report["replays"]) == len(settled)
    outcomes = {c["outcome"] for c in report["commits"]}
    assert outcomes == {"accepted", "slashed"}
    lazy = next(a for a, role in summary.names.items() if role == "lazy")
    for commit in report["commits"]:
        if commit["volunteer"] == lazy:
            assert commit["outcome"] == "slashed" and commit["proof_problems"]  # it never uploaded a trace
        elif commit["outcome"] == "accepted":
            assert commit["proof_problems"] == []


def test_audit_flags_a_wrong_verdict_injected_by_colluding_verifiers_and_referee(demo_run: DemoRun) -> None:
    node, home, _ = demo_run
    m = on_demo_chain(demo_run)
    w3, deployment, keys = m.w3, m.deployment, dev_accounts(m.w3, 10)
    spec = small_spec(data={"shards": 1})
    bounty_id = m.post_and_open(spec, checkBps=10_000, minCheckBps=10_000)
    honest = Market(w3, deployment, Transactor(w3, keys[5]))
    daemon = NodeDaemon(honest, m.store, NodeOptions(work_dir=home / "injected", once=True), json_logger("test"))
    daemon.run()
    task_id = task_id_of(bounty_id, 0, 0)
    assert honest.task(task_id).status == TaskStatus.COMMITTED
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    for verifier_key in (keys[3], keys[4]):  # the demo's verifiers, now lying: FAIL on honest work
        Market(w3, deployment, Transactor(w3, verifier_key)).attest(task_id, False)
    assert honest.task(task_id).status == TaskStatus.CONTESTED  # votes alone slash nobody: a review opens
    Market(w3, deployment, Transactor(w3, keys[2])).rule(task_id, False)  # and the referee colludes
    assert honest.task(task_id).status == TaskStatus.OPEN  # slashed and reopened

    code, report = audit(home, node.url, "task", hex(task_id), "--replay", "8")
    assert code == 3
    (replay,) = report["replays"]
    assert replay["outcome"] == "slashed" and replay["failed"] == [] and replay["segments"] and not replay["agrees"]


def test_audit_agrees_with_a_slash_decided_after_the_draw_was_lost(demo_run: DemoRun) -> None:
    """Nobody recorded the draw and the verifiers first looked 300 blocks after the commit: the contract then
    checks every segment, the verifiers replay all of them and catch the faked one, and the auditor must
    re-decide on all of them too (it used to replay the block hash's sample and contradict the slash)."""
    node, home, _ = demo_run
    m = on_demo_chain(demo_run)
    w3, deployment, keys = m.w3, m.deployment, dev_accounts(m.w3, 10)
    spec = small_spec(data={"shards": 1}, steps_per_task=40)  # 8 segments, one of them faked
    bounty_id = m.post_and_open(spec, checkBps=10_000, minCheckBps=10_000, segmentsPerCheck=1)
    faker = Market(w3, deployment, Transactor(w3, keys[6]))
    daemon = NodeDaemon(
        faker,
        m.store,
        NodeOptions(work_dir=home / "late-faker", once=True),
        json_logger("test"),
        trainer=partial_faker(1 / 8, random.Random(7)),
    )
    daemon.run()
    task_id = task_id_of(bounty_id, 0, 0)
    assert faker.task(task_id).status == TaskStatus.COMMITTED
    w3.provider.make_request(RPCEndpoint("anvil_mine"), [300])
    assert faker.challenge(task_id) == (True, list(range(8)))  # the seed is lost: every segment is checked
    for verifier_key in (keys[3], keys[4]):
        verifier = VerifierWorker(Market(w3, deployment, Transactor(w3, verifier_key)), m.store, json_logger("test"))
        verifier.verify(task_id)
    assert referee(m).tend(task_id) == "ruled"  # the review the FAIL quorum opened
    assert faker.task(task_id).status == TaskStatus.OPEN  # slashed and reopened

    code, report = audit(home, node.url, "task", hex(task_id), "--replay", "16")
    (replay,) = report["replays"]
    assert replay["outcome"] == "slashed" and replay["segments"] == list(range(8))
    assert replay["failed"] and replay["agrees"] and code == 0


class _LastSegment(random.Random):
    """An rng for partial_faker that fakes exactly the last segment."""

    def sample(self, population: Any, k: int, *, counts: Any = None) -> list[Any]:
        return [list(population)[-1]]


def test_audit_agrees_with_a_slash_for_a_malformed_trace_whatever_segment_was_drawn(demo_run: DemoRun) -> None:
    """The faker fakes only its last segment, which leaves its last checkpoint's optimizer step count wrong: a
    challenger disputes it and the committee's full audit of a disputed commit fails it, whatever segment the
    chain drew. The auditor runs that audit too (it used to replay only the drawn segment,
    find it honest, and report the slash as a disagreement)."""
    node, home, _ = demo_run
    m = on_demo_chain(demo_run)
    w3, deployment, keys = m.w3, m.deployment, dev_accounts(m.w3, 10)
    spec = small_spec(data={"shards": 1}, steps_per_task=40)  # 8 segments
    bounty_id = m.post_and_open(spec, checkBps=10_000, minCheckBps=10_000, segmentsPerCheck=1)
    # An account the demo never used: the earlier tests' fakers were slashed, so barred from this poster's tasks.
    faker = Market(w3, deployment, Transactor(w3, keys[9]))
    faker.faucet(faker.address, 1_000 * UNIT)
    faker.stake(500 * UNIT)
    daemon = NodeDaemon(
        faker,
        m.store,
        NodeOptions(work_dir=home / "last-faker", once=True),
        json_logger("test"),
        trainer=partial_faker(1 / 8, _LastSegment()),
    )
    daemon.run()
    task_id = task_id_of(bounty_id, 0, 0)
    for _ in range(2):  # the draw block, and one after it for a view at the head
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    # The committee reads the trace and its sampled segments, the coordinator the trace and the update (well-formed:
    # it has nothing to dispute); a challenger who suspects the end disputes it, so the committee audits in full.
    coordinator_market = Market(m.w3, m.deployment, Transactor(m.w3, dev_accounts(m.w3, 10)[2]))
    assert not Coordinator(coordinator_market, m.store, json_logger("test")).audit_and_dispute(task_id)
    coordinator_market.ensure_allowance(coordinator_market.bounty(bounty_id).raw["challengeBond"])
    coordinator_market.dispute(task_id, 7)
    for verifier_key in (keys[3], keys[4]):
        VerifierWorker(Market(w3, deployment, Transactor(w3, verifier_key)), m.store, json_logger("test")).verify(
            task_id
        )
    assert referee(m).tend(task_id) == "ruled"  # the review the FAIL quorum opened
    assert faker.task(task_id).status == TaskStatus.OPEN  # slashed and reopened

    code, report = audit(home, node.url, "task", hex(task_id), "--replay", "8")
    (replay,) = report["replays"]
    assert replay["outcome"] == "slashed" and replay["agrees"] and code == 0, replay
    assert "optim." in replay["reason"] or replay["failed"] == [7]


def test_rewards_break_each_accounts_demo_earnings_down_by_kind_and_miss_no_credit(demo_run: DemoRun) -> None:
    node, home, summary = demo_run

    def rewards(address: str) -> dict[str, Any]:
        args = ["rewards", address, "--json", "--rpc-url", node.url]
        result = CliRunner().invoke(app, args, env={"SHARDWORK_HOME": str(home)})
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output.strip().splitlines()[-1]))

    kinds = set()
    for address, credited in summary.rewards.items():  # every RewardCredited of the demo's bounty, summed
        report = rewards(address)
        rows = [r for r in report["earnings"] if r["bounty_id"] == summary.bounty_id]
        assert sum(r["amount"] for r in rows) == credited and all(r["kind"] != "other" for r in rows), rows
        assert report["claimed"] <= report["credited"] and report["claimable"] == report["credited"] - report["claimed"]
        kinds |= {r["kind"] for r in rows}
    assert {"task reward", "verifier fee"} <= kinds


def test_node_status_counts_each_volunteers_tasks_earnings_and_slashes_of_the_demo(demo_run: DemoRun) -> None:
    node, home, summary = demo_run
    by_role = {role: address for address, role in summary.names.items()}
    market = Market(connect(node.url), Deployment.load(home / "deployment.json"))

    def status(address: str, *extra: str) -> dict[str, Any]:
        args = ["node", "status", address, "--json", "--rpc-url", node.url, *extra]
        result = CliRunner().invoke(app, args, env={"SHARDWORK_HOME": str(home)})
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output.strip().splitlines()[-1]))

    honest_accepted = 0
    for role in ("honest-1", "honest-2"):
        report = status(by_role[role])
        (row,) = [b for b in report["bounties"] if b["bounty_id"] == summary.bounty_id]
        assert row["slashed"] == 0 and row["in_flight"] == 0 and row["pending"] == 0
        assert row["accepted"] == row["claimed"] > 0 and row["earned"] == row["accepted"] * 10 * UNIT
        assert row["hours"] > 0 and row["earned_per_hour"] == pytest.approx(row["earned"] / row["hours"], rel=1e-3)
        # Other tests of this module give the demo's volunteers more tasks: the stake is compared, not assumed.
        assert report["stake"]["locked"] == market.stake_of(by_role[role]).locked and report["paused"] is False
        honest_accepted += row["accepted"]
    for role in ("lazy", "faker"):
        (row,) = [b for b in status(by_role[role])["bounties"] if b["bounty_id"] == summary.bounty_id]
        assert row["slashed"] >= 1 and row["slashed_amount"] > 0, row
    (faker,) = [b for b in status(by_role["faker"])["bounties"] if b["bounty_id"] == summary.bounty_id]
    assert honest_accepted + faker["accepted"] == 12  # every task of the demo, accepted once, by whoever did it
    text = CliRunner().invoke(
        app, ["node", "status", by_role["lazy"], "--rpc-url", node.url], env={"SHARDWORK_HOME": str(home)}
    )
    assert text.exit_code == 0 and "slashed (" in text.output and f"bounty {summary.bounty_id}" in text.output


def test_the_read_api_describes_the_demo_in_its_response_models(demo_run: DemoRun, tmp_path: Path) -> None:
    """Every bounty, slash and volunteer of the demo (cheaters slashed, rounds closed, a final model) fits the
    API's typed models, so the OpenAPI schema tells clients the truth."""
    node, home, summary = demo_run
    market = Market(connect(node.url), Deployment.load(home / "deployment.json"))
    snapshot = Explorer(market, LocalStore(home / "store"), tmp_path / "index.sqlite").build()
    demo = BountyOut.model_validate(snapshot.bounties[summary.bounty_id])
    assert demo.final_model_cid == summary.final_model_cid and demo.round_history[-1].final
    assert {s.volunteer for s in demo.slashes} == set(summary.slashed)
    assert all(len(s.verdicts) >= 2 and not any(v.passed for v in s.verdicts) for s in demo.slashes if s.verdicts)
    for v in snapshot.volunteers.values():
        VolunteerOut.model_validate(v)


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "explorer"


def _chromium(*args: str) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is required (scripts/test installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--window-size=1280,1800"]
    run = subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120)
    return run.stdout


def test_the_explorers_bounty_and_volunteer_pages_show_the_demos_history_with_charts(
    demo_run: DemoRun, tmp_path: Path
) -> None:
    """Every attempt, verdict, slash and payment of the demo on the bounty's page, charts with axes drawn from
    them, a volunteer's credits on its page; screenshots of the three pages kept in test-artifacts/explorer."""
    node, home, summary = demo_run
    by_role = {role: address for address, role in summary.names.items()}
    market = Market(connect(node.url), Deployment.load(home / "deployment.json"))
    explorer = Explorer(market, LocalStore(home / "store"), tmp_path / "index.sqlite")
    app_ = create_app(explorer, refresh_s=0.2)
    config = uvicorn.Config(app_, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{config.port}"
    try:
        while not server.started:
            time.sleep(0.05)
        history = json.loads(urllib.request.urlopen(f"{base}/api/bounties/{summary.bounty_id}/history").read())
        outcomes = {(a["volunteer"], a["outcome"]) for a in history["attempts"]}
        assert (by_role["lazy"], "slashed") in outcomes and (by_role["honest-1"], "accepted") in outcomes
        assert sum(a["outcome"] == "accepted" for a in history["attempts"]) == 12
        reasons = {a["volunteer"]: a["reason"] for a in history["attempts"] if a["outcome"] == "slashed"}
        assert reasons[by_role["lazy"]] == "a FAIL quorum of verifiers, confirmed by the referee's replay"
        assert reasons[by_role["faker"]].startswith("it lost a bisection game: the referee recomputed step")
        assert all(a["numerics"]["fingerprint"] for a in history["attempts"] if a["outcome"] == "accepted")
        # Every shard's carried optimizer state was served (the demo's parties share one store): none started fresh.
        assert all(a["fresh_start"] is False for a in history["attempts"] if a["outcome"] == "accepted")
        escrow = history["escrow"]
        assert (
            escrow[0]["events"] == ["BountyPosted"]
            and int(escrow[-1]["escrow"]) == market.bounty(summary.bounty_id).escrow
        )
        assert all(
            int(e["change"]) == int(e["escrow"]) - int(p["escrow"]) for p, e in zip(escrow, escrow[1:], strict=False)
        )
        assert any("TaskSlashed" in e["events"] and int(e["change"]) > 0 for e in escrow)  # a slash funds the redo
        paid: dict[str, int] = {}
        for p in history["payments"]:
            paid[p["account"]] = paid.get(p["account"], 0) + int(p["amount"])
        assert paid == summary.rewards  # every credit of the bounty, to the wei

        pages = {
            "index": f"{base}/",
            "bounty": f"{base}/bounty/{summary.bounty_id}",
            "volunteer": f"{base}/volunteer/{by_role['honest-1']}",
        }
        doms = {name: _chromium("--dump-dom", url) for name, url in pages.items()}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name, url in pages.items():
            shot = ARTIFACTS / f"{name}.png"
            shot.unlink(missing_ok=True)
            _chromium(f"--screenshot={shot}", url)
            assert shot.stat().st_size > 10_000, f"no screenshot of the {name} page"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert (
        f'href="/bounty/{summary.bounty_id}"' in doms["index"]
        and f'href="/volunteer/{by_role["honest-1"]}"' in doms["index"]
    )
    bounty = doms["bounty"]
    assert 'data-loaded="bounty"' in bounty
    drawn = re.search(r'id="metric-chart"[^>]*data-points="(\d+)"', bounty)
    assert drawn and int(drawn.group(1)) >= len(summary.rounds)  # each closed round's model, scored
    payments = re.search(r'id="payments-chart"[^>]*data-points="(\d+)"', bounty)
    assert payments and int(payments.group(1)) == len(history["payments"])
    escrow_chart = re.search(r'id="escrow-chart"[^>]*data-points="(\d+)"', bounty)
    assert escrow_chart and int(escrow_chart.group(1)) == len(history["escrow"])
    over_time = re.search(r'id="metric-time-chart"[^>]*data-points="(\d+)"', bounty)
    assert over_time and over_time.group(1) == drawn.group(1)  # each scored model, by its time too
    losses = re.search(r'id="loss-chart"[^>]*data-points="(\d+)"', bounty)
    trained = [a["losses"] for a in history["attempts"] if a["outcome"] == "accepted"]
    assert all(trained) and losses and int(losses.group(1)) == sum(len(x) for x in trained)  # every step's loss
    index_chart = re.search(rf'id="metric-chart-{summary.bounty_id}"[^>]*data-points="(\d+)"', doms["index"])
    assert index_chart and int(index_chart.group(1)) == int(drawn.group(1))
    assert len(re.findall(r'class="slashed" title="[^"]+">slashed<', bounty)) >= 2 and "download the weights" in bounty
    assert f'title="{by_role["faker"]}"' in bounty
    assert 'class="reason">it lost a bisection game' in bounty and 'class="reason">a FAIL quorum' in bounty
    for slashed in [a for a in history["attempts"] if a["outcome"] == "slashed"]:  # ids past 2**53, exact
        assert f"<code>{slashed['task_id_hex']}</code>" in bounty
    volunteer = doms["volunteer"]
    assert 'data-loaded="volunteer"' in volunteer and "task reward" in volunteer
    earnings = re.search(r'id="earnings-chart"[^>]*data-points="(\d+)"', volunteer)
    assert earnings and int(earnings.group(1)) > 0
