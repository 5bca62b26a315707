"""Hostile bytes from volunteers, posters and daemons: each refused with a one-line reason naming the
problem, nothing executed, nothing allocated for what the bytes only claim, no other exception escaping.

Tables: safetensors (through `from_bytes` and through a verifier's `verify_segment`), manifests, specs.
Dedicated tests: pickles that would run code, zip and gzip bombs, a file larger than the store allows, and
a hostile IPFS daemon on loopback.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import pickle
import struct
import sys
import threading
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from content.ipfs import IpfsStore
from content.store import LocalStore
from node.trainer import TaskInput, TraceResult, train_task
from protocol.cid import cid_of
from protocol.errors import ContentError, ContentMissing
from protocol.manifests import RoundManifest, TraceManifest
from protocol.spec import SpecError, TrainingSpec, load_spec, read_spec_file
from protocol.tensors import Tensors, from_bytes, layout_of, to_bytes
from protocol.verify import verify_segment
from protocol.workloads import resolve
from tests.support.tasks import ROUND_CID, mnist_task

CID = ROUND_CID
HASH = "0x" + "ab" * 32
MiB = 1 << 20


def refusal(call: Callable[[], object], error: type[Exception]) -> str:
    """The reason `call` gives for refusing; any other exception fails the test (pytest.raises lets it through)."""
    with pytest.raises(error) as info:
        call()
    reason = str(info.value)
    assert "\n" not in reason and len(reason) < 1000, reason
    return reason


def bounded(call: Callable[[], object]) -> tuple[int, float]:
    """(peak bytes Python allocated, seconds) while `call` ran."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except Exception:
        pass  # the caller asserts on the refusal itself
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, elapsed


# --- safetensors: each builder turns a valid tensor set into hostile bytes, so one table serves both a
# tiny tensor set (from_bytes) and a real checkpoint (verify_segment).


def _split(t: Tensors) -> tuple[dict[str, Any], bytes]:
    raw = to_bytes(t)
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _file(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _edited(t: Tensors, edit: Callable[[dict[str, Any]], object]) -> bytes:
    """Canonical bytes with the header changed by `edit` (which gets the header; its first tensor is min(h))."""
    header, data = _split(t)
    edit(header)
    return _file(json.dumps(header).encode(), data)


def _move(entry: dict[str, Any], begin: int) -> None:
    size = entry["data_offsets"][1] - entry["data_offsets"][0]
    entry["data_offsets"] = [begin, begin + size]


def _duplicate_first(t: Tensors) -> bytes:
    header, data = _split(t)
    first = json.dumps({min(header): header[min(header)]})
    return _file((json.dumps(header)[:-1] + ", " + first[1:]).encode(), data)


def _poisoned(t: Tensors, value: float) -> bytes:
    t = {name: x.clone() for name, x in t.items()}
    next(x for x in t.values() if x.is_floating_point() and x.numel()).view(-1)[0] = value
    return to_bytes(t)


def _zipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", data)
    return buf.getvalue()


Builder = Callable[[Tensors], bytes]
Trained = tuple[TaskInput, LocalStore, TraceResult]
SAFETENSORS_CASES: list[tuple[str, Builder, str]] = [
    ("empty", lambda t: b"", "shorter than its 8-byte header length"),
    ("truncated-header-length", lambda t: to_bytes(t)[:5], "shorter than its 8-byte header length"),
    ("header-length-past-end", lambda t: struct.pack("<Q", len(to_bytes(t))) + to_bytes(t)[8:], "is out of bounds"),
    (
        "header-length-2**63",
        lambda t: struct.pack("<Q", 2**63) + to_bytes(t)[8:],
        "length 9223372036854775808 is out of bounds",
    ),
    ("header-not-json", lambda t: _file(b"{tensors: yes}"), "header is not JSON"),
    ("header-json-array", lambda t: _file(b"[]"), "header is not a JSON object"),
    ("header-not-utf8", lambda t: _file(b'{"\xff\xfe": 1}'), "header is not UTF-8"),
    ("header-utf16", lambda t: _file(json.dumps(_split(t)[0]).encode("utf-16"), _split(t)[1]), "header is not UTF-8"),
    ("header-duplicate-key", _duplicate_first, "duplicate key"),
    ("header-nested-1e5-deep", lambda t: _file(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    ("metadata-over-1MiB", lambda t: _edited(t, lambda h: h.update(__metadata__={"x": "a" * MiB})), "is out of bounds"),
    (
        "metadata-not-strings",
        lambda t: _edited(t, lambda h: h.update(__metadata__={"x": [1]})),
        "__metadata__ is not a map of strings",
    ),
    (
        "tensor-renamed",
        lambda t: to_bytes({("x" + n if n == min(t) else n): v for n, v in t.items()}),
        "tensor names differ",
    ),
    ("tensor-extra", lambda t: to_bytes({**t, "zz.extra": torch.zeros(2)}), "unexpected ['zz.extra']"),
    ("dtype-wrong", lambda t: to_bytes({n: v.half() if v.is_floating_point() else v for n, v in t.items()}), "is F16["),
    ("dtype-unsupported", lambda t: _edited(t, lambda h: h[min(h)].update(dtype="F8_E4M3")), "has dtype 'F8_E4M3'"),
    ("dtype-not-a-string", lambda t: _edited(t, lambda h: h[min(h)].update(dtype=["F32"])), "has dtype ['F32']"),
    ("shape-wrong", lambda t: to_bytes({n: v.reshape(1, *v.shape) for n, v in t.items()}), "], expected "),
    ("shape-not-a-list", lambda t: _edited(t, lambda h: h[min(h)].update(shape=5)), "malformed shape 5"),
    ("shape-negative", lambda t: _edited(t, lambda h: h[min(h)].update(shape=[-1, 4])), "malformed shape [-1, 4]"),
    ("shape-float", lambda t: _edited(t, lambda h: h[min(h)].update(shape=[2.0])), "malformed shape [2.0]"),
    ("shape-bomb-2**40", lambda t: _edited(t, lambda h: h[min(h)].update(shape=[2**40])), "but its data_offsets span"),
    (
        "shape-overflows-u64",
        lambda t: _edited(t, lambda h: h[min(h)].update(shape=[2**62, 64])),
        "but its data_offsets span",
    ),
    (
        "shape-rank-45000",
        lambda t: _edited(t, lambda h: h[min(h)].update(shape=[2**62] * 45_000)),
        "has 45000 dimensions, more than 32",
    ),
    (
        "shape-bomb-over-2**64-bytes",
        lambda t: _edited(t, lambda h: h[min(h)].update(shape=[10**4000] * 32)),
        "(over 2**64 bytes) but",
    ),
    (
        "shape-5000-digit-dim",
        lambda t: _file(b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 0]}}'),
        "header is not JSON",
    ),
    ("offsets-overlapping", lambda t: _edited(t, lambda h: _move(h[sorted(h)[1]], 0)), "overlap or leave a gap"),
    ("offsets-leave-gap", lambda t: _edited(t, lambda h: _move(h[min(h)], 8)), "overlap or leave a gap"),
    ("offsets-backwards", lambda t: _edited(t, lambda h: h[min(h)]["data_offsets"].reverse()), "run backwards"),
    (
        "offsets-not-a-pair",
        lambda t: _edited(t, lambda h: h[min(h)].update(data_offsets=[0, 4, 8])),
        "malformed data_offsets",
    ),
    ("offsets-past-end", lambda t: to_bytes(t)[:-3], "but the file holds"),
    ("data-not-covered", lambda t: to_bytes(t) + b"\0" * 8, "but the file holds"),
    (
        "entry-extra-field",
        lambda t: _edited(t, lambda h: h[min(h)].update(code="x")),
        "header entry is not {dtype, shape, data_offsets}",
    ),
    ("entry-not-an-object", lambda t: _edited(t, lambda h: h.update({min(h): [1, 2]})), "header entry is not"),
    ("value-nan", lambda t: _poisoned(t, float("nan")), "contains NaN or Inf"),
    ("value-inf", lambda t: _poisoned(t, float("-inf")), "contains NaN or Inf"),
    ("torch-zip", lambda t: _zipped(pickle.dumps(t)), "looks like a zip archive (torch.save?)"),
    ("pickle", lambda t: pickle.dumps(t, protocol=5), "looks like a pickle"),
    ("gzip", lambda t: gzip.compress(to_bytes(t)), "looks like gzip data"),
]


def small_tensors() -> Tensors:
    return {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(4, dtype=torch.float64)}


@pytest.mark.parametrize("owned", [False, True], ids=["bytes", "bytearray"])  # copied, or parsed in place
@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in SAFETENSORS_CASES], ids=[c[0] for c in SAFETENSORS_CASES])
def test_from_bytes_refuses_hostile_safetensors(build: Builder, reason: str, owned: bool) -> None:
    t = small_tensors()
    data = build(t)
    assert reason in refusal(lambda: from_bytes(bytearray(data) if owned else data, layout_of(t)), ContentError)


# --- the same bytes as a verifier's start checkpoint: a failing verdict with the reason, never an exception


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    model = {"family": "mnist-mlp", "params": {"hidden": 8}}
    task = mnist_task(model=model, steps_per_task=4, checkpoint_interval=2, batch_size=8)
    store = LocalStore(tmp_path_factory.mktemp("store"))
    return task, store, train_task(task, store, tmp_path_factory.mktemp("work"))


@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in SAFETENSORS_CASES], ids=[c[0] for c in SAFETENSORS_CASES])
def test_verify_segment_fails_hostile_start_checkpoints_with_a_reason(
    trained: Trained, build: Builder, reason: str
) -> None:
    task, store, result = trained
    m = result.manifest
    checkpoint = from_bytes(store.get(m.checkpoints[1].cid))  # weights and Adam state: the real layout
    verdict = verify_segment(
        task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, build(checkpoint)
    )
    assert not verdict.passed
    assert verdict.reason.startswith("checkpoint refused: ") and reason in verdict.reason, verdict.reason
    assert "\n" not in verdict.reason


@pytest.mark.parametrize("step_value", [-1.0, -1e10, 0.0, 7.0])
def test_a_forged_adam_step_counter_is_refused_not_a_verifier_crash(trained: Trained, step_value: float) -> None:
    """-1 made torch divide by zero in Adam's bias correction, -1e10 overflowed: both escaped as exceptions."""
    task, store, result = trained
    m = result.manifest
    checkpoint = from_bytes(store.get(m.checkpoints[1].cid))
    forged = {n: torch.full_like(t, step_value) if n.endswith(".step") else t for n, t in checkpoint.items()}
    verdict = verify_segment(task.spec, task.workload, task.shard, task.seed, m, result.trace_root, 1, to_bytes(forged))
    assert not verdict.passed and "but the checkpoint has counted 2 steps" in verdict.reason, verdict.reason


class _RunsCode:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("fmt", ["torch.save", "pickle"])
def test_pickled_checkpoints_are_refused_without_being_unpickled(trained: Trained, tmp_path: Path, fmt: str) -> None:
    task, _, result = trained
    marker = tmp_path / "code-ran"
    payload = {"model.0.weight": _RunsCode(marker)}
    if fmt == "torch.save":
        buf = io.BytesIO()
        torch.save(payload, buf)
        data, load = buf.getvalue(), lambda: torch.load(io.BytesIO(data), weights_only=False)
    else:
        data, load = pickle.dumps(payload), lambda: pickle.loads(data)
    t = small_tensors()
    assert "not safetensors" in refusal(lambda: from_bytes(data, layout_of(t)), ContentError)
    verdict = verify_segment(
        task.spec, task.workload, task.shard, task.seed, result.manifest, result.trace_root, 1, data
    )
    assert not verdict.passed and "not safetensors" in verdict.reason
    assert not marker.exists()
    load()  # the control: a pickle loader does run the payload
    assert marker.exists()


# --- manifests: parse → ContentError


NUMERICS = {
    "torch": "2.13.0",
    "machine": "x86_64",
    "kernels": "AVX2",
    "profile": "x86-64-avx2",
    "threads": 1,
    "fingerprint": HASH,
}


def _trace(**changes: object) -> bytes:
    doc = {
        "task_id": 1,
        "volunteer": "0x" + "ab" * 20,
        "round_cid": CID,
        "update_cid": CID,
        "update_hash": HASH,
        "checkpoints": [{"step": 0, "cid": CID, "hash": HASH}, {"step": 5, "cid": CID, "hash": HASH}],
        "numerics": NUMERICS,
    }
    return json.dumps({**doc, **changes}).encode()


def _round(**changes: object) -> bytes:
    doc = {"bounty_id": 1, "round": 0, "spec_cid": CID, "model_cid": CID, "shard_cids": [CID], "holdout_cid": CID}
    return json.dumps({**doc, **changes}).encode()


MANIFEST_CASES: list[tuple[str, type[TraceManifest] | type[RoundManifest], bytes, str]] = [
    ("trace-nested-1e5-deep", TraceManifest, b"[" * 100_000 + b"]" * 100_000, "recursion limit exceeded"),
    ("trace-1e6-losses", TraceManifest, _trace(losses=[0] * 10**6), "over the 1048576-byte limit"),
    (
        "trace-100001-losses",
        TraceManifest,
        _trace(losses=[0] * 100_001),
        "losses: List should have at most 100000 items",
    ),
    ("trace-cid-not-base58", TraceManifest, _trace(round_cid="Qm" + "0" * 44), "is not base58"),
    ("trace-cid-v1", TraceManifest, _trace(update_cid="bafy" + "a" * 42), "is not a CIDv0"),
    ("trace-cid-path", TraceManifest, _trace(round_cid="../../etc/passwd"), "is not a CIDv0"),
    (
        "trace-258-checkpoints",
        TraceManifest,
        _trace(checkpoints=[{"step": 0, "cid": CID, "hash": HASH}] * 258),
        "checkpoints: List should have at most 257",
    ),
    (
        "trace-hash-uppercase",
        TraceManifest,
        _trace(update_hash=HASH.upper().replace("0X", "0x")),
        "update_hash: String should match pattern",
    ),
    (
        "trace-hash-short",
        TraceManifest,
        _trace(checkpoints=[{"step": 0, "cid": CID, "hash": "0xab"}] * 2),
        "checkpoints.0.hash: String should match",
    ),
    ("trace-task-id-over-uint256", TraceManifest, _trace(task_id=2**256), "task_id: Input should be less than"),
    (
        "trace-step-over-uint256",
        TraceManifest,
        _trace(checkpoints=[{"step": 2**256, "cid": CID, "hash": HASH}] * 2),
        "step: Input should be less than",
    ),
    (
        "trace-step-negative",
        TraceManifest,
        _trace(checkpoints=[{"step": -1, "cid": CID, "hash": HASH}] * 2),
        "step: Input should be greater than or equal to 0",
    ),
    (
        "trace-volunteer-not-address",
        TraceManifest,
        _trace(volunteer="0x1234"),
        "volunteer: String should match pattern",
    ),
    (
        "trace-extra-field",
        TraceManifest,
        _trace(payout_to="0x" + "cd" * 20),
        "payout_to: Extra inputs are not permitted",
    ),
    ("trace-no-numerics", TraceManifest, _trace(numerics=None), "numerics: Input should be"),
    (
        "trace-numerics-fingerprint-short",
        TraceManifest,
        _trace(numerics={**NUMERICS, "fingerprint": "0xab"}),
        "numerics.fingerprint: String should match",
    ),
    (
        "trace-numerics-threads-zero",
        TraceManifest,
        _trace(numerics={**NUMERICS, "threads": 0}),
        "numerics.threads: Input should be greater than or equal to 1",
    ),
    ("trace-not-an-object", TraceManifest, b"[1, 2]", "Input should be an object"),
    ("trace-not-utf8", TraceManifest, b"\xff\xfe{}", "Invalid JSON"),
    ("trace-zip", TraceManifest, _zipped(_trace()), "Invalid JSON"),
    ("round-extra-field", RoundManifest, _round(bonus=10**18), "bonus: Extra inputs are not permitted"),
    ("round-no-shards", RoundManifest, _round(shard_cids=[]), "shard_cids: List should have at least 1 item"),
    ("round-shard-cid-invalid", RoundManifest, _round(shard_cids=[CID, "QmNope"]), "is not a CIDv0"),
]


@pytest.mark.parametrize(("doc", "data", "reason"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_parse_refuses_hostile_documents(doc: type[TraceManifest], data: bytes, reason: str) -> None:
    assert reason in refusal(lambda: doc.parse(data), ContentError)


# --- specs: bytes from the store → TrainingSpec.from_bytes → resolve, as a node and the coordinator read them


def _spec(**fields: object) -> bytes:
    return json.dumps({"model": {"family": "mnist-mlp"}, **fields}).encode()


SPEC_CASES: list[tuple[str, bytes, str]] = [
    ("family-unknown", _spec(model={"family": "resnet-9000"}), "model.family 'resnet-9000' is not one of"),
    (
        "steps-1e9",
        _spec(steps_per_task=10**9, checkpoint_interval=10**7),
        "steps_per_task: Input should be less than or equal to 100000",
    ),
    ("batch-1e7", _spec(batch_size=10**7), "batch_size: Input should be less than or equal to 4096"),
    (
        "hidden-1e9",
        _spec(model={"family": "mnist-mlp", "params": {"hidden": 10**9}}),
        "model.params.hidden: Input should be less than or equal to 4096",
    ),
    (
        "transformer-dim-1e6",
        _spec(model={"family": "char-transformer", "params": {"dim": 10**6}}),
        "model.params.dim: Input should be less than or equal to 1024",
    ),
    (
        "cnn-channels-1e5",
        _spec(model={"family": "mnist-cnn", "params": {"channels": 10**5}}),
        "model.params.channels: Input should be less than or equal to 256",
    ),
    (
        "params-huge-list",
        _spec(model={"family": "mnist-mlp", "params": {"hidden": [1] * 100_000}}),
        "model.params.hidden: Input should be a valid integer",
    ),
    (
        "seed-5000-digits",
        b'{"model": {"family": "mnist-mlp"}, "init_seed": 1' + b"0" * 5000 + b"}",
        "number out of range",
    ),
    (
        "lr-infinite",
        b'{"model": {"family": "mnist-mlp"}, "optimizer": {"lr": 1e999}}',
        "optimizer.lr: Input should be less than or equal to 10",
    ),
    ("name-100k-chars", _spec(name="x" * 100_000), "name: String should have at most 100 characters"),
    ("extra-field", _spec(run_after="rm -rf /"), "run_after: Extra inputs are not permitted"),
    ("nested-1e5-deep", b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "recursion limit exceeded"),
    ("over-1MiB", _spec(name="x" * (2 * MiB)), "over the 1048576-byte limit"),
    ("not-utf8", b"\xff\xfe{}", "Invalid JSON"),
    ("zip", _zipped(_spec()), "Invalid JSON"),
]


def untrusted_spec(data: bytes) -> None:
    resolve(TrainingSpec.from_bytes(data).model)


@pytest.mark.parametrize(("data", "reason"), [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
def test_spec_from_bytes_refuses_hostile_specs(data: bytes, reason: str) -> None:
    assert reason in refusal(lambda: untrusted_spec(data), SpecError)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("deep.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000, "is TOML nested too deeply"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "is JSON nested too deeply"),
        (
            "seed.toml",
            b'model = { family = "mnist-mlp" }\ninit_seed = 1' + b"0" * 5000,
            "is not valid TOML: Exceeds the limit",
        ),
        (
            "seed.json",
            b'{"model": {"family": "mnist-mlp"}, "init_seed": 1' + b"0" * 5000 + b"}",
            "is not valid JSON: Exceeds",
        ),
        ("big.toml", b"# " + b"x" * (2 * MiB), "is over the 1048576-byte limit"),
        ("endless.toml", None, "is over the 1048576-byte limit"),  # a link to /dev/zero: never ends
    ],
)
def test_load_spec_refuses_hostile_files(tmp_path: Path, name: str, content: bytes | None, reason: str) -> None:
    path = tmp_path / name
    if content is None:
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(content)
    assert reason in refusal(lambda: load_spec(path), SpecError)


# --- bombs: refused by format or size, never inflated


def _deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of `size` zero bytes (a multiple of 1 MiB) and its CRC-32, without deflating
    `size` bytes: after a full flush the compressor starts afresh, so one 1 MiB block repeats."""
    chunk = bytes(MiB)
    block = (c := zlib.compressobj(9, zlib.DEFLATED, -15)).compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // MiB):
        crc = zlib.crc32(chunk, crc)
    return block * (size // MiB) + zlib.compressobj(9, zlib.DEFLATED, -15).flush(), crc


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """1 GiB of zeros as a zip (one member) and as gzip, about 1 MB each."""
    size, name = 1 << 30, b"model.bin"
    deflated, crc = _deflated_zeros(size)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(deflated), size, len(name), 0) + name
    central = (
        struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(deflated), size, len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(deflated), 0)
    zip_bomb = local + deflated + central + end
    assert zipfile.ZipFile(io.BytesIO(zip_bomb)).getinfo("model.bin").file_size == size  # a well-formed archive
    gzip_bomb = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated + struct.pack("<2L", crc, size % 2**32)
    assert zlib.decompressobj(31).decompress(gzip_bomb, MiB) == bytes(MiB)  # inflates (only 1 MiB of it, here)
    return {"zip": zip_bomb, "gzip": gzip_bomb}


def _via_store(tmp_path: Path, data: bytes, parse: Callable[[bytes], object], max_bytes: int) -> Callable[[], object]:
    store = LocalStore(tmp_path / "store")
    cid = store.put(data)
    return lambda: parse(store.get(cid, max_bytes))


@pytest.mark.parametrize("bomb", ["zip", "gzip"])
@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("checkpoint", "not safetensors"),
        ("trace-manifest", "over the 1048576-byte limit"),
        ("trace-manifest-from-store", "over the 1048576-byte limit"),
        ("spec", "over the 1048576-byte limit"),
        ("spec-file", "over the 1048576-byte limit"),
    ],
)
def test_bombs_are_refused_before_they_inflate(
    bombs: dict[str, bytes], tmp_path: Path, bomb: str, entry: str, reason: str
) -> None:
    data, t = bombs[bomb], small_tensors()
    (tmp_path / "spec.toml").write_bytes(data)
    call, error = {
        "checkpoint": (lambda: from_bytes(data, layout_of(t)), ContentError),
        "trace-manifest": (lambda: TraceManifest.parse(data), ContentError),
        "trace-manifest-from-store": (_via_store(tmp_path, data, TraceManifest.parse, 1 << 20), ContentError),
        "spec": (lambda: TrainingSpec.from_bytes(data), SpecError),
        "spec-file": (lambda: load_spec(tmp_path / "spec.toml"), SpecError),
    }[entry]
    assert reason in refusal(call, error)
    peak, seconds = bounded(call)
    assert peak < 4 * MiB and seconds < 1, (peak, seconds)  # the payload is 1 GiB


def test_local_store_refuses_an_8_gib_file_without_reading_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = cid_of(b"what the file claims to be")
    with open(tmp_path / cid, "wb") as f:
        f.truncate(8 << 30)  # sparse: costs no disk
    assert "over the 536870912-byte limit" in refusal(lambda: store.get(cid), ContentError)
    peak, seconds = bounded(lambda: store.get(cid))
    assert peak < MiB and seconds < 0.5


def test_deeply_nested_headers_and_specs_are_refused_even_with_a_raised_recursion_limit(tmp_path: Path) -> None:
    """With the default limit json raises RecursionError; with a raised one the C stack overflowed and the
    whole process died with SIGSEGV (the full test run, after other tests had raised the limit)."""
    deep = "[" * 200_000 + "]" * 200_000
    header = deep.encode()
    hostile = struct.pack("<Q", len(header)) + header
    spec_file = tmp_path / "deep.json"
    spec_file.write_text('{"model": ' + deep + "}")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        assert "nested too deeply" in refusal(lambda: from_bytes(hostile), ContentError)
        assert "nested too deeply" in refusal(lambda: read_spec_file(spec_file), SpecError)
    finally:
        sys.setrecursionlimit(limit)


def test_shape_bombs_are_refused_before_allocating() -> None:
    t = small_tensors()
    bomb = _edited(t, lambda h: h[min(h)].update(shape=[2**40]))  # claims 8 TiB, carries 32 bytes
    for layout in (layout_of(t), None):  # without a layout to compare with, the bytes still decide
        refusal(lambda: from_bytes(bomb, layout), ContentError)  # noqa: B023 - called at once
        peak, seconds = bounded(lambda: from_bytes(bomb, layout))  # noqa: B023 - called at once
        assert peak < MiB and seconds < 1  # generous: the machine is shared; an allocation would take far longer


# --- a hostile IPFS daemon: a real HTTP server on loopback answering the Kubo RPC's /api/v0/cat


class _HostileKubo(ThreadingHTTPServer):
    """Answers every request with `answer` (status, headers, body pieces) and counts the bytes it got out."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.answer: tuple[int, dict[str, str], Iterable[bytes]] = (200, {}, [])
        self.sent = 0
        self.requests: list[tuple[str, dict[str, str]]] = []


class _Answer(BaseHTTPRequestHandler):
    server: _HostileKubo

    def do_POST(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        status, headers, body = self.server.answer
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            for piece in body:
                self.wfile.write(piece)
                self.server.sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the store hung up on us: what it should do

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def kubo() -> Iterator[_HostileKubo]:
    server = _HostileKubo()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_ipfs_store_reads_what_an_honest_daemon_serves(kubo: _HostileKubo) -> None:
    data = b"an honest shard"
    kubo.answer = (200, {"Content-Length": str(len(data))}, [data])
    store = IpfsStore(f"http://127.0.0.1:{kubo.server_port}")
    assert store.get(cid_of(data)) == data
    assert store.get_buffer(cid_of(data)) == bytearray(data)
    (found, _), (path, headers) = kubo.requests[:2]  # the root block looked for (briefly), then the transfer
    assert found.startswith("/api/v0/block/stat?arg=")
    assert path.startswith("/api/v0/cat?arg=") and headers["Accept-Encoding"] == "identity"


ENDLESS = itertools.repeat(bytes(64 * 1024))
Answer = Callable[[dict[str, bytes]], tuple[int, dict[str, str], Iterable[bytes]]]  # given the bombs
IPFS_CASES: list[tuple[str, Answer, type[Exception], str]] = [
    ("endless-body", lambda b: (200, {}, ENDLESS), ContentError, "over the 1048576-byte limit"),
    (
        "declared-1-TB",
        lambda b: (200, {"Content-Length": str(10**12)}, ENDLESS),
        ContentError,
        "1000000000000 bytes, over the",
    ),
    ("gzip-bomb", lambda b: (200, {"Content-Encoding": "gzip"}, [b["gzip"]]), ContentError, "Content-Encoding 'gzip'"),
    ("bytes-not-the-cid", lambda b: (200, {}, [b"forged shard"]), ContentError, "hashes to"),
    ("error-with-endless-body", lambda b: (500, {}, ENDLESS), ContentMissing, "not available from IPFS (500)"),
]


@pytest.mark.parametrize("read", ["get", "get_buffer"])
@pytest.mark.parametrize(("answer", "error", "reason"), [c[1:] for c in IPFS_CASES], ids=[c[0] for c in IPFS_CASES])
def test_ipfs_store_refuses_hostile_answers_while_streaming(
    bombs: dict[str, bytes], kubo: _HostileKubo, answer: Answer, error: type[Exception], reason: str, read: str
) -> None:
    kubo.answer = answer(bombs)
    store = IpfsStore(f"http://127.0.0.1:{kubo.server_port}", timeout=5)
    cid = cid_of(b"the shard that was asked for")
    get = getattr(store, read)
    assert reason in refusal(lambda: get(cid, max_bytes=MiB), error)
    peak, seconds = bounded(lambda: get(cid, max_bytes=MiB))
    assert peak < 4 * MiB and seconds < 2, (peak, seconds)
    assert kubo.sent < 64 * MiB  # it stopped reading: an endless answer is not drained
