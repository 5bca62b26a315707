"""A local, persistent index of the market's events (SQLite), read incrementally.

Listings and audits read the index, not the chain's history, so they stay fast and survive restarts.
Each synced block's hash is stored: if the chain no longer has that block (a reorg, or a dev chain that
was restarted), the index drops everything after the last block that still matches and reads it again.
`revalidate()` re-reads the whole range from the chain and reports any difference.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import event_abi_to_log_topic, filter_abi_by_type
from hexbytes import HexBytes
from web3._utils.events import get_event_data

from ledger.market import Market

CHUNK_BLOCKS = 2_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx TEXT NOT NULL, name TEXT NOT NULL,
    bounty_id TEXT, task_id TEXT, account TEXT, args TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS events_bounty ON events (bounty_id);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id);
CREATE INDEX IF NOT EXISTS events_account ON events (account);
"""
# Which argument of each event names the account it concerns (for `audit node`).
ACCOUNT_ARG = ("volunteer", "account", "poster", "verifier", "challenger", "staker")


@dataclass(frozen=True)
class Event:
    block: int
    log_index: int
    tx: str
    name: str
    args: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | HexBytes):
        return "0x" + bytes(value).hex()
    return value


class EventIndex:
    def __init__(self, path: Path, market: Market, check_same_thread: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.market = market
        self.db = sqlite3.connect(path, check_same_thread=check_same_thread)
        self.db.executescript(SCHEMA)
        self._abis = {
            event_abi_to_log_topic(abi): abi
            for contract in (market.market, market.token)
            for abi in filter_abi_by_type("event", contract.abi)
        }
        scope = f"{market.deployment.chain_id}:{market.deployment.market.lower()}"
        stored = self._meta("scope")
        if stored is not None and stored != scope:
            self._reset()  # the index belonged to another deployment: start over
        self._set_meta("scope", scope)

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.db.commit()

    def _reset(self) -> None:
        self.db.executescript("DELETE FROM events; DELETE FROM blocks; DELETE FROM meta;")

    @property
    def synced_to(self) -> int:
        value = self._meta("synced_to")
        return int(value) if value is not None else self.market.deployment.block - 1

    def _fetch(self, start: int, end: int) -> list[Event]:
        addresses = [self.market.market.address, self.market.token.address]
        events = []
        for log in self.market.w3.eth.get_logs({"address": addresses, "fromBlock": start, "toBlock": end}):
            abi = self._abis.get(bytes(log["topics"][0]))
            if abi is None:
                continue
            decoded = get_event_data(self.market.w3.codec, abi, log)
            args = {k: _jsonable(v) for k, v in decoded["args"].items()}
            events.append(
                Event(
                    log["blockNumber"],
                    log["logIndex"],
                    "0x" + bytes(log["transactionHash"]).hex(),
                    decoded["event"],
                    args,
                )
            )
        return events

    def _rewind_if_reorged(self) -> None:
        w3 = self.market.w3
        while True:
            row = self.db.execute("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
            if row is None:
                return
            number, stored = row
            block = w3.eth.get_block(number) if number <= w3.eth.block_number else None
            if block is not None and "0x" + bytes(block["hash"]).hex() == stored:
                return
            keep = number - CHUNK_BLOCKS
            self.db.execute("DELETE FROM events WHERE block > ?", (keep,))
            self.db.execute("DELETE FROM blocks WHERE number > ?", (keep,))
            self._set_meta("synced_to", str(max(keep, self.market.deployment.block - 1)))

    def sync(self) -> int:
        """Reads new events up to the latest block; returns how many were added."""
        self._rewind_if_reorged()
        latest = self.market.w3.eth.block_number
        added = 0
        start = self.synced_to + 1
        while start <= latest:
            end = min(start + CHUNK_BLOCKS - 1, latest)
            events = self._fetch(start, end)
            with self.db:
                self.db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.block,
                            e.log_index,
                            e.tx,
                            e.name,
                            _id(e.args, "bountyId", e.args.get("taskId")),
                            _id(e.args, "taskId"),
                            _account(e.args),
                            json.dumps(e.args),
                        )
                        for e in events
                    ],
                )
                end_hash = "0x" + bytes(self.market.w3.eth.get_block(end)["hash"]).hex()
                self.db.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (end, end_hash))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('synced_to', ?)", (str(end),))
            added += len(events)
            start = end + 1
        return added

    def revalidate(self) -> list[str]:
        """Re-reads every indexed block from the chain; returns the differences (empty: the index is right).

        Another process (the API) may be syncing the same file meanwhile: the range is fixed first and only
        events up to it are compared, so blocks indexed while this reads are not reported as differences."""
        upto = self.synced_to
        stored = {(e.block, e.log_index): e for e in self.events() if e.block <= upto}
        fresh = {(e.block, e.log_index): e for e in self._fetch(self.market.deployment.block, upto)}
        problems = [f"block {b} log {i}: missing from the index" for (b, i) in fresh.keys() - stored.keys()]
        problems += [f"block {b} log {i}: not on the chain" for (b, i) in stored.keys() - fresh.keys()]
        problems += [f"block {k[0]} log {k[1]}: differs" for k in fresh.keys() & stored.keys() if fresh[k] != stored[k]]
        return sorted(problems)

    def events(
        self,
        *,
        bounty_id: int | None = None,
        task_id: int | None = None,
        account: str | None = None,
        names: tuple[str, ...] = (),
    ) -> list[Event]:
        query, params = "SELECT block, log_index, tx, name, args FROM events WHERE 1=1", []
        if bounty_id is not None:
            query += " AND bounty_id = ?"
            params.append(str(bounty_id))
        if task_id is not None:
            query += " AND task_id = ?"
            params.append(str(task_id))
        if account is not None:
            query += " AND account = ?"
            params.append(account.lower())
        if names:
            query += f" AND name IN ({','.join('?' * len(names))})"
            params.extend(names)
        rows = self.db.execute(query + " ORDER BY block, log_index", params).fetchall()
        return [Event(b, i, tx, name, json.loads(args)) for b, i, tx, name, args in rows]


def _id(args: dict[str, Any], key: str, task_id: int | None = None) -> str | None:
    if key in args:
        return str(args[key])
    if task_id is not None:  # events that only carry the task id still belong to its bounty
        return str(int(task_id) >> 64)
    return None


def _account(args: dict[str, Any]) -> str | None:
    for key in ACCOUNT_ARG:
        if key in args:
            return str(args[key]).lower()
    return None
