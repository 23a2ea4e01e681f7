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
    sharing_catalogue: Path | None = Field(
        default=None, description="The sharing catalogue (who may see which field, on every "
        "read path and feed); unset = the built-in one. See docs/sharing.md.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr = SecretStr("development-only-secret")
    token_ttl_minutes: int = Field(
        default=12 * 60, ge=1, le=7 * 24 * 60,
        description="How long a login token stays valid (default: one 12-hour shift).",
    )
    duplicate_radius_m: float = Field(default=50.0, gt=0, le=5000)
    duplicate_window_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    projection_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    projection_min_round_interval_s: float = Field(
        default=0.02, ge=0, le=5,
        description="Shortest time between two rounds of the projection followers: commits "
        "arriving faster are taken together (one batch, one read-model transaction) instead "
        "of one round each; an idle follower still answers a commit at once.",
    )
    run_projections: bool = Field(
        default=True,
        description="Follow the event stores in this process; production API processes leave "
        "it to the projection process.",
    )
    live_retention_minutes: float = Field(
        default=60.0, gt=0, le=7 * 24 * 60,
        description="How long the live change log keeps its rows: a WebSocket client that "
        "reconnects within it resumes where it left off, later ones get a fresh snapshot.",
    )
    ws_client_queue: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Messages a WebSocket client may have waiting; a client further behind "
        "is told to resync and gets a fresh snapshot (it never slows the others).",
    )
    photo_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024,
        description="Largest photo upload accepted, in bytes (refused while it streams in).",
    )
    photo_max_pixels: int = Field(
        default=50_000_000, ge=10_000, le=500_000_000,
        description="Most pixels a photo may have (width x height): a small file that would "
        "decode to a huge image (a decompression bomb) is refused before it is decoded.",
    )
    open311_jurisdiction_id: str = Field(
        default="demo-city", min_length=1, max_length=200, pattern=r"^\S+$",
        description="This city's Open311 jurisdiction_id: clients may leave it out; one "
        "they send must be this.",
    )
    tile_url: str | None = Field(
        default=None,
        description="Optional base-map tile server for the dashboard, as "
        "https://tiles.example.org/{z}/{x}/{y}.png; unset = the base map is drawn from the "
        "city's own layers (districts, communities, unit grid), so it works with no internet.",
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

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"tile URL must be an http(s):// address, got {value!r}")
        odd = sorted({c for c in value if c.isspace() or c in "\"'<>\\`"})
        if odd:
            raise ValueError(f"tile URL has characters a URL cannot have: {odd}")
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in value]
        if missing:
            raise ValueError(f"tile URL must contain {{z}}, {{x}} and {{y}}; "
                             f"{', '.join(missing)} missing in {value!r}")
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
                # Each event is stored with its link of the stream's hash chain.
                "APPLICATION_RECORDER_TOPIC": "cityops.event_chain:ChainedSQLiteRecorder",
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
            "APPLICATION_RECORDER_TOPIC": "cityops.event_chain:ChainedPostgresRecorder",
        }
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env
