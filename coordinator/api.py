"""The coordinator's read API and explorer page (FastAPI).

Requests never touch the chain: a refresher thread syncs the event index and rebuilds an immutable
snapshot every `refresh_s`, and handlers read the latest snapshot. That keeps task discovery fast under
many polling volunteers and bounds the load the API puts on the EVM node.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from web3 import Web3

from content.store import ContentStore
from coordinator.api_models import (
    BountyHistoryOut,
    BountyOut,
    BountySummary,
    Health,
    OpenTaskOut,
    TaskOut,
    VolunteerOut,
)
from coordinator.history import bounty_history
from ledger.index import Event, EventIndex
from ledger.market import Market, TaskStatus, next_deadline, next_move, task_id_of
from protocol.errors import ContentError, StoreUnavailable
from protocol.manifests import RoundManifest, TraceManifest, trace_manifest_limit
from protocol.spec import TrainingSpec
from protocol.verify import update_limit
from protocol.workloads import resolve

MAX_BODY_BYTES = 64 * 1024
# What can move a bounty's escrow: funding, rewards and PASS fees paid from it, a slash's remainder and a lease
# penalty paid into it, a refund.
ESCROW_EVENTS = frozenset(
    {
        "BountyPosted",
        "TaskAccepted",
        "TaskSlashed",
        "LeaseExpired",
        "EscrowRefunded",
        "RewardCredited",
        "GameEnded",
        "ChallengerSlashed",
    }
)
STATIC = Path(__file__).with_name("static")
SWAGGER_UI = "swagger-ui-5.35.0"  # vendored from npm's swagger-ui-dist (Apache-2.0, its LICENSE beside it)


@dataclass(frozen=True)
class Snapshot:
    built_at: float = 0.0
    block: int = 0
    bounties: dict[int, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    volunteers: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_tasks: list[dict[str, Any]] = field(default_factory=list)
    histories: dict[int, dict[str, Any]] = field(default_factory=dict)  # coordinator.history, per bounty


@dataclass
class _ServingState:
    """What the API serves; the refresher thread replaces the snapshot."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    error: str | None = None  # why the last rebuild failed, None after a good one
    encoded_for: list[dict[str, Any]] | None = None  # the open tasks the cached encodings were made from


class Explorer:
    """Builds snapshots from the chain, the event index and the content store."""

    def __init__(self, market: Market, store: ContentStore, index_path: Path) -> None:
        self.market, self.store = market, store
        self.index = EventIndex(index_path, market, check_same_thread=False)
        self._manifests: dict[str, RoundManifest | None] = {}
        self._specs: dict[str, TrainingSpec | None] = {}
        self._traces: dict[str, dict[str, Any] | None] = {}  # by trace CID (immutable): numerics and losses
        self._block_times: dict[int, int] = {}
        self._escrow_at: dict[tuple[int, int], int | None] = {}  # (bounty, block) -> its escrow then

    def _manifest(self, cid: str) -> RoundManifest | None:
        """The round manifest, or None. Content that is wrong or absent is remembered as such; an outage of
        our own IPFS daemon is not: the next snapshot asks again."""
        if cid not in self._manifests:
            try:
                self._manifests[cid] = RoundManifest.parse(self.store.get(cid, max_bytes=1 << 20))
            except ContentError:
                self._manifests[cid] = None
            except StoreUnavailable:
                return None
        return self._manifests[cid]

    def _spec(self, spec_cid: str) -> TrainingSpec | None:
        """The bounty's spec, or None when it cannot be read (an outage is not remembered, as in _manifest)."""
        if spec_cid not in self._specs:
            try:
                self._specs[spec_cid] = TrainingSpec.from_bytes(self.store.get(spec_cid, max_bytes=1 << 20))
            except (ContentError, ValueError):
                self._specs[spec_cid] = None
            except StoreUnavailable:
                return None
        return self._specs[spec_cid]

    def final_weights(self, bounty: dict[str, Any]) -> bytes:
        """The final model's weights (safetensors) as published, read bounded by the spec's own model. Raises
        ContentError when the bounty is not finalized or its content is unusable, StoreUnavailable on an outage."""
        final = bounty["final_model_cid"]
        manifest = None if final is None else self._manifest(final)
        spec = self._spec(bounty["spec_cid"])
        if manifest is None or spec is None:
            raise ContentError(
                f"bounty {bounty['bounty_id']} has no final model to serve (not finalized, or unreadable)"
            )
        return self.store.get(manifest.model_cid, max_bytes=update_limit(spec, resolve(spec.model)))

    def _escrow_steps(self, bounty_id: int, events: list[Event]) -> list[dict[str, Any]]:
        """The bounty's escrow after each block where it moved, with the events of that block that moved it:
        read from the chain's state at that block (exact, whatever the contract's arithmetic), cached, as a mined
        block's state never changes. A node without state that old leaves those blocks out."""
        steps: list[dict[str, Any]] = []
        previous = 0
        for block in sorted({e.block for e in events if e.name in ESCROW_EVENTS}):
            key = (bounty_id, block)
            if key not in self._escrow_at:
                self._escrow_at[key] = self.market.escrow_at(bounty_id, block)
            escrow = self._escrow_at[key]
            if escrow is None:
                continue
            if escrow != previous:
                why = sorted({e.name for e in events if e.block == block and e.name in ESCROW_EVENTS})
                steps.append({"block": block, "escrow": str(escrow), "change": str(escrow - previous), "events": why})
            previous = escrow
        return steps

    def _block_time(self, block: int) -> int:
        """A block's timestamp (cached: a mined block's time never changes)."""
        if block not in self._block_times:
            self._block_times[block] = int(self.market.w3.eth.get_block(block)["timestamp"])
        return self._block_times[block]

    def _family(self, spec_cid: str) -> str:
        spec = self._spec(spec_cid)
        return spec.model.family if spec is not None else "unknown"

    def _trace(self, trace_cid: str, spec: TrainingSpec | None) -> dict[str, Any] | None:
        """What the explorer shows of a commit's trace manifest (read bounded by the spec): the numeric environment
        it records, its training loss per step, and whether it started without its shard's carried state. None
        when unreadable."""
        if spec is None:
            return None
        if trace_cid not in self._traces:
            limit = trace_manifest_limit(spec.steps_per_task, spec.segments)
            try:
                trace = TraceManifest.parse(self.store.get(trace_cid, max_bytes=limit), limit)
                self._traces[trace_cid] = {
                    "numerics": trace.numerics.model_dump(),
                    "losses": trace.losses,
                    "fresh_start": trace.fresh_start,
                }
            except ContentError:
                self._traces[trace_cid] = None
            except StoreUnavailable:
                return None  # asked again on the next build
        return self._traces[trace_cid]

    def _numerics(self, trace_cid: str, spec: TrainingSpec | None) -> dict[str, Any] | None:
        trace = self._trace(trace_cid, spec)
        return None if trace is None else trace["numerics"]

    def build(self) -> Snapshot:
        self.index.sync()
        m = self.market
        bounties: dict[int, dict[str, Any]] = {}
        tasks: dict[int, dict[str, Any]] = {}
        volunteers: dict[str, dict[str, Any]] = {}
        open_tasks: list[dict[str, Any]] = []
        histories: dict[int, dict[str, Any]] = {}

        def who(address: str) -> dict[str, Any]:
            return volunteers.setdefault(
                address.lower(),
                {
                    "address": Web3.to_checksum_address(address),
                    "claimed": 0,
                    "accepted": 0,
                    "slashed": 0,
                    "earned": 0,
                    "slashed_amount": 0,
                    "tasks": [],
                    "payments": [],
                },
            )

        for posted in self.index.events(names=("BountyPosted",)):
            bounty_id = int(posted.args["bountyId"])
            b = m.bounty(bounty_id)
            events = self.index.events(bounty_id=bounty_id)
            rounds = []
            for e in events:
                if e.name == "RoundOpened":
                    manifest = self._manifest(e.args["modelCid"])
                    rounds.append(
                        {
                            "round": int(e.args["round"]),
                            "manifest_cid": e.args["modelCid"],
                            "opened_block": e.block,
                            "at": self._block_time(e.block),
                            "metric_name": manifest.metric_name if manifest else None,
                            "metric": manifest.metric if manifest else None,
                            "cross_class_tolerance": manifest.cross_class_tolerance if manifest else None,
                            "update_scores": _scores(manifest),
                            "carried_states": sum(st is not None for st in manifest.inner_states) if manifest else 0,
                        }
                    )
            spec = self._spec(posted.args["specCid"])
            finalized = next((e for e in events if e.name == "BountyFinalized"), None)
            final: str | None = None
            if finalized is not None:
                final = str(finalized.args["finalModelCid"])
                manifest = self._manifest(final)
                rounds.append(
                    {
                        "round": b.rounds,
                        "manifest_cid": final,
                        "at": self._block_time(finalized.block),
                        "final": True,
                        "metric_name": manifest.metric_name if manifest else None,
                        "metric": manifest.metric if manifest else None,
                        "update_scores": _scores(manifest),
                    }
                )
            slashes = []
            for e in events:
                args = e.args
                if e.name == "TaskClaimed":
                    who(args["volunteer"])["claimed"] += 1
                elif e.name == "TaskAccepted":
                    v = who(args["volunteer"])
                    v["accepted"] += 1
                    v["earned"] += int(args["reward"])
                    v["tasks"].append(int(args["taskId"]))
                elif e.name == "TaskSlashed":
                    v = who(args["volunteer"])
                    v["slashed"] += 1
                    v["slashed_amount"] += int(args["amount"])
                    commit_event = next(
                        (
                            x
                            for x in reversed(events)
                            if x.name == "TaskCommitted" and x.args["taskId"] == args["taskId"] and x.block <= e.block
                        ),
                        None,
                    )
                    commit = commit_event.args if commit_event else None
                    since = commit_event.block if commit_event else 0
                    verdicts = [
                        x.args
                        for x in events
                        if x.name == "VerdictAttested"
                        and x.args["taskId"] == args["taskId"]
                        and since <= x.block <= e.block
                    ]
                    slashes.append(
                        {
                            "task_id": int(args["taskId"]),
                            "task_id_hex": hex(int(args["taskId"])),  # JavaScript's numbers cannot hold the id
                            "volunteer": args["volunteer"],
                            "amount": int(args["amount"]),
                            "block": e.block,
                            "verdicts": verdicts,
                            "trace_cid": commit and commit["traceCid"],
                            "trace_root": commit and commit["traceRoot"],
                            "numerics": commit and self._numerics(commit["traceCid"], spec),
                        }
                    )
            family = self._family(posted.args["specCid"])
            current = []
            if b.round_open:
                latest_commit = {int(e.args["taskId"]): e.args for e in events if e.name == "TaskCommitted"}
                for shard in range(b.shards):
                    task_id = task_id_of(bounty_id, b.current_round, shard)
                    t = m.task(task_id)
                    committed = t.status in (
                        TaskStatus.COMMITTED,
                        TaskStatus.CHALLENGED,
                        TaskStatus.CONTESTED,
                        TaskStatus.ACCEPTED,
                    )
                    contested = t.status == TaskStatus.CONTESTED
                    commit_args = latest_commit.get(task_id) if committed else None
                    row = {
                        "task_id": task_id,
                        "task_id_hex": hex(task_id),
                        "bounty_id": bounty_id,
                        "round": b.current_round,
                        "shard": shard,
                        "status": t.status.name.lower(),
                        "volunteer": t.volunteer,
                        "attempt": t.attempt,
                        "numerics": commit_args and self._numerics(commit_args["traceCid"], spec),
                        "next_deadline": _deadline(next_move(m.game(task_id)) if contested else next_deadline(t, b)),
                    }
                    tasks[task_id] = row
                    current.append(row)
                    if t.status == TaskStatus.OPEN:
                        open_tasks.append(
                            {
                                **row,
                                "family": family,
                                "stake_per_task": str(b.stake_per_task),
                                "reward_per_task": str(b.reward_per_task),
                            }
                        )
            histories[bounty_id] = history = bounty_history(events)
            history["escrow"] = self._escrow_steps(bounty_id, events)
            for attempt in history["attempts"]:  # each commit's training loss, from its trace manifest
                trace = attempt["trace_cid"] and self._trace(attempt["trace_cid"], spec)
                attempt["losses"] = trace["losses"] if trace else None
                attempt["numerics"] = trace["numerics"] if trace else None
                attempt["fresh_start"] = trace["fresh_start"] if trace else None
            bounties[bounty_id] = {
                "bounty_id": bounty_id,
                "status": b.status.name.lower(),
                "poster": b.poster,
                "coordinator": b.coordinator,
                "family": family,
                "spec_cid": posted.args["specCid"],
                "shards": b.shards,
                "rounds": b.rounds,
                "current_round": b.current_round,
                "escrow": str(b.escrow),
                "reward_per_task": str(b.reward_per_task),
                "stake_per_task": str(b.stake_per_task),
                "round_history": rounds,
                "current_tasks": current,
                "slashes": slashes,
                "final_model_cid": final,
            }
        for bounty_id, history in histories.items():
            for payment in history["payments"]:
                if payment["account"].lower() in volunteers:
                    volunteers[payment["account"].lower()]["payments"].append({**payment, "bounty_id": bounty_id})
        for v in volunteers.values():
            v["earned"], v["slashed_amount"] = str(v["earned"]), str(v["slashed_amount"])
        return Snapshot(time.time(), self.index.synced_to, bounties, tasks, volunteers, open_tasks, histories)


def _scores(manifest: RoundManifest | None) -> list[dict[str, Any]]:
    if manifest is None:
        return []
    return [
        {"task_id": str(s.task_id), "volunteer": s.volunteer, "score": s.score, "used": s.used}
        for s in manifest.update_scores
    ]


def _deadline(due: tuple[str, int] | None) -> dict[str, Any] | None:
    return None if due is None else {"what": due[0], "at": due[1]}


def create_app(explorer: Explorer, refresh_s: float = 0.5) -> FastAPI:
    state = _ServingState()
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(refresh_s):
            try:
                # Nothing on-chain changes between blocks: rebuild once per new block, not per tick.
                if explorer.market.w3.eth.block_number == state.snapshot.block and state.error is None:
                    state.snapshot = replace(state.snapshot, built_at=time.time())
                    continue
                state.snapshot, state.error = explorer.build(), None
            except Exception as exc:  # the API keeps serving the last good snapshot; /health reports the failure
                state.error = f"{exc.__class__.__name__}: {exc}"

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.snapshot = explorer.build()
        thread = threading.Thread(target=refresh, name="snapshot-refresher", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)

    app = FastAPI(
        title="Shardwork coordinator",
        version="0.1.0",
        lifespan=lifespan,
        description="Read API of the Shardwork coordinator: bounties, rounds, tasks, volunteers, verdicts.",
        docs_url=None,  # served below from local assets: FastAPI's default page loads Swagger UI from a CDN
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=str(app.openapi_url),
            title="Shardwork coordinator: API",
            swagger_js_url=f"/static/vendor/{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"/static/vendor/{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url="data:,",  # no icon rather than one fetched from elsewhere
        )

    registry = CollectorRegistry()
    requests = Counter("shardwork_api_requests", "API requests", ["route", "status"], registry=registry)
    latency = Histogram(
        "shardwork_api_latency_seconds",
        "API latency",
        ["route"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - started)
        return response

    def snap() -> Snapshot:
        return state.snapshot

    @app.get("/health", response_model=Health)
    def health() -> dict[str, Any]:
        s = snap()
        age = time.time() - s.built_at
        return {
            "status": "ok" if state.error is None and age < 30 else "degraded",
            "block": s.block,
            "snapshot_age_s": round(age, 3),
            "error": state.error,
            "bounties": len(s.bounties),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/bounties", response_model=list[BountySummary])
    def bounties() -> list[dict[str, Any]]:
        return [{k: v for k, v in b.items() if k not in ("current_tasks", "slashes")} for b in snap().bounties.values()]

    @app.get("/api/bounties/{bounty_id}", response_model=BountyOut)
    def bounty(bounty_id: int) -> dict[str, Any]:
        found = snap().bounties.get(bounty_id)
        if found is None:
            raise HTTPException(404, f"bounty {bounty_id} does not exist")
        return found

    @app.get("/api/bounties/{bounty_id}/model")
    def final_model(bounty_id: int) -> Response:
        """The final model's weights, to download (the CID of the bytes is the final manifest's model_cid)."""
        found = snap().bounties.get(bounty_id)
        if found is None:
            raise HTTPException(404, f"bounty {bounty_id} does not exist")
        try:
            weights = explorer.final_weights(found)
        except StoreUnavailable:
            raise HTTPException(503, "the content store is unreachable: try again") from None
        except ContentError as exc:
            raise HTTPException(404, str(exc)) from None
        disposition = f'attachment; filename="bounty-{bounty_id}-model.safetensors"'
        return Response(weights, media_type="application/octet-stream", headers={"Content-Disposition": disposition})

    @app.get("/api/bounties/{bounty_id}/history", response_model=BountyHistoryOut)
    def bounty_history_route(bounty_id: int) -> dict[str, Any]:
        found = snap().histories.get(bounty_id)
        if found is None:
            raise HTTPException(404, f"bounty {bounty_id} does not exist (or is not indexed yet)")
        return found

    @app.get("/bounty/{bounty_id}", response_class=HTMLResponse, include_in_schema=False)
    def bounty_page(bounty_id: int) -> str:
        return (STATIC / "bounty.html").read_text()

    @app.get("/volunteer/{address}", response_class=HTMLResponse, include_in_schema=False)
    def volunteer_page(address: str) -> str:
        return (STATIC / "volunteer.html").read_text()

    @app.get("/api/tasks/{task_id}", response_model=TaskOut)
    def task(task_id: str) -> dict[str, Any]:
        try:
            parsed = int(task_id, 0)
        except ValueError:
            raise HTTPException(422, f"{task_id!r} is not a task id (decimal or 0x-hex)") from None
        found = snap().tasks.get(parsed)
        if found is None:
            raise HTTPException(404, f"task {task_id} is not in an open round")
        return found

    @app.get("/api/volunteers/{address}", response_model=VolunteerOut)
    def volunteer(address: str) -> dict[str, Any]:
        if not Web3.is_address(address):
            raise HTTPException(422, f"{address!r} is not an address")
        found = snap().volunteers.get(address.lower())
        if found is None:
            raise HTTPException(404, f"{address} has not taken part in any bounty")
        return found

    @app.get("/api/volunteers", response_model=list[VolunteerOut])
    def volunteers() -> list[dict[str, Any]]:
        return list(snap().volunteers.values())

    encoded: dict[tuple[str | None, int], bytes] = {}

    @app.get("/api/open-tasks", response_model=list[OpenTaskOut])  # answered pre-encoded: the model is the schema
    def open_tasks(family: str | None = None, limit: int = 100) -> Response:
        """Task discovery, the hottest path: each (family, limit) answer is encoded once per snapshot."""
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be between 1 and 1000")
        s = snap()
        if state.encoded_for is not s.open_tasks:  # a rebuilt snapshot: drop stale encodings
            encoded.clear()
            state.encoded_for = s.open_tasks
        body = encoded.get((family, limit))
        if body is None:
            rows = [r for r in s.open_tasks if family is None or r["family"] == family][:limit]
            body = encoded[(family, limit)] = json.dumps(rows).encode()
        return Response(body, media_type="application/json")

    @app.get("/", response_class=HTMLResponse)
    def explorer_page() -> str:
        return (STATIC / "explorer.html").read_text()

    return app


def app_from_settings() -> FastAPI:
    """`uvicorn --factory coordinator.api:app_from_settings`: read-only, so no keys are loaded."""
    from config.settings import CoordinatorSettings
    from content.ipfs import open_store
    from ledger.chain import connect
    from ledger.deploy import Deployment

    settings = CoordinatorSettings()
    market = Market(connect(settings.rpc_url, timeout=30), Deployment.load(settings.deployment))
    return create_app(Explorer(market, open_store(settings.store), settings.index))
