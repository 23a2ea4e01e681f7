"""What the domain needs from the outside world, as protocols (implemented in `maps/` and
`projections/`, wired by the composition root)."""

from __future__ import annotations

from typing import Protocol

from cityops.domain.geometry import GeoPoint


class GridLocator(Protocol):
    """Locates a point to its unit grid cell code (None when it is outside the city)."""

    def locate_cell(self, point: GeoPoint) -> str | None: ...


class CellInspectors(Protocol):
    """Who patrols each unit grid cell (the city's map): the inspector who reports there and
    verifies the cases there."""

    def inspector_of(self, cell_code: str) -> str | None:
        """The inspector assigned to a cell (None for an unknown cell)."""

    def is_inspector(self, inspector_id: str) -> bool:
        """Whether an inspector of that id patrols cells of the city."""


class CityGrid(GridLocator, CellInspectors, Protocol):
    """The unit grid as the grid-case application needs it: where a point is, who patrols
    it."""
