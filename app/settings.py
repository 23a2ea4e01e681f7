"""One typed settings object for every process, read from `CITYOPS_` environment variables.

Without a database URL CityOps runs embedded (SQLite files in `data_dir`); with one it uses
PostgreSQL. Production refuses placeholder secrets.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "development-only-secret"}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Everything that differs between a laptop demo and a city's production deployment."""

    model_config = SettingsConfigDict(env_prefix="CITYOPS_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(
        default=Path("cityops-data"),
        description="Folder of the embedded SQLite event stores and read models.",
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://user:password@host:port/dbname; unset = embedded SQLite.",
    )
    database_schema: str | None = Field(
        default=None,
        description="PostgreSQL schema for all tables (a drill runs in its own schema).",
    )
    database_pool_size: int = Field(default=4, ge=1, le=100)
    aggregate_cache_size: int = Field(
        default=5000, ge=0, le=1_000_000,
        description="Aggregates each application keeps decoded in memory (0 = none). A cached "
        "aggregate is brought up to date from the store (its newer events only) every time "
        "it is loaded, so what another process wrote is never missed; commands work on a "
        "copy, so a refused command leaves the cache as it was.",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = in-process ingest queue."
    )
    catalogue_dir: Path | None = Field(
        default=None, description="Folder of reference data files; unset = built-in catalogue."
    )
    city_dir: Path | None = Field(
        default=None, description="Folder of the city's map layers; unset = the demo city."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr = SecretStr("development-only-secret")
    duplicate_radius_m: float = Field(default=50.0, gt=0, le=5000)
    duplicate_window_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    projection_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    run_projections: bool = Field(
        default=True,
        description="Follow the event stores in this process; production API processes leave "
        "it to the projection process.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(f"database URL must start with postgresql://, not {scheme}://")
        return value

    @field_validator("database_schema")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("database schema must be letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            if self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS:
                raise ValueError("CITYOPS_SECRET_KEY must be set to a real secret in production")
            if self.database_url is None:
                raise ValueError("production needs CITYOPS_DATABASE_URL (PostgreSQL)")
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def duplicate_window(self) -> timedelta:
        return timedelta(hours=self.duplicate_window_hours)

    def event_store_env(self, application_name: str) -> dict[str, str]:
        """The eventsourcing library's settings for one application."""
        env = self._persistence_env(application_name)
        if self.aggregate_cache_size > 0:
            # The library's defaults are what we rely on, spelled out: fast-forward each
            # cached aggregate on every load (correct across processes) and hand commands
            # a deep copy. (A size of 0 means unbounded to the library: leave it unset.)
            env["AGGREGATE_CACHE_MAXSIZE"] = str(self.aggregate_cache_size)
            env["AGGREGATE_CACHE_FASTFORWARD"] = "y"
            env["DEEPCOPY_FROM_AGGREGATE_CACHE"] = "y"
        return env

    def _persistence_env(self, application_name: str) -> dict[str, str]:
        if self.database_url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                # SQLite tables have fixed names: each application needs its own file.
                "SQLITE_DBNAME": str(self.data_dir / f"{application_name}.sqlite"),
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        parts = urlsplit(self.database_url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")),
            "POSTGRES_HOST": parts.hostname or "localhost",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or ""),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(self.database_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.database_pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "CREATE_TABLE": "y",
        }
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env
