"""A poster's real job, end to end on a real EVM: it pulls a previous bounty's final language model, publishes a
small text corpus of its own, posts a bounty fine-tuning that model on it; volunteers (and the demo's two
cheaters) train, the poster pulls the result and generates text, and another party's audit recomputes the
shards, the starting model and every round's aggregate from the chain and the content store alone."""

from __future__ import annotations

import json
import this  # its text, the Zen of Python, is the poster's corpus
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from content.store import LocalStore
from devtools.anvil import Anvil
from devtools.scenario import run_scenario
from protocol.manifests import RoundManifest

ZEN = "".join(this.d.get(c, c) for c in this.s)


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    anvil = Anvil()
    yield anvil
    anvil.stop()


def shardwork(home: Path, url: str, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"], env={"SHARDWORK_HOME": str(home), "SHARDWORK_RPC_URL": url})
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_a_poster_fine_tunes_a_previous_model_on_its_own_text_and_takes_the_model_home(
    node: Anvil, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier"  # the earlier bounty's market, the demo's volunteers and content store
    first = run_scenario("shakespeare", rpc_url=node.url, home=earlier)
    home = tmp_path / "home"  # the poster's own: a fresh market and volunteers, the same content store
    home.mkdir()
    (home / "store").symlink_to(earlier / "store")
    base = shardwork(earlier, node.url, "model", "pull", str(first.bounty_id), "--out", str(tmp_path / "base"))["card"]

    corpus = tmp_path / "zen.txt"
    corpus.write_text(ZEN * 40)  # ~34,000 characters: four shards and a holdout a 48-character context can use
    dataset = shardwork(home, node.url, "dataset", "add", str(corpus))
    assert dataset["kind"] == "text" and dataset["tokens"] == len(ZEN * 40)

    second = run_scenario(
        "shakespeare",
        rpc_url=node.url,
        home=home,
        spec_changes={"name": "zen-fine-tune", "base_model": base["model_cid"], "data": {"dataset": dataset["cid"]}},
    )
    assert second.slashed  # the demo's cheaters were caught here too
    out = tmp_path / "zen-model"
    card = shardwork(home, node.url, "model", "pull", str(second.bounty_id), "--out", str(out))["card"]
    assert card["final"] and card["name"] == "zen-fine-tune"
    assert card["history"][0]["model_cid"] == base["model_cid"]  # round 0 started from the pulled model
    scores = [r["metric"] for r in card["history"]]
    assert scores[-1] < scores[0], scores  # fine-tuning lowered the loss on the poster's own held-out text
    # Another party's audit recomputes the shards, holdout and starting model from the spec and the dataset,
    # and each round's model from the previous one and the updates the chain accepted.
    assert card["audit"]["data_problems"] == []
    store = LocalStore(home / "store")
    final = RoundManifest.parse(store.get(second.final_model_cid))
    assert final.holdout_cid == card["holdout_cid"] and final.model_cid == card["model_cid"]

    text = shardwork(home, node.url, "model", "generate", str(out), "--prompt", "Beautiful is", "-n", "60")["text"]
    assert len(text) == 60 and text.isascii()
    mine = shardwork(home, node.url, "model", "eval", str(out), "--data", str(corpus))
    base_on_mine = shardwork(home, node.url, "model", "eval", str(tmp_path / "base"), "--data", str(corpus))
    assert mine["metric"] < base_on_mine["metric"]  # the fine-tuned model knows the poster's text better
