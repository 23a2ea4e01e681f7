"""The live hub's messages are written by orjson (a snapshot is megabytes of documents) and
read back as the values they were made of."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cityops.command_center.live import _dumps


def test_a_message_reads_back_as_its_values() -> None:
    moment = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    message = {"type": "change", "at": moment, "name": "鼓楼区", "small": 1e-05,
               "nested": [{"lon": 118.79, "open": True, "none": None}]}
    text = _dumps(message)
    assert json.loads(text) == {**message, "at": str(moment)}  # a time, as str writes it
    assert "鼓楼区" in text  # UTF-8, not escaped
    assert " " not in text.replace(str(moment), "")  # compact


def test_what_orjson_cannot_write_is_written_by_the_standard_encoder() -> None:
    message = {"type": "position", "position": 2**70}
    assert json.loads(_dumps(message)) == message
