"""The city's gazetteer: the names a dispatcher types instead of coordinates — districts,
streets (sub-districts), communities, unit grid cells by code, landmarks (roads, rivers,
reservoirs), schools, hospitals, shelters and hazard sources — each with a point and a
bounding box to place the map, and the unit grid cells it covers or touches, so that a text
search can keep the items located there ("the pipe on Reservoir Road").

Names are compared after Unicode normalisation (NFKC) and case folding, so the same code
serves English or pinyin names ("Drum Tower Street") and Chinese ones ("中山路街道"). A
name is also known without its generic word: "Reservoir Road" for "Reservoir Road Street",
"中山路" for "中山路街道", "Eastgate" for "Eastgate District".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from cityops.domain.geometry import GeoPoint
from cityops.maps.hierarchy import CODE_SEPARATOR

NEAR_M = 100.0
"""A landmark, facility or hazard source covers the unit grid cells within this distance
(one cell): an item "on Central Avenue" is in a cell the avenue crosses or touches."""

GENERIC_SUFFIXES = (
    # English names of the demo city and its kind; longest first.
    " sub-district", " subdistrict", " community", " district", " street", " county",
    # Chinese: 街道 (sub-district), 社区 (community), 区 (district), 县, 镇, 乡.
    "街道", "社区", "区", "县", "镇", "乡",
)
MIN_STEM_CHARACTERS = 2
"""A name without its generic word must keep this many characters ("东区" stays whole)."""


class PlaceKind(StrEnum):
    """What a place of the gazetteer is, in the order results are listed."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    CELL = "cell"
    LANDMARK = "landmark"
    SCHOOL = "school"
    HOSPITAL = "hospital"
    SHELTER = "shelter"
    HAZARD_SOURCE = "hazard-source"


AREA_KINDS = frozenset({PlaceKind.DISTRICT, PlaceKind.STREET, PlaceKind.COMMUNITY,
                        PlaceKind.CELL})
"""Places that are areas of the unit grid's hierarchy: their cells share a code prefix."""


def normalised(text: str) -> str:
    """Text as names are compared: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def name_forms(name: str) -> tuple[str, ...]:
    """The forms a name is recognised by: itself, and without its generic word."""
    full = normalised(name)
    forms = [full]
    for suffix in GENERIC_SUFFIXES:
        if full.endswith(suffix):
            stem = full[: -len(suffix)].strip()
            if len(stem) >= MIN_STEM_CHARACTERS:
                forms.append(stem)
            break
    return tuple(forms)


@dataclass(frozen=True)
class Place:
    """A named place: what it is, its code (grid code, facility or hazard source id), a point
    to mark it and the bounding box to show it whole (WGS84)."""

    name: str
    kind: PlaceKind
    code: str | None
    point: GeoPoint
    bbox: tuple[float, float, float, float]
    detail: str | None = None
    """What kind of landmark it is (road, river...), or the kind of hazard source."""
    shape: BaseGeometry | None = field(default=None, repr=False, compare=False)
    forms: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "code": self.code,
                "detail": self.detail, "point": self.point.to_geojson(),
                "bbox": list(self.bbox)}


@dataclass(frozen=True)
class Mention:
    """A place named in a text: the place, the form matched and where."""

    place: Place
    form: str
    start: int
    end: int


@dataclass(frozen=True)
class CellSelection:
    """The unit grid cells of a place: the code prefix of an area of the grid's hierarchy,
    or the cells near a landmark, facility or hazard source."""

    prefix: str | None = None
    cells: frozenset[str] = frozenset()

    def covers(self, cell: str | None) -> bool:
        """Whether the cell `cell` is one of them."""
        if cell is None:
            return False
        if self.prefix is not None:
            return cell == self.prefix or cell.startswith(self.prefix + CODE_SEPARATOR)
        return cell in self.cells


def _is_word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _bounded(text: str, start: int, end: int) -> bool:
    """A Latin-script name is a whole word of the text; CJK text has no spaces to check."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (_is_word(text[start]) and _is_word(before)) and not (
        _is_word(text[end - 1]) and _is_word(after))


class Gazetteer:
    """The named places of one city and the questions asked of them."""

    def __init__(self, places: Sequence[Place], *, cell_codes: Sequence[str] = (),
                 cell_shapes: Sequence[BaseGeometry] = (), projection: Any = None,
                 cell_place: Any = None) -> None:
        self.places = list(places)
        self._cell_codes = list(cell_codes)
        self._cell_shapes = list(cell_shapes)
        """Metric shapes of the cells, for the cells near a place."""
        self._projection = projection
        self._cell_place = cell_place
        self._tree = STRtree(self._cell_shapes) if self._cell_shapes else None
        self._known_cells = frozenset(self._cell_codes)
        self._near: dict[tuple[str, str | None, str], frozenset[str]] = {}

    @classmethod
    def of_city(cls, city: Any) -> Gazetteer:
        """The gazetteer of a loaded `City` (its map, landmarks, facilities, hazard sources)."""
        city_map = city.map
        projection = city_map.projection
        places: list[Place] = []
        for kind, frame in ((PlaceKind.DISTRICT, city_map.districts),
                            (PlaceKind.STREET, city_map.streets),
                            (PlaceKind.COMMUNITY, city_map.communities)):
            for code, name, shape in zip(frame["code"], frame["name"], frame.geometry,
                                         strict=True):
                places.append(_place(str(name), kind, str(code), shape))
        if city.landmarks is not None:
            frame = city.landmarks
            for name, detail, shape in zip(frame["name"], frame["kind"], frame.geometry,
                                           strict=True):
                places.append(_place(str(name), PlaceKind.LANDMARK, None, shape, str(detail)))
        for facility in city.facilities:
            places.append(_place(facility.name, PlaceKind(str(facility.kind)), facility.id,
                                 facility.location.shape))
        for source in city.hazard_sources:
            places.append(_place(source.name, PlaceKind.HAZARD_SOURCE, source.id,
                                 source.location.shape, source.hazard_type))
        cells = city_map.cells
        metric = cells.to_crs(projection.crs)
        return cls(places, cell_codes=[str(c) for c in cells["code"]],
                   cell_shapes=list(metric.geometry), projection=projection,
                   cell_place=city_map.cell)

    # --- finding places by name -----------------------------------------------------------

    def find(self, query: str, limit: int = 10) -> list[Place]:
        """Places whose name matches `query`: equal names first, then names that start with
        it, then names with a word starting with it, then names containing it; a unit grid
        cell by its code."""
        wanted = normalised(query)
        if not wanted:
            return []
        ranked: list[tuple[int, int, str, Place]] = []
        for place in self.places:
            rank = _rank(wanted, place.forms)
            if rank is not None:
                ranked.append((rank, list(PlaceKind).index(place.kind), place.name, place))
        ranked.sort(key=lambda item: item[:3])
        found = [item[3] for item in ranked]
        cell = self.cell(query.strip())
        if cell is not None:
            found.insert(0, cell)
        return found[:limit]

    def cell(self, code: str) -> Place | None:
        """A unit grid cell as a place, by its code (any case)."""
        upper = code.upper()
        if upper not in self._known_cells or self._cell_place is None:
            return None
        cell = self._cell_place(upper)
        shape = cell.shape.shape
        return Place(name=upper, kind=PlaceKind.CELL, code=upper, point=cell.centre,
                     bbox=tuple(float(v) for v in shape.bounds),  # type: ignore[arg-type]
                     shape=shape, forms=(normalised(upper),))

    def mentions(self, text: str) -> list[Mention]:
        """The places named in a text (a search query), longest names first, never two on
        the same characters; in the order they appear."""
        wanted = normalised(text)
        candidates: list[Mention] = []
        for place in self.places:
            for form in place.forms:
                start = wanted.find(form)
                while start >= 0:
                    end = start + len(form)
                    if _bounded(wanted, start, end):
                        candidates.append(Mention(place, form, start, end))
                    start = wanted.find(form, start + 1)
        candidates.sort(key=lambda m: (-(m.end - m.start), list(PlaceKind).index(m.place.kind)))
        taken: list[Mention] = []
        for mention in candidates:
            if all(mention.end <= t.start or mention.start >= t.end or (
                    (mention.start, mention.end) == (t.start, t.end)) for t in taken):
                taken.append(mention)
        return sorted(taken, key=lambda m: m.start)

    # --- the cells of a place ---------------------------------------------------------------

    def cells_of(self, place: Place) -> CellSelection:
        """The unit grid cells of a place (its area's code prefix, or those near it)."""
        if place.kind in AREA_KINDS and place.code is not None:
            return CellSelection(prefix=place.code)
        return self._cells_near(place)

    def _cells_near(self, place: Place) -> CellSelection:
        """Cells within `NEAR_M` of the place's shape (computed once per place)."""
        key = (place.kind.value, place.code, place.name)
        found = self._near.get(key)
        if found is None:
            found = frozenset()
            if self._tree is not None and place.shape is not None:
                zone = self._projection.to_metric(place.shape).buffer(NEAR_M)
                hits = self._tree.query(zone, predicate="intersects")
                found = frozenset(self._cell_codes[int(k)] for k in hits)
            self._near[key] = found
        return CellSelection(cells=found)


def _rank(wanted: str, forms: Iterable[str]) -> int | None:
    best: int | None = None
    for form in forms:
        if form == wanted:
            rank = 0
        elif form.startswith(wanted):
            rank = 1
        elif any(word.startswith(wanted) for word in re.split(r"[\s\-'/]+", form)):
            rank = 2
        elif wanted in form:
            rank = 3
        else:
            continue
        best = rank if best is None else min(best, rank)
    return best


def _place(name: str, kind: PlaceKind, code: str | None, shape: BaseGeometry,
           detail: str | None = None) -> Place:
    point = shapely.point_on_surface(shape) if shape.geom_type != "Point" else shape
    minx, miny, maxx, maxy = (float(v) for v in shape.bounds)
    return Place(name=name, kind=kind, code=code, point=GeoPoint(lon=float(point.x),
                 lat=float(point.y)), bbox=(minx, miny, maxx, maxy), detail=detail,
                 shape=shape, forms=name_forms(name))
