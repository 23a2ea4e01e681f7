"""The key that signs login tokens is never a public constant: production refuses to start
without a real one, and elsewhere each install makes its own and keeps it private."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cityops.cli import app as cityops_app
from cityops.settings import SECRET_KEY_FILE, Settings, install_secret

REAL_SECRET = "a" * 8 + "-real-production-signing-key-0123456789"


def test_the_default_environment_signs_with_a_key_of_its_own_never_the_old_constant(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.secret_key is None
    secret = settings.token_secret()
    assert secret != "development-only-secret"
    assert len(secret) >= 32
    kept = tmp_path / "data" / SECRET_KEY_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # The same key after a restart (logins survive it); another install has another.
    assert Settings(data_dir=tmp_path / "data").token_secret() == secret
    assert Settings(data_dir=tmp_path / "other").token_secret() != secret


def test_an_install_key_readable_by_others_is_made_private_again(tmp_path: Path) -> None:
    secret = install_secret(tmp_path / SECRET_KEY_FILE)
    (tmp_path / SECRET_KEY_FILE).chmod(0o644)
    assert install_secret(tmp_path / SECRET_KEY_FILE) == secret
    assert stat.S_IMODE((tmp_path / SECRET_KEY_FILE).stat().st_mode) == 0o600


def test_processes_starting_at_once_agree_on_the_install_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: install_secret(tmp_path / SECRET_KEY_FILE), range(16)))
    assert len(secrets) == 1
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_KEY_FILE]


def test_a_damaged_install_key_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="delete it"):
        install_secret(tmp_path / SECRET_KEY_FILE)


@pytest.mark.parametrize("public", ["development-only-secret", "changeme", "secret", ""])
def test_a_public_placeholder_key_is_refused_in_any_environment(public: str) -> None:
    with pytest.raises(ValidationError, match="public placeholder"):
        Settings(secret_key=public)


def test_production_refuses_a_missing_or_short_key() -> None:
    url = "postgresql://cityops:pw@db:5432/cityops"
    with pytest.raises(ValidationError, match="must be set to a real secret"):
        Settings(environment="production", database_url=url)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(environment="production", database_url=url, secret_key="short-but-set")
    settings = Settings(environment="production", database_url=url, secret_key=REAL_SECRET)
    assert settings.token_secret() == REAL_SECRET


def test_cityops_serve_in_production_without_a_key_says_why_it_will_not_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("CITYOPS_DATABASE_URL", "postgresql://cityops:pw@db:5432/cityops")
    monkeypatch.delenv("CITYOPS_SECRET_KEY", raising=False)
    ran = CliRunner().invoke(cityops_app, ["serve"])
    assert ran.exit_code == 2
    assert "CITYOPS_SECRET_KEY must be set to a real secret" in ran.output
