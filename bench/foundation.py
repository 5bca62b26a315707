"""A GPT of over 25M parameters trained end to end on the volunteer network (tests/support/testnet.py).

examples/gpt-bounty.toml (26.4M parameters, byte-pair tokens of the built-in Shakespeare text), by default cut
to 3 shards × 2 rounds of 20-step tasks with a 120 s challenge and a 900 s verify window (a 26M model's checked
segments take minutes to fetch and replay on a busy 2-core machine), and 2 of a task's 4 segments replayed per check
instead of the detection target's one: the faker fakes half its segments, and a run this short must catch it. Every party on its own host with its own keys and IPFS
node: the poster, two honest volunteers and a partial faker, three independent verifier daemons, and the
coordinator's host (stack, Celery verifiers, the referee). Daemons are up before the poster posts.

  params                 the model's parameters
  finalize_s, wall_s     chain time from BountyPosted to BountyFinalized; wall time of the same
  loss_by_round          the held-out loss (nats per token) of round 0's model and of each aggregate after it
  accepted, slashed      accepted tasks per volunteer; slashes per volunteer
  ipfs_bytes             per party, what its IPFS node sent to and received from its peers (bitswap)
  sent_per_task_bytes    per volunteer, what its node sent, over the tasks it committed

  ./scripts/bench foundation [--json] [--rounds 2] [--shards 3] [--timeout-s 7200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from content.ipfs import open_store
from ledger.market import Market
from protocol.manifests import RoundManifest
from protocol.spec import TrainingSpec
from protocol.workloads import resolve
from tests.support.testnet import TestNet

ROOT = Path(__file__).resolve().parent.parent
PARTIES = ["poster", "honest1", "honest2", "faker", "verifier1", "verifier2", "verifier3"]
WALLETS = {"poster": 1, "honest1": 5, "honest2": 6, "verifier1": 8, "verifier2": 10, "verifier3": 11}
FAKER = 7
VOLUNTEERS = {"honest1": 5, "honest2": 6, "faker": FAKER}
CHALLENGE_WINDOW_S, VERIFY_WINDOW_S = 120, 900


def bounty_file(rounds: int, shards: int) -> str:
    text = (ROOT / "examples" / "gpt-bounty.toml").read_text()
    for key, value in {
        "rounds": rounds,
        "shards": shards,
        "steps_per_task": 20,
        "challenge_window_s": CHALLENGE_WINDOW_S,
        "verify_window_s": VERIFY_WINDOW_S,
    }.items():
        text, found = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        assert found == 1, key
    text, found = re.subn(r"(?m)^detection = .*$", "min_check_probability = 0.5\nsegments_per_check = 2", text)
    assert found == 1, "detection"
    return text


def run(home: Path, rounds: int, shards: int, timeout_s: float) -> dict[str, Any]:
    with TestNet(home, PARTIES) as net:
        for name, index in WALLETS.items():
            net.wallet(name, index, stake=None if name == "poster" else 1000, verifier=name.startswith("verifier"))
        net.faker("faker", FAKER)
        for name in ("verifier1", "verifier2", "verifier3"):
            net.verifier(name)
        for name in ("honest1", "honest2"):
            net.node(name)
        spec_file = home / "bounty.toml"
        spec_file.write_text(bounty_file(rounds, shards))
        started = time.monotonic()
        # Posting measures the spec's honest cross-CPU divergence first: minutes for a model this size.
        posted = json.loads(
            net.cli("poster", "bounty", "post", str(spec_file), "--wallet", "poster", "--yes", "--json", timeout_s=1800)
        )
        bounty_id = int(posted["bounty_id"])
        market = net.wait_finalized(bounty_id, started, timeout_s, poll_s=5)
        return measure(net, market, bounty_id, wall_s=time.monotonic() - started)


def measure(net: TestNet, market: Market, bounty_id: int, wall_s: float) -> dict[str, Any]:
    def at(event: Any) -> int:
        return int(net.w3.eth.get_block(event["blockNumber"])["timestamp"])

    posted = market.logs("BountyPosted", 0, filters={"bountyId": bounty_id})[0]
    finalized = market.logs("BountyFinalized", 0, filters={"bountyId": bounty_id})[0]
    store = open_store(f"ipfs:{net.stack.ipfs_api}")
    manifests = [e["args"]["modelCid"] for e in market.logs("RoundOpened", 0, filters={"bountyId": bounty_id})]
    manifests.append(finalized["args"]["finalModelCid"])
    losses = [float("nan") if (m := RoundManifest.parse(store.get(cid)).metric) is None else m for cid in manifests]
    first = RoundManifest.parse(store.get(manifests[0]))
    spec = TrainingSpec.from_bytes(store.get(first.spec_cid))
    names = {net.keys[index].address: name for name, index in VOLUNTEERS.items()}
    accepted: dict[str, int] = {}
    for e in market.logs("TaskAccepted", 0, filters={"bountyId": bounty_id}):
        name = names.get(e["args"]["volunteer"], e["args"]["volunteer"])
        accepted[name] = accepted.get(name, 0) + 1
    slashed: dict[str, int] = {}
    for e in market.logs("TaskSlashed", 0, filters={"bountyId": bounty_id}):
        name = names.get(e["args"]["volunteer"], e["args"]["volunteer"])
        slashed[name] = slashed.get(name, 0) + 1
    commits: dict[str, int] = {}
    for e in market.logs("TaskCommitted", 0, filters={"bountyId": bounty_id}):
        name = names.get(e["args"]["volunteer"], e["args"]["volunteer"])
        commits[name] = commits.get(name, 0) + 1
    traffic = {
        name: {"sent": int(stat["DataSent"]), "received": int(stat["DataReceived"])}
        for name in PARTIES
        for stat in [net.bitswap_stat(name)]
    }
    params = sum(p.numel() for p in resolve(spec.model).build_model().parameters())
    return {
        "params": params,
        "shards": spec.data.shards,
        "rounds": spec.rounds,
        "steps_per_task": spec.steps_per_task,
        "segments": spec.segments,
        "hosts": len(net.parties) + 1,
        "isolated_namespaces": bool(net.network.isolated),
        "finalize_s": at(finalized) - at(posted),
        "wall_s": round(wall_s, 1),
        "loss_by_round": losses,
        "loss_decreasing": all(b < a for a, b in zip(losses, losses[1:], strict=False)),
        "accepted": accepted,
        "slashed": slashed,
        "commits": commits,
        "ipfs_bytes": traffic,
        "sent_per_task_bytes": {
            name: round(traffic[name]["sent"] / commits[name]) for name in VOLUNTEERS if commits.get(name)
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=7200)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="run in DIR and keep it (every party's logs)")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, the network still comes down: every party's process, IPFS node and namespace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args.rounds, args.shards, args.timeout_s)
    else:
        with tempfile.TemporaryDirectory(prefix="shardwork-bench-foundation-") as home:
            result = run(Path(home), args.rounds, args.shards, args.timeout_s)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<22} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
