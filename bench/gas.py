"""Gas of each market operation on a real EVM (anvil), and of one full task lifecycle.

task_lifecycle = claim + commit + the draw's record (batched ten to a `drawMany`) + settle (accept after the
challenge window, batched ten to a `settleMany`), both as the coordinator's housekeeping sends them, + claimRewards
/ 10 (a volunteer pulls its rewards once per ten tasks); task_lifecycle_single_settle the same with one
`drawChallenge` and one `settle` per task. checked_task = claim + commit + the draw's record + the example's
quorum of two votes on a drawn check (the first, then the deciding one), in steady state like the rest (every
balance and the volunteer's record exist) + claimRewards / 10; checked_task_fresh_balances the same for a disputed
task whose volunteer and voters are credited for the first time; task_lifecycle_avg weighs the two at
the example bounty's floor check probability (examples/mnist-bounty.toml, `min_check_probability`). Prints JSON; `--update` (or `--write`) refreshes the
committed snapshot bench/gas-snapshot.json. `--check` compares every measured number with the snapshot and
exits 1 when one moved by more than 1%, or an operation was added or removed: a gas change fails until the
snapshot is updated in the same commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from devtools.anvil import Anvil
from ledger.tx import Transactor
from protocol.merkle import merkle_proof, merkle_root, trace_leaf
from tests.support.chain import ALWAYS_CHECKED, RARE_CHECKS, TOKEN, Chain

SNAPSHOT = Path(__file__).with_name("gas-snapshot.json")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist-bounty.toml"
BATCH = 10  # tasks per settleMany
REWARD_CLAIM_AMORTIZED_OVER = 10
TOLERANCE = 0.01  # a relative change above this fails --check


def measure(chain: Chain) -> tuple[dict[str, int], dict[str, int]]:
    samples: dict[str, list[int]] = {}

    def gas(name: str, actor: str, fn: str, *args: object) -> None:
        samples.setdefault(name, []).append(chain.tx(actor, fn, *args)["gasUsed"])

    gas("stake", "alice", "stake", 20_000 * TOKEN)
    chain.stake("bob", 5_000 * TOKEN)
    chain.stake("vera", 5_000 * TOKEN)
    chain.stake("victor", 5_000 * TOKEN)
    chain.stake("carol", 5_000 * TOKEN)  # every verifier took its seat before the commits it may be drawn for
    posted = chain.tx("poster", "postBounty", chain.bounty_params(shards=14 + 2 * BATCH, rounds=1, **RARE_CHECKS))
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
        chain.mine()  # its draw block
        gas("drawChallenge", "coordinator", "drawChallenge", task)  # one task's draw, alone in its transaction
    chain.advance(601)
    for shard in range(10):
        gas("settle", "bob", "settle", chain.task_id(bounty, 0, shard))
    gas("claimRewards", "alice", "claimRewards")
    # The same steady state settled in one transaction, as the coordinator's housekeeping does.
    batch = [chain.task_id(bounty, 0, 13 + i) for i in range(BATCH)]
    for task in batch:
        chain.tx("alice", "claim", task)
        chain.tx("alice", "commit", task, root, update, trace_cid, update_cid)
    chain.mine()  # the last commit's draw block
    # The round's fresh commits' draws recorded together, as the coordinator's housekeeping does.
    drawn = chain.tx("coordinator", "drawMany", batch)
    assert len(chain.events(drawn, "ChallengeDrawn")) == BATCH
    samples["drawMany_per_task"] = [round(drawn["gasUsed"] / BATCH)]
    chain.advance(601)
    batched = chain.tx("bob", "settleMany", batch)
    assert len(chain.events(batched, "TaskAccepted")) == BATCH
    samples["settleMany_per_task"] = [round(batched["gasUsed"] / BATCH)]
    # A batch across ten volunteers, each getting its first reward: every credit is a cold, fresh balance slot
    # (the steady-state batch above keeps one volunteer's slot warm). The round a coordinator settles is a mix.
    mixed = [chain.task_id(bounty, 0, 13 + BATCH + i) for i in range(BATCH)]
    for task in mixed:
        volunteer = Transactor(chain.w3, Account.create())
        chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [volunteer.address, hex(10**18)])
        chain.send("deployer", chain.token.functions.transfer(volunteer.address, 2_000 * TOKEN))
        volunteer.send(chain.token.functions.approve(chain.deployment.market, 2**256 - 1))
        volunteer.send(chain.market.functions.stake(2_000 * TOKEN))
        volunteer.send(chain.market.functions.claim(task))
        volunteer.send(chain.market.functions.commit(task, root, update, trace_cid, update_cid))
    chain.advance(601)
    spread = chain.tx("bob", "settleMany", mixed)
    assert len(chain.events(spread, "TaskAccepted")) == BATCH
    samples["settleMany_per_task_ten_volunteers"] = [round(spread["gasUsed"] / BATCH)]

    # A checked task: dispute, then a PASS quorum of two verifiers.
    disputed = chain.task_id(bounty, 0, 10)
    chain.tx("bob", "claim", disputed)
    chain.tx("bob", "commit", disputed, root, update, trace_cid, update_cid)
    gas("dispute", "carol", "dispute", disputed, 3)
    gas("attest", "vera", "attest", disputed, True)
    gas("attest_quorum_accept", "victor", "attest", disputed, True)
    # A drawn check (the example's way of checking) in steady state: the volunteer's and the voters' balances and
    # the volunteer's record with the poster exist already; the disputed task above created them, so its deciding
    # vote paid four fresh slots (~68k gas) that a volunteer and its voters pay once.
    drawn_posted = chain.tx("poster", "postBounty", chain.bounty_params(shards=2, rounds=1, **ALWAYS_CHECKED))
    drawn_bounty = chain.events(drawn_posted, "BountyPosted")[0]["bountyId"]
    chain.tx("coordinator", "openRound", drawn_bounty, trace_cid)
    for shard in range(2):
        task = chain.task_id(drawn_bounty, 0, shard)
        chain.tx("bob", "claim", task)
        chain.tx("bob", "commit", task, root, update, trace_cid, update_cid)
        chain.mine()
        chain.tx("coordinator", "drawMany", [task])
        assert chain.view("challengeOf", task)[0], "an always-checked task was not drawn for a check"
        gas("attest_drawn", "vera", "attest", task, True)
        gas("attest_drawn_quorum_accept", "victor", "attest", task, True)

    # A lease that runs out.
    expiring = chain.task_id(bounty, 0, 11)
    chain.tx("bob", "claim", expiring)
    chain.advance(3601)
    gas("expireLease", "carol", "expireLease", expiring)
    # A bisection game over a 16-step stretch: four rounds, then the referee's ruling against the volunteer.
    contested = chain.task_id(bounty, 0, 12)
    hashes = [keccak(f"state {step}".encode()) for step in (0, 16)]
    leaves = [trace_leaf(contested, chain.addr("bob"), step, h) for step, h in zip((0, 16), hashes, strict=True)]
    chain.tx("bob", "claim", contested)
    chain.tx("bob", "commit", contested, merkle_root(leaves), update, trace_cid, update_cid)
    ends = [(step, hashes[i], merkle_proof(leaves, i)) for i, step in enumerate((0, 16))]
    gas("contest", "carol", "contest", contested, merkle_root(leaves), update, *ends)
    for mid in (8, 4, 2, 1):
        # A second passes before each move, as on a live chain: a move in the same second as the last one
        # rewrites the game's deadline slot with the value it holds, 2,800 gas cheaper, and the mean would
        # depend on how fast the bench runs.
        chain.advance(1)
        gas("bisect", "bob", "bisect", contested, keccak(f"state {mid}".encode()), trace_cid)
        chain.advance(1)
        gas("respond", "carol", "respond", contested, False)
    chain.advance(1)
    gas("rule_volunteer_wrong", "coordinator", "rule", contested, False)
    # A failed check: a FAIL quorum opens the referee's review, whose ruling slashes (votes alone do not). Bob,
    # slashed just now, is barred from the poster's tasks: another volunteer (no verifier seat, so the committee
    # stays the four seats above).
    chain.stake("dave", 5_000 * TOKEN, verifier=False)
    failed = chain.task_id(bounty, 0, 13 + 2 * BATCH)
    chain.tx("dave", "claim", failed)
    chain.tx("dave", "commit", failed, root, update, trace_cid, update_cid)
    chain.tx("carol", "dispute", failed, 3)
    chain.tx("vera", "attest", failed, False)
    gas("attest_fail_opens_review", "victor", "attest", failed, False)
    gas("rule_review_volunteer_wrong", "coordinator", "rule", failed, False)

    gas("requestUnstake", "alice", "requestUnstake", 100 * TOKEN)
    chain.advance(3 * 24 * 3600 + 1)
    gas("withdraw", "alice", "withdraw")
    # Repeated operations report their mean over ten tasks: the steady state a volunteer pays
    # (the first settle also creates the volunteer's claimable-balance slot, the rest update it).
    return {name: round(sum(v) / len(v)) for name, v in samples.items()}, {
        name: v[0] for name, v in samples.items() if len(v) > 1
    }


def measured(result: dict[str, Any]) -> dict[str, int]:
    """Every gas number of a result (or snapshot) by name: each operation's steady-state mean, the first of each
    repeated operation, and the task lifecycle (`commit` and `targets` repeat or bound these, they measure nothing)."""
    flat = {name: int(gas) for name, gas in result.get("operations", {}).items()}
    flat.update({f"{name} (first of ten)": int(gas) for name, gas in result.get("first_of_ten", {}).items()})
    for name in (
        "task_lifecycle",
        "task_lifecycle_single_settle",
        "checked_task",
        "checked_task_fresh_balances",
        "task_lifecycle_avg",
    ):
        if name in result:
            flat[name] = int(result[name])
    return flat


def compare(old: dict[str, int], new: dict[str, int], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """What --check reports: numbers that moved by more than `tolerance`, and names added or removed."""
    changed = []
    for name in sorted(old.keys() & new.keys()):
        before, after = old[name], new[name]
        change = (after - before) / before if before else (0.0 if after == before else float("inf"))
        if abs(change) > tolerance:
            changed.append({"name": name, "old": before, "new": after, "change_pct": round(100 * change, 2)})
    added = [{"name": name, "new": new[name]} for name in sorted(new.keys() - old.keys())]
    removed = [{"name": name, "old": old[name]} for name in sorted(old.keys() - new.keys())]
    return {"ok": not (changed or added or removed), "changed": changed, "added": added, "removed": removed}


def report(check: dict[str, Any], snapshot: Path, tolerance: float = TOLERANCE) -> list[str]:
    lines = [f"{c['name']:<32} {c['old']:>9,} -> {c['new']:>9,}  ({c['change_pct']:+.2f}%)" for c in check["changed"]]
    lines += [f"{a['name']:<32} {'(added)':>9} -> {a['new']:>9,}" for a in check["added"]]
    lines += [f"{r['name']:<32} {r['old']:>9,} -> {'(removed)':>9}" for r in check["removed"]]
    if check["ok"]:
        return [f"gas matches {snapshot} (every number within {tolerance:.0%})"]
    return [
        f"gas differs from {snapshot} by more than {tolerance:.0%}:",
        *lines,
        "if the change is intended, refresh the snapshot in the same commit: ./scripts/bench gas --update",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench gas", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", "--write", dest="update", action="store_true", help="rewrite the snapshot")
    mode.add_argument(
        "--check", action="store_true", help="compare with the snapshot; exit 1 on a change over 1%% or a new/gone name"
    )
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT, help=f"snapshot file (default {SNAPSHOT})")
    args = parser.parse_args(argv)
    if args.check and not args.snapshot.is_file():
        parser.error(f"no snapshot at {args.snapshot}: write one with --update")
    node = Anvil()
    try:
        chain = Chain.deploy_fresh(Web3(HTTPProvider(node.url, request_kwargs={"timeout": 30})))
        ops, first = measure(chain)
    finally:
        node.stop()
    rewards = ops["claimRewards"] // REWARD_CLAIM_AMORTIZED_OVER
    # Every commit's draw is recorded (the coordinator's drawMany), checked or not.
    lifecycle = ops["claim"] + ops["commit"] + ops["drawMany_per_task"] + ops["settleMany_per_task"] + rewards
    drawn_check = ops["attest_drawn"] + ops["attest_drawn_quorum_accept"]
    checked = ops["claim"] + ops["commit"] + ops["drawMany_per_task"] + drawn_check + rewards
    first_check = ops["attest"] + ops["attest_quorum_accept"]  # disputed, every balance fresh
    checked_first = ops["claim"] + ops["commit"] + ops["drawMany_per_task"] + first_check + rewards
    check_rate = float(tomllib.loads(EXAMPLE.read_text())["bounty"]["min_check_probability"])
    result: dict[str, Any] = {
        "operations": dict(sorted(ops.items())),
        "first_of_ten": dict(sorted(first.items())),
        "commit": ops["commit"],
        "task_lifecycle": lifecycle,
        "task_lifecycle_single_settle": ops["claim"] + ops["commit"] + ops["drawChallenge"] + ops["settle"] + rewards,
        "checked_task": checked,
        "checked_task_fresh_balances": checked_first,
        "example_check_rate": check_rate,
        "task_lifecycle_avg": round(check_rate * checked + (1 - check_rate) * lifecycle),
        "targets": {"commit": 60_000, "task_lifecycle": 150_000, "task_lifecycle_avg": 150_000},
    }
    if args.update:
        args.snapshot.write_text(json.dumps(result, indent=2) + "\n")
    check = compare(measured(json.loads(args.snapshot.read_text())), measured(result)) if args.check else None
    if args.json:
        print(json.dumps({**result, "check": check} if check is not None else result))
    else:
        for name, used in result["operations"].items():
            print(f"{name:<22} {used:>9,}")
        print(f"{'commit':<22} {result['commit']:>9,}   (target <= 60,000)")
        print(f"{'task_lifecycle':<22} {lifecycle:>9,}   (target <= 150,000)")
        print(f"{'single settle':<22} {result['task_lifecycle_single_settle']:>9,}")
        print(f"{'checked_task':<22} {checked:>9,}")
        print(
            f"{'task_lifecycle_avg':<22} {result['task_lifecycle_avg']:>9,}   (checked {check_rate:.0%}; target <= 150,000)"
        )
        if check is not None:
            print("\n".join(report(check, args.snapshot)))
    return 0 if check is None or check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
