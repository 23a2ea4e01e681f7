"""The photo table behaves the same embedded (SQLite blob) and in production (PostgreSQL
bytea, shared by every process): written once by content, read back byte for byte."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cityops.domain.errors import InvalidValue
from cityops.projections.photos import PhotoStore, sha256_of_reference
from cityops.storage import PostgresReadStore, ReadStore, SqliteReadStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadStore]:
    if request.param == "sqlite":
        opened: ReadStore = SqliteReadStore(tmp_path / "readmodels.sqlite")
    else:
        url = request.getfixturevalue("postgres_url")
        # A schema of its own per test: the session database is shared.
        opened = PostgresReadStore(url, f"photos_{os.getpid()}_{id(tmp_path)}")
    yield opened
    opened.close()


def test_a_photo_is_stored_once_and_read_back_byte_for_byte(store: ReadStore) -> None:
    photos = PhotoStore(store)
    data = bytes(range(256)) * 40 + b"\0\xff\0"  # every byte value, NULs included
    sha = hashlib.sha256(data).hexdigest()
    at = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    info, added = photos.save(sha256=sha, data=data, content_type="image/png", width=3,
                              height=2, uploaded_by="insp-D01-01", uploaded_role="inspector",
                              at=at)
    assert added and info.reference == f"photo:{sha}" and info.size_bytes == len(data)
    again, added_again = photos.save(sha256=sha, data=data, content_type="image/png", width=3,
                                     height=2, uploaded_by="dispatcher-1",
                                     uploaded_role="dispatcher")
    assert not added_again and again == info  # the first upload's record stays
    stored = photos.get(sha)
    assert stored is not None and stored.data == data and stored.info.uploaded_at == at
    # A second store object over the same database (another process) sees it.
    assert PhotoStore(store).info(sha) == info


def test_missing_lists_the_photos_never_uploaded(store: ReadStore) -> None:
    photos = PhotoStore(store)
    known = hashlib.sha256(b"known").hexdigest()
    photos.save(sha256=known, data=b"known", content_type="image/jpeg", width=1, height=1,
                uploaded_by="u", uploaded_role="inspector")
    unknown = ["1" * 64, "2" * 64]
    assert photos.missing([known, unknown[0], known, unknown[1]]) == unknown
    assert photos.missing([]) == []
    assert photos.get("3" * 64) is None and photos.info("3" * 64) is None


def test_references_and_hashes_are_checked() -> None:
    sha = "ab" * 32
    assert sha256_of_reference(f"photo:{sha}") == sha
    with pytest.raises(InvalidValue, match="is not an uploaded photo"):
        sha256_of_reference("s3://bucket/1.jpg")
    with pytest.raises(InvalidValue, match="64 lowercase hexadecimal"):
        sha256_of_reference("photo:" + "AB" * 32)
