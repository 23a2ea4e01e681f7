"""Fixtures shared by every test layer."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def demo_city() -> Any:
    """The demo city shipped with the package, loaded once (it is immutable)."""
    from cityops.maps import load_demo_city

    return load_demo_city()
