"""An auditor's "verify contract": does the code deployed at each address come from these sources?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from web3 import Web3

from ledger.artifacts import load
from ledger.compiler import compile_sources
from ledger.deploy import Deployment


class ContractCheck(BaseModel):
    contract: str
    address: str
    matches: bool
    onchain_bytes: int
    compiled_bytes: int
    immutable_bytes_masked: int
    detail: str


def mask_immutables(code: bytes, references: dict[str, list[dict[str, int]]]) -> tuple[bytes, int]:
    """Zeroes the byte ranges a constructor fills (token address, delays...), which differ per deployment."""
    masked = bytearray(code)
    count = 0
    for ranges in references.values():
        for r in ranges:
            start, length = r["start"], r["length"]
            masked[start : start + length] = bytes(length)
            count += length
    return bytes(masked), count


def verify_deployment(w3: Web3, deployment: Deployment, source_root: Path) -> list[ContractCheck]:
    """The token, the market, and the game module the market runs by delegatecall (its `games()` address)."""
    compiled = compile_sources(source_root)
    checks = [
        _check(w3, name, address, compiled[name])
        for name, address in (("Token", deployment.token), ("BountyMarket", deployment.market))
    ]
    if checks[1].matches:  # only code from the sources is asked where its module lives
        market = w3.eth.contract(address=Web3.to_checksum_address(deployment.market), abi=load("BountyMarket").abi)
        checks.append(_check(w3, "BountyGames", market.functions.games().call(), compiled["BountyGames"]))
    return checks


def _check(w3: Web3, name: str, address: str, out: dict[str, Any]) -> ContractCheck:
    runtime = bytes.fromhex(out["evm"]["deployedBytecode"]["object"])
    references = out["evm"]["deployedBytecode"].get("immutableReferences", {})
    onchain = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    compiled_masked, masked = mask_immutables(runtime, references)
    if not onchain:
        detail = "no code at this address"
        matches = False
    elif len(onchain) != len(runtime):
        detail = f"length differs: on-chain {len(onchain)} bytes, compiled {len(runtime)}"
        matches = False
    else:
        onchain_masked, _ = mask_immutables(onchain, references)
        matches = onchain_masked == compiled_masked
        if matches:
            detail = "runtime bytecode matches the sources"
        else:
            first = next(i for i, (a, b) in enumerate(zip(onchain_masked, compiled_masked, strict=False)) if a != b)
            detail = f"bytecode differs from byte {first}"
    return ContractCheck(
        contract=name,
        address=address,
        matches=matches,
        onchain_bytes=len(onchain),
        compiled_bytes=len(runtime),
        immutable_bytes_masked=masked,
        detail=detail,
    )
