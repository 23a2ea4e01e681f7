"""The gazetteer: the demo city's places by name (with or without their generic word), the
places a query names (longest first, whole words), the cells a place covers, and Chinese
names, which have no spaces, handled the same way."""

from __future__ import annotations

from typing import Any

import pytest
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps.gazetteer import Gazetteer, Place, PlaceKind, name_forms
from cityops.projections.search import parse_query


@pytest.fixture(scope="module")
def gazetteer(demo_city: Any) -> Gazetteer:
    return Gazetteer.of_city(demo_city)


def _chinese_city() -> Gazetteer:
    """A gazetteer of two places with Chinese names (no map: cells are not asked)."""
    street = shapely.box(118.0, 32.0, 118.1, 32.1)
    places = [
        Place("中山路街道", PlaceKind.STREET, "D01-S01", GeoPoint(118.05, 32.05),
              (118.0, 32.0, 118.1, 32.1), shape=street, forms=name_forms("中山路街道")),
        Place("鼓楼区", PlaceKind.DISTRICT, "D01", GeoPoint(118.05, 32.05),
              (118.0, 32.0, 118.1, 32.1), shape=street, forms=name_forms("鼓楼区")),
    ]
    return Gazetteer(places)


@pytest.mark.parametrize(("name", "forms"), [
    ("Reservoir Road Street", ("reservoir road street", "reservoir road")),
    ("Eastgate District", ("eastgate district", "eastgate")),
    ("Bell Lane Community", ("bell lane community", "bell lane")),
    ("Central Avenue", ("central avenue",)),
    ("中山路街道", ("中山路街道", "中山路")),
    ("鼓楼区", ("鼓楼区", "鼓楼")),
    ("东区", ("东区",)),
    ("\uff21\uff22\uff23 Street", ("abc street", "abc")),  # full-width letters
])
def test_a_name_is_known_with_and_without_its_generic_word(
        name: str, forms: tuple[str, ...]) -> None:
    assert name_forms(name) == forms


def test_places_are_found_by_name_best_match_first(gazetteer: Gazetteer) -> None:
    found = gazetteer.find("reservoir road")
    assert (found[0].name, found[0].kind, found[0].code) == (
        "Reservoir Road Street", PlaceKind.STREET, "D04-S02")
    assert [p.kind for p in gazetteer.find("Eastgate", 3)] == [
        PlaceKind.DISTRICT, PlaceKind.STREET, PlaceKind.COMMUNITY]
    # The nine schools so named (not the kindergarten), then a shelter in a school gym.
    assert [p.kind for p in gazetteer.find("school", 20)] == [PlaceKind.SCHOOL] * 9 + [
        PlaceKind.SHELTER]
    assert gazetteer.find("Eastgate LPG")[0].kind is PlaceKind.HAZARD_SOURCE
    assert gazetteer.find("jade river")[0].detail == "river"
    assert gazetteer.find("no such place anywhere") == []


def test_a_cell_is_found_by_its_code(gazetteer: Gazetteer, demo_city: Any) -> None:
    code = sorted(demo_city.map.cells_in("D02-S03-C01"))[0]
    (cell,) = gazetteer.find(code.lower(), 1)
    assert (cell.kind, cell.code) == (PlaceKind.CELL, code)
    minx, miny, maxx, maxy = cell.bbox
    assert minx <= cell.point.lon <= maxx and miny <= cell.point.lat <= maxy


def test_the_places_a_query_names_longest_first_whole_words(gazetteer: Gazetteer) -> None:
    def named(text: str) -> list[str]:
        return [m.place.name for m in gazetteer.mentions(text)]

    assert named("the pipe on Reservoir Road") == ["Reservoir Road Street"]
    # The school, not the street its name begins with.
    assert named("garbage at Drum Tower Primary School") == ["Drum Tower Primary School"]
    assert named("eastgates") == []
    assert named("Central Avenue near Bell Lane") == ["Central Avenue", "Bell Lane Community"]


def test_the_cells_of_a_place(gazetteer: Gazetteer, demo_city: Any) -> None:
    street = gazetteer.find("Reservoir Road Street", 1)[0]
    cells = gazetteer.cells_of(street)
    inside = demo_city.map.cells_in("D04-S02")
    assert all(cells.covers(c) for c in inside)
    assert not cells.covers("D04-S03-C01-0001") and not cells.covers("D04-S020")
    avenue = gazetteer.cells_of(gazetteer.find("Central Avenue", 1)[0])
    assert avenue.prefix is None and 50 < len(avenue.cells) < 500
    # A cell the avenue crosses holds a point of it.
    point = gazetteer.find("Central Avenue", 1)[0].point
    assert avenue.covers(demo_city.map.locate_cell(point))


def test_chinese_names_are_found_in_a_query_without_spaces() -> None:
    chinese = _chinese_city()
    assert [m.place.name for m in chinese.mentions("中山路的水管")] == ["中山路街道"]
    query = parse_query("中山路的水管爆裂", chinese)
    assert query.words == ("水管爆裂",)
    assert [c.place.code for c in query.places] == ["D01-S01"]
    assert parse_query("鼓楼区 积水", chinese).places[0].place.code == "D01"
    assert chinese.find("中山")[0].name == "中山路街道"


def test_small_words_are_not_searched_unless_alone(gazetteer: Gazetteer) -> None:
    assert parse_query("the pipe on the corner", gazetteer).words == ("pipe", "corner")
    assert parse_query("the", gazetteer).words == ("the",)
    assert parse_query("水管，爆裂", gazetteer).words == ("水管", "爆裂")  # noqa: RUF001
    with pytest.raises(InvalidValue, match="empty"):
        parse_query("  ", gazetteer)
    with pytest.raises(InvalidValue, match="at most"):
        parse_query(" ".join(f"w{n}" for n in range(9)), gazetteer)
