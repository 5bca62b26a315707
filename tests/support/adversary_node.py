"""A volunteer as its own process keyed by a development account, for the real-stack tests: the node daemon
with a partial-faker, lazy or honest trainer. Cheating is not part of the product's CLI on purpose.

  python -m tests.support.adversary_node RPC_URL DEPLOYMENT KEY_INDEX STORE WORK_DIR faker|lazy|honest
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from content.ipfs import open_store
from devtools.adversaries import lazy_trainer, partial_faker
from ledger.chain import connect, dev_accounts
from ledger.deploy import Deployment
from ledger.market import Market
from ledger.tx import Transactor
from node.daemon import NodeDaemon, NodeOptions
from node.trainer import Trainer, train_task
from telemetry.logs import json_logger


def main() -> None:
    rpc_url, deployment, key_index, store, work_dir, kind = sys.argv[1:7]
    w3 = connect(rpc_url)
    key = dev_accounts(w3, int(key_index) + 1)[int(key_index)]
    market = Market(w3, Deployment.load(Path(deployment)), Transactor(w3, key))
    trainers: dict[str, Trainer] = {
        "lazy": lazy_trainer,
        "faker": partial_faker(0.5, keep_counters=True),
        "honest": train_task,
    }
    daemon = NodeDaemon(
        market,
        open_store(store),
        NodeOptions(work_dir=Path(work_dir), poll_interval_s=0.3),
        json_logger(f"adversary.{kind}"),
        trainer=trainers[kind],
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: daemon.stop())
    daemon.run()


if __name__ == "__main__":
    main()
