"""A lying verifier as its own process, for the real-stack tests: it contests the first task `TARGET` commits,
claiming a segment does not follow, and disagrees with every midpoint the volunteer posts. The referee's
ruling on the last step must cost it its stake. Lying is not part of the product's CLI on purpose.

  python -m tests.support.adversary_verifier RPC_URL DEPLOYMENT KEY_INDEX STORE TARGET_ADDRESS
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from content.ipfs import open_store
from judge.commit import audit_commit
from judge.context import ChainView
from judge.game import segment_claim
from ledger.chain import connect, mnemonic_accounts
from ledger.deploy import Deployment
from ledger.market import GameTurn, Market, TaskStatus
from ledger.tx import Transactor
from telemetry.logs import json_logger, log


def main() -> None:
    rpc_url, deployment, key_index, store, target = sys.argv[1:6]
    w3 = connect(rpc_url)
    key = mnemonic_accounts(int(key_index) + 1)[int(key_index)]
    market = Market(w3, Deployment.load(Path(deployment)), Transactor(w3, key))
    view = ChainView(market, open_store(store))
    logger = json_logger("adversary.liar")
    task_id = None
    while task_id is None:  # the target's first commit that is still open to a contest
        for event in market.logs("TaskCommitted", market.deployment.block, filters={"volunteer": target}):
            if market.task(int(event["args"]["taskId"])).status == TaskStatus.COMMITTED:
                task_id = int(event["args"]["taskId"])
                break
        time.sleep(0.5)
    audit = audit_commit(view, task_id)
    assert audit.ok and audit.commit is not None and audit.trace is not None, audit.problems
    lo, hi = segment_claim(audit.trace, 1)
    market.contest(task_id, audit.commit.trace_root, audit.commit.update_hash, lo, hi)
    log(logger, "contested honest work", task_id=task_id, steps=[lo[0], hi[0]])
    while market.task(task_id).status == TaskStatus.CONTESTED:
        if market.game(task_id).turn == GameTurn.CHALLENGER:
            market.respond(task_id, False)
            log(logger, "disagreed", task_id=task_id)
        time.sleep(0.5)
    log(logger, "game over", task_id=task_id, status=market.task(task_id).status.name)


if __name__ == "__main__":
    main()
