"""The administrative hierarchy district -> street -> community, checked as a whole: every code
is its parent's code plus one part (so an area code prefix selects everything inside it, as
routing rules expect), and the children of each parent tile it, without gaps or overlaps
beyond a stated tolerance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps.crs import MetricProjection
from cityops.maps.layers import AdminLevel
from cityops.maps.validity import refuse

CODE_SEPARATOR = "-"
NOISE_M2 = 1e-4
"""Overlaps and gaps smaller than this are floating-point noise, not worth a note."""
DEFAULT_TILING_TOLERANCE_M2 = 1.0
"""Overlaps and gaps up to this area are noted but accepted: digitising noise."""


class TilingIssueKind(StrEnum):
    """How children fail to tile their parent."""

    GAP = "gap"
    OVERLAP = "overlap"
    OUTSIDE_PARENT = "outside-parent"


@dataclass(frozen=True)
class TilingIssue:
    """A gap, overlap or overflow between administrative areas, with where to look."""

    kind: TilingIssueKind
    level: AdminLevel
    codes: tuple[str, ...]
    area_m2: float
    where: GeoPoint

    def describe(self) -> str:
        """One line naming the areas, the size and a point to look at."""
        at = f"near ({self.where.lon:.6f}, {self.where.lat:.6f})"
        size = f"{self.area_m2:,.2f} m²"
        if self.kind is TilingIssueKind.GAP:
            return f"the {self.level.plural} of {self.codes[0]} leave a gap of {size} {at}"
        if self.kind is TilingIssueKind.OVERLAP:
            return f"{self.level.plural} {' and '.join(self.codes)} overlap by {size} {at}"
        return (
            f"{self.level.value} {self.codes[0]} extends {size} outside its parent "
            f"{self.codes[1]} {at}"
        )


def check_child_codes(
    level: AdminLevel, codes: Sequence[str], parents: Sequence[str], known_parents: set[str],
    label: str,
) -> None:
    """Each child names an existing parent and its code is the parent's code plus one part."""
    parent_level = level.parent
    if parent_level is None:
        raise ValueError("districts have no parent")
    problems = []
    for code, parent in zip(codes, parents, strict=True):
        if parent not in known_parents:
            problems.append(f"{level.value} {code}: unknown {parent_level.value} {parent!r}")
            continue
        local = code[len(parent) + 1:]
        if not code.startswith(parent + CODE_SEPARATOR) or not local or CODE_SEPARATOR in local:
            problems.append(
                f"{level.value} {code}: its code must be its {parent_level.value}'s code "
                f"{parent!r} followed by '-' and one part (for example {parent}-01)"
            )
    refuse(label, problems)


def _where(geometry: BaseGeometry, projection: MetricProjection) -> GeoPoint:
    point = projection.to_wgs84(shapely.point_on_surface(geometry))
    return GeoPoint(lon=float(point.x), lat=float(point.y))


def _largest(geometry: BaseGeometry) -> BaseGeometry:
    parts = shapely.get_parts(geometry)
    return max(parts, key=lambda p: p.area) if len(parts) else geometry


def check_tiling(
    level: AdminLevel,
    codes: Sequence[str],
    shapes: Sequence[BaseGeometry],
    projection: MetricProjection,
    parent_codes: Sequence[str] | None = None,
    parent_shapes: dict[str, BaseGeometry] | None = None,
) -> list[TilingIssue]:
    """Gaps, overlaps and overflows among the areas of one level (metric shapes), above
    floating-point noise; the caller decides which are too large to accept."""
    issues: list[TilingIssue] = []
    geoms = np.asarray(shapes, dtype=object)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    if len(left):
        overlaps = shapely.intersection(geoms[left], geoms[right])
        for i, j, shape in zip(left, right, overlaps, strict=True):
            area = float(shapely.area(shape))
            if area > NOISE_M2:
                issues.append(TilingIssue(
                    kind=TilingIssueKind.OVERLAP, level=level, codes=(codes[i], codes[j]),
                    area_m2=area, where=_where(_largest(shape), projection),
                ))
    if parent_codes is None or parent_shapes is None:
        return issues
    children: dict[str, list[int]] = defaultdict(list)
    for index, parent in enumerate(parent_codes):
        children[parent].append(index)
    for parent, parent_shape in parent_shapes.items():
        members = children.get(parent, [])
        covered = shapely.union_all(geoms[members]) if members else shapely.Polygon()
        gap = shapely.difference(parent_shape, covered)
        if gap.area > NOISE_M2:
            issues.append(TilingIssue(
                kind=TilingIssueKind.GAP, level=level, codes=(parent,),
                area_m2=float(gap.area), where=_where(_largest(gap), projection),
            ))
        for index in members:
            outside = shapely.difference(geoms[index], parent_shape)
            if outside.area > NOISE_M2:
                issues.append(TilingIssue(
                    kind=TilingIssueKind.OUTSIDE_PARENT, level=level,
                    codes=(codes[index], parent), area_m2=float(outside.area),
                    where=_where(_largest(outside), projection),
                ))
    return issues


@dataclass(frozen=True)
class AdministrativeHierarchy:
    """Districts, streets and communities in WGS84, checked to nest and tile each other."""

    districts: gpd.GeoDataFrame
    """Columns code, name, geometry."""
    streets: gpd.GeoDataFrame
    """Columns code, name, district, geometry."""
    communities: gpd.GeoDataFrame
    """Columns code, name, street, district, geometry."""
    minor_issues: tuple[TilingIssue, ...]
    """Gaps and overlaps accepted because they are within the tolerance."""

    @classmethod
    def build(
        cls,
        districts: gpd.GeoDataFrame,
        streets: gpd.GeoDataFrame,
        communities: gpd.GeoDataFrame,
        projection: MetricProjection,
        *,
        tolerance_m2: float = DEFAULT_TILING_TOLERANCE_M2,
        sources: Mapping[AdminLevel, str] | None = None,
    ) -> AdministrativeHierarchy:
        """Check WGS84 layers (as made by `cityops.maps.layers`) against each other;
        `sources` names where each level came from (its file), for the messages."""
        named = {level: level.plural for level in AdminLevel} | dict(sources or {})
        district_codes = [str(c) for c in districts["code"]]
        for code in district_codes:
            if CODE_SEPARATOR in code:
                raise InvalidValue(
                    f"{named[AdminLevel.DISTRICT]}: district code {code!r} must not contain "
                    "'-': the separator marks the levels of the hierarchy"
                )
        check_child_codes(AdminLevel.STREET, list(streets["code"]), list(streets["district"]),
                          set(district_codes), named[AdminLevel.STREET])
        check_child_codes(AdminLevel.COMMUNITY, list(communities["code"]),
                          list(communities["street"]), set(streets["code"]),
                          named[AdminLevel.COMMUNITY])
        street_district = dict(zip(streets["code"], streets["district"], strict=True))
        communities = communities.copy()
        communities["district"] = [street_district[s] for s in communities["street"]]
        communities = communities[["code", "name", "street", "district", "geometry"]]

        metric = {
            level: list(projection.to_metric(np.asarray(frame.geometry.values)))
            for level, frame in (
                (AdminLevel.DISTRICT, districts),
                (AdminLevel.STREET, streets),
                (AdminLevel.COMMUNITY, communities),
            )
        }
        issues = check_tiling(AdminLevel.DISTRICT, district_codes, metric[AdminLevel.DISTRICT],
                              projection)
        issues += check_tiling(
            AdminLevel.STREET, list(streets["code"]), metric[AdminLevel.STREET], projection,
            list(streets["district"]),
            dict(zip(district_codes, metric[AdminLevel.DISTRICT], strict=True)),
        )
        issues += check_tiling(
            AdminLevel.COMMUNITY, list(communities["code"]), metric[AdminLevel.COMMUNITY],
            projection, list(communities["street"]),
            dict(zip(streets["code"], metric[AdminLevel.STREET], strict=True)),
        )
        serious = [i for i in issues if i.area_m2 > tolerance_m2]
        refuse(
            f"administrative layers (tolerance {tolerance_m2:g} m²)",
            [f"{named[i.level]}: {i.describe()}" for i in serious],
        )
        return cls(
            districts=districts[["code", "name", "geometry"]].reset_index(drop=True),
            streets=streets[["code", "name", "district", "geometry"]].reset_index(drop=True),
            communities=communities.reset_index(drop=True),
            minor_issues=tuple(i for i in issues if i.area_m2 <= tolerance_m2),
        )
