"""Compiled contract artifacts shipped inside the package (no Node.js or compiler needed to use them)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEPLOYABLE = ("Token", "BountyMarket")


class Artifact(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    contract_name: str = Field(alias="contractName")
    source_name: str = Field(alias="sourceName")
    compiler: dict[str, Any]
    source_digest: str = Field(alias="sourceDigest")
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str = Field(alias="deployedBytecode")
    # AST id -> list of {start, length} byte ranges that the constructor fills at deployment.
    immutable_references: dict[str, list[dict[str, int]]] = Field(alias="immutableReferences")


@cache
def load(name: str) -> Artifact:
    if name not in DEPLOYABLE:
        raise KeyError(f"no artifact for contract {name!r}; known: {', '.join(DEPLOYABLE)}")
    text = resources.files("ledger").joinpath("artifacts", f"{name}.json").read_text()
    return Artifact.model_validate(json.loads(text))


def all_error_abis() -> list[dict[str, Any]]:
    """Custom errors of every deployable contract, deduplicated by signature."""
    seen: dict[str, dict[str, Any]] = {}
    for name in DEPLOYABLE:
        for item in load(name).abi:
            if item["type"] == "error":
                signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                seen[signature] = item
    return list(seen.values())
