"""The coordinator's accounts and clients, built once per process from settings."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt

from config.settings import CoordinatorSettings
from content.ipfs import open_store
from content.store import ContentStore
from coordinator.rounds import Coordinator
from ledger.chain import LOCAL_CHAIN_IDS, connect, dev_accounts
from ledger.deploy import Deployment
from ledger.market import Market
from ledger.tx import Transactor
from ledger.wallet import load_account, read_password
from protocol.errors import ShardworkError
from telemetry.logs import json_logger
from verifier.worker import VerifierWorker

if TYPE_CHECKING:
    from redis import Redis


class LockedTransactor(Transactor):
    """Serializes one account's transactions across worker processes (a Redis lock), so two workers never
    race for the same nonce."""

    def __init__(self, w3: Web3, account: LocalAccount, redis: Redis) -> None:
        super().__init__(w3, account)
        self.redis = redis

    def send(
        self, call: ContractFunction | ContractConstructor, *, gas: int | None = None, min_gas: int = 0
    ) -> TxReceipt:
        with self.redis.lock(f"shardwork:nonce:{self.address}", timeout=120, blocking_timeout=120):
            return super().send(call, gas=gas, min_gas=min_gas)


@dataclass
class Service:
    settings: CoordinatorSettings
    coordinator: Coordinator
    verifiers: list[VerifierWorker]
    store: ContentStore
    logger: logging.Logger


def _accounts(settings: CoordinatorSettings, chain_id: int, w3: Web3) -> tuple[LocalAccount, list[LocalAccount]]:
    if settings.dev_accounts:
        if chain_id not in LOCAL_CHAIN_IDS:
            raise ShardworkError(f"dev_accounts are public keys: refused on chain {chain_id}; configure keystores")
        keys = dev_accounts(w3, 5)
        return keys[2], [keys[3], keys[4]]
    if settings.coordinator_keystore is None or not settings.verifier_keystores:
        raise ShardworkError("configure SHARDWORK_COORD_COORDINATOR_KEYSTORE and SHARDWORK_COORD_VERIFIER_KEYSTORES")
    password = read_password(None, prompt=False)
    return load_account(settings.coordinator_keystore, password), [
        load_account(p, password) for p in settings.verifier_keystores
    ]


_current: Service | None = None


def service() -> Service:
    """This process's service: built from CoordinatorSettings on first use, unless one was installed."""
    global _current
    if _current is None:
        _current = build(CoordinatorSettings())
    return _current


def install(svc: Service | None) -> None:
    """Runs this process's tasks with `svc` (an in-process chain, say); None: back to the settings."""
    global _current
    _current = svc


def build(settings: CoordinatorSettings) -> Service:
    import redis

    w3 = connect(settings.rpc_url, timeout=30)
    deployment = Deployment.load(settings.deployment)
    coordinator_key, verifier_keys = _accounts(settings, deployment.chain_id, w3)
    lock_client = redis.Redis.from_url(settings.redis_url)
    store = open_store(settings.store)
    logger = json_logger(f"shardwork.coordinator.{os.getpid()}")

    def market(key: LocalAccount) -> Market:
        return Market(w3, deployment, LockedTransactor(w3, key, lock_client))

    return Service(
        settings,
        Coordinator(market(coordinator_key), store, logger, settings.trace_timeout_s),
        [VerifierWorker(market(k), store, logger, settings.trace_timeout_s) for k in verifier_keys],
        store,
        logger,
    )


@contextlib.contextmanager
def once(key: str, seconds: int) -> Iterator[bool]:
    """A best-effort single-flight guard across workers (Redis SET NX with expiry): yields whether this
    caller holds it. Correctness never depends on it (every step re-reads the chain); it saves duplicate work."""
    client = _redis()
    acquired = bool(client.set(f"shardwork:once:{key}", "1", nx=True, ex=seconds))
    try:
        yield acquired
    finally:
        if acquired:
            client.delete(f"shardwork:once:{key}")


def _redis() -> Redis:
    return _redis_client(service().settings.redis_url)


@functools.lru_cache(maxsize=4)
def _redis_client(url: str) -> Redis:
    import redis

    return redis.Redis.from_url(url)  # one connection pool per process, not one per call


def mark_queued(key: str, seconds: int) -> bool:
    """Whether the caller may queue the task named `key`: false while an earlier one still waits in the
    queue. Beat rescans every few seconds; without this a slow worker's queue grows without bound (a soak
    measured 498 waiting messages after 10 minutes). The mark expires, so a message lost with Redis is
    queued again on a later scan."""
    return bool(_redis().set(f"shardwork:queued:{key}", "1", nx=True, ex=seconds))


def unmark_queued(key: str) -> None:
    """Called when the task starts: the next scan may queue another run while this one works."""
    _redis().delete(f"shardwork:queued:{key}")
