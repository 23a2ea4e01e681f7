"""Photos from the field: upload one (checked, stripped of metadata, stored by its sha256)
and fetch it back. Reports and verifications then refer to it as `photo:<sha256>`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cityops.command_center.dependencies import CurrentActor, SystemDep
from cityops.command_center.models.reference import PhotoPublic, PhotoUploadPublic
from cityops.command_center.photos import (
    PHOTO_FIELD,
    DecodeSlots,
    PhotoRefused,
    clean_photo,
    read_photo_upload,
)
from cityops.domain.actors import Role
from cityops.domain.errors import InvalidValue, NotFound, NotPermitted
from cityops.projections.photos import PhotoStore, sha256_of_reference

router = APIRouter(prefix="/photos", tags=["photos"])

UPLOAD_ROLES = frozenset({Role.INSPECTOR, Role.DEPARTMENT_USER, Role.DISPATCHER, Role.ADMIN})
"""Who takes photos: inspectors on patrol, department crews showing the result of their work
(evidence of handling), the centre (and the admin, who may do anything)."""

PHOTO_CACHE = "private, max-age=31536000, immutable"
"""A photo's address is its content's hash: it never changes, but it is only for logged-in
users, so shared caches must not keep it."""

Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$",
                             description="The photo's sha256, 64 lowercase hex digits")]


def _refused(error: PhotoRefused) -> JSONResponse:
    headers = ({"Retry-After": str(error.retry_after_s)}
               if error.retry_after_s is not None else None)
    return JSONResponse(status_code=error.status,
                        content={"error": error.code, "detail": error.message},
                        headers=headers)


@router.post("", status_code=201, response_model=PhotoUploadPublic, openapi_extra={
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [PHOTO_FIELD],
        "properties": {PHOTO_FIELD: {"type": "string", "format": "binary",
                                     "description": "One JPEG, PNG or WebP photo"}},
    }}}},
}, responses={
    200: {"description": "The same photo was uploaded before: its existing record",
          "model": PhotoUploadPublic},
    413: {"description": "Larger than the configured limit (refused while streaming)"},
    503: {"description": "Too many photos being processed: try again after Retry-After"},
    415: {"description": "Not a JPEG, PNG or WebP image, or not the type it was declared as"},
    422: {"description": "Unreadable image, too many pixels, or no file"},
})
async def upload_photo(request: Request, system: SystemDep, actor: CurrentActor) -> Response:
    """Upload one photo (multipart field `file`): it is checked, re-encoded without EXIF or
    any other metadata and stored once by its sha256; refer to it as the `photo` answered."""
    if actor.role not in UPLOAD_ROLES:
        roles = ", ".join(sorted(r.value for r in UPLOAD_ROLES))
        raise NotPermitted(f"{actor.role.value} {actor.user_id} may not upload photos; "
                           f"allowed roles: {roles}")
    settings = system.settings
    try:
        upload = await read_photo_upload(
            request.headers.get("content-type"), request.headers.get("content-length"),
            request.stream(), settings.photo_max_bytes)
        # Decoding and re-encoding take CPU time and memory: not on the event loop, and
        # only a few at once (each bounded in memory).
        slots: DecodeSlots = request.app.state.photo_decoding
        async with slots.slot():
            clean = await run_in_threadpool(clean_photo, upload, settings.photo_max_pixels,
                                            settings.photo_decode_max_mb * 2**20)
    except PhotoRefused as error:
        return _refused(error)
    info, added = await run_in_threadpool(
        system.photos.save, sha256=clean.sha256, data=clean.data,
        content_type=clean.content_type, width=clean.width, height=clean.height,
        uploaded_by=actor.user_id, uploaded_role=actor.role.value)
    return JSONResponse(status_code=201 if added else 200,
                        content={**info.as_dict(), "created": added},
                        headers={"Location": f"/photos/{info.sha256}"})


@router.get("/{sha256}", response_class=Response, responses={
    200: {"content": {media: {"schema": {"type": "string", "format": "binary"}}
                      for media in ("image/jpeg", "image/png", "image/webp")},
          "description": "The stored photo"},
    304: {"description": "Not modified (If-None-Match)"},
})
def get_photo(sha256: Sha256, request: Request, system: SystemDep,
              actor: CurrentActor) -> Response:
    """A stored photo, with its own content type; never sniffed, cached privately."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": PHOTO_CACHE, "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox",
               "Content-Disposition": f'inline; filename="{sha256[:16]}"'}
    if etag in request.headers.get("if-none-match", ""):
        if system.photos.info(sha256) is None:
            raise NotFound("photo", sha256)
        return Response(status_code=304, headers=headers)
    photo = system.photos.get(sha256)
    if photo is None:
        raise NotFound("photo", sha256)
    return Response(content=photo.data, media_type=photo.info.content_type, headers=headers)


@router.get("/{sha256}/info", response_model=PhotoPublic)
def photo_info(sha256: Sha256, system: SystemDep, actor: CurrentActor) -> dict[str, Any]:
    """What is known about a stored photo: type, size, pixels, who uploaded it and when."""
    info = system.photos.info(sha256)
    if info is None:
        raise NotFound("photo", sha256)
    return info.as_dict()


def require_uploaded(photos: PhotoStore, references: list[str], *, what: str = "photos",
                     only_photo_scheme: bool = False) -> None:
    """Refuse a command whose photo references name photos never uploaded (the domain keeps
    plain references; the command centre vouches that its own references exist).

    With `only_photo_scheme`, references in another form (a department's document number
    given as evidence) pass unchecked; otherwise every reference must be `photo:<sha256>`."""
    checked = [r for r in references if not only_photo_scheme or r.startswith("photo:")]
    wanted = [sha256_of_reference(r) for r in checked]
    missing = photos.missing(wanted)
    if missing:
        listed = ", ".join(f"photo:{s}" for s in missing)
        raise InvalidValue(f"{what}: no photo was uploaded for {listed}; upload each photo "
                           "with POST /photos first and send the reference it returns")
