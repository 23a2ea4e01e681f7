"""Read-model documents are written and decoded by orjson (issue 14: the standard decoder
was most of a radius question's client time, the standard encoder a tenth of a rebuild's),
with exactly the values the standard encoder and decoder give."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityops.storage import json_text, json_value, row_document

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_any_json_text_decodes_as_the_standard_decoder_decodes_it(value: object) -> None:
    """Integers of any size included (orjson alone made a float of one beyond 64 bits)."""
    text = json.dumps(value)
    assert json_value(text) == json.loads(text)
    assert json_value(text.encode()) == json.loads(text)
    assert json_value(memoryview(text.encode())) == json.loads(text)


@pytest.mark.parametrize("text", [
    '{"reading": NaN}',                     # not JSON, yet the standard decoder takes it
    '{"n": 123456789012345678901234567890}',  # beyond 64 bits: orjson makes a float
    '{"n": -98765432109876543210, "m": [18446744073709551616]}',
    '{"s": "\\ud800"}',                     # a lone surrogate
])
def test_what_orjson_refuses_is_decoded_by_the_standard_decoder(text: str) -> None:
    decoded = json_value(text)
    expected = json.loads(text)
    if "NaN" in text:
        assert math.isnan(decoded["reading"])
    else:
        assert decoded == expected


def test_a_row_document_is_text_on_sqlite_and_a_dict_already_on_postgresql() -> None:
    document = {"id": "c1", "status": "reported", "light": None}
    assert row_document(json.dumps(document)) == document
    assert row_document(document) is document


def test_a_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        json_value("{not json")


FINITE_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(FINITE_JSON_VALUES)
def test_a_document_written_reads_back_as_the_standard_encoder_wrote_it(value: object) -> None:
    text = json_text(value)
    assert json_value(text) == json.loads(json.dumps(value)) == json.loads(text)


def test_a_document_is_written_with_its_keys_sorted() -> None:
    assert json_text({"b": 1, "a": {"d": None, "c": [2, 1]}}) == \
        '{"a":{"c":[2,1],"d":null},"b":1}'


def test_what_orjson_cannot_write_is_written_by_the_standard_encoder() -> None:
    assert json.loads(json_text({"n": 2**70})) == {"n": 2**70}
    assert json_text({1: "one", 2: "two"}) == json.dumps({1: "one", 2: "two"}, sort_keys=True)


def test_a_number_that_is_not_finite_is_written_null() -> None:
    """Not JSON (PostgreSQL refuses the standard encoder's `Infinity`); the domain keeps none."""
    assert json_text({"x": math.inf, "y": math.nan}) == '{"x":null,"y":null}'
