"""Photos taken in the field, stored once by the sha256 of their bytes in a table every
process shares.

Photos are evidence referred to by events (`photo:<sha256>` in a report or a verification),
not events themselves, so this is not a projection: like the latest sensor readings it lives
in the read models' base store, which a rebuild never drops, as a blob on SQLite and a bytea
on PostgreSQL. Content addressing makes an upload repeated after a lost answer harmless: the
same bytes land on the same row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cityops.domain.clock import Clock, system_clock
from cityops.domain.errors import InvalidValue
from cityops.storage import ReadStore, schema_transaction

PHOTO_SCHEME = "photo:"
"""How events refer to a stored photo: `photo:` followed by its sha256 in lowercase hex."""

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _ddl(dialect: str) -> str:
    blob = "BYTEA" if dialect == "postgres" else "BLOB"
    return f"""
CREATE TABLE IF NOT EXISTS field_photos (
    sha256 TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_role TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    data {blob} NOT NULL
)
"""


@dataclass(frozen=True)
class PhotoInfo:
    """What is known about a stored photo, without its bytes."""

    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    uploaded_by: str
    uploaded_role: str
    uploaded_at: datetime

    @property
    def reference(self) -> str:
        """How a report or a verification refers to it."""
        return f"{PHOTO_SCHEME}{self.sha256}"

    def as_dict(self) -> dict[str, object]:
        return {
            "photo": self.reference,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
            "uploaded_by": self.uploaded_by,
            "uploaded_role": self.uploaded_role,
            "uploaded_at": self.uploaded_at.isoformat(),
            "url": f"/photos/{self.sha256}",
        }


@dataclass(frozen=True)
class StoredPhoto:
    """A photo's bytes with what is known about them."""

    info: PhotoInfo
    data: bytes


def sha256_of_reference(reference: str) -> str:
    """The sha256 a `photo:<sha256>` reference names (a clear error for anything else)."""
    if not reference.startswith(PHOTO_SCHEME):
        raise InvalidValue(
            f"photo reference {reference[:80]!r} is not an uploaded photo: upload the photo "
            "with POST /photos and send the 'photo:<sha256>' reference it returns")
    digest = reference[len(PHOTO_SCHEME):]
    if not SHA256_HEX.fullmatch(digest):
        raise InvalidValue(
            f"photo reference {reference[:80]!r} must be 'photo:' followed by 64 lowercase "
            "hexadecimal digits (the sha256 POST /photos returned)")
    return digest


class PhotoStore:
    """The shared table of uploaded photos: save once by content, read by sha256."""

    def __init__(self, store: ReadStore, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock
        """Stamps uploads: the system's clock (the demo's or a drill's own time)."""
        with schema_transaction(store) as txn:
            txn.execute(_ddl(store.dialect))

    def save(self, *, sha256: str, data: bytes, content_type: str, width: int, height: int,
             uploaded_by: str, uploaded_role: str,
             at: datetime | None = None) -> tuple[PhotoInfo, bool]:
        """Store a photo unless the same bytes are already there; returns what is stored
        (the first upload's uploader and time) and whether this call added it."""
        if not SHA256_HEX.fullmatch(sha256):
            raise InvalidValue("a photo's sha256 must be 64 lowercase hexadecimal digits")
        moment = (at or self.clock()).astimezone(UTC)
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO field_photos (sha256, content_type, size_bytes, width, height, "
                "uploaded_by, uploaded_role, uploaded_at, data) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING "
                "RETURNING sha256",
                (sha256, content_type, len(data), width, height, uploaded_by, uploaded_role,
                 moment.isoformat(), data),
            )
            added = txn.fetchone() is not None
        info = self.info(sha256)
        assert info is not None, "a photo just saved is there"
        return info, added

    def info(self, sha256: str) -> PhotoInfo | None:
        """What is known about one photo (None if it was never uploaded)."""
        with self.store.transaction() as txn:
            txn.execute(f"SELECT {_INFO_COLUMNS} FROM field_photos WHERE sha256 = %s",
                        (sha256,))
            row = txn.fetchone()
        return _info(row) if row else None

    def get(self, sha256: str) -> StoredPhoto | None:
        """A photo with its bytes (None if it was never uploaded)."""
        with self.store.transaction() as txn:
            txn.execute(f"SELECT {_INFO_COLUMNS}, data FROM field_photos WHERE sha256 = %s",
                        (sha256,))
            row = txn.fetchone()
        if row is None:
            return None
        return StoredPhoto(info=_info(row[:-1]), data=bytes(row[-1]))

    def missing(self, sha256s: Iterable[str]) -> list[str]:
        """Which of these photos were never uploaded, in the order given."""
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return []
        with self.store.transaction() as txn:
            txn.execute(
                f"SELECT sha256 FROM field_photos WHERE sha256 IN "
                f"({', '.join(['%s'] * len(wanted))})", wanted)
            found = {str(r[0]) for r in txn.fetchall()}
        return [s for s in wanted if s not in found]


_INFO_COLUMNS = ("sha256, content_type, size_bytes, width, height, uploaded_by, uploaded_role, "
                 "uploaded_at")


def _info(row: tuple[object, ...]) -> PhotoInfo:
    sha256, content_type, size, width, height, by, role, at = row
    return PhotoInfo(sha256=str(sha256), content_type=str(content_type),
                     size_bytes=int(size),  # type: ignore[call-overload]
                     width=int(width), height=int(height),  # type: ignore[call-overload]
                     uploaded_by=str(by), uploaded_role=str(role),
                     uploaded_at=datetime.fromisoformat(str(at)))
