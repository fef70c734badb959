"""Asset storage and download settings, read from the worker's environment.

An empty variable counts as unset (the original's `${VAR:-}` semantics). Credentials are not
here: boto3 finds them through its standard chain (env, shared files, instance roles).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.assets.base import SERVICE
from connectors.errors import ConnectorError, configuration_error

__all__ = ["DEFAULT_MAX_BYTES", "AssetSettings", "load_settings"]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # 100 MiB
_WEEK_SECONDS = 7 * 24 * 3600  # the longest lifetime SigV4 allows a presigned URL


class AssetSettings(BaseSettings):
    """Where assets go (CLOUD_STORAGE_*, CLOUD_CDN_URL) and what downloads may fetch (ASSET_*)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", case_sensitive=False)

    cloud_storage_provider: str = "local"
    # CLOUD_STORAGE_CONTAINER is the original's name for the bucket; both are read.
    cloud_storage_bucket: str | None = Field(
        default=None,
        validation_alias=AliasChoices("cloud_storage_bucket", "cloud_storage_container"),
    )
    cloud_storage_endpoint_url: str | None = None
    cloud_storage_region: str | None = None
    cloud_storage_addressing_style: Literal["auto", "path", "virtual"] | None = None
    cloud_storage_prefix: str | None = None
    cloud_storage_url_ttl_seconds: int = Field(default=3600, gt=0, le=_WEEK_SECONDS)
    cloud_storage_public_url: str | None = None
    cloud_storage_local_dir: str = "var/assets"
    cloud_cdn_url: str | None = None
    asset_download_allow_hosts: str = ""
    asset_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    asset_download_timeout_seconds: float = Field(default=60.0, gt=0)

    def allow_hosts(self) -> frozenset[str]:
        """ASSET_DOWNLOAD_ALLOW_HOSTS as a set of lower-case `host` or `host:port` entries."""
        entries = (item.strip().lower() for item in self.asset_download_allow_hosts.split(","))
        return frozenset(item for item in entries if item)


class _MappingSettings(AssetSettings):
    """AssetSettings from an explicit mapping only: no os.environ, .env or secrets files."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _variables(error: ValidationError) -> list[str]:
    return sorted({str(item["loc"][0]).upper() for item in error.errors() if item["loc"]})


def load_settings(env: Mapping[str, str] | None = None) -> AssetSettings:
    """Settings from `env` (default: `os.environ`); a bad value is a configuration error."""
    values: dict[str, Any] = {k.lower(): v for k, v in (env or {}).items() if v.strip()}
    try:
        # An explicit `env` is read alone, never mixed with the process environment.
        return AssetSettings() if env is None else _MappingSettings(**values)
    except ValidationError as exc:
        names = _variables(exc)
        raise _config_error(f"Invalid asset storage setting: {', '.join(names)}", names) from None


def _config_error(message: str, names: list[str]) -> ConnectorError:
    return configuration_error(message, variables=names, service=SERVICE)
