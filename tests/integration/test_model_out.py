"""A poster gets the model out: `shardwork model pull` writes the demo bounty's final weights, spec and card
from the chain and the content store; `model eval` recomputes the score the coordinator published;
`model generate` continues text with the GPT demo's model (byte-pair tokens); bad input is refused in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cli.main import app
from content.store import LocalStore
from coordinator.api import Explorer, create_app
from devtools.anvil import Anvil
from devtools.scenario import Summary, run_scenario
from ledger.chain import connect
from ledger.deploy import Deployment
from ledger.market import Market
from protocol.cid import cid_of
from protocol.manifests import RoundManifest
from protocol.spec import TrainingSpec

Run = tuple[Anvil, dict[str, tuple[Path, Summary]]]  # the chain node; per workload, the demo's home and summary


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    node = Anvil()
    runs = {}
    for workload in ("mnist", "gpt"):
        home = tmp_path_factory.mktemp(f"{workload}-home")
        runs[workload] = (home, run_scenario(workload, rpc_url=node.url, home=home))
    yield node, runs
    node.stop()


def shardwork(run: Run, workload: str, *args: str) -> tuple[int, str]:
    node, runs = run
    home = runs[workload][0]
    result = CliRunner().invoke(app, [*args], env={"SHARDWORK_HOME": str(home), "SHARDWORK_RPC_URL": node.url})
    return result.exit_code, result.output


def as_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def published(run: Run, workload: str) -> RoundManifest:
    home, summary = run[1][workload]
    return RoundManifest.parse(LocalStore(home / "store").get(summary.final_model_cid))


def test_pull_writes_the_final_model_with_its_card_and_eval_recomputes_the_published_score(
    demos: Run, tmp_path: Path
) -> None:
    _, summary = demos[1]["mnist"]
    out = tmp_path / "model"
    code, output = shardwork(demos, "mnist", "model", "pull", str(summary.bounty_id), "--out", str(out), "--json")
    assert code == 0, output
    card = as_json(output)["card"]
    manifest = published(demos, "mnist")
    assert card["final"] and card["round"] == card["rounds"] == 3
    assert card["manifest_cid"] == summary.final_model_cid and card["model_cid"] == manifest.model_cid
    assert cid_of((out / "model.safetensors").read_bytes()) == manifest.model_cid  # the weights as published
    assert card["metric_name"] == "accuracy" and card["metric"] == manifest.metric
    assert [r["round"] for r in card["history"]] == [0, 1, 2, 3]
    # Each later model names the round before's four accepted updates, each scored alone on the held-out data.
    assert [len(r["update_scores"]) for r in card["history"]] == [0, 4, 4, 4]
    assert all(s["used"] for r in card["history"] for s in r["update_scores"])  # the demo's spec excludes none
    # Contributors are who was paid for the tasks in this model; the slashed are named with their stake lost.
    paid = {summary.names[c["volunteer"]] for c in card["contributors"]}
    assert paid and paid.isdisjoint({"lazy"})
    assert sum(len(c["accepted_tasks"]) for c in card["contributors"]) == 3 * 4
    assert {s["volunteer"] for s in card["slashes"]} == set(summary.slashed)
    audit = card["audit"]
    assert audit["accepted"] == 12 and audit["slashed"] == len(card["slashes"]) and audit["disagreements"] == 0
    assert (
        audit["proof_problems_accepted"] == 0 and audit["proof_problems_slashed"] > 0
    )  # the lazy one uploaded nothing
    assert "## Contributors" in (out / "README.md").read_text()

    # Anyone recomputes the published score from the directory and the held-out split's CID.
    code, output = shardwork(demos, "mnist", "model", "eval", str(out), "--json")
    assert code == 0, output
    assert as_json(output)["metric"] == manifest.metric
    # The weights load into the family's plain PyTorch module, as the card says.
    weights = load_file(out / "model.safetensors")
    torch.nn.Sequential(
        torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Dropout(0.0), torch.nn.Linear(64, 10)
    ).load_state_dict(weights)

    # Own data: the same held-out examples as a local file score the same; text is not MNIST data.
    holdout = LocalStore(demos[1]["mnist"][0] / "store").get(card["holdout_cid"])
    (tmp_path / "mine.safetensors").write_bytes(holdout)
    code, output = shardwork(demos, "mnist", "model", "eval", str(out), "--data", str(tmp_path / "mine.safetensors"))
    assert code == 0 and f"accuracy {manifest.metric:.4f}" in output, output
    (tmp_path / "notes.txt").write_text("not digits")
    code, output = shardwork(demos, "mnist", "model", "eval", str(out), "--data", str(tmp_path / "notes.txt"))
    assert (
        code == 1
        and output.strip().splitlines()[-1]
        == "error: mnist-mlp does not read text: give it a .safetensors file laid out as its shards"
    )
    save_file({"x": torch.zeros(5, 28, 28), "y": torch.zeros(5, dtype=torch.int64)}, tmp_path / "shaped.safetensors")
    code, output = shardwork(demos, "mnist", "model", "eval", str(out), "--data", str(tmp_path / "shaped.safetensors"))
    assert code == 1 and "tensor 'x' is torch.float32 [5, 28, 28]; mnist-mlp wants torch.float32 [N, 784]" in output
    code, output = shardwork(demos, "mnist", "model", "generate", str(out), "--prompt", "hi")
    assert code == 1 and "not a language model" in output and "Traceback" not in output


def test_pull_refuses_what_it_cannot_do_in_one_line_and_never_overwrites_another_model(
    demos: Run, tmp_path: Path
) -> None:
    _, summary = demos[1]["mnist"]
    bounty = str(summary.bounty_id)
    code, output = shardwork(demos, "mnist", "model", "pull", "999", "--out", str(tmp_path / "x"))
    assert (
        code == 1 and output.strip().splitlines()[-1] == "error: bounty 999 does not exist: see `shardwork bounty list`"
    )
    code, output = shardwork(demos, "mnist", "model", "pull", bounty, "--out", str(tmp_path / "x"), "--round", "7")
    assert code == 1 and "has no model for round 7; it has rounds 0, 1, 2, 3 (3 = final)" in output

    # An earlier round's model, then the final one into the same directory: refused unless --force.
    out = tmp_path / "model"
    code, output = shardwork(demos, "mnist", "model", "pull", bounty, "--out", str(out), "--round", "1", "--json")
    assert code == 0, output
    early = as_json(output)["card"]
    assert not early["final"] and early["round"] == 1
    assert sum(len(c["accepted_tasks"]) for c in early["contributors"]) == 4  # round 0's tasks made this model
    code, output = shardwork(demos, "mnist", "model", "pull", bounty, "--out", str(out))
    assert code == 1 and "holds another model" in output and "--force" in output
    assert cid_of((out / "model.safetensors").read_bytes()) == early["model_cid"]  # nothing was replaced
    code, output = shardwork(demos, "mnist", "model", "pull", bounty, "--out", str(out), "--force")
    assert code == 0 and "final model" in output, output

    # A directory whose weights no longer match its card is refused, not scored.
    weights = bytearray((out / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (out / "model.safetensors").write_bytes(bytes(weights))
    code, output = shardwork(demos, "mnist", "model", "eval", str(out))
    assert code == 1 and "is not the model its card names" in output
    code, output = shardwork(demos, "mnist", "model", "eval", str(tmp_path))
    assert code == 1 and "is not a pulled model" in output


def test_bounty_show_and_the_explorer_lead_to_the_final_model(demos: Run) -> None:
    node, runs = demos
    home, summary = runs["mnist"]
    manifest = published(demos, "mnist")
    code, output = shardwork(demos, "mnist", "bounty", "show", str(summary.bounty_id))
    assert code == 0, output
    assert f"final model {summary.final_model_cid}, held-out accuracy {manifest.metric:.4f}" in output
    assert f"shardwork model pull {summary.bounty_id} --out DIR" in output

    market = Market(connect(node.url), Deployment.load(home / "deployment.json"))
    explorer = Explorer(market, LocalStore(home / "store"), home / "api-index.sqlite")
    with TestClient(create_app(explorer)) as client:
        served = client.get(f"/api/bounties/{summary.bounty_id}/model")
        assert served.status_code == 200 and cid_of(served.content) == manifest.model_cid
        assert "attachment" in served.headers["content-disposition"]
        assert client.get("/api/bounties/999/model").status_code == 404
        history = client.get(f"/api/bounties/{summary.bounty_id}").json()["round_history"]
        final_row = history[-1]
        assert final_row["final"] and [s["score"] for s in final_row["update_scores"]] == [
            s.score for s in manifest.update_scores
        ]
        # The demo carries optimizer state: every shard's task after round 0 starts from its shard's state.
        assert [r["carried_states"] for r in history] == [0, 4, 4, 0]


def test_a_pulled_language_model_generates_text_the_same_way_for_the_same_seed(demos: Run, tmp_path: Path) -> None:
    _, summary = demos[1]["gpt"]
    out = tmp_path / "lm"
    code, output = shardwork(demos, "gpt", "model", "pull", str(summary.bounty_id), "--out", str(out))
    assert code == 0, output
    args = ["model", "generate", str(out), "--prompt", "ROMEO:", "--length", "80", "--seed", "3", "--json"]
    code, output = shardwork(demos, "gpt", *args)
    assert code == 0, output
    first = as_json(output)["text"]
    assert len(first) >= 40  # 80 byte-pair tokens: most are a word or part of one
    assert as_json(shardwork(demos, "gpt", *args)[1])["text"] == first
    code, output = shardwork(demos, "gpt", "model", "generate", str(out), "--temperature", "0", "-n", "40")
    assert code == 0 and len(output) >= 40

    # Its own text is data for a language model: tokenized, scored by next-token loss; too short is refused.
    (tmp_path / "sonnet.txt").write_text("Shall I compare thee to a summer's day?\n" * 20)
    code, output = shardwork(demos, "gpt", "model", "eval", str(out), "--data", str(tmp_path / "sonnet.txt"))
    assert code == 0 and output.startswith("loss "), output
    (tmp_path / "short.txt").write_text("Shall I")
    code, output = shardwork(demos, "gpt", "model", "eval", str(out), "--data", str(tmp_path / "short.txt"))
    assert code == 1 and "too short: the model reads 32 at a time" in output
    code, output = shardwork(demos, "gpt", "model", "eval", str(out), "--json")
    assert as_json(output)["metric"] == published(demos, "gpt").metric


def test_the_demo_names_its_builtin_data_as_an_ordinary_published_dataset(demos: Run) -> None:
    home, _ = demos[1]["mnist"]
    code, output = shardwork(demos, "mnist", "dataset", "add", "--builtin", "mnist", "--json")
    assert code == 0, output
    spec = TrainingSpec.from_bytes(LocalStore(home / "store").get(published(demos, "mnist").spec_cid))
    assert spec.data.dataset == as_json(output)["cid"]  # the same bytes, so the same CID, as the demo's poster's
    for args, message in [((), "one of the two"), (("--builtin", "cifar"), "unknown dataset 'cifar'")]:
        code, output = shardwork(demos, "mnist", "dataset", "add", *args)
        lines = output.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], output
