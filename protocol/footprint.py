"""The memory one training step of a spec needs, measured without spending it.

A spec is untrusted input, and its model parameters and batch size decide how much memory every volunteer
and verifier must find: a transformer with a 1,024-token context and a batch of 4,096 passes every size
check on its checkpoint yet needs tens of GiB per step. The model and its loss are run on torch's meta
device, where shapes flow through the real code and nothing is allocated; the tensors autograd saves for
the backward pass are summed. Poster, coordinator and volunteers all refuse a spec over the protocol's
budget before anyone builds a real model.
"""

from __future__ import annotations

import functools

import torch

from protocol.datasets import MAX_SHARD_BYTES, load
from protocol.spec import SpecError, TrainingSpec
from protocol.workloads import resolve

# What a spec may demand of a volunteer's or verifier's machine for one training step.
MAX_STEP_MEMORY_MB = 8192
BASE_MB = 300  # the interpreter, torch and the node's own buffers


def step_memory_mb(spec: TrainingSpec) -> int:
    return _step_memory_mb(spec.canonical_bytes())


@functools.lru_cache(maxsize=32)
def _step_memory_mb(spec_bytes: bytes) -> int:
    # Cached by the spec's canonical bytes: poster, coordinator and nodes ask again for every round.
    spec = TrainingSpec.from_bytes(spec_bytes)
    workload = resolve(spec.model)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.device("meta"):
        model = workload.build_model()
        model.train()
        batch = workload.meta_batch(spec.batch_size)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            workload.loss(model, batch)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    # Weights, gradients and two optimizer moments (4 copies of the parameters); up to three checkpoints
    # in flight, each weights and two moments (9 more), while the writer hashes and stores them behind
    # training; the saved activations and as much again for their gradients in the backward pass.
    # With optimizer.carry_state the task also holds the two moments its shard carried in (2 more); with
    # compression, the error its shard carried (1 more).
    carried = (2 if spec.optimizer.carry_state else 0) + (1 if spec.compression.method != "none" else 0)
    state = params * 4 + params * 3 * 3 + params * carried
    # A built-in dataset is counted whole (it is small and loaded whole); of a published one a volunteer holds
    # one shard, at most MAX_SHARD_BYTES, which intake and `bounty post` enforce.
    if spec.data.dataset is None:
        data = sum(t.numel() * t.element_size() for t in load(workload.dataset).values())
    else:
        data = MAX_SHARD_BYTES
    return int((state + 2 * saved + data) / 2**20) + BASE_MB


def check_footprint(spec: TrainingSpec) -> int:
    """The step's memory in MB; SpecError when it is over the protocol's budget (or its model unknown)."""
    needed = step_memory_mb(spec)
    if needed > MAX_STEP_MEMORY_MB:
        raise SpecError(
            f"one training step of this spec needs about {needed} MB (model.params and batch_size), over the "
            f"protocol's {MAX_STEP_MEMORY_MB} MB budget for volunteers and verifiers"
        )
    return needed
