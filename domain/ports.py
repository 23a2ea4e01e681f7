"""What the domain needs from the outside world, as protocols (implemented in `maps/` and
`projections/`, wired by the composition root)."""

from __future__ import annotations

from typing import Protocol

from cityops.domain.geometry import GeoPoint


class GridLocator(Protocol):
    """Locates a point to its unit grid cell code (None when it is outside the city)."""

    def locate_cell(self, point: GeoPoint) -> str | None: ...
