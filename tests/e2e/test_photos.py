"""Photos from the field through HTTP: what is accepted, what is refused and why, what is
stored (no GPS position, no metadata), and that cases refer only to photos really uploaded."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image, PngImagePlugin

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.account import PasswordHasher
from cityops.settings import Settings

MAX_BYTES = 512 * 1024
MAX_PIXELS = 4_000_000
REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


@pytest.fixture
def system(tmp_path: Path, demo_city: Any) -> CitySystem:
    """The system of this module's tests: small photo limits, so that refusals are cheap."""
    built = build_system(Settings(data_dir=tmp_path, photo_max_bytes=MAX_BYTES,
                                  photo_max_pixels=MAX_PIXELS), city=demo_city)
    built.accounts.hasher = PasswordHasher(n=2**10, r=8, p=1)
    return built


def photo_of(fmt: str, size: tuple[int, int] = (640, 480), **save: Any) -> bytes:
    """A real photo-like image: a gradient with a block of colour, encoded by Pillow."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((200, 40, 40), (width // 4, height // 4, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def exif_with_gps() -> Image.Exif:
    """EXIF as a phone writes it: maker, orientation (rotated 90°) and the GPS position of
    the inspector's home."""
    exif = Image.Exif()
    exif[MAKE] = "InspectorPhone"
    exif[ORIENTATION] = 6
    exif[GPS_IFD] = {1: "N", 2: (32.0, 3.0, 17.5), 3: "E", 4: (118.0, 48.0, 3.25)}
    return exif


def upload(api: Any, data: bytes, *, content_type: str = "image/jpeg",
           filename: str = "photo.jpg", role: str | None = "inspector",
           dept: str | None = None) -> Any:
    return api.client.post("/photos", headers=api.headers(role=role, department=dept),
                           files={"file": (filename, data, content_type)})


def uploaded(api: Any, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    response = upload(api, data, content_type=content_type)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def fetch(api: Any, sha256: str, role: str = "inspector") -> Any:
    return api.client.get(f"/photos/{sha256}", headers=api.headers(role=role))


def refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


def test_a_jpeg_is_stored_by_the_hash_of_what_is_served(api: Any) -> None:
    body = uploaded(api, photo_of("JPEG", quality=85))
    assert body["photo"] == f"photo:{body['sha256']}"
    assert (body["content_type"], body["width"], body["height"]) == ("image/jpeg", 640, 480)
    assert (body["uploaded_by"], body["uploaded_role"], body["created"]) == (
        "inspector-1", "inspector", True)
    served = fetch(api, body["sha256"], role="leader")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == body["sha256"]
    assert len(served.content) == body["size_bytes"]
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert "private" in served.headers["cache-control"]
    assert Image.open(io.BytesIO(served.content)).format == "JPEG"
    again = api.client.get(f"/photos/{body['sha256']}",
                           headers={**api.headers(role="inspector"),
                                    "If-None-Match": served.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_the_same_photo_uploaded_twice_is_stored_once(api: Any) -> None:
    data = photo_of("PNG")
    first = uploaded(api, data, "image/png")
    response = api.client.post("/photos", headers=api.headers(role="dispatcher"),
                               files={"file": ("again.png", data, "image/png")})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["photo"] == first["photo"] and second["created"] is False
    # The record keeps who uploaded it first.
    assert second["uploaded_by"] == "inspector-1"


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_png_and_webp_are_accepted_with_their_real_type(api: Any, fmt: str, mime: str) -> None:
    body = uploaded(api, photo_of(fmt), mime)
    assert (body["content_type"], body["width"], body["height"]) == (mime, 640, 480)
    served = fetch(api, body["sha256"])
    assert served.headers["content-type"] == mime
    assert Image.open(io.BytesIO(served.content)).format == fmt


def test_an_undeclared_type_is_decided_by_the_bytes(api: Any) -> None:
    body = uploaded(api, photo_of("PNG"), "application/octet-stream")
    assert body["content_type"] == "image/png"


def test_gps_position_and_other_exif_are_stripped(api: Any) -> None:
    original = photo_of("JPEG", exif=exif_with_gps())
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # it is there
    body = uploaded(api, original)
    stored = Image.open(io.BytesIO(fetch(api, body["sha256"]).content))
    exif = stored.getexif()
    assert not exif.get_ifd(GPS_IFD)
    assert MAKE not in exif and ORIENTATION not in exif
    assert "exif" not in stored.info
    assert b"InspectorPhone" not in fetch(api, body["sha256"]).content
    # The orientation was applied to the pixels before it was dropped: upright, 480 x 640.
    assert (body["width"], body["height"]) == (480, 640) == stored.size


def test_png_text_chunks_and_exif_are_stripped(api: Any) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Inspector Zhang, 12 Home Street")
    original = photo_of("PNG", pnginfo=info, exif=exif_with_gps())
    body = uploaded(api, original, "image/png")
    content = fetch(api, body["sha256"]).content
    stored = Image.open(io.BytesIO(content))
    assert not stored.getexif().get_ifd(GPS_IFD)
    assert "Author" not in stored.info and b"Home Street" not in content


def test_a_png_renamed_jpg_with_a_lying_content_type_is_refused(api: Any) -> None:
    detail = refusal(upload(api, photo_of("PNG"), content_type="image/jpeg",
                            filename="holiday.jpg"), 415)
    assert "declared as image/jpeg" in detail and "PNG" in detail


def test_a_text_file_is_refused(api: Any) -> None:
    detail = refusal(upload(api, b"not a photo at all\n" * 20, content_type="text/plain",
                            filename="notes.txt"), 415)
    assert "not a JPEG, PNG or WebP image" in detail
    disguised = refusal(upload(api, b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                               content_type="image/jpeg"), 415)
    assert "not a JPEG, PNG or WebP image" in disguised


def test_a_gif_is_refused_even_though_it_is_an_image(api: Any) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    assert "not a JPEG, PNG or WebP" in refusal(
        upload(api, gif.getvalue(), content_type="image/gif"), 415)


def test_an_oversized_upload_is_refused(api: Any) -> None:
    big = photo_of("JPEG") + b"\0" * MAX_BYTES
    detail = refusal(upload(api, big), 413)
    assert "larger than the limit of 0.5 MB (524,288 bytes)" in detail


def test_a_decompression_bomb_is_refused_before_it_is_decoded(api: Any) -> None:
    # 5,000 x 5,000 one-bit pixels compress to a few kilobytes: a small file, a huge image.
    bomb = io.BytesIO()
    Image.new("1", (5000, 5000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 50_000
    detail = refusal(upload(api, bomb.getvalue(), content_type="image/png"), 422)
    assert "5,000 x 5,000 pixels (25.0 megapixels)" in detail
    assert "at most 4.0 megapixels" in detail


def test_a_forged_header_announcing_billions_of_pixels_is_refused(api: Any) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    forged = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
              + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    detail = refusal(upload(api, forged, content_type="image/png"), 422)
    assert "megapixels are accepted" in detail


def test_a_truncated_jpeg_is_refused_as_unreadable(api: Any) -> None:
    data = photo_of("JPEG")
    detail = refusal(upload(api, data[: len(data) // 3]), 422)
    assert "could not be" in detail


def test_an_upload_without_a_file_field_is_refused(api: Any) -> None:
    response = api.client.post("/photos", headers=api.headers(role="inspector"),
                               files={"picture": ("p.jpg", photo_of("JPEG"), "image/jpeg")})
    assert "no file field named 'file'" in refusal(response, 422)
    not_multipart = api.client.post("/photos", headers=api.headers(role="inspector"),
                                    content=photo_of("JPEG"))
    assert "multipart/form-data" in refusal(not_multipart, 415)


def test_one_photo_per_upload(api: Any) -> None:
    response = api.client.post(
        "/photos", headers=api.headers(role="inspector"),
        files=[("file", ("a.jpg", photo_of("JPEG"), "image/jpeg")),
               ("file", ("b.jpg", photo_of("JPEG", quality=50), "image/jpeg"))])
    assert "one photo per upload" in refusal(response, 422)


@pytest.mark.parametrize(("role", "dept", "status"), [
    ("inspector", None, 201), ("dispatcher", None, 201), ("admin", None, 201),
    ("department-user", "sanitation", 201), ("leader", None, 403),
    ("hotline-operator", None, 403), ("planner", None, 403), (None, None, 401),
])
def test_who_may_upload(api: Any, role: str | None, dept: str | None, status: int) -> None:
    # Each role its own bytes: a repeat of the same photo would answer 200.
    data = photo_of("JPEG", quality=60 + len(role or ""))
    response = upload(api, data, role=role, dept=dept)
    assert response.status_code == status, response.text


def test_only_logged_in_users_see_photos(api: Any) -> None:
    sha256 = uploaded(api, photo_of("JPEG"))["sha256"]
    assert api.client.get(f"/photos/{sha256}").status_code == 401
    for role, dept in (("department-user", "roads"), ("leader", None), ("planner", None)):
        assert api.client.get(f"/photos/{sha256}",
                              headers=api.headers(role=role, department=dept)).status_code == 200
    info = api.get(f"/photos/{sha256}/info", role="leader")
    assert (info["sha256"], info["uploaded_by"]) == (sha256, "inspector-1")


def test_unknown_and_malformed_photo_addresses(api: Any) -> None:
    missing = "0" * 64
    assert f"photo {missing} does not exist" in refusal(fetch(api, missing), 404)
    assert fetch(api, "not-a-hash").status_code == 422
    assert fetch(api, "A" * 64).status_code == 422


def test_a_report_refers_only_to_uploaded_photos(api: Any) -> None:
    photo = uploaded(api, photo_of("JPEG"))["photo"]
    case = api.post("/grid-cases", {**REPORT, "photos": [photo]}, role="inspector", expect=201)
    assert case["photos"] == [photo]
    never = "photo:" + hashlib.sha256(b"never uploaded").hexdigest()
    refused = api.post("/grid-cases", {**REPORT, "photos": [photo, never]}, role="inspector",
                       expect=422)
    assert f"no photo was uploaded for {never}" in refused["detail"]
    bad = api.post("/grid-cases", {**REPORT, "photos": ["IMG_0042.jpg"]}, role="inspector",
                   expect=422)
    assert "'IMG_0042.jpg' is not an uploaded photo" in bad["detail"]
    too_many = api.post("/grid-cases", {**REPORT, "photos": [photo] * 13}, role="inspector",
                        expect=422)
    assert "photos" in too_many["detail"]


def test_a_verification_refers_only_to_uploaded_photos(api: Any) -> None:
    case = api.post("/grid-cases", REPORT, role="inspector", expect=201)
    path = f"/grid-cases/{case['id']}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch")
    api.post(f"{path}/handle", {"result": "Cleared", "evidence": ["work order 17"]},
             role="department-user", dept="sanitation")
    never = "photo:" + "f" * 64
    inspector = api.cell_inspector(case)
    refused = api.post(f"{path}/verify", {"fixed": True, "photos": [never]}, role="inspector",
                       user=inspector, expect=422)
    assert "no photo was uploaded" in refused["detail"]
    assert api.get(path)["status"] == "handled"  # nothing half-done
    after = uploaded(api, photo_of("JPEG", quality=70))["photo"]
    verified = api.post(f"{path}/verify", {"fixed": True, "photos": [after]}, role="inspector",
                        user=inspector)
    assert verified["status"] == "verified"
    history = api.history(path)
    assert history[-1]["event"] == "Verified"
    assert after in str(history[-1])


def test_evidence_naming_a_photo_must_name_an_uploaded_one(api: Any) -> None:
    case = api.post("/grid-cases", REPORT, role="inspector", expect=201)
    path = f"/grid-cases/{case['id']}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch")
    refused = api.post(f"{path}/handle", {"result": "Cleared",
                                          "evidence": ["photo:" + "a" * 64]},
                       role="department-user", dept="sanitation", expect=422)
    assert refused["detail"].startswith("evidence: no photo was uploaded")


# --- a real HTTP server: the upload is refused while it streams in ---------------------


@pytest.fixture
def served(api: Any) -> Iterator[tuple[str, int, str]]:
    """The same app behind a real uvicorn on a free port: (host, port, an inspector's
    token)."""
    token = api.token(role="inspector")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(api.system, manage_lifecycle=False),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port, token
    server.should_exit = True
    thread.join(timeout=10)


def test_a_huge_upload_is_refused_while_it_streams_not_after(
        served: tuple[str, int, str]) -> None:
    host, port, token = served
    boundary = "cityops-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"huge.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    # A chunked body (no Content-Length to refuse it by) that would go on for 1 GB.
    request = (f"POST /photos HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    block = b"\xff\xd8\xff" + b"\0" * (64 * 1024 - 3)
    sent = 0
    answer = b""
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(request + f"{len(head):x}\r\n".encode() + head + b"\r\n")
        connection.setblocking(False)
        while sent < 1024**3:
            try:
                answer += connection.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            if answer:
                break
            try:
                connection.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                sent += len(block)
            except BlockingIOError:
                time.sleep(0.005)
            except ConnectionError:
                break
        connection.setblocking(True)
        try:
            while b"\r\n\r\n" not in answer:
                more = connection.recv(65536)
                if not more:
                    break
                answer += more
        except ConnectionError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the limit" in answer or b"\r\n\r\n" in answer
    # Refused after about the limit, not after the whole gigabyte (socket buffers hold a few
    # megabytes more than the server read).
    assert sent < 32 * 1024 * 1024, f"{sent:,} bytes were sent before the refusal"
