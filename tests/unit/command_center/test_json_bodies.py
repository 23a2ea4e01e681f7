"""The GeoJSON answers are written by orjson only where it writes the very bytes of the
standard encoder (as Starlette's JSONResponse calls it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.command_center.json_bodies import json_bytes, standard_json_bytes

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@settings(max_examples=500)
@given(DOCUMENTS)
def test_the_same_bytes_as_the_standard_encoder(document: Any) -> None:
    assert json_bytes(document) == standard_json_bytes(document)


def test_the_floats_orjson_writes_its_own_way_are_written_by_the_standard_encoder() -> None:
    for value in (1e-05, -1.5e-07, 0.00001234, 5e-324):
        assert json_bytes({"v": [value]}) == standard_json_bytes({"v": [value]})
        assert json_bytes([1, value]) == standard_json_bytes([1, value])
        assert json_bytes(value) == standard_json_bytes(value)
    assert json_bytes({1: "a"}) == standard_json_bytes({1: "a"})  # a key orjson refuses


def test_a_page_of_documents_with_uuids_is_written_by_orjson(monkeypatch: Any) -> None:
    # "e-" after a digit is in most UUIDs' text: it sent nearly every page of features to
    # the standard encoder, which was then most of the answer's time.
    from cityops.command_center import json_bodies

    standard: list[Any] = []

    def counted(content: Any) -> bytes:
        standard.append(content)
        return standard_json_bytes(content)

    monkeypatch.setattr(json_bodies, "standard_json_bytes", counted)
    page = {"type": "FeatureCollection", "features": [
        {"id": "6d2c5f1e-0b7a-4c1e-9f3e-2a1b3c4d5e6f", "properties": {"ratio": 0.5}},
        {"id": "text 1e-5 and 0.00001 inside strings", "properties": {"n": [1, 2.25]}}]}
    assert json_bytes(page) == standard_json_bytes(page)
    assert standard == []
    assert json_bytes({"small": 1e-05}) == standard_json_bytes({"small": 1e-05})
    assert standard == [{"small": 1e-05}]

