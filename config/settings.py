"""The one settings family: flags > environment > <home>/config.toml > defaults, for every command and service.

<home> is $SHARDWORK_HOME, else ./.shardwork. The CLI (wallet, bounty, audit, node run, contracts verify,
chain deploy) reads `SHARDWORK_*` and the file's top level; the coordinator's services read
`SHARDWORK_COORD_*` and its `[coordinator]` table. Nothing secret lives here: passwords never do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def home() -> Path:
    return Path(os.environ.get("SHARDWORK_HOME", ".shardwork"))


class _HomeSettings(BaseSettings):
    """Flags (init arguments) > environment > the config file's table for this class > defaults."""

    toml_table: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(
            settings_cls, toml_file=home() / "config.toml", toml_table_header=cls.toml_table
        )
        return (init_settings, env_settings, toml)


class Settings(_HomeSettings):
    """What the `shardwork` commands read."""

    model_config = SettingsConfigDict(env_prefix="SHARDWORK_", extra="ignore")

    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC URL of the EVM node")
    deployment: Path = Field(default_factory=lambda: home() / "deployment.json", description="deployment manifest")
    wallets: Path = Field(default_factory=lambda: home() / "wallets", description="directory of keystore files")
    store: str = Field(
        default_factory=lambda: str(home() / "store"),
        description="content store: a directory (embedded), or ipfs:http://HOST:PORT for an IPFS daemon",
    )
    index: Path = Field(default_factory=lambda: home() / "index.sqlite", description="local event index")


class CoordinatorSettings(_HomeSettings):
    """What the coordinator's services (Celery worker and beat, the API) read."""

    model_config = SettingsConfigDict(env_prefix="SHARDWORK_COORD_", extra="ignore")
    toml_table: ClassVar[tuple[str, ...] | None] = ("coordinator",)

    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC URL of the EVM node")
    deployment: Path = Field(default_factory=lambda: home() / "deployment.json", description="deployment manifest")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker and the coordinator's locks")
    store: str = Field(
        default_factory=lambda: str(home() / "store"),
        description="content store: a directory, or ipfs:http://HOST:PORT",
    )
    index: Path = Field(
        default_factory=lambda: home() / "coordinator-index.sqlite", description="the API's event index"
    )
    coordinator_keystore: Path | None = Field(None, description="keystore of the coordinator account")
    verifier_keystores: list[Path] = Field(default_factory=list, description="keystores of the verifier accounts")
    dev_accounts: bool = Field(
        False, description="use the public development keys (coordinator #2, verifiers #3 and #4); local chains only"
    )
    housekeeping_interval_s: float = Field(2.0, gt=0, description="beat period of the chain scan")
    trace_timeout_s: int = Field(120, ge=1, description="how long a missing trace is waited for before it fails")


def load_settings(**overrides: Any) -> Settings:
    """Settings with the given command-line values (None means: not given) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
