"""The memory a round's aggregation needs beyond its inputs, whole tensors at a time against slices of them.

A GPT-shaped model (one large token embedding, transformer blocks) of about 17M parameters, eight accepted
updates, Nesterov outer momentum: each aggregation method runs in a fresh process twice, once combining whole
tensors (the code before slicing, `chunk_bytes=None`) and once a slice of coordinates at a time (the default,
protocol.aggregate.CHUNK_BYTES), and reports the peak resident memory above what the inputs already hold
(Linux VmHWM, reset just before `aggregate` through /proc/self/clear_refs), per parameter. The result of the
two is compared bit for bit.

  working_bytes_per_param  peak RSS during aggregate minus RSS before it, over the parameters
  inputs_bytes_per_param   what the round's model, velocity and updates hold (4 bytes each per parameter)

  ./scripts/bench aggregate-memory [--json] [--updates 8] [--vocab 16384] [--width 384] [--blocks 6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from protocol.aggregate import CHUNK_BYTES, aggregate
from protocol.spec import AggregationSpec
from protocol.tensors import Tensors

METHODS = ("mean", "trimmed_mean", "centered_clip")


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


def child(method: str, sliced: bool, updates: int, vocab: int, width: int, blocks: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    shapes = layout(vocab, width, blocks)
    gen = torch.Generator().manual_seed(0)
    weights, velocity = _random(shapes, gen, 1.0), _random(shapes, gen, 1e-3)
    ups = [_random(shapes, gen, 1e-2) for _ in range(updates)]
    spec = AggregationSpec(method=method, trim_fraction=0.25, outer_lr=0.7, outer_momentum=0.9)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    result = aggregate(weights, ups, spec, velocity, chunk_bytes=CHUNK_BYTES if sliced else None)
    peak = _status("VmHWM")
    digest = hashlib.sha256()
    for name in shapes:
        digest.update(result.weights[name].numpy().tobytes())
    params = sum(t.numel() for t in weights.values())
    return {"params": params, "working_bytes": peak - before, "digest": digest.hexdigest()}


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
        print(json.dumps(child(args.child[0], args.child[1] == "sliced", *size)))
        return 0
    rows: dict[str, Any] = {}
    params = 0
    for method in METHODS:
        runs = {}
        for mode in ("whole", "sliced"):
            command = [sys.executable, "-m", "bench.aggregate_memory", "--child", method, mode]
            command += ["--updates", str(args.updates), "--vocab", str(args.vocab)]
            command += ["--width", str(args.width), "--blocks", str(args.blocks)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            params = runs[mode]["params"]
            if not args.json:
                print(f"{method:<14} {mode:<7} {runs[mode]['working_bytes'] / params:6.2f} bytes/param", flush=True)
        rows[method] = {
            "working_bytes_per_param_whole": round(runs["whole"]["working_bytes"] / params, 2),
            "working_bytes_per_param_sliced": round(runs["sliced"]["working_bytes"] / params, 2),
            "same_result": runs["whole"]["digest"] == runs["sliced"]["digest"],
        }
    result = {
        "params": params,
        "updates": args.updates,
        "chunk_bytes": CHUNK_BYTES,
        "inputs_bytes_per_param": 4 * (args.updates + 2),
        "methods": rows,
    }
    print(json.dumps(result))
    return 0 if all(row["same_result"] for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
