"""A deployed marketplace on a real anvil node, with a poster, a coordinator and volunteers."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from web3 import Web3

from content.store import ContentStore, LocalStore
from coordinator.intake import publish_data
from coordinator.rounds import Coordinator
from ledger.chain import connect, fund_gas, mnemonic_accounts
from ledger.deploy import Deployment, deploy
from ledger.market import Market
from ledger.tx import Transactor
from ledger.wallet import create_keystore
from protocol.spec import TrainingSpec
from tests.support.chain import TOKEN, default_params

PASSWORD = "correct horse battery staple"
QUIET = logging.getLogger("marketplace")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclasses.dataclass
class Marketplace:
    w3: Web3
    rpc_url: str
    deployment: Deployment
    deployment_path: Path
    store: ContentStore  # the embedded store by default; a test may swap in an IpfsStore
    store_dir: Path
    root: Path

    def client(self, index: int) -> Market:
        account = mnemonic_accounts(index + 1)[index]
        return Market(self.w3, self.deployment, Transactor(self.w3, account))

    @property
    def poster(self) -> Market:
        return self.client(1)

    @property
    def coordinator(self) -> Market:
        return self.client(2)

    def volunteer(self, index: int, stake: int = 1_000 * TOKEN) -> tuple[Market, Path]:
        """A funded, staked volunteer (account 3 + index) and its keystore file."""
        account = mnemonic_accounts(4 + index)[3 + index]
        market = Market(self.w3, self.deployment, Transactor(self.w3, account))
        keystore = self.root / f"volunteer{index}.json"
        if not keystore.exists():
            create_keystore(keystore, PASSWORD, bytes(account.key))
            fund_gas(self.w3, account.address, 10**19)  # the chain's development accounts end at account 9
            market.faucet(account.address, 10_000 * TOKEN)
            market.stake(stake)
        return market, keystore

    def post_and_open(self, spec: TrainingSpec, **overrides: Any) -> int:
        """Posts a bounty for `spec` and runs intake: shards, round-0 model and manifest published, round opened."""
        data = publish_data(spec, self.store)  # the spec's CID goes into the bounty
        poster = self.poster
        poster.faucet(poster.address, 10_000 * TOKEN)
        params = default_params(
            specCid=data.spec_cid,
            coordinator=self.coordinator.address,
            shards=spec.data.shards,
            rounds=spec.rounds,
            segmentsPerTask=spec.segments,
            **overrides,
        )
        params.setdefault("deadline", None)
        if params["deadline"] is None:
            params["deadline"] = poster.now() + 30 * 24 * 3600
        poster.ensure_allowance(10_000 * TOKEN)
        bounty_id = poster.post_bounty(params)
        opened = Coordinator(self.coordinator, self.store, QUIET).intake(bounty_id)  # the coordinator's own intake
        assert opened is not None, "intake refused the bounty"
        return bounty_id


def start(rpc_url: str, root: Path) -> Marketplace:
    w3 = connect(rpc_url)
    deployer = Transactor(w3, mnemonic_accounts(1)[0])
    deployment = deploy(w3, deployer, unbonding_delay_s=3600)
    path = root / "deployment.json"
    deployment.save(path)
    store_dir = root / "store"
    return Marketplace(w3, rpc_url, deployment, path, LocalStore(store_dir), store_dir, root)
