"""How the shipped "Demo City" was drawn: a deterministic generator of its files, kept so that
the data can be reviewed, changed and regenerated instead of edited by hand.

The city is fictional: a river city of about 44 km² around lon 118.80, lat 32.05 (UTM 50N).
The Jade River splits it into north and south, Central Avenue into west and east: four
districts. Each district is cut into three streets, each street into three communities, by
straight cuts placed so that the parts have chosen shares of the area; the files are written
in WGS84. Regenerate with `python -m cityops.maps.demo_city DIRECTORY`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import split

from cityops.maps.crs import MetricProjection
from cityops.maps.demo_inventory import draw_inventory

METRIC_CRS = "EPSG:32650"
CENTRE_LON, CENTRE_LAT = 118.80, 32.05
BBOX_MARGIN_DEG = 0.005

# Outline of the city, km east/north of the centre, clockwise from the south-west.
OUTLINE_KM = [
    (-3.9, -2.5), (-3.6, 0.0), (-4.1, 1.4), (-3.1, 3.0), (-0.8, 2.8), (1.6, 3.1),
    (4.0, 2.6), (3.7, 1.2), (4.1, -1.1), (3.3, -3.0), (1.1, -2.8), (-1.4, -3.1),
]

DISTRICTS = {
    # code: (name, side of the river, side of the avenue)
    "D01": ("Old Town District", "north", "west"),
    "D02": ("Eastgate District", "north", "east"),
    "D03": ("Southbank District", "south", "west"),
    "D04": ("Hillside District", "south", "east"),
}

STREETS = {
    "D01": ["Drum Tower", "Confucius Temple", "West Gate"],
    "D02": ["Eastgate", "Lotus Lake", "Silk Market"],
    "D03": ["Ferry Pier", "Willow Bank", "Paper Mill"],
    "D04": ["Pine Hill", "Reservoir Road", "Stone Quarry"],
}

COMMUNITIES = {
    "D01-S01": ["Bell Lane", "Scholar Court", "Plum Garden"],
    "D01-S02": ["Temple Square", "Ink Street", "Lantern Alley"],
    "D01-S03": ["West Wall", "Tea House", "Old Canal"],
    "D02-S01": ["Eastgate Market", "Sunrise", "Gatehouse"],
    "D02-S02": ["Lotus Pond", "Lakeview", "Heron Bay"],
    "D02-S03": ["Silk Road", "Weavers", "Dyers Row"],
    "D03-S01": ["Ferry Landing", "Boatmen", "South Quay"],
    "D03-S02": ["Willow Grove", "Bamboo Garden", "Riverside Park"],
    "D03-S03": ["Mill Race", "Paper Works", "Printers"],
    "D04-S01": ["Pine Terrace", "Hilltop", "Cedar Slope"],
    "D04-S02": ["Dam View", "Spillway", "Orchard"],
    "D04-S03": ["Quarry Gate", "Granite", "Stonemason"],
}

# Area shares of the parts of each cut: varied, so that the city does not look stamped.
STREET_SHARES = [(0.30, 0.36, 0.34), (0.36, 0.30, 0.34), (0.33, 0.33, 0.34), (0.34, 0.31, 0.35)]
COMMUNITY_SHARES = [(0.32, 0.35, 0.33), (0.36, 0.31, 0.33), (0.30, 0.34, 0.36)]

# Tilt of the cuts (degrees) per district, and per street for the communities.
STREET_TILTS = [12.0, -9.0, -14.0, 7.0]
COMMUNITY_TILTS = [6.0, -11.0, 15.0, -4.0]

INSPECTOR_GROUPS = [
    # per street of a district: how its three communities are shared among inspectors
    [["C01", "C02"], ["C03"]],
    [["C01"], ["C02", "C03"]],
    [["C01"], ["C02"], ["C03"]],
]
INSPECTOR_NAMES = [
    "Zhang Wei", "Wang Fang", "Li Na", "Liu Yang", "Chen Jing", "Yang Lei", "Zhao Min",
    "Huang Qiang", "Zhou Yan", "Wu Hao", "Xu Li", "Sun Tao", "Ma Jun", "Zhu Hong",
    "Hu Bin", "Guo Xia", "He Peng", "Lin Hui", "Gao Feng", "Luo Ying", "Zheng Kai",
    "Liang Mei", "Xie Dong", "Song Lan", "Tang Bo", "Han Xue", "Feng Gang", "Deng Ping",
]


def _projection() -> MetricProjection:
    return MetricProjection.from_crs(METRIC_CRS)


def _centre() -> tuple[float, float]:
    x, y = _projection().points_to_metric([CENTRE_LON], [CENTRE_LAT])
    return float(x[0]), float(y[0])


def _km(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    cx, cy = _centre()
    return [(cx + 1000.0 * x, cy + 1000.0 * y) for x, y in points]


def river_line() -> shapely.LineString:
    """Centreline of the Jade River (metric), meandering west to east across the city."""
    xs = [-6.0 + 0.1 * k for k in range(121)]
    return shapely.LineString(_km([(x, 0.25 + 0.45 * math.sin(0.8 * x + 0.4)) for x in xs]))


def avenue_line() -> shapely.LineString:
    """Central Avenue (metric), running south to north, slightly slanted."""
    return shapely.LineString(_km([(0.35, -4.5), (0.15, 0.0), (-0.25, 4.5)]))


def _side(line: shapely.LineString, polygon: BaseGeometry, *, left: bool) -> BaseGeometry:
    """The pieces of `polygon` on one side of a line that crosses it entirely."""
    pieces = list(split(polygon, line).geoms)
    chosen = []
    for piece in pieces:
        p = piece.representative_point()
        distance = line.project(p)
        a = line.interpolate(max(distance - 1.0, 0.0))
        b = line.interpolate(min(distance + 1.0, line.length))
        cross = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
        if (cross > 0) == left:
            chosen.append(piece)
    if len(chosen) != 1:
        raise AssertionError(f"expected one piece on a side, got {len(chosen)}")
    return chosen[0]


def _cut(polygon: BaseGeometry, shares: Sequence[float], angle_deg: float) -> list[BaseGeometry]:
    """Cut a polygon by parallel straight lines into parts with the given area shares, in
    the order of the direction `angle_deg` (counter-clockwise from east)."""
    ux, uy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    span = 1e5
    anchor = polygon.centroid
    offset = anchor.x * ux + anchor.y * uy

    def foot(t: float) -> tuple[float, float]:
        # The point near the polygon whose coordinate along the direction is t.
        return anchor.x + (t - offset) * ux, anchor.y + (t - offset) * uy

    def before(t: float) -> shapely.Polygon:
        # Every point whose coordinate along the direction is below t.
        px, py = foot(t)
        return shapely.Polygon([
            (px - span * uy, py + span * ux), (px + span * uy, py - span * ux),
            (px + span * uy - span * ux, py - span * ux - span * uy),
            (px - span * uy - span * ux, py + span * ux - span * uy),
        ])

    parts: list[BaseGeometry] = []
    rest = polygon
    total = sum(shares)
    for share in shares[:-1]:
        target = polygon.area * share / total
        along = shapely.get_coordinates(rest) @ [ux, uy]
        low, high = float(along.min()), float(along.max())
        for _ in range(60):
            mid = (low + high) / 2
            if rest.intersection(before(mid)).area < target:
                low = mid
            else:
                high = mid
        t = (low + high) / 2
        px, py = foot(t)
        line = shapely.LineString([(px - span * uy, py + span * ux),
                                   (px + span * uy, py - span * ux)])
        pieces = list(split(rest, line).geoms)
        first = [p for p in pieces if _along(p, ux, uy) < t]
        second = [p for p in pieces if _along(p, ux, uy) >= t]
        if len(first) != 1 or len(second) != 1:
            raise AssertionError(f"a cut gave {len(first)} + {len(second)} pieces, not 1 + 1")
        parts.append(first[0])
        rest = second[0]
    parts.append(rest)
    return parts


def _along(shape: BaseGeometry, ux: float, uy: float) -> float:
    point = shape.representative_point()
    return float(point.x * ux + point.y * uy)


@dataclass(frozen=True)
class DrawnArea:
    """One administrative area as drawn by the generator (metric shape)."""

    code: str
    name: str
    parent: str | None
    shape: BaseGeometry


def draw_hierarchy() -> tuple[list[DrawnArea], list[DrawnArea], list[DrawnArea]]:
    """Districts, streets and communities of the demo city, in the metric CRS."""
    outline = shapely.Polygon(_km(OUTLINE_KM))
    river, avenue = river_line(), avenue_line()
    halves = {"north": _side(river, outline, left=True),
              "south": _side(river, outline, left=False)}
    districts, streets, communities = [], [], []
    for d_index, (code, (name, bank, side)) in enumerate(DISTRICTS.items()):
        # The avenue runs north: its left is the west.
        shape = _side(avenue, halves[bank], left=(side == "west"))
        districts.append(DrawnArea(code, name, None, shape))
        minx, miny, maxx, maxy = shape.bounds
        tilt = STREET_TILTS[d_index]
        angle = tilt if maxx - minx > maxy - miny else 90.0 + tilt
        for s_index, street_shape in enumerate(_cut(shape, STREET_SHARES[d_index], angle)):
            s_code = f"{code}-S{s_index + 1:02d}"
            streets.append(DrawnArea(s_code, f"{STREETS[code][s_index]} Street", code,
                                     street_shape))
            minx, miny, maxx, maxy = street_shape.bounds
            c_tilt = COMMUNITY_TILTS[(d_index + s_index) % len(COMMUNITY_TILTS)]
            c_angle = c_tilt if maxx - minx > maxy - miny else 90.0 + c_tilt
            shares = COMMUNITY_SHARES[(d_index + s_index) % len(COMMUNITY_SHARES)]
            for c_index, c_shape in enumerate(_cut(street_shape, shares, c_angle)):
                c_code = f"{s_code}-C{c_index + 1:02d}"
                communities.append(DrawnArea(
                    c_code, f"{COMMUNITIES[s_code][c_index]} Community", s_code, c_shape
                ))
    return districts, streets, communities


def _feature(geometry: BaseGeometry, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties,
            "geometry": shapely.geometry.mapping(geometry)}


def _write(path: Path, features: list[dict[str, Any]], name: str) -> None:
    collection = {"type": "FeatureCollection", "name": name, "features": features}
    # One feature per line: diffs of regenerated data stay readable.
    lines = ",\n".join(json.dumps(f, ensure_ascii=False) for f in features)
    head = json.dumps({k: v for k, v in collection.items() if k != "features"})[:-1]
    path.write_text(f'{head}, "features": [\n{lines}\n]}}\n', encoding="utf-8")


def build_demo_city(directory: Path) -> None:
    """Write the demo city's files into `directory` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    projection = _projection()
    districts, streets, communities = draw_hierarchy()

    def wgs84(shape: BaseGeometry) -> BaseGeometry:
        return projection.to_wgs84(shape)

    _write(directory / "districts.geojson",
           [_feature(wgs84(d.shape), {"code": d.code, "name": d.name}) for d in districts],
           "districts")
    _write(directory / "streets.geojson",
           [_feature(wgs84(s.shape), {"code": s.code, "name": s.name, "district": s.parent})
            for s in streets], "streets")
    _write(directory / "communities.geojson",
           [_feature(wgs84(c.shape), {"code": c.code, "name": c.name, "street": c.parent})
            for c in communities], "communities")

    inspectors = []
    names = iter(INSPECTOR_NAMES)
    for district in DISTRICTS:
        number = 0
        for s_index, groups in enumerate(INSPECTOR_GROUPS):
            for group in groups:
                number += 1
                inspectors.append({
                    "id": f"insp-{district}-{number:02d}",
                    "name": next(names),
                    "district": district,
                    "communities": [f"{district}-S{s_index + 1:02d}-{c}" for c in group],
                })
    (directory / "inspectors.json").write_text(
        json.dumps({"version": 1, "inspectors": inspectors}, indent=1, ensure_ascii=False)
        + "\n", encoding="utf-8",
    )

    outline = shapely.union_all([d.shape for d in districts])
    inventory = draw_inventory(projection, _centre(), outline, river_line(), avenue_line())
    for name, features in inventory.items():
        _write(directory / f"{name}.geojson", features, name)

    minx, miny, maxx, maxy = wgs84(outline).bounds
    bbox = [round(minx - BBOX_MARGIN_DEG, 4), round(miny - BBOX_MARGIN_DEG, 4),
            round(maxx + BBOX_MARGIN_DEG, 4), round(maxy + BBOX_MARGIN_DEG, 4)]
    city = {
        "version": 1,
        "name": "Demo City",
        "timezone": "Asia/Shanghai",
        "metric_crs": METRIC_CRS,
        "bbox": bbox,
        "layers": {"districts": "districts.geojson", "streets": "streets.geojson",
                   "communities": "communities.geojson"},
        "grid": {"cell_size_m": 100, "min_piece_share": 0.25},
        "inspectors": "inspectors.json",
        "hazard_sources": "hazard_sources.geojson",
        "facilities": "facilities.geojson",
        "resources": "resources.geojson",
        "landmarks": "landmarks.geojson",
        "tiling_tolerance_m2": 1.0,
        "invalid_geometries": "refuse",
    }
    (directory / "city.json").write_text(json.dumps(city, indent=1) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the demo city into the directory given."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m cityops.maps.demo_city DIRECTORY", file=sys.stderr)
        return 2
    build_demo_city(Path(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
