"""The unit grid, generated from the communities: square cells (100 m by default) on a lattice
of the metric CRS, cut along community boundaries so that every cell lies in exactly one
community, as the grid standard requires.

Decision: a cell cut by a community boundary is clipped, not given whole to the community
holding most of it; otherwise a point could be located to a cell of one community while it
stands in another. A clipped piece smaller than `min_piece_share` of a full cell is merged
into the neighbouring cell of the same community with which it shares the longest edge, so
that the grid has no slivers; a piece with no such neighbour stays a small cell of its own.
Cells are numbered within their community from north-west to south-east (rows north to south,
west to east within a row): `D01-S02-C03-0042`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue

POLYGON_TYPE_ID = 3
MIN_PIECE_M2 = 1e-2
"""Pieces below this area are the residue of touching boundaries, not parts of a cell."""
PRECISION_M = 1e-6
"""Clipped pieces are snapped to a micrometre lattice so that neighbours share vertices (and
a merged cell is one polygon), while staying inside their community to ~1e-4 m²."""
SHARED_EDGE_MIN_M = 1e-3
"""Pieces sharing less edge than this touch at a corner only: they are not merged."""
CELL_NUMBER_DIGITS = 4
MAX_MERGE_PASSES = 8


@dataclass(frozen=True)
class GridSpec:
    """How the unit grid is drawn (size of the cells and what counts as a sliver)."""

    cell_size_m: float = 100.0
    min_piece_share: float = 0.25
    """A clipped piece below this share of a full cell is merged into a neighbour."""

    def __post_init__(self) -> None:
        if not (1.0 <= self.cell_size_m <= 10_000.0):
            raise InvalidValue(f"grid cell size must be 1..10000 m, got {self.cell_size_m}")
        if not (0.0 <= self.min_piece_share < 1.0):
            raise InvalidValue(
                f"grid min_piece_share must be in [0, 1), got {self.min_piece_share}"
            )


def _pieces(
    boxes: np.ndarray, communities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(piece polygons, index of their box, index of their community)."""
    tree = shapely.STRtree(communities)
    box_index, community_index = tree.query(boxes, predicate="intersects")
    pieces = boxes[box_index].copy()
    shapely.prepare(communities)
    cut = ~shapely.within(boxes[box_index], communities[community_index])
    clipped = shapely.intersection(boxes[box_index[cut]], communities[community_index[cut]])
    pieces[cut] = shapely.set_precision(clipped, PRECISION_M)
    # Clipping may yield multipolygons (a boundary crossing a cell twice) and collections
    # with the lines where boundaries touch: keep each polygon as a piece of its own.
    parts, source = shapely.get_parts(pieces, return_index=True)
    keep = (shapely.get_type_id(parts) == POLYGON_TYPE_ID) & (shapely.area(parts) > MIN_PIECE_M2)
    return parts[keep], box_index[source[keep]], community_index[source[keep]]


def _merge_targets(
    pieces: np.ndarray, community: np.ndarray, area: np.ndarray, threshold: float
) -> dict[int, int]:
    """For each small piece, the neighbour of its community it merges into: a full-size one
    if it touches any, else a larger small one; the longest shared edge wins."""
    small = area < threshold
    small_index = np.flatnonzero(small)
    if len(small_index) == 0:
        return {}
    tree = shapely.STRtree(pieces)
    frag, other = tree.query(pieces[small_index], predicate="intersects")
    frag = small_index[frag]
    # Merging only into a larger piece (ties: the later one) cannot form a cycle.
    larger = (area[other] > area[frag]) | ((area[other] == area[frag]) & (other > frag))
    eligible = (frag != other) & (community[frag] == community[other]) & larger
    frag, other = frag[eligible], other[eligible]
    if len(frag) == 0:
        return {}
    union = shapely.union(pieces[frag], pieces[other], grid_size=PRECISION_M)
    # Perimeter of a union = sum of perimeters - twice the shared edge.
    shared = (shapely.length(pieces[frag]) + shapely.length(pieces[other])
              - shapely.length(union)) / 2.0
    targets: dict[int, int] = {}
    best: dict[int, tuple[bool, float, int]] = {}
    for f, o, length in zip(frag.tolist(), other.tolist(), shared.tolist(), strict=True):
        if length <= SHARED_EDGE_MIN_M:
            continue  # touching at a corner only
        key = (not bool(small[o]), length, -o)
        if f not in best or key > best[f]:
            best[f] = key
            targets[f] = o
    return targets


def _merge(
    pieces: np.ndarray, box_of: np.ndarray, community_of: np.ndarray, targets: dict[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces after merging each small piece into its target (following chains)."""
    absorbed: dict[int, list[int]] = defaultdict(list)
    for fragment in sorted(targets):
        root = targets[fragment]
        while root in targets:
            root = targets[root]
        absorbed[root].append(fragment)
    kept = [i for i in range(len(pieces)) if i not in targets]
    merged = np.array([
        shapely.union_all([pieces[i], *(pieces[j] for j in absorbed[i])], grid_size=PRECISION_M)
        if i in absorbed else pieces[i]
        for i in kept
    ], dtype=object)
    return merged, box_of[kept], community_of[kept]


def generate_unit_grid(
    community_codes: Sequence[str],
    community_shapes: Sequence[BaseGeometry],
    crs: CRS,
    spec: GridSpec | None = None,
) -> gpd.GeoDataFrame:
    """Cells of the communities (metric shapes in `crs`): columns code, community, row, col,
    geometry (in `crs`), sorted by code. Deterministic: same communities, same cells."""
    spec = spec or GridSpec()
    communities = np.asarray(community_shapes, dtype=object)
    size = spec.cell_size_m
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(communities))
    # The lattice is anchored on multiples of the cell size, not on the data, so that a small
    # change of one boundary does not shift every cell of the city.
    x0, y0 = math.floor(minx / size) * size, math.floor(miny / size) * size
    ncols, nrows = math.ceil((maxx - x0) / size), math.ceil((maxy - y0) / size)
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(nrows), np.arange(ncols),
                                                 indexing="ij"))
    boxes = shapely.box(x0 + cols * size, y0 + rows * size,
                        x0 + (cols + 1) * size, y0 + (rows + 1) * size)

    pieces, box_of, community_of = _pieces(boxes, communities)
    threshold = spec.min_piece_share * size * size
    for _ in range(MAX_MERGE_PASSES):
        targets = _merge_targets(pieces, community_of, shapely.area(pieces), threshold)
        if not targets:
            break
        pieces, box_of, community_of = _merge(pieces, box_of, community_of, targets)
    area = shapely.area(pieces)

    cells = [
        (community_codes[int(community_of[k])], int(rows[box_of[k]]), int(cols[box_of[k]]),
         float(area[k]), pieces[k])
        for k in range(len(pieces))
    ]
    # North-west first: rows from the top, columns from the left, the larger piece first.
    cells.sort(key=lambda c: (c[0], -c[1], c[2], -c[3]))
    codes: list[str] = []
    number = 0
    previous = None
    for community, *_ in cells:
        number = number + 1 if community == previous else 1
        previous = community
        if number >= 10**CELL_NUMBER_DIGITS:
            raise InvalidValue(
                f"community {community} has more than {10**CELL_NUMBER_DIGITS - 1} grid cells; "
                "use larger cells or split the community"
            )
        codes.append(f"{community}-{number:0{CELL_NUMBER_DIGITS}d}")
    return gpd.GeoDataFrame(
        {
            "code": codes,
            "community": [c[0] for c in cells],
            "row": [c[1] for c in cells],
            "col": [c[2] for c in cells],
        },
        geometry=[c[4] for c in cells],
        crs=crs,
    )
