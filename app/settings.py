"""One typed settings object for every process, read from `CITYOPS_` environment variables.

One tree: `Settings` holds what every process shares (stores, server, security, limits,
health) and one section per package that has settings of its own, each read from the
variables `CITYOPS_<SECTION>_<FIELD>`:

    settings.ingest   IngestSettings  (ingest/settings.py)   CITYOPS_INGEST_GROUP_ID, ...
    settings.feeds    FeedSettings    (feeds/settings.py)    CITYOPS_FEEDS_TOPIC_PREFIX, ...
    settings.log      LogSettings     (app/logs.py)          CITYOPS_LOG_FORMAT, CITYOPS_LOG_LEVEL

A package reads only its own section (a section can be read on its own too: logging is set
up from `LogSettings` before the rest is checked). `read_settings` is the one way an entry
point reads them: a bad value is one line naming each variable and what is wrong, and exit
status 2, never a stack trace.

Without a database URL CityOps runs embedded (SQLite files in `data_dir`); with one it uses
PostgreSQL. Production refuses placeholder secrets.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TypeVar, overload
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cityops.feeds.settings import FeedSettings
from cityops.ingest.settings import IngestSettings
from cityops.logs import LogSettings

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "development-only-secret"}
"""Secrets anyone can read (in this repository, in examples): never a signing key."""
MIN_SECRET_LENGTH = 32
"""A production signing key at least this long (`secrets.token_urlsafe(32)` gives 43)."""
SECRET_KEY_FILE = "secret-key"
"""The install's own signing key in `data_dir`, when none is configured outside production."""


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
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signing key of login tokens, the same in every server process. Unset "
        "outside production: a key generated for this install on first use, kept in "
        f"data_dir/{SECRET_KEY_FILE} (0600); production refuses to start without one.",
    )
    token_ttl_minutes: int = Field(
        default=12 * 60, ge=1, le=7 * 24 * 60,
        description="How long a login token stays valid (default: one 12-hour shift).",
    )
    password_hash_workers: int = Field(
        default=1, ge=1, le=64,
        description="Threads that check and hash passwords (scrypt: about a quarter of a "
        "second and 32 MiB each), apart from the request threads: a burst of logins uses "
        "at most these, never the whole machine.",
    )
    password_hash_queue: int = Field(
        default=8, ge=0, le=10_000,
        description="Logins that may wait for a password thread; more are answered 503 "
        "with Retry-After at once.",
    )
    warning_sender: str = Field(
        default="command-centre@cityops.invalid", min_length=3, max_length=200,
        pattern=r"^[^\s,<&]+$",
        description="CAP `sender` of the centre's warnings: globally unique, e.g. an address "
        "under the city's Internet domain (no spaces, commas, '<' or '&').",
    )
    warning_sender_name: str = Field(
        default="City Emergency Command Centre", min_length=1, max_length=200,
        description="CAP `senderName`: the centre as people read it.",
    )
    warning_identifier_prefix: str = Field(
        default="cityops-warning", min_length=1, max_length=100, pattern=r"^[^\s,<&]+$",
        description="Prefix of the CAP identifiers of the warnings' messages "
        "(`<prefix>.<warning id>.<sequence>`).",
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
    photo_decode_max_mb: int = Field(
        default=256, ge=16, le=16_384,
        description="Memory one photo's decoding and re-encoding may take, decided from "
        "its header before a pixel is decoded: a JPEG over it is decoded at a reduced "
        "scale that fits (stored smaller), any other image over it is refused.",
    )
    photo_decode_concurrency: int = Field(
        default=2, ge=1, le=64,
        description="Photos decoded at once per server process; further uploads wait "
        "(at most 15 s, then 503 with Retry-After).",
    )
    open311_jurisdiction_id: str = Field(
        default="demo-city", min_length=1, max_length=200, pattern=r"^\S+$",
        description="This city's Open311 jurisdiction_id: clients may leave it out; one "
        "they send must be this.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Where the metrics port of the projection, ingest and feed processes "
        "listens (0.0.0.0 in a container).",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Port on which the projection, ingest and feed processes serve /metrics "
        "and /health (their --metrics-port); unset = none. The command centre serves both "
        "on its own port.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="If set, /metrics (of every process) answers only scrapes that send "
        "Authorization: Bearer <this token>; unset = open (keep the ports internal).",
    )
    health_projection_lag_events: int = Field(
        default=10_000, ge=0,
        description="/health is degraded while a projection is more than this many "
        "notifications behind its event store.",
    )
    health_projection_lag_s: float = Field(
        default=60.0, gt=0,
        description="... or while its position has stood still behind the head this long.",
    )
    health_feed_lag_events: int = Field(
        default=10_000, ge=0,
        description="/health is degraded while a feed (Kafka, webhooks) is more than this "
        "many notifications behind a stream.",
    )
    health_feed_lag_s: float = Field(
        default=120.0, gt=0,
        description="... or while its position has stood still behind the head this long.",
    )
    health_dead_letter_window_s: float = Field(
        default=300.0, gt=0,
        description="/health is degraded while ingest dead letters grew within this window.",
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="The ingest's section: CITYOPS_INGEST_* (ingest/settings.py).")
    feeds: FeedSettings = Field(
        default_factory=FeedSettings,
        description="The feeds' section: CITYOPS_FEEDS_* (feeds/settings.py).")
    log: LogSettings = Field(
        default_factory=LogSettings,
        description="How every process logs: CITYOPS_LOG_* (app/logs.py).")
    tile_url: str | None = Field(
        default=None,
        description="Optional base-map tile server for the dashboard, as "
        "https://tiles.example.org/{z}/{x}/{y}.png; unset = the base map is drawn from the "
        "city's own layers (districts, communities, unit grid), so it works with no internet.",
    )

    report_font: Path | None = Field(
        default=None,
        description="A TrueType font (.ttf, or .ttc: its first face) for the PDF reports of "
        "after-action reviews; unset = the first of Debian's CJK fonts found "
        "(fonts-wqy-microhei, fonts-wqy-zenhei, fonts-droid-fallback), so that Chinese "
        "names render, else DejaVu Sans (Latin only).",
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

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

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

    @field_validator("secret_key")
    @classmethod
    def _not_public(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "this signing key is a public placeholder: anyone could sign login tokens "
                "with it; set a real secret (python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))') or, outside production, leave it unset "
                f"for a key generated for this install (in the data folder, {SECRET_KEY_FILE})")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            if self.secret_key is None:
                raise ValueError("CITYOPS_SECRET_KEY must be set to a real secret in production "
                                 "(the same in every server process), e.g. python3 -c 'import "
                                 "secrets; print(secrets.token_urlsafe(32))'")
            if len(self.secret_key.get_secret_value()) < MIN_SECRET_LENGTH:
                raise ValueError(f"CITYOPS_SECRET_KEY must be at least {MIN_SECRET_LENGTH} "
                                 "characters long in production")
            if self.database_url is None:
                raise ValueError("production needs CITYOPS_DATABASE_URL (PostgreSQL)")
        return self

    def token_secret(self) -> str:
        """The key that signs login tokens: the configured one, or (outside production,
        where one is required) this install's own, generated on first use and kept in the
        data folder, so that a restart keeps logins and every process sharing the folder
        agrees. Never a constant: a public key would let anyone sign an admin's token."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return install_secret(self.data_dir / SECRET_KEY_FILE)

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
                "PROCESS_RECORDER_TOPIC": "cityops.event_chain:ChainedSQLiteProcessRecorder",
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
            "PROCESS_RECORDER_TOPIC": "cityops.event_chain:ChainedPostgresProcessRecorder",
        }
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env


SECTIONS: Mapping[str, type[BaseSettings]] = {"ingest": IngestSettings, "feeds": FeedSettings,
                                             "log": LogSettings}
"""The sections of the tree: field of `Settings` -> its class (own `CITYOPS_<SECTION>_`
prefix)."""

S = TypeVar("S", bound=BaseSettings)


def env_names(model: type[BaseSettings] = Settings) -> set[str]:
    """Every environment variable the settings (or one section) read."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names = set()
    for field in model.model_fields:
        if model is Settings and field in SECTIONS:
            names |= env_names(SECTIONS[field])
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def settings_problems(error: ValidationError) -> str:
    """What is wrong, one `VARIABLE: problem` per error, joined with '; '."""
    models: list[type[BaseSettings]] = [Settings, *SECTIONS.values()]
    model = next((m for m in models if m.__name__ == error.title), Settings)
    problems = []
    for problem in error.errors():
        location: tuple[Any, ...] = tuple(problem["loc"])
        owner: type[BaseSettings] = model
        if owner is Settings and location and location[0] in SECTIONS:
            owner, location = SECTIONS[str(location[0])], location[1:]
        prefix = str(owner.model_config.get("env_prefix", ""))
        name = f"{prefix}{'_'.join(str(p) for p in location)}".upper() if location else ""
        problems.append(f"{name}: {problem['msg']}" if name else str(problem["msg"]))
    return "; ".join(problems)


@overload
def read_settings(model: None = None, /, **overrides: object) -> Settings: ...
@overload
def read_settings(model: type[S], /, **overrides: object) -> S: ...
def read_settings(model: type[BaseSettings] | None = None, /,
                  **overrides: object) -> BaseSettings:
    """The settings (or one section) from the environment and the options given (None:
    not given) for a command-line entry point: a bad value is one line on stderr naming
    each variable and what is wrong, and exit status 2."""
    model = model or Settings
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    problems = []
    if model is Settings:
        # Each section first, so that a bad one does not hide what else is wrong.
        for name, section in SECTIONS.items():
            if name not in given:
                try:
                    given[name] = section()
                except ValidationError as error:
                    problems.append(settings_problems(error))
                    given[name] = section.model_construct()
    try:
        settings = model(**given)
    except ValidationError as error:
        problems.append(settings_problems(error))
    if problems:
        sys.stderr.write(f"Invalid settings: {'; '.join(problems)}\n")
        raise SystemExit(2) from None
    return settings


def install_secret(path: Path) -> str:
    """The secret kept in `path` (owner-only), made on first use. Processes starting at
    once agree: each writes its candidate to a file of its own and links it into place,
    and only the first link succeeds; the others read the winner's (complete) file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        # Readable by others, the key would let them sign any user's login.
        path.chmod(0o600)
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds no usable signing key (shorter than "
                         f"{MIN_SECRET_LENGTH} characters): delete it to have a new one made")
    return secret
