"""Taking in a photo from the field safely: the upload is read as it streams and refused as
soon as it is too large, its type is decided by its bytes (magic numbers, then a real decode
with Pillow), never by what the client declares, an image that would decode to too many
pixels is refused before it is decoded, and what is stored is a fresh re-encoding of the
pixels, so EXIF (GPS position, device serials, owner names) and every other metadata chunk
are gone. Inspectors photograph from home and from their phones: their positions must not
leak through a photo.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MIME_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""The only image formats accepted (what every phone camera and browser produces)."""

DECLARED_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
UNDECLARED = {"", "application/octet-stream"}
"""Declared types that say nothing: the bytes decide."""

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart boundaries, part headers and small text fields around the photo."""

PHOTO_FIELD = "file"


class PhotoRefused(Exception):
    """An upload that is not accepted, with the HTTP status and a message saying why (and,
    for a busy server, when to try again)."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


DECODE_WAIT_S = 15.0
"""How long an upload waits for a decoding slot before it is answered 503."""
DECODE_RETRY_AFTER_S = 5


class DecodeSlots:
    """At most `concurrency` photos decoded at once in this process (each may take up to
    `photo_decode_max_mb`); an upload that cannot get a slot within `DECODE_WAIT_S` is
    answered 503 with Retry-After instead of piling up."""

    def __init__(self, concurrency: int, wait_s: float = DECODE_WAIT_S) -> None:
        self.concurrency = concurrency
        self.wait_s = wait_s
        self._semaphore: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _of_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore[0] is not loop:
            # An app started again runs on another loop (tests): a semaphore of its own.
            self._semaphore = (loop, asyncio.Semaphore(self.concurrency))
        return self._semaphore[1]

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        semaphore = self._of_this_loop()
        try:
            await asyncio.wait_for(semaphore.acquire(), self.wait_s)
        except TimeoutError:
            raise PhotoRefused(503, "busy", "too many photos are being processed right now; "
                               f"try again in {DECODE_RETRY_AFTER_S} s",
                               DECODE_RETRY_AFTER_S) from None
        try:
            yield
        finally:
            semaphore.release()


@dataclass
class UploadedFile:
    """The photo part of a multipart upload, as received."""

    filename: str | None
    declared_type: str | None
    data: bytes


@dataclass(frozen=True)
class CleanPhoto:
    """A photo re-encoded from its pixels only, ready to store."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB ({size:,} bytes)"


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


async def read_photo_upload(content_type: str | None, content_length: str | None,
                            body: AsyncIterator[bytes], max_bytes: int) -> UploadedFile:
    """The one photo of a `multipart/form-data` body (field `file`), read as it arrives:
    a body announced or found larger than `max_bytes` is refused at once, not read to the
    end."""
    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise PhotoRefused(415, "unsupported-media-type",
                           "send the photo as multipart/form-data with one file field named "
                           f"'{PHOTO_FIELD}'")
    limit = max_bytes + FORM_OVERHEAD_BYTES
    too_large = PhotoRefused(413, "photo-too-large",
                             f"the photo is larger than the limit of {_megabytes(max_bytes)}")
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            raise PhotoRefused(400, "bad-request", "Content-Length is not a number") from None
        if announced > limit:
            raise too_large

    parts: list[_Part] = []
    header_field: list[bytes] = []
    header_value: list[bytes] = []

    def begin() -> None:
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        name = b"".join(header_field).decode("latin-1").strip().lower()
        parts[-1].headers[name] = b"".join(header_value).decode("latin-1").strip()
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        part = parts[-1]
        _, disposition = parse_options_header(part.headers.get("content-disposition", ""))
        raw_name = disposition.get(b"name")
        raw_filename = disposition.get(b"filename")
        part.name = raw_name.decode("utf-8", "replace") if raw_name is not None else None
        part.filename = (raw_filename.decode("utf-8", "replace")
                         if raw_filename is not None else None)
        part.content_type = part.headers.get("content-type")
        if part.name == PHOTO_FIELD and sum(p.name == PHOTO_FIELD for p in parts) > 1:
            raise PhotoRefused(422, "one-photo-per-upload",
                               "send one photo per upload (each gets its own reference)")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.size += end - start
        if part.size > max_bytes:
            raise too_large
        part.chunks.append(data[start:end])

    parser = MultipartParser(boundary, {
        "on_part_begin": begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    })
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        raise PhotoRefused(400, "bad-multipart",
                           f"the multipart body could not be read: {error}") from None
    photo = next((p for p in parts if p.name == PHOTO_FIELD), None)
    if photo is None:
        raise PhotoRefused(422, "photo-missing",
                           f"no file field named '{PHOTO_FIELD}' in the upload")
    if photo.size == 0:
        raise PhotoRefused(422, "photo-empty", "the uploaded photo is empty")
    return UploadedFile(filename=photo.filename, declared_type=photo.content_type,
                        data=b"".join(photo.chunks))


def sniff_format(data: bytes) -> str | None:
    """The image format the magic bytes at the start say, if it is one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _declared(declared_type: str | None) -> str:
    mime = (declared_type or "").split(";", 1)[0].strip().lower()
    return DECLARED_ALIASES.get(mime, mime)


def bytes_per_pixel(mode: str) -> int:
    """What one pixel of an image in `mode` takes in Pillow's memory (RGB is kept in 4)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def decoding_cost(size: tuple[int, int], mode: str, out_mode: str) -> int:
    """Bytes that decoding and re-encoding an image takes at its peak: the decoded pixels,
    a conversion if the stored mode differs, and the fresh copy that is encoded."""
    pixels = size[0] * size[1]
    converted = bytes_per_pixel(out_mode) if out_mode != mode else 0
    return pixels * (bytes_per_pixel(mode) + converted + bytes_per_pixel(out_mode))


JPEG_DRAFT_SCALES = (2, 4, 8)
"""The reductions a JPEG decoder can apply while decoding (DCT scaling)."""


def clean_photo(upload: UploadedFile, max_pixels: int,
                max_decode_bytes: int = 2**62) -> CleanPhoto:
    """Check the uploaded bytes really are a JPEG, PNG or WebP photo of a sensible pixel
    count, and re-encode its pixels (upright, as the camera meant) without any metadata.

    Decoding is bounded in memory by `max_decode_bytes`, decided from the header before a
    pixel is decoded: a JPEG over it is decoded at a reduced scale that fits (the JPEG
    decoder does that at no extra cost; the answer's width and height say what was kept),
    any other image over it is refused."""
    image_format = sniff_format(upload.data)
    declared = _declared(upload.declared_type)
    if image_format is None:
        said = f" (declared {declared})" if declared not in UNDECLARED else ""
        raise PhotoRefused(415, "unsupported-photo-type",
                           f"the file is not a JPEG, PNG or WebP image{said}: only photos in "
                           "those formats are accepted")
    actual = MIME_BY_FORMAT[image_format]
    if declared not in UNDECLARED and declared != actual:
        raise PhotoRefused(415, "photo-type-mismatch",
                           f"the file is declared as {declared} but its content is a "
                           f"{image_format} image ({actual}); send it with its real type")
    try:
        image = Image.open(io.BytesIO(upload.data), formats=[image_format])
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(None, max_pixels, str(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise PhotoRefused(422, "photo-unreadable",
                           f"the {image_format} image could not be read: {error}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise _too_many_pixels((width, height), max_pixels)
        out_mode = _stored_mode(image, image_format)
        if decoding_cost(image.size, image.mode, out_mode) > max_decode_bytes:
            _reduce_or_refuse(image, image_format, out_mode, max_decode_bytes)
        try:
            image.load()
            # In place: no second copy of the pixels when the photo is upright already.
            ImageOps.exif_transpose(image, in_place=True)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise PhotoRefused(422, "photo-unreadable",
                               f"the {image_format} image could not be decoded: {error}"
                               ) from None
        icc_profile = image.info.get("icc_profile")
        fresh = _pixels_only(image, out_mode)
    data = _encode(fresh, image_format, icc_profile)
    _give_memory_back()
    return CleanPhoto(data=data, content_type=actual, width=fresh.width,
                      height=fresh.height, sha256=hashlib.sha256(data).hexdigest())


def _reduce_or_refuse(image: Image.Image, image_format: str, out_mode: str,
                      max_decode_bytes: int) -> None:
    """Have a JPEG decoded at the smallest reduction that fits `max_decode_bytes`; refuse
    any other image that does not fit."""
    width, height = image.size
    if image_format == "JPEG":
        for scale in JPEG_DRAFT_SCALES:
            reduced = (-(-width // scale), -(-height // scale))
            if decoding_cost(reduced, image.mode, out_mode) <= max_decode_bytes:
                image.draft(image.mode, reduced)
                return
    cost = decoding_cost(image.size, image.mode, out_mode)
    raise PhotoRefused(
        422, "photo-too-large-to-decode",
        f"the image is {width:,} x {height:,} pixels ({image.mode}): decoding it would take "
        f"{cost / 2**20:,.0f} MiB, over the {max_decode_bytes / 2**20:,.0f} MiB one photo "
        "may take; send a smaller image (a JPEG is scaled down instead)")


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int,
                     detail: str = "") -> PhotoRefused:
    what = (f"{size[0]:,} x {size[1]:,} pixels ({size[0] * size[1] / 1e6:,.1f} megapixels)"
            if size else f"far more pixels than any photo ({detail})")
    return PhotoRefused(422, "photo-too-many-pixels",
                        f"the image is {what}; at most {max_pixels / 1e6:,.1f} megapixels are "
                        "accepted (a small file that decodes to a huge image is refused)")


def _give_memory_back() -> None:
    """Hand the freed pixel blocks back to the system. Pillow allocates an image in 16 MiB
    blocks; glibc serves blocks of that size from its heaps once a freed one has raised its
    mmap threshold, and keeps them when they are freed: a process that decoded large photos
    stayed hundreds of MiB larger for good. (No-op where the C library has no malloc_trim.)"""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def _stored_mode(image: Image.Image, image_format: str) -> str:
    """The mode the photo is stored in (what its format holds without loss)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if image_format == "JPEG":
        return image.mode if image.mode in ("RGB", "L") else "RGB"
    if image_format == "PNG":
        return image.mode if image.mode in ("RGB", "RGBA", "L", "LA") else (
            "RGBA" if has_alpha else "RGB")
    return "RGBA" if has_alpha else "RGB"


def _pixels_only(image: Image.Image, mode: str) -> Image.Image:
    """A new image made of the pixels alone (no EXIF, XMP, text chunks or thumbnails are
    carried over: a fresh image has no metadata to carry). The decoded image is released
    as soon as its pixels are copied, so at most two copies exist at once."""
    pixels = image if image.mode == mode else image.convert(mode)
    fresh = Image.new(mode, pixels.size)
    fresh.paste(pixels)
    pixels.close()
    image.close()
    return fresh


def _encode(fresh: Image.Image, image_format: str, icc_profile: bytes | None) -> bytes:
    """The stored bytes of a metadata-free image; only the colour profile, which says how
    to show the colours, is written."""
    out = io.BytesIO()
    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if image_format == "JPEG":
        fresh.save(out, "JPEG", quality=90, **options)
    elif image_format == "PNG":
        fresh.save(out, "PNG", **options)
    else:
        fresh.save(out, "WEBP", quality=90, **options)
    fresh.close()
    return out.getvalue()
