"""Validity of imported polygons: an invalid ring or a self-intersection is either refused with
the feature named, or repaired with `shapely.make_valid` and the repair listed, never used as
it is (an invalid polygon gives wrong answers to point-in-polygon and area questions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.maps.crs import MetricProjection

POLYGONAL = ("Polygon", "MultiPolygon")
MAX_LISTED_PROBLEMS = 20
"""An error lists this many problems at most, so that a broken file gives a readable message."""


class InvalidGeometryPolicy(StrEnum):
    """What an import does with an invalid polygon: refuse the file, or repair and report."""

    REFUSE = "refuse"
    REPAIR = "repair"


@dataclass(frozen=True)
class GeometryRepair:
    """An invalid polygon that was repaired on import, kept so that the repair is reported."""

    layer: str
    feature: str
    problem: str
    area_after_m2: float

    def describe(self) -> str:
        """One line for a log or a report."""
        return (
            f"{self.layer}: feature {self.feature}: {self.problem}; repaired with make_valid "
            f"(area now {self.area_after_m2:,.0f} m²)"
        )


def refuse(label: str, problems: Sequence[str]) -> None:
    """Raise one error listing every problem found in a file (or do nothing if none)."""
    if not problems:
        return
    listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    suffix = f"; and {more} more" if more > 0 else ""
    raise InvalidValue(f"{label}: {listed}{suffix}")


def _polygonal_part(geometry: BaseGeometry) -> BaseGeometry | None:
    """The polygons of a repaired geometry (make_valid may add the collapsed lines/points)."""
    if geometry.geom_type in POLYGONAL:
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in POLYGONAL]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if merged.geom_type in POLYGONAL and not merged.is_empty else None


def check_polygons(
    geometries: Sequence[Any],
    feature_names: Sequence[str],
    label: str,
    policy: InvalidGeometryPolicy,
    projection: MetricProjection,
    what: str = "feature",
) -> tuple[list[BaseGeometry], list[GeometryRepair]]:
    """Polygons of a layer checked one by one: missing, non-polygonal or invalid geometries
    are refused (all of them listed in one error), or invalid ones repaired and reported."""
    problems: list[str] = []
    repairs: list[GeometryRepair] = []
    checked: list[BaseGeometry] = []
    for given, name in zip(geometries, feature_names, strict=True):
        where = f"{what} {name}"
        geometry = given
        if geometry is None or (isinstance(geometry, float) and np.isnan(geometry)):
            problems.append(f"{where} has no geometry")
            continue
        if geometry.is_empty:
            problems.append(f"{where} has an empty geometry")
            continue
        if geometry.geom_type not in POLYGONAL:
            problems.append(f"{where} is a {geometry.geom_type}; it must be a polygon")
            continue
        if geometry.has_z:
            geometry = shapely.force_2d(geometry)  # heights play no part in the grid
        if geometry.is_valid:
            checked.append(geometry)
            continue
        reason = shapely.is_valid_reason(geometry)
        if policy is InvalidGeometryPolicy.REFUSE:
            problems.append(
                f"{where} has an invalid geometry ({reason}); fix it, or import with "
                "invalid geometries set to 'repair'"
            )
            continue
        repaired = _polygonal_part(shapely.make_valid(geometry, method="structure"))
        if repaired is None:
            problems.append(
                f"{where} has an invalid geometry ({reason}) that cannot be repaired: "
                "nothing of it is a polygon"
            )
            continue
        area = float(shapely.area(projection.to_metric(repaired)))
        repairs.append(GeometryRepair(layer=label, feature=str(name), problem=reason,
                                      area_after_m2=area))
        checked.append(repaired)
    refuse(label, problems)
    return checked, repairs
