"""The unit grid generated from communities: cells clipped to community boundaries, slivers
merged, numbered north-west first, the same every time."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pyproj import CRS

from cityops.domain.errors import InvalidValue
from cityops.maps import GridSpec
from cityops.maps.grid import generate_unit_grid

UTM50 = CRS.from_epsg(32650)
X0, Y0 = 670_000.0, 3_547_000.0


def _two_communities() -> tuple[list[str], list[shapely.Polygon]]:
    # A 1000 m x 500 m block on the 100 m lattice, split at x + 415 m (off the lattice).
    west = shapely.box(X0, Y0, X0 + 415, Y0 + 500)
    east = shapely.box(X0 + 415, Y0, X0 + 1000, Y0 + 500)
    return ["D01-S01-C01", "D01-S01-C02"], [west, east]


def test_cells_are_clipped_to_communities_and_tile_them() -> None:
    codes, shapes = _two_communities()
    cells = generate_unit_grid(codes, shapes, UTM50)
    for code, shape in zip(codes, shapes, strict=True):
        mine = cells[cells["community"] == code]
        union = shapely.union_all(np.asarray(mine.geometry.values))
        assert shapely.symmetric_difference(union, shape).area < 1e-3
        assert all(shape.buffer(1e-3).contains(g) for g in mine.geometry)
    # 5 rows: west has 4 full columns and a 15 m strip (15 % of a cell) merged into the 4th;
    # east has an 85 m strip (kept as cells of their own) and 5 full columns.
    assert (cells["community"] == codes[0]).sum() == 20
    assert (cells["community"] == codes[1]).sum() == 30
    areas = dict(zip(cells["code"], cells.geometry.area, strict=True))
    assert areas["D01-S01-C01-0004"] == pytest.approx(11_500.0)
    assert areas["D01-S01-C02-0001"] == pytest.approx(8_500.0)


def test_cells_are_numbered_north_west_first() -> None:
    codes, shapes = _two_communities()
    cells = generate_unit_grid(codes, shapes, UTM50).set_index("code")
    first = cells.loc["D01-S01-C01-0001"]
    assert (first["row"], first["col"]) == (4, 0)  # top row, west column
    second = cells.loc["D01-S01-C01-0002"]
    assert (second["row"], second["col"]) == (4, 1)
    fifth = cells.loc["D01-S01-C01-0005"]
    assert (fifth["row"], fifth["col"]) == (3, 0)
    assert list(cells.index[:3]) == ["D01-S01-C01-0001", "D01-S01-C01-0002", "D01-S01-C01-0003"]


def test_a_small_piece_without_a_full_neighbour_merges_into_a_larger_small_one() -> None:
    # A thin 40 m strip community: every piece is small; they merge into larger pieces.
    strip = shapely.box(X0 + 10, Y0, X0 + 50, Y0 + 300)
    cells = generate_unit_grid(["D01-S01-C01"], [strip], UTM50)
    assert len(cells) >= 1
    assert shapely.union_all(np.asarray(cells.geometry.values)).equals(strip)


def test_generation_is_deterministic() -> None:
    codes, shapes = _two_communities()
    tilted = [shapely.affinity.rotate(s, 17, origin=(X0, Y0)) for s in shapes]
    first = generate_unit_grid(codes, tilted, UTM50, GridSpec(cell_size_m=50))
    second = generate_unit_grid(codes, tilted, UTM50, GridSpec(cell_size_m=50))
    assert_geodataframe_equal(first, second, check_crs=True)


def test_grid_parameters_are_checked() -> None:
    with pytest.raises(InvalidValue, match="cell size"):
        GridSpec(cell_size_m=0)
    with pytest.raises(InvalidValue, match="min_piece_share"):
        GridSpec(min_piece_share=1.0)
