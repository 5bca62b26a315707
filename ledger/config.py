"""Where the CLI finds things: flags > environment (SHARDWORK_*) > <home>/config.toml > defaults.

<home> is $SHARDWORK_HOME, else ./.shardwork. Nothing secret lives here: passwords never do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def home() -> Path:
    return Path(os.environ.get("SHARDWORK_HOME", ".shardwork"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHARDWORK_", extra="ignore")

    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC URL of the EVM node")
    deployment: Path = Field(default_factory=lambda: home() / "deployment.json", description="deployment manifest")
    wallets: Path = Field(default_factory=lambda: home() / "wallets", description="directory of keystore files")
    store: str = Field(
        default_factory=lambda: str(home() / "store"),
        description="content store: a directory (embedded), or ipfs:http://HOST:PORT for an IPFS daemon",
    )
    index: Path = Field(default_factory=lambda: home() / "index.sqlite", description="local event index")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=home() / "config.toml"))


def load_settings(**overrides: Any) -> Settings:
    """Settings with the given command-line values (None means: not given) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
