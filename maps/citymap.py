"""The city's map, loaded once and never changed: the administrative hierarchy and the unit
grid, with the inspector of each cell. It answers where a point is (cell, community, street,
district) one point at a time or for arrays of points, and gives its layers as GeoDataFrames.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.maps.crs import WGS84_CRS, MetricProjection
from cityops.maps.grid import GridSpec, generate_unit_grid
from cityops.maps.hierarchy import (
    CODE_SEPARATOR,
    DEFAULT_TILING_TOLERANCE_M2,
    AdministrativeHierarchy,
    TilingIssue,
    check_child_codes,
    check_tiling,
)
from cityops.maps.layers import AdminLevel
from cityops.maps.validity import GeometryRepair, refuse

SNAP_M = 0.5
"""A point in a gap between cells narrower than this (digitising noise) goes to the nearest
cell, so that a point inside the city is never 'nowhere'."""


@dataclass(frozen=True)
class Inspector:
    """A grid inspector and the communities whose cells they patrol."""

    id: str
    name: str
    district: str
    communities: tuple[str, ...]


@dataclass(frozen=True)
class GridLocation:
    """Where a point is in the city's hierarchy, and who patrols it."""

    cell_code: str
    community_code: str
    community_name: str
    street_code: str
    street_name: str
    district_code: str
    district_name: str
    inspector_id: str

    @property
    def area_codes(self) -> tuple[str, str, str, str]:
        """Codes from the largest area to the cell (what area-scoped rules match against)."""
        return (self.district_code, self.street_code, self.community_code, self.cell_code)


@dataclass(frozen=True)
class GridCell:
    """One unit grid cell: its code, its parents, its inspector and its shape."""

    code: str
    community_code: str
    street_code: str
    district_code: str
    inspector_id: str
    area_m2: float
    shape: Area
    centre: GeoPoint
    """A point inside the cell (a label position; the centroid of an odd shape may be outside)."""


@dataclass(frozen=True)
class AdministrativeArea:
    """A district, street or community: its code, name, parent and shape."""

    level: AdminLevel
    code: str
    name: str
    parent_code: str | None
    shape: Area
    area_m2: float


@dataclass(frozen=True)
class ImportReport:
    """What was accepted with a remark when the map was loaded: repaired geometries and gaps
    or overlaps within the tolerance. Empty for a clean city."""

    repairs: tuple[GeometryRepair, ...] = ()
    minor_tiling_issues: tuple[TilingIssue, ...] = ()

    def lines(self) -> list[str]:
        """The remarks, one line each, for a log or the admin screen."""
        return [r.describe() for r in self.repairs] + [
            f"accepted within tolerance: {i.describe()}" for i in self.minor_tiling_issues
        ]


def assign_inspectors(
    communities: gpd.GeoDataFrame, inspectors: Sequence[Inspector], label: str = "inspectors"
) -> dict[str, str]:
    """Community code -> inspector id; every community must have exactly one inspector, and
    an inspector works in one district."""
    district_of = dict(zip(communities["code"], communities["district"], strict=True))
    problems: list[str] = []
    owner: dict[str, str] = {}
    seen: set[str] = set()
    for inspector in inspectors:
        if inspector.id in seen:
            problems.append(f"inspector {inspector.id} appears more than once")
        seen.add(inspector.id)
        if not inspector.communities:
            problems.append(f"inspector {inspector.id} has no communities")
        for community in inspector.communities:
            if community not in district_of:
                problems.append(f"inspector {inspector.id}: unknown community {community!r}")
            elif district_of[community] != inspector.district:
                problems.append(
                    f"inspector {inspector.id} works in {inspector.district} but community "
                    f"{community} is in {district_of[community]}"
                )
            elif community in owner:
                problems.append(
                    f"community {community} is assigned to both {owner[community]} and "
                    f"{inspector.id}"
                )
            else:
                owner[community] = inspector.id
    problems += [f"community {c} has no inspector" for c in district_of if c not in owner]
    refuse(label, problems)
    return owner


DEFAULT_GRID = GridSpec()
NO_REMARKS = ImportReport()


class CityMap:
    """The city's administrative hierarchy and unit grid, immutable once built: locating
    points, looking up cells and areas, and the layers (WGS84 GeoDataFrames) for other code.

    Implements the domain's `GridLocator` port (`locate_cell`).
    """

    __slots__ = (
        "_by_code",
        "_cells",
        "_cells_metric",
        "_hierarchy",
        "_inspectors",
        "_locations",
        "_name",
        "_outline",
        "_outline_metric",
        "_projection",
        "_report",
        "_tree",
    )

    def __init__(
        self,
        name: str,
        projection: MetricProjection,
        hierarchy: AdministrativeHierarchy,
        inspectors: Sequence[Inspector],
        *,
        grid: GridSpec = DEFAULT_GRID,
        cells: gpd.GeoDataFrame | None = None,
        report: ImportReport = NO_REMARKS,
        tiling_tolerance_m2: float = DEFAULT_TILING_TOLERANCE_M2,
        cells_source: str = "grid cells",
    ) -> None:
        """Build the map from a checked hierarchy; the grid is generated from the
        communities unless `cells` (a WGS84 layer with code, community and optionally
        inspector columns, as read by `cityops.maps.layers`) is given."""
        self._name = name
        self._projection = projection
        self._hierarchy = hierarchy
        self._inspectors = MappingProxyType({i.id: i for i in inspectors})
        owner = assign_inspectors(hierarchy.communities, inspectors)
        communities = hierarchy.communities
        metric_communities = list(projection.to_metric(np.asarray(communities.geometry.values)))
        if cells is None:
            grid_cells = generate_unit_grid(
                list(communities["code"]), metric_communities, projection.crs, grid
            )
            minor: tuple[TilingIssue, ...] = ()
        else:
            grid_cells, minor = check_imported_cells(
                cells, communities, projection, tiling_tolerance_m2, cells_source
            )
        report = ImportReport(report.repairs, report.minor_tiling_issues + minor)
        self._report = report

        parents = communities.set_index("code")
        grid_cells = grid_cells.sort_values("code", kind="stable").reset_index(drop=True)
        grid_cells["street"] = [parents.at[c, "street"] for c in grid_cells["community"]]
        grid_cells["district"] = [parents.at[c, "district"] for c in grid_cells["community"]]
        own = grid_cells.get("inspector")
        grid_cells["inspector"] = [
            own[k] if own is not None and own[k] else owner[c]
            for k, c in enumerate(grid_cells["community"])
        ]
        unknown = sorted(set(grid_cells["inspector"]) - set(self._inspectors))
        refuse(cells_source, [f"unknown inspector {i!r}" for i in unknown])
        grid_cells["area_m2"] = shapely.area(np.asarray(grid_cells.geometry.values))
        columns = ["code", "community", "street", "district", "inspector", "area_m2", "geometry"]
        self._cells_metric = grid_cells[columns]
        self._cells = gpd.GeoDataFrame(
            grid_cells[columns[:-1]],
            geometry=projection.to_wgs84(np.asarray(grid_cells.geometry.values)),
            crs=WGS84_CRS,
        )
        self._by_code = {code: k for k, code in enumerate(grid_cells["code"])}

        names = {
            **dict(zip(hierarchy.districts["code"], hierarchy.districts["name"], strict=True)),
            **dict(zip(hierarchy.streets["code"], hierarchy.streets["name"], strict=True)),
            **dict(zip(communities["code"], communities["name"], strict=True)),
        }
        self._locations = tuple(
            GridLocation(
                cell_code=row.code, community_code=row.community,
                community_name=names[row.community], street_code=row.street,
                street_name=names[row.street], district_code=row.district,
                district_name=names[row.district], inspector_id=row.inspector,
            )
            for row in grid_cells.itertuples()
        )
        self._tree = shapely.STRtree(np.asarray(grid_cells.geometry.values))
        districts_metric = projection.to_metric(np.asarray(hierarchy.districts.geometry.values))
        self._outline_metric = shapely.union_all(districts_metric)
        self._outline = Area(wkt=shapely.union_all(hierarchy.districts.geometry.values).wkt)

    # --- what the map is ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The city's name."""
        return self._name

    @property
    def projection(self) -> MetricProjection:
        """The metric CRS where the map measures."""
        return self._projection

    @property
    def report(self) -> ImportReport:
        """Repairs and tolerated gaps/overlaps of the import (empty for a clean city)."""
        return self._report

    @property
    def boundary(self) -> Area:
        """The city's outline (the union of its districts), in WGS84."""
        return self._outline

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the city."""
        minx, miny, maxx, maxy = self._outline.shape.bounds
        return float(minx), float(miny), float(maxx), float(maxy)

    @property
    def inspectors(self) -> Mapping[str, Inspector]:
        """Inspectors by id."""
        return self._inspectors

    # --- layers for other code (copies: the map itself never changes) --------------------

    @property
    def districts(self) -> gpd.GeoDataFrame:
        """Districts (code, name, geometry) in WGS84."""
        return self._hierarchy.districts.copy()

    @property
    def streets(self) -> gpd.GeoDataFrame:
        """Streets (code, name, district, geometry) in WGS84."""
        return self._hierarchy.streets.copy()

    @property
    def communities(self) -> gpd.GeoDataFrame:
        """Communities (code, name, street, district, geometry) in WGS84."""
        return self._hierarchy.communities.copy()

    @property
    def cells(self) -> gpd.GeoDataFrame:
        """Unit grid cells (code, community, street, district, inspector, area_m2, geometry)
        in WGS84."""
        return self._cells.copy()

    def layer(self, level: AdminLevel | str) -> gpd.GeoDataFrame:
        """The layer of one level of the hierarchy."""
        try:
            level = AdminLevel(level)
        except ValueError:
            raise InvalidValue(
                f"unknown level {level!r}; levels are {', '.join(AdminLevel)}"
            ) from None
        return {
            AdminLevel.DISTRICT: self.districts,
            AdminLevel.STREET: self.streets,
            AdminLevel.COMMUNITY: self.communities,
            AdminLevel.CELL: self.cells,
        }[level]

    # --- locating points ----------------------------------------------------------------

    def cell_indices(self, lons: Any, lats: Any) -> npt.NDArray[np.intp]:
        """Row of `cells` holding each point, -1 outside the city (vectorised).

        A point on the edge between cells goes to the first of them in code order.
        """
        lon = np.atleast_1d(np.asarray(lons, dtype=float))
        lat = np.atleast_1d(np.asarray(lats, dtype=float))
        if lon.ndim != 1 or lon.shape != lat.shape:
            raise InvalidValue("longitudes and latitudes must be two lists of the same length")
        bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            hint = " (are longitude and latitude swapped?)" if abs(lat[k]) > 90 else ""
            raise InvalidValue(f"point #{k + 1} ({lon[k]}, {lat[k]}) is not a WGS84 "
                               f"longitude/latitude{hint}")
        xs, ys = self._projection.points_to_metric(lon, lat)
        points = shapely.points(xs, ys)
        sentinel = len(self._locations)
        found = np.full(len(points), sentinel, dtype=np.intp)
        hit, cell = self._tree.query(points, predicate="intersects")
        np.minimum.at(found, hit, cell)
        missing = np.flatnonzero(found == sentinel)
        if len(missing):
            near, cell = self._tree.query_nearest(points[missing], max_distance=SNAP_M)
            # query_nearest lists every equidistant cell: keep the first per point.
            np.minimum.at(found, missing[near], cell)
        found[found == sentinel] = -1
        return found

    def locate_many(self, lons: Any, lats: Any) -> list[GridLocation | None]:
        """Where each of many points is (None outside the city); one spatial query for all."""
        return [self._locations[k] if k >= 0 else None for k in self.cell_indices(lons, lats)]

    def locate(self, point: GeoPoint) -> GridLocation | None:
        """Cell, community, street, district and inspector of a point (None outside)."""
        return self.locate_many([point.lon], [point.lat])[0]

    def locate_cell(self, point: GeoPoint) -> str | None:
        """The unit grid cell code of a point (None outside): the domain's GridLocator."""
        location = self.locate(point)
        return location.cell_code if location is not None else None

    def contains(self, point: GeoPoint) -> bool:
        """Whether a point is in the city (in one of its cells)."""
        return self.locate(point) is not None

    def distance_outside_m(self, point: GeoPoint) -> float:
        """How far a point is from the city, in metres (0 inside)."""
        xs, ys = self._projection.points_to_metric([point.lon], [point.lat])
        return float(shapely.distance(self._outline_metric, shapely.Point(xs[0], ys[0])))

    def require_inside(self, point: GeoPoint) -> GridLocation:
        """The location of a point that must be in the city; outside is an error saying how
        far outside (and whether swapping longitude and latitude would put it inside)."""
        location = self.locate(point)
        if location is not None:
            return location
        distance = self.distance_outside_m(point)
        where = f"{distance:,.0f} m" if distance < 10_000 else f"{distance / 1000:,.1f} km"
        hint = ""
        if -90 <= point.lon <= 90 and self.contains(GeoPoint(lon=point.lat, lat=point.lon)):
            hint = "; with longitude and latitude swapped it would be inside"
        raise InvalidValue(
            f"point ({point.lon:.6f}, {point.lat:.6f}) is outside {self._name}, "
            f"{where} from its boundary{hint}"
        )

    # --- looking things up ----------------------------------------------------------------

    def cell(self, code: str) -> GridCell:
        """A unit grid cell by its code."""
        try:
            k = self._by_code[code]
        except KeyError:
            raise InvalidValue(f"unknown grid cell {code!r}") from None
        row = self._cells.iloc[k]
        metric_shape = self._cells_metric.geometry.iloc[k]
        centre = self._projection.to_wgs84(shapely.point_on_surface(metric_shape))
        return GridCell(
            code=code, community_code=row["community"], street_code=row["street"],
            district_code=row["district"], inspector_id=row["inspector"],
            area_m2=float(row["area_m2"]), shape=Area(wkt=row.geometry.wkt),
            centre=GeoPoint(lon=float(centre.x), lat=float(centre.y)),
        )

    def administrative_area(self, code: str) -> AdministrativeArea:
        """A district, street or community by its code."""
        for level, frame, parent in (
            (AdminLevel.DISTRICT, self._hierarchy.districts, None),
            (AdminLevel.STREET, self._hierarchy.streets, "district"),
            (AdminLevel.COMMUNITY, self._hierarchy.communities, "street"),
        ):
            match = frame[frame["code"] == code]
            if len(match):
                row = match.iloc[0]
                metric = self._projection.to_metric(row.geometry)
                return AdministrativeArea(
                    level=level, code=code, name=row["name"],
                    parent_code=row[parent] if parent else None,
                    shape=Area(wkt=row.geometry.wkt), area_m2=float(metric.area),
                )
        raise InvalidValue(f"unknown district, street or community {code!r}")

    def cells_in(self, area_code: str) -> list[str]:
        """Codes of the cells inside a district, street or community (or the cell itself)."""
        if area_code in self._by_code:
            return [area_code]
        self.administrative_area(area_code)
        prefix = area_code + CODE_SEPARATOR
        return [c for c in self._by_code if c.startswith(prefix)]

    def inspector_of(self, cell_code: str) -> str | None:
        """The inspector who patrols a cell (None for an unknown cell): the domain's
        CellInspectors."""
        k = self._by_code.get(cell_code)
        return None if k is None else self._locations[k].inspector_id

    def is_inspector(self, inspector_id: str) -> bool:
        """Whether `inspector_id` is one of the city's grid inspectors."""
        return inspector_id in self._inspectors

    def cells_of_inspector(self, inspector_id: str) -> list[str]:
        """Codes of the cells an inspector patrols."""
        if inspector_id not in self._inspectors:
            raise InvalidValue(f"unknown inspector {inspector_id!r}")
        cells = self._cells
        return list(cells.loc[cells["inspector"] == inspector_id, "code"])

    def cell_counts(self) -> dict[str, int]:
        """Number of cells per community code."""
        counts: dict[str, int] = defaultdict(int)
        for community in self._cells["community"]:
            counts[community] += 1
        return dict(counts)

    def __repr__(self) -> str:
        h = self._hierarchy
        return (
            f"<CityMap {self._name!r}: {len(h.districts)} districts, {len(h.streets)} streets, "
            f"{len(h.communities)} communities, {len(self._locations)} cells>"
        )


def check_imported_cells(
    cells: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    projection: MetricProjection,
    tolerance_m2: float,
    label: str = "grid cells",
) -> tuple[gpd.GeoDataFrame, tuple[TilingIssue, ...]]:
    """An imported unit grid (WGS84: code, community, [inspector]) checked to tile its
    communities; returned in the metric CRS."""
    codes = [str(c) for c in cells["code"]]
    parents = [str(c) for c in cells["community"]]
    check_child_codes(AdminLevel.CELL, codes, parents, set(communities["code"]), label)
    metric_cells = list(projection.to_metric(np.asarray(cells.geometry.values)))
    metric_communities = projection.to_metric(np.asarray(communities.geometry.values))
    issues = check_tiling(
        AdminLevel.CELL, codes, metric_cells, projection, parents,
        dict(zip(communities["code"], metric_communities, strict=True)),
    )
    serious = [i for i in issues if i.area_m2 > tolerance_m2]
    refuse(f"{label} (tolerance {tolerance_m2:g} m²)", [i.describe() for i in serious])
    frame = {"code": codes, "community": parents}
    if "inspector" in cells:
        frame["inspector"] = [str(i).strip() if pd.notna(i) else "" for i in cells["inspector"]]
    metric = gpd.GeoDataFrame(frame, geometry=metric_cells, crs=projection.crs)
    return metric, tuple(i for i in issues if i.area_m2 <= tolerance_m2)
