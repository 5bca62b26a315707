"""The example bounty on a volunteer network (tests/support/testnet.py): how long it takes to finalize against
its critical path, and what its disputes cost.

Every party on its own host with its own keys and IPFS node: the poster, two honest volunteers and a partial
faker (node daemons), three independent verifier daemons, a lying verifier that contests an honest
volunteer's first commit, and the coordinator's host (stack, two Celery verifiers, the referee). The daemons
are started, as on a live network, before the poster posts.
The bounty is examples/mnist-bounty.toml with 30 s challenge and verify windows.

  finalize_s       chain time from BountyPosted to BountyFinalized
  critical_path_s  per round, the slowest accepted task's training (claim → commit) plus the challenge window
  dispute_rounds   answers each bisection game took (one per game)
  referee_steps    optimizer steps the referee recomputed per ruling (target 1)
  lying_verifier_slashed, transfer_per_task_bytes (what a volunteer publishes and fetches for one task)

  ./scripts/bench network [--json] [--timeout-s 1800] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from content.ipfs import open_store
from ledger.market import Market
from protocol.manifests import TraceManifest
from tests.support.testnet import TestNet

ROOT = Path(__file__).resolve().parent.parent
PARTIES = ["poster", "honest1", "honest2", "faker", "verifier1", "verifier2", "verifier3", "liar"]
WALLETS = {"poster": 1, "honest1": 5, "honest2": 6, "verifier1": 8, "verifier2": 10, "verifier3": 11}
FAKER, LIAR = 7, 9
WINDOW_S = 30


def example_bounty() -> str:
    text = (ROOT / "examples" / "mnist-bounty.toml").read_text()
    text = re.sub(r"(?m)^challenge_window_s = \d+", f"challenge_window_s = {WINDOW_S}", text)
    return re.sub(r"(?m)^verify_window_s = \d+", f"verify_window_s = {WINDOW_S}", text)


def run(home: Path, timeout_s: float) -> dict[str, Any]:
    with TestNet(home, PARTIES) as net:
        for name, index in WALLETS.items():
            net.wallet(name, index, stake=None if name == "poster" else 1000, verifier=name.startswith("verifier"))
        # A live network: every party's daemon is up, waiting for work, when the poster posts.
        net.faker("faker", FAKER)
        liar = net.liar("liar", LIAR, target=net.keys[WALLETS["honest2"]].address)
        for name in ("verifier1", "verifier2", "verifier3"):
            net.verifier(name)
        for name in ("honest1", "honest2"):
            net.node(name)
        spec = home / "bounty.toml"
        spec.write_text(example_bounty())
        posted = json.loads(net.cli("poster", "bounty", "post", str(spec), "--wallet", "poster", "--yes", "--json"))
        bounty_id = int(posted["bounty_id"])
        started = time.monotonic()
        market = net.wait_finalized(bounty_id, started, timeout_s, ignore=(liar,))
        return measure(net, market, bounty_id, wall_s=time.monotonic() - started)


def measure(net: TestNet, market: Market, bounty_id: int, wall_s: float) -> dict[str, Any]:
    def at(event: Any) -> int:
        return int(net.w3.eth.get_block(event["blockNumber"])["timestamp"])

    posted = market.logs("BountyPosted", 0, filters={"bountyId": bounty_id})[0]
    finalized = market.logs("BountyFinalized", 0, filters={"bountyId": bounty_id})[0]
    claims = market.logs("TaskClaimed", 0, filters={"bountyId": bounty_id})
    commits = market.logs("TaskCommitted", 0, filters={"bountyId": bounty_id})
    accepted = market.logs("TaskAccepted", 0, filters={"bountyId": bounty_id})
    slowest: dict[int, int] = {}
    for acceptance in accepted:
        task_id = int(acceptance["args"]["taskId"])
        commit = [
            c for c in commits if c["args"]["taskId"] == task_id and c["blockNumber"] <= acceptance["blockNumber"]
        ][-1]
        claim = [c for c in claims if c["args"]["taskId"] == task_id and c["blockNumber"] <= commit["blockNumber"]][-1]
        round_ = (task_id >> 32) & 0xFFFFFFFF
        slowest[round_] = max(slowest.get(round_, 0), at(commit) - at(claim))
    critical_path_s = sum(training + WINDOW_S for training in slowest.values())

    games = market.logs("GameOpened", 0)
    answered = market.logs("GameAnswered", 0)
    ruled = market.logs("GameRuled", 0)
    rounds, referee_steps = [], []
    for opened in games:
        task_id = opened["args"]["taskId"]
        ended = [e for e in market.logs("GameEnded", opened["blockNumber"], filters={"taskId": task_id})]
        end_block = ended[0]["blockNumber"] if ended else net.w3.eth.block_number
        moves = [
            a
            for a in answered
            if a["args"]["taskId"] == task_id and opened["blockNumber"] <= a["blockNumber"] <= end_block
        ]
        rounds.append(len(moves))
        if any(
            r["args"]["taskId"] == task_id and opened["blockNumber"] <= r["blockNumber"] <= end_block for r in ruled
        ):
            last = moves[-1]["args"] if moves else opened["args"]
            referee_steps.append(int(last["hiStep"]) - int(last["loStep"]))
    timeline = round_timeline(market, bounty_id, at)
    liar = net.keys[LIAR].address
    lied = [e for e in market.logs("ChallengerSlashed", 0) if e["args"]["challenger"] == liar]

    honest = [c for c in commits if c["args"]["volunteer"] == net.keys[WALLETS["honest2"]].address]
    store = open_store(net.stores["honest2"])
    trace = TraceManifest.parse(store.get(honest[0]["args"]["traceCid"]))
    published = sum(len(store.get(cid)) for cid in {*(c.cid for c in trace.checkpoints[1:]), trace.update_cid})
    published += len(store.get(honest[0]["args"]["traceCid"]))
    return {
        "hosts": len(net.parties) + 1,
        "isolated_namespaces": bool(net.network.isolated),
        "ipfs_nodes": len(net.stores) + 1,
        "independent_verifiers": 3,
        "finalize_s": at(finalized) - at(posted),
        "wall_s": round(wall_s, 1),
        "critical_path_s": critical_path_s,
        "finalize_over_critical_path": round((at(finalized) - at(posted)) / critical_path_s, 2),
        "games": len(games),
        "dispute_rounds": rounds,
        "referee_steps": referee_steps,
        "lying_verifier_slashed": bool(lied),
        "faker_slashed": len(market.logs("TaskSlashed", 0, filters={"bountyId": bounty_id})),
        "transfer_per_task_bytes": {"published": published},
        "intake_s": at(market.logs("RoundOpened", 0, filters={"bountyId": bounty_id})[0]) - at(posted),
        "round_timeline": timeline,
    }


def round_timeline(market: Market, bounty_id: int, at: Any) -> list[dict[str, int]]:
    """Where each round's time went, in seconds from its opening (chain time): the last first claim, the last
    commit, the last acceptance, the close; and how long its slowest game or review kept a task."""
    opened = market.logs("RoundOpened", 0, filters={"bountyId": bounty_id})
    closed = market.logs("RoundClosed", 0, filters={"bountyId": bounty_id})
    events = {
        name: market.logs(name, 0, filters={"bountyId": bounty_id})
        for name in ("TaskClaimed", "TaskCommitted", "TaskAccepted")
    }
    contested = [*market.logs("GameOpened", 0), *market.logs("ReviewOpened", 0)]
    endings = [*market.logs("GameRuled", 0), *market.logs("GameForfeited", 0), *market.logs("GameEnded", 0)]
    slashes = market.logs("TaskSlashed", 0, filters={"bountyId": bounty_id})
    moves = [*market.logs("GameBisected", 0), *market.logs("GameAnswered", 0)]
    rows = []
    for start, end in zip(opened, closed, strict=False):
        round_ = int(start["args"]["round"])

        def of_round(logs: list[Any], round_: int = round_) -> list[Any]:
            return [e for e in logs if (int(e["args"]["taskId"]) >> 32) & 0xFFFFFFFF == round_]

        t0 = at(start)
        first_claims: dict[int, int] = {}
        for claim in of_round(events["TaskClaimed"]):
            first_claims.setdefault(int(claim["args"]["taskId"]), at(claim) - t0)
        games = [e for e in of_round(contested) if e["args"]["taskId"] >> 64 == bounty_id]
        rows.append(
            {
                "round": round_,
                "last_first_claim_s": max(first_claims.values(), default=0),
                "last_commit_s": max((at(e) - t0 for e in of_round(events["TaskCommitted"])), default=0),
                "last_accept_s": max((at(e) - t0 for e in of_round(events["TaskAccepted"])), default=0),
                "closed_s": at(end) - t0,
                "claims": len(of_round(events["TaskClaimed"])),
                "games_and_reviews": len(games),
                # Each game or review: when it opened, each move (b: the volunteer's midpoint, a: the challenger's
                # answer), and when it first ended (a ruling, forfeit or end); and each slash.
                "contested_s": [
                    [at(g) - t0, *_moves(g, moves, at, t0), _since(_first_end(g, endings, at), t0)] for g in games
                ],
                "slashed_s": [at(e) - t0 for e in of_round(slashes)],
            }
        )
    return rows


def _since(t: int | None, t0: int) -> int | None:
    return None if t is None else t - t0


def _moves(opened: Any, moves: list[Any], at: Any, t0: int) -> list[str]:
    task_id, block = opened["args"]["taskId"], opened["blockNumber"]
    made = sorted((e for e in moves if e["args"]["taskId"] == task_id and e["blockNumber"] >= block), key=at)
    return [f"{'b' if e['event'] == 'GameBisected' else 'a'}{at(e) - t0}" for e in made]


def _first_end(opened: Any, endings: list[Any], at: Any) -> int | None:
    """Chain time of the first ruling, forfeit or end of the game or review `opened`; None if it never ended."""
    task_id, block = opened["args"]["taskId"], opened["blockNumber"]
    later = [at(e) for e in endings if e["args"]["taskId"] == task_id and e["blockNumber"] >= block]
    return min(later, default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="run in DIR and keep it (every party's logs)")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args.timeout_s)
    else:
        with tempfile.TemporaryDirectory(prefix="shardwork-bench-network-") as home:
            result = run(Path(home), args.timeout_s)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
