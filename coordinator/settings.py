"""Coordinator settings (pydantic-settings, env prefix SHARDWORK_COORD_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoordinatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHARDWORK_COORD_", extra="ignore")

    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC URL of the EVM node")
    deployment: Path = Field(Path(".shardwork/deployment.json"), description="deployment manifest")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker and the coordinator's locks")
    store: str = Field(".shardwork/store", description="content store: a directory, or ipfs:http://HOST:PORT")
    index: Path = Field(Path(".shardwork/coordinator-index.sqlite"), description="the API's event index")
    coordinator_keystore: Path | None = Field(None, description="keystore of the coordinator account")
    verifier_keystores: list[Path] = Field(default_factory=list, description="keystores of the verifier accounts")
    dev_accounts: bool = Field(
        False, description="use the public development keys (coordinator #2, verifiers #3 and #4); local chains only"
    )
    housekeeping_interval_s: float = Field(2.0, gt=0, description="beat period of the chain scan")
    trace_timeout_s: int = Field(120, ge=1, description="how long a missing trace is waited for before it fails")
