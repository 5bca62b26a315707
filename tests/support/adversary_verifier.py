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
from judge.game import segment_claim
from ledger.chain import connect, mnemonic_accounts
from ledger.deploy import Deployment
from ledger.errors import ContractRevert
from ledger.market import GameTurn, Market, TaskStatus
from ledger.tx import Transactor
from protocol.errors import ShardworkError
from protocol.manifests import TraceManifest
from telemetry.logs import json_logger, log


def main() -> None:
    rpc_url, deployment, key_index, store_url, target = sys.argv[1:6]
    w3 = connect(rpc_url)
    key = mnemonic_accounts(int(key_index) + 1)[int(key_index)]
    market = Market(w3, Deployment.load(Path(deployment)), Transactor(w3, key))
    store = open_store(store_url)
    logger = json_logger("adversary.liar")
    refused: set[int] = set()
    task_id = None
    # The target's first commit it manages to contest before it settles. An unchecked task settles as soon as
    # its challenge window (seconds) closes, so only what a claim needs is read: the commit event and the trace
    # manifest (a few kB), not the whole audit (checkpoints and update through the swarm) that would lose the race.
    while task_id is None:
        for event in market.logs("TaskCommitted", market.deployment.block, filters={"volunteer": target}):
            candidate, args = int(event["args"]["taskId"]), event["args"]
            try:
                if candidate in refused or market.task(candidate).status != TaskStatus.COMMITTED:
                    continue
                lo, hi = segment_claim(TraceManifest.parse(store.get(str(args["traceCid"]))), 1)
                market.contest(candidate, bytes(args["traceRoot"]), bytes(args["updateHash"]), lo, hi)
            except ContractRevert as exc:  # accepted (or contested by someone) meanwhile: the next one
                refused.add(candidate)
                log(logger, "contest refused", task_id=candidate, reason=exc.error_name)
                continue
            except ShardworkError as exc:  # its trace still on its way, the chain busy: tried again
                log(logger, "contest not sent yet", task_id=candidate, error=f"{exc.__class__.__name__}: {exc}"[:200])
                continue
            task_id = candidate
            log(logger, "contested honest work", task_id=task_id, steps=[lo[0], hi[0]])
            break
        time.sleep(0.2)
    while market.task(task_id).status == TaskStatus.CONTESTED:
        try:
            if market.game(task_id).turn == GameTurn.CHALLENGER:
                market.respond(task_id, False)
                log(logger, "disagreed", task_id=task_id)
        except ShardworkError as exc:  # a blip, or the game moved on meanwhile: read it again
            log(logger, "answer not sent", task_id=task_id, error=f"{exc.__class__.__name__}: {exc}"[:200])
        time.sleep(0.5)
    log(logger, "game over", task_id=task_id, status=market.task(task_id).status.name)


if __name__ == "__main__":
    main()
