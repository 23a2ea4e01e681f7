"""The city's map as the warning desk asks it: does a warning area lie in the city, and which
districts, streets and communities does it touch. Circles are drawn in the map's metric CRS
(`circle_zone`), areas are intersected in it, so that a sliver along a shared boundary from
rounding is not counted as touching a neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence

import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area
from cityops.domain.warnings.content import AdminAreaRef, AdminLevel, WarningCircle
from cityops.maps.citymap import CityMap
from cityops.maps.zones import circle_zone

MIN_TOUCH_M2 = 1.0
"""An area shares at least this much with a district, street or community to touch it (a
line along their boundary shares none)."""


class WarningAreaLocator:
    """Implements the warning desk's `WarningGeography` on a `CityMap`."""

    def __init__(self, city_map: CityMap) -> None:
        self.city_map = city_map
        projection = city_map.projection
        self._layers = [
            (level, frame.assign(geometry=projection.to_metric(frame.geometry.values)))
            for level, frame in ((AdminLevel.DISTRICT, city_map.districts),
                                 (AdminLevel.STREET, city_map.streets),
                                 (AdminLevel.COMMUNITY, city_map.communities))
        ]
        self._outline = projection.to_metric(city_map.boundary.shape)

    def metric_shape(self, polygons: Sequence[Area],
                     circles: Sequence[WarningCircle]) -> BaseGeometry:
        """The union of a warning area's polygons and circles, in the map's metric CRS."""
        projection = self.city_map.projection
        parts = [projection.to_metric(p.shape) for p in polygons]
        parts += [projection.to_metric(
            circle_zone(c.centre, c.radius_km * 1000, projection).shape) for c in circles]
        if not parts:
            raise InvalidValue("a warning needs an area: at least one polygon or circle")
        return shapely.union_all(parts)

    def check_in_city(self, polygons: Sequence[Area],
                      circles: Sequence[WarningCircle]) -> None:
        """Refuse an area that does not overlap the city at all."""
        shape = self.metric_shape(polygons, circles)
        if shapely.area(shapely.intersection(shape, self._outline)) < MIN_TOUCH_M2:
            minx, miny, maxx, maxy = self.city_map.bounds
            raise InvalidValue(
                f"the warning's area lies outside the city {self.city_map.name} (the city "
                f"spans longitude {minx:.4f}..{maxx:.4f}, latitude {miny:.4f}..{maxy:.4f})")

    def admin_areas(self, polygons: Sequence[Area],
                    circles: Sequence[WarningCircle]) -> tuple[AdminAreaRef, ...]:
        """Districts, then streets, then communities the area touches, each in code order."""
        shape = self.metric_shape(polygons, circles)
        touched: list[AdminAreaRef] = []
        for level, frame in self._layers:
            hits = frame[frame.geometry.intersects(shape)]
            for _, row in hits.sort_values("code").iterrows():
                if shapely.area(shapely.intersection(row.geometry, shape)) >= MIN_TOUCH_M2:
                    touched.append(AdminAreaRef(level=level, code=str(row["code"]),
                                                name=str(row["name"])))
        return tuple(touched)
