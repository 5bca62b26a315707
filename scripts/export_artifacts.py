"""Copy what Python needs from Hardhat's build-info into ledger/artifacts (committed).

Volunteers install only the Python package, so ABI, bytecode and immutable references travel with it;
Node.js and a compiler are needed only to rebuild them or to verify deployed code.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ledger.compiler import layout_mismatch

ROOT = Path(__file__).resolve().parent.parent
BUILD_INFO = ROOT / "build" / "hardhat" / "artifacts" / "build-info"
OUT = ROOT / "ledger" / "artifacts"
DEPLOYABLE = {"contracts/Token.sol": "Token", "contracts/BountyMarket.sol": "BountyMarket"}


def main() -> int:
    infos = sorted(BUILD_INFO.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not infos:
        print("no Hardhat build-info: run `node_modules/.bin/hardhat compile` first", file=sys.stderr)
        return 1
    info = json.loads(infos[-1].read_text())
    sources = info["input"]["sources"]
    project_sources = {name: src["content"] for name, src in sources.items() if name.startswith("contracts/")}
    source_digest = hashlib.sha256(json.dumps(project_sources, sort_keys=True).encode()).hexdigest()
    contracts = info["output"]["contracts"]
    mismatch = layout_mismatch(
        contracts["contracts/BountyMarket.sol"]["BountyMarket"]["storageLayout"],
        contracts["contracts/BountyGames.sol"]["BountyGames"]["storageLayout"],
    )
    if mismatch:
        print(mismatch, file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for source_name, contract_name in DEPLOYABLE.items():
        out = info["output"]["contracts"][source_name][contract_name]
        artifact = {
            "contractName": contract_name,
            "sourceName": source_name,
            "compiler": {"version": info["solcLongVersion"], "settings": _settings(info["input"]["settings"])},
            "sourceDigest": source_digest,
            "abi": out["abi"],
            "bytecode": "0x" + out["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
            "immutableReferences": out["evm"]["deployedBytecode"]["immutableReferences"],
        }
        path = OUT / f"{contract_name}.json"
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "outputSelection"}


if __name__ == "__main__":
    sys.exit(main())
