"""GET /health and GET /metrics of a daemon (volunteer node or verifier) on 127.0.0.1, from a daemon thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class HealthServer:
    """Serves GET /health (JSON from `status()`) and GET /metrics on 127.0.0.1 from a daemon thread."""

    def __init__(self, port: int, registry: CollectorRegistry, status: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/health":
                    body, ctype = json.dumps(outer.status()).encode(), "application/json"
                elif self.path == "/metrics":
                    body, ctype = generate_latest(registry), CONTENT_TYPE_LATEST
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
