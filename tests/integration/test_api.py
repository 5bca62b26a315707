"""The coordinator's read API over a real anvil node and the content store: answers, 4xx on bad input
(never 5xx), and a schemathesis fuzz from its own OpenAPI schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from coordinator.api import Explorer, create_app
from devtools.anvil import Anvil, free_port
from ledger.market import Market
from node.daemon import NodeDaemon, NodeOptions
from protocol.numerics import environment
from protocol.pins import PROFILE
from tests.support.marketplace import QUIET, start
from tests.support.specs import small_spec


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    node = Anvil()
    root = Path(tmp_path_factory.mktemp("api"))
    m = start(node.url, root)
    m.post_and_open(small_spec())
    volunteer, _ = m.volunteer(0)
    NodeDaemon(volunteer, m.store, NodeOptions(work_dir=root / "node", once=True, max_tasks=1), QUIET).run()
    explorer = Explorer(Market(m.w3, m.deployment), m.store, root / "index.sqlite")
    with TestClient(create_app(explorer, refresh_s=0.2)) as c:
        yield c
    node.stop()


def test_bounties_rounds_and_open_tasks_are_served(client: TestClient) -> None:
    (bounty,) = client.get("/api/bounties").json()
    assert bounty["family"] == "mnist-mlp" and bounty["status"] == "active"
    detail = client.get(f"/api/bounties/{bounty['bounty_id']}").json()
    assert detail["round_history"][0]["metric_name"] == "accuracy" and detail["round_history"][0]["metric"] is not None
    open_tasks = client.get("/api/open-tasks", params={"family": "mnist-mlp"}).json()
    assert len(open_tasks) == 1 and client.get(f"/api/tasks/{open_tasks[0]['task_id_hex']}").json()["status"] == "open"
    assert client.get("/health").json()["status"] == "ok"
    assert "shardwork_api_requests_total" in client.get("/metrics").text
    assert "Shardwork explorer" in client.get("/").text


def test_each_commit_shows_its_numeric_class_and_each_round_its_cross_class_tolerance(client: TestClient) -> None:
    (bounty,) = client.get("/api/bounties").json()
    detail = client.get(f"/api/bounties/{bounty['bounty_id']}").json()
    (committed,) = [t for t in detail["current_tasks"] if t["status"] == "committed"]
    (still_open,) = [t for t in detail["current_tasks"] if t["status"] == "open"]
    assert committed["numerics"] == environment(small_spec()).model_dump()  # what the volunteer's trace records
    assert committed["numerics"]["profile"] == PROFILE
    assert still_open["numerics"] is None and still_open["next_deadline"] is None
    assert committed["next_deadline"]["what"] == "challenge window closes"  # what it waits for next, and when
    tolerance = detail["round_history"][0]["cross_class_tolerance"]
    assert tolerance is not None and 0 < tolerance <= 0.5  # measured at intake
    assert client.get(f"/api/tasks/{committed['task_id_hex']}").json()["numerics"] == committed["numerics"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/bounties/999", 404),
        ("/api/bounties/abc", 422),
        ("/api/tasks/0xzz", 422),
        ("/api/tasks/12345", 404),
        ("/api/volunteers/0x123", 422),
        ("/api/volunteers/0x" + "12" * 20, 404),
        ("/api/open-tasks?limit=0", 422),
        ("/api/open-tasks?limit=99999", 422),
        ("/nope", 404),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status and response.json()["detail"]


def test_oversized_requests_are_refused(client: TestClient) -> None:
    response = client.post("/api/bounties", content=b"x" * 100_000)
    assert response.status_code == 413


def test_fuzzing_the_openapi_schema_finds_no_server_error(client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[tuple[str, int]] = []
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a part of our own schema that schemathesis cannot read
        operations.append(result.ok())
    assert len(operations) >= 7
    for operation in operations:

        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append((case.formatted_path, response.status_code))

        run()
    assert failures == []


def test_docs_are_served_from_local_assets_only(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/vendor/") or a.startswith("data:") for a in assets), assets
    for asset in assets:
        if asset.startswith("/"):
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000, asset


def test_docs_render_the_api_in_a_browser_with_no_network_but_the_api(client: TestClient) -> None:
    """Headless Chromium, every host but loopback unreachable: the page Swagger UI builds names every route."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is required (scripts/test installs it)"
    config = uvicorn.Config(client.app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        dom = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # a CDN could not be reached
                "--virtual-time-budget=8000",
                "--dump-dom",
                f"http://127.0.0.1:{config.port}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert "Shardwork coordinator" in dom and 'class="swagger-ui' in dom
    assert "/api/bounties" in dom and "/api/volunteers" in dom
