"""Gas of each market operation on a real EVM (anvil), and of one full task lifecycle.

task_lifecycle = claim + commit + settle (accept after the challenge window) + claimRewards / 10
(a volunteer pulls its rewards once per ten tasks). Prints JSON; `--write` refreshes the committed
snapshot bench/gas-snapshot.json so regressions show in review.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from web3 import HTTPProvider, Web3

from devtools.anvil import Anvil
from tests.support.chain import RARE_CHECKS, TOKEN, Chain

SNAPSHOT = Path(__file__).with_name("gas-snapshot.json")
REWARD_CLAIM_AMORTIZED_OVER = 10


def measure(chain: Chain) -> tuple[dict[str, int], dict[str, int]]:
    samples: dict[str, list[int]] = {}

    def gas(name: str, actor: str, fn: str, *args: object) -> None:
        samples.setdefault(name, []).append(chain.tx(actor, fn, *args)["gasUsed"])

    gas("stake", "alice", "stake", 20_000 * TOKEN)
    chain.stake("bob", 5_000 * TOKEN)
    chain.stake("vera", 5_000 * TOKEN)
    chain.stake("victor", 5_000 * TOKEN)
    posted = chain.tx("poster", "postBounty", chain.bounty_params(shards=12, rounds=1, **RARE_CHECKS))
    samples["postBounty"] = [posted["gasUsed"]]
    bounty = chain.events(posted, "BountyPosted")[0]["bountyId"]
    gas("openRound", "coordinator", "openRound", bounty, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
    root, update = b"\x5a" * 32, b"\xa5" * 32
    trace_cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    update_cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    for shard in range(10):
        task = chain.task_id(bounty, 0, shard)
        gas("claim", "alice", "claim", task)
        gas("commit", "alice", "commit", task, root, update, trace_cid, update_cid)
    chain.advance(601)
    for shard in range(10):
        gas("settle", "bob", "settle", chain.task_id(bounty, 0, shard))
    gas("claimRewards", "alice", "claimRewards")

    # A checked task: dispute, then a PASS quorum of two verifiers.
    disputed = chain.task_id(bounty, 0, 10)
    chain.tx("bob", "claim", disputed)
    chain.tx("bob", "commit", disputed, root, update, trace_cid, update_cid)
    chain.stake("carol", 5_000 * TOKEN)
    gas("dispute", "carol", "dispute", disputed, 3)
    gas("attest", "vera", "attest", disputed, True)
    gas("attest_quorum_accept", "victor", "attest", disputed, True)

    # A lease that runs out.
    expiring = chain.task_id(bounty, 0, 11)
    chain.tx("bob", "claim", expiring)
    chain.advance(3601)
    gas("expireLease", "carol", "expireLease", expiring)
    gas("requestUnstake", "alice", "requestUnstake", 100 * TOKEN)
    chain.advance(3 * 24 * 3600 + 1)
    gas("withdraw", "alice", "withdraw")
    # Repeated operations report their mean over ten tasks: the steady state a volunteer pays
    # (the first settle also creates the volunteer's claimable-balance slot, the rest update it).
    return {name: round(sum(v) / len(v)) for name, v in samples.items()}, {
        name: v[0] for name, v in samples.items() if len(v) > 1
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench gas", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--write", action="store_true", help=f"refresh {SNAPSHOT.name}")
    args = parser.parse_args(argv)
    node = Anvil()
    try:
        chain = Chain.deploy_fresh(Web3(HTTPProvider(node.url, request_kwargs={"timeout": 30})))
        ops, first = measure(chain)
    finally:
        node.stop()
    lifecycle = ops["claim"] + ops["commit"] + ops["settle"] + ops["claimRewards"] // REWARD_CLAIM_AMORTIZED_OVER
    result = {
        "operations": dict(sorted(ops.items())),
        "first_of_ten": dict(sorted(first.items())),
        "commit": ops["commit"],
        "task_lifecycle": lifecycle,
        "targets": {"commit": 60_000, "task_lifecycle": 150_000},
    }
    if args.write:
        SNAPSHOT.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        for name, used in result["operations"].items():
            print(f"{name:<22} {used:>9,}")
        print(f"{'commit':<22} {result['commit']:>9,}   (target <= 60,000)")
        print(f"{'task_lifecycle':<22} {lifecycle:>9,}   (target <= 150,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
