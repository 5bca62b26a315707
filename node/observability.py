"""Prometheus metrics and the /health + /metrics endpoint of a node daemon (logs: telemetry.logs)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class NodeMetrics:
    """Per-daemon registry, so several nodes in one process (the demo) keep separate counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks_claimed = Counter("shardwork_node_tasks_claimed", "Tasks claimed", registry=r)
        self.tasks_committed = Counter("shardwork_node_tasks_committed", "Tasks committed", registry=r)
        self.tasks_abandoned = Counter("shardwork_node_tasks_abandoned", "Tasks given up (lease, stop)", registry=r)
        self.steps = Counter("shardwork_node_training_steps", "Optimizer steps run", registry=r)
        self.loss = Gauge("shardwork_node_training_loss", "Loss of the latest step", registry=r)
        self.steps_per_s = Gauge("shardwork_node_steps_per_second", "Training speed of the current task", registry=r)
        self.rewards_claimed = Counter("shardwork_node_rewards_claimed_base_units", "Rewards pulled", registry=r)
        self.started = time.time()


class HealthServer:
    """Serves GET /health (JSON from `status()`) and GET /metrics on 127.0.0.1 from a daemon thread."""

    def __init__(self, port: int, metrics: NodeMetrics, status: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/health":
                    body, ctype = json.dumps(outer.status()).encode(), "application/json"
                elif self.path == "/metrics":
                    body, ctype = generate_latest(metrics.registry), CONTENT_TYPE_LATEST
                else:
                    self.send_error(404, "try /health or /metrics")
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
