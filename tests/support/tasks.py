"""A small real training task (MNIST MLP, round 0, shard 2) the unit tests train and verify."""

from __future__ import annotations

from node.trainer import TaskInput
from protocol import datasets
from protocol.seeds import task_seed
from protocol.spec import TrainingSpec
from protocol.training import initial_weights
from protocol.workloads import resolve

VOLUNTEER = "0x" + "ab" * 20
ROUND_CID = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


def mnist_task(**spec_overrides: object) -> TaskInput:
    """Task 7 of a 20-step, 4-segment MNIST MLP spec (dropout on, so the step's seeding matters), with the
    spec's fields replaced by `spec_overrides`."""
    spec = TrainingSpec.model_validate(
        {
            "model": {"family": "mnist-mlp", "params": {"hidden": 32, "dropout": 0.1}},
            "steps_per_task": 20,
            "checkpoint_interval": 5,
            "batch_size": 32,
            **spec_overrides,
        }
    )
    workload = resolve(spec.model)
    shards, _ = datasets.split(workload.dataset, spec.data)
    seed = task_seed(1, 0, 2, b"\x5a" * 32)
    return TaskInput(spec, workload, 7, VOLUNTEER, seed, ROUND_CID, initial_weights(spec), shards[2])
