"""py-solc-x as the Python path to the compiler, driving npm's solc-js where no native solc exists.

Used by auditors (`shardwork contracts verify`), not by volunteers: it needs the repository's
contracts/ and node_modules/ (OpenZeppelin, solc), or a native solc on PATH.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import solcx

from ledger.artifacts import load
from protocol.errors import PermanentError, ShardworkError

_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*from\s+)?["\']([^"\']+)["\']', re.MULTILINE)


class CompilerUnavailable(PermanentError):
    """Neither solc-js (via Node.js) nor a native solc could be found."""


class SourceNotFound(PermanentError):
    """A Solidity import could not be resolved under contracts/ or node_modules/."""


def collect_sources(root: Path) -> dict[str, str]:
    """contracts/**/*.sol plus every file they import, keyed by the source unit names Hardhat uses."""
    sources: dict[str, str] = {}
    pending = sorted(str(p.relative_to(root)) for p in (root / "contracts").rglob("*.sol"))
    if not pending:
        raise SourceNotFound(f"no Solidity sources under {root / 'contracts'}")
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = root / unit if unit.startswith("contracts/") else root / "node_modules" / unit
        if not path.is_file():
            raise SourceNotFound(f"cannot resolve Solidity import {unit!r} (looked at {path})")
        text = path.read_text()
        sources[unit] = text
        for imported in _IMPORT.findall(text):
            if imported.startswith("."):
                imported = str(Path(unit).parent.joinpath(imported)).replace("\\", "/")
                imported = _normalize(imported)
            pending.append(imported)
    return dict(sorted(sources.items()))


def _normalize(unit: str) -> str:
    parts: list[str] = []
    for part in unit.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def standard_input(root: Path) -> dict[str, Any]:
    """The solc standard-JSON input that reproduces the shipped artifacts from the sources at `root`."""
    settings = dict(load("BountyMarket").compiler["settings"])
    settings["outputSelection"] = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode", "storageLayout"]}}
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in collect_sources(root).items()},
        "settings": settings,
    }


@cache
def solc_binary(root: Path) -> Path:
    """A native solc on PATH when present, else an executable shim running root's node_modules/solc."""
    root = root.resolve()
    native = shutil.which("solc")
    if native:
        return Path(native)
    node = shutil.which("node")
    solcjs = root / "node_modules" / "solc"
    if node is None or not solcjs.is_dir():
        raise CompilerUnavailable(
            "no compiler: install Node.js and run `npm ci` in the repository (for solc-js), or put solc on PATH"
        )
    shim_source = resources.files("ledger").joinpath("solcjs_shim.js").read_text()
    workdir = Path(tempfile.mkdtemp(prefix="shardwork-solc-"))
    (workdir / "shim.js").write_text(shim_source)
    wrapper = workdir / "solc"
    wrapper.write_text(f'#!/bin/sh\nSHARDWORK_SOLCJS="{solcjs}" exec "{node}" "{workdir / "shim.js"}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


def compile_sources(root: Path) -> dict[str, dict[str, Any]]:
    """Compiles the repository's contracts; returns {contract name: solc output for it}."""
    root = root.resolve()
    output = solcx.compile_standard(standard_input(root), solc_binary=solc_binary(root))
    problems = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if problems:
        raise ShardworkError("solc reported errors: " + "; ".join(e["formattedMessage"] for e in problems))
    return {name: out for file in output["contracts"].values() for name, out in file.items()}


def layout_mismatch(market: dict[str, Any], games: dict[str, Any]) -> str | None:
    """Why BountyGames cannot run on BountyMarket's storage, or None. The market runs its game module by
    delegatecall, so every variable must sit in the same slot, at the same offset, with the same type in both
    solc `storageLayout`s."""

    def entries(layout: dict[str, Any]) -> list[tuple[str, str, int, str]]:
        return [(v["label"], v["slot"], v["offset"], layout["types"][v["type"]]["label"]) for v in layout["storage"]]

    a, b = entries(market), entries(games)
    if a == b:
        return None
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return (
        f"BountyMarket's and BountyGames' storage layouts differ from variable {first}: "
        f"{a[first : first + 1]} vs {b[first : first + 1]}; declare state only in contracts/base/"
    )
