"""The memory a round's aggregation needs, whole tensors at a time against slices of them, and with the updates
decompressed against held as sent.

A GPT-shaped model (one large token embedding, transformer blocks) of about 17M parameters, eight accepted
updates sent as int8 (the example's compression), Nesterov outer momentum: each aggregation method runs in a fresh
process three times: combining whole tensors of decompressed updates (the code before slicing,
`chunk_bytes=None`), a slice of coordinates at a time (protocol.aggregate.CHUNK_BYTES), and a slice at a time of
updates held as sent (protocol.compression.CompressedUpdate, as a coordinator's close now holds them). Peaks are
Linux VmHWM, reset just before `aggregate` through /proc/self/clear_refs. The three results are compared bit for
bit.

  working_bytes_per_param  peak RSS during aggregate minus RSS before it, over the parameters
  peak_bytes_per_param     peak RSS during aggregate minus RSS with only the round's model and velocity: the
                           updates as held plus the working set (the model and velocity hold 8 bytes more)

  ./scripts/bench aggregate-memory [--json] [--updates 8] [--vocab 16384] [--width 384] [--blocks 6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from protocol.aggregate import CHUNK_BYTES, aggregate
from protocol.compression import CompressedUpdate, compress, decompress
from protocol.spec import AggregationSpec, CompressionSpec
from protocol.tensors import Tensors
from telemetry.memory import give_back_free_memory

METHODS = ("mean", "trimmed_mean", "centered_clip")
MODES = ("whole", "sliced", "held")
INT8 = CompressionSpec(method="int8")  # the examples' compression (its default chunk)


def layout(vocab: int, width: int, blocks: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"embed": (vocab, width), "final_norm": (width,)}
    for b in range(blocks):
        shapes |= {
            f"block{b}.qkv": (3 * width, width),
            f"block{b}.proj": (width, width),
            f"block{b}.up": (4 * width, width),
            f"block{b}.down": (width, 4 * width),
            f"block{b}.norm": (width,),
        }
    return shapes


def _random(shapes: dict[str, tuple[int, ...]], gen: torch.Generator, scale: float) -> Tensors:
    return {name: torch.randn(shape, generator=gen) * scale for name, shape in shapes.items()}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(method: str, mode: str, updates: int, vocab: int, width: int, blocks: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    shapes = layout(vocab, width, blocks)
    gen = torch.Generator().manual_seed(0)
    weights, velocity = _random(shapes, gen, 1.0), _random(shapes, gen, 1e-3)
    give_back_free_memory()
    model_only = _status("VmRSS")
    sent = [compress(_random(shapes, gen, 1e-2), INT8) for _ in range(updates)]
    ups: list[Mapping[str, torch.Tensor]]
    if mode == "held":
        ups = [CompressedUpdate(encoded, weights, INT8) for encoded in sent]
    else:
        ups = [decompress(encoded, weights, INT8) for encoded in sent]
    del sent
    give_back_free_memory()
    spec = AggregationSpec(method=method, trim_fraction=0.25, outer_lr=0.7, outer_momentum=0.9)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    result = aggregate(weights, ups, spec, velocity, chunk_bytes=None if mode == "whole" else CHUNK_BYTES)
    peak = _status("VmHWM")
    digest = hashlib.sha256()
    for name in shapes:
        digest.update(result.weights[name].numpy().tobytes())
    params = sum(t.numel() for t in weights.values())
    return {
        "params": params,
        "working_bytes": peak - before,
        "peak_bytes": peak - model_only,
        "digest": digest.hexdigest(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench aggregate-memory", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = (args.updates, args.vocab, args.width, args.blocks)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], *size)))
        return 0
    rows: dict[str, Any] = {}
    params = 0
    for method in METHODS:
        runs = {}
        for mode in MODES:
            command = [sys.executable, "-m", "bench.aggregate_memory", "--child", method, mode]
            command += ["--updates", str(args.updates), "--vocab", str(args.vocab)]
            command += ["--width", str(args.width), "--blocks", str(args.blocks)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            params = runs[mode]["params"]
            if not args.json:
                working, peak = runs[mode]["working_bytes"] / params, runs[mode]["peak_bytes"] / params
                print(f"{method:<14} {mode:<7} working {working:6.2f}  peak {peak:6.2f} bytes/param", flush=True)
        rows[method] = {
            f"{kind}_bytes_per_param_{mode}": round(runs[mode][f"{kind}_bytes"] / params, 2)
            for kind in ("working", "peak")
            for mode in MODES
        }
        rows[method]["same_result"] = len({run["digest"] for run in runs.values()}) == 1
    result = {
        "params": params,
        "updates": args.updates,
        "chunk_bytes": CHUNK_BYTES,
        "compression": "int8",
        "methods": rows,
    }
    print(json.dumps(result))
    return 0 if all(row["same_result"] for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
