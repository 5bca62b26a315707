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
from ledger.errors import ContractRevert
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
    while task_id is None:  # the target's first commit it manages to contest before a verdict settles it
        for event in market.logs("TaskCommitted", market.deployment.block, filters={"volunteer": target}):
            candidate = int(event["args"]["taskId"])
            if market.task(candidate).status != TaskStatus.COMMITTED:
                continue
            audit = audit_commit(view, candidate)
            if not audit.ok or audit.commit is None or audit.trace is None:
                continue  # its trace is still on its way
            lo, hi = segment_claim(audit.trace, 1)
            try:
                market.contest(candidate, audit.commit.trace_root, audit.commit.update_hash, lo, hi)
            except ContractRevert as exc:  # accepted (or contested by someone) meanwhile: the next one
                log(logger, "contest refused", task_id=candidate, reason=exc.error_name)
                continue
            task_id = candidate
            log(logger, "contested honest work", task_id=task_id, steps=[lo[0], hi[0]])
            break
        time.sleep(0.5)
    while market.task(task_id).status == TaskStatus.CONTESTED:
        if market.game(task_id).turn == GameTurn.CHALLENGER:
            market.respond(task_id, False)
            log(logger, "disagreed", task_id=task_id)
        time.sleep(0.5)
    log(logger, "game over", task_id=task_id, status=market.task(task_id).status.name)


if __name__ == "__main__":
    main()
