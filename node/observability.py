"""Prometheus metrics of a node daemon (served by telemetry.health; logs: telemetry.logs)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge


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
