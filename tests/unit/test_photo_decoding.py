"""Decoding a photo is bounded in memory, decided from its header before a pixel is decoded,
and in concurrency (issue 10, item 6): a small PNG of 7000 x 7000 pixels used to cost about
500 MB while it was decoded, four at once 3 GB."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from PIL import Image, ImageFile

from cityops.command_center.photos import (
    DecodeSlots,
    PhotoRefused,
    UploadedFile,
    clean_photo,
    decoding_cost,
)

MIB = 2**20


def encoded(fmt: str, size: tuple[int, int]) -> UploadedFile:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, fmt)
    return UploadedFile(filename=f"x.{fmt.lower()}", declared_type=None, data=out.getvalue())


def test_the_cost_of_decoding_counts_every_copy_of_the_pixels() -> None:
    # RGB is held in 4 bytes a pixel: decoded, then the fresh copy that is encoded.
    assert decoding_cost((7000, 7000), "RGB", "RGB") == 7000 * 7000 * 8
    # A palette image is converted on the way: one more copy.
    assert decoding_cost((100, 100), "P", "RGB") == 100 * 100 * (1 + 4 + 4)


def test_a_png_too_large_to_decode_in_budget_is_refused_from_its_header(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproduction: a 160 kB PNG of 7000 x 7000 pixels was decoded (about 500 MB)."""
    bomb = encoded("PNG", (7000, 7000))
    assert len(bomb.data) < 300_000

    def never(self: Any) -> None:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    with pytest.raises(PhotoRefused) as refused:
        clean_photo(bomb, max_pixels=50_000_000, max_decode_bytes=256 * MIB)
    assert refused.value.status == 422
    assert refused.value.code == "photo-too-large-to-decode"
    assert "374 MiB, over the 256 MiB" in refused.value.message


def test_a_jpeg_over_the_budget_is_decoded_at_a_reduced_scale() -> None:
    photo = encoded("JPEG", (4000, 3000))
    clean = clean_photo(photo, max_pixels=50_000_000, max_decode_bytes=32 * MIB)
    assert (clean.width, clean.height) == (2000, 1500)
    assert Image.open(io.BytesIO(clean.data)).size == (2000, 1500)
    # Within the budget, nothing is reduced.
    clean = clean_photo(photo, max_pixels=50_000_000, max_decode_bytes=256 * MIB)
    assert (clean.width, clean.height) == (4000, 3000)


def test_a_jpeg_too_large_even_at_an_eighth_is_refused() -> None:
    photo = encoded("JPEG", (4000, 3000))
    with pytest.raises(PhotoRefused) as refused:
        clean_photo(photo, max_pixels=50_000_000, max_decode_bytes=1 * MIB)
    assert refused.value.code == "photo-too-large-to-decode"


def test_uploads_beyond_the_decoding_slots_wait_then_get_503() -> None:
    async def scenario() -> None:
        slots = DecodeSlots(concurrency=1, wait_s=0.05)
        async with slots.slot():
            with pytest.raises(PhotoRefused) as refused:
                async with slots.slot():
                    pass
        assert refused.value.status == 503
        assert refused.value.retry_after_s is not None
        async with slots.slot():  # free again
            pass

    asyncio.run(scenario())
