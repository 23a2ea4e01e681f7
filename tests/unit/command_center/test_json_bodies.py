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
    assert json_bytes({1: "a"}) == standard_json_bytes({1: "a"})  # a key orjson refuses
