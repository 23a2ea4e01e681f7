"""Fixtures of the map tests: the shipped demo city, and editable copies of its files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cityops.maps import City, load_demo_city
from cityops.maps.city import demo_city_directory


@pytest.fixture(scope="session")
def demo() -> City:
    """The demo city as the product loads it (cached, immutable)."""
    return load_demo_city()


@pytest.fixture
def city_copy(tmp_path: Path) -> Path:
    """A private copy of the demo city's directory, for tests that break or change a file."""
    target = tmp_path / "city"
    shutil.copytree(demo_city_directory(), target)
    return target


def read_json(path: Path) -> Any:
    """A JSON (or GeoJSON) file's content."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Replace a JSON (or GeoJSON) file's content."""
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def edit_json(city_copy: Path) -> Callable[[str, Callable[[Any], None]], Path]:
    """Change one file of the copied city in place: `edit_json("city.json", change)`."""

    def edit(name: str, change: Callable[[Any], None]) -> Path:
        path = city_copy / name
        data = read_json(path)
        change(data)
        write_json(path, data)
        return path

    return edit


def _feature(collection: dict[str, Any], feature_id: str, key: str = "id") -> dict[str, Any]:
    for item in collection["features"]:
        if item["properties"].get(key) == feature_id:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no feature {feature_id}")


@pytest.fixture
def find_feature() -> Callable[..., dict[str, Any]]:
    """`find_feature(collection, "HS-01")`: the feature itself (edits change the collection);
    `key="code"` for administrative layers."""
    return _feature
