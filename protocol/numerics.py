"""The numeric class a machine computes a spec in: the fingerprint every trace manifest records.

Bit-for-bit replay is meaningful only between machines whose kernels round alike. Which ones do cannot be
read off a CPU name (MKL dispatches on vendor as well as ISA; a torch build or a pin changes it), so the
class is *measured*: a few steps of the spec's own model (its shapes, optimizer, batch size and threads)
on synthetic data fixed by the spec, hashed. Volunteers and verifiers compute it the same way, so equal
fingerprints predict equal replays.
"""

from __future__ import annotations

import functools
import platform

import torch

from protocol.manifests import NumericEnvironment
from protocol.pins import profile
from protocol.spec import TrainingSpec
from protocol.tensors import canonical_hash
from protocol.training import deterministic, new_state, run_steps
from protocol.workloads import resolve

FINGERPRINT_STEPS = 3  # Adam's first step differs from later ones (bias correction); three exercise both
_FINGERPRINT_SEED = b"shardwork numeric fingerprint v1".ljust(32, b"\0")


def environment(spec: TrainingSpec) -> NumericEnvironment:
    """This process's numeric environment for `spec` (computed once per spec and process)."""
    return _environment(spec.canonical_bytes())


def same_class(a: NumericEnvironment, b: NumericEnvironment) -> bool:
    return a.fingerprint == b.fingerprint


@functools.lru_cache(maxsize=16)
def _environment(spec_bytes: bytes) -> NumericEnvironment:
    spec = TrainingSpec.from_bytes(spec_bytes)
    return NumericEnvironment(
        torch=torch.__version__,
        machine=platform.machine(),
        kernels=torch.backends.cpu.get_cpu_capability(),
        profile=profile(),
        threads=spec.replay.threads,
        fingerprint="0x" + _fingerprint(spec).hex(),
    )


def _fingerprint(spec: TrainingSpec) -> bytes:
    workload = resolve(spec.model)
    data = workload.synthetic_shard(torch.Generator().manual_seed(spec.init_seed))
    with deterministic(spec.replay), torch.random.fork_rng():
        torch.manual_seed(spec.init_seed)
        state = new_state(spec, workload)
        run_steps(state, workload, data, _FINGERPRINT_SEED, 0, FINGERPRINT_STEPS, spec.batch_size)
        return canonical_hash(state.tensors(copy=False))
