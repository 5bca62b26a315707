"""Deploys Token + BountyMarket and describes the result as a deployment manifest."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract

from ledger.artifacts import load
from ledger.chain import LOCAL_CHAIN_IDS
from ledger.tx import Transactor

DEFAULT_UNBONDING_DELAY_S = 7 * 24 * 3600


class Deployment(BaseModel):
    """What every command needs to find the contracts; written by `shardwork chain deploy`."""

    chain_id: int = Field(description="chain the addresses belong to; commands refuse any other chain")
    token: str = Field(description="Token (ERC-20) address")
    market: str = Field(description="BountyMarket address (also holds stakes)")
    block: int = Field(description="block of the market deployment; event scans start here")
    deployer: str
    unbonding_delay_s: int
    gas_used: dict[str, int] = Field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.model_validate_json(path.read_text())


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load(name).abi)


def deploy(
    w3: Web3,
    deployer: Transactor,
    *,
    unbonding_delay_s: int = DEFAULT_UNBONDING_DELAY_S,
    initial_supply: int = 0,
) -> Deployment:
    chain_id = w3.eth.chain_id
    faucet = chain_id in LOCAL_CHAIN_IDS
    token_art, market_art = load("Token"), load("BountyMarket")
    token_factory = w3.eth.contract(abi=token_art.abi, bytecode=token_art.bytecode)
    token_receipt = deployer.send(token_factory.constructor(deployer.address, initial_supply, faucet))
    token_address = token_receipt["contractAddress"]
    market_factory = w3.eth.contract(abi=market_art.abi, bytecode=market_art.bytecode)
    market_receipt = deployer.send(market_factory.constructor(token_address, unbonding_delay_s))
    return Deployment(
        chain_id=chain_id,
        token=str(token_address),
        market=str(market_receipt["contractAddress"]),
        block=market_receipt["blockNumber"],
        deployer=deployer.address,
        unbonding_delay_s=unbonding_delay_s,
        gas_used={"Token": token_receipt["gasUsed"], "BountyMarket": market_receipt["gasUsed"]},
    )
