"""The embedded back end of the spatial queries: the read models in SQLite, and for each
layer an in-memory `LiveIndex` (STRtree) kept up to date from the projection followers.

How it stays current: each follower calls `on_changes` after every committed batch with the
ids of the rows it wrote; the index only notes them (the follower's thread must not wait).
The next question re-reads those rows by id from SQLite and updates the index before it
answers, so an answer always reflects every batch committed before the question. A layer's
index is loaded in full on its first question (after the listener is in place, so no change
can fall between the load and the listener). `invalidate()` forces a full reload (after a
rebuild replaced the tables). The embedded mode is one process: rows written by another
process would reach this index only through a reload. A rebuild's switch-over to another
generation of the read models is noticed on the next question (the active generation's
number is compared with the one the index was loaded from) and reloads the index.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.geometry import GeoPoint
from cityops.maps.spatial_index import Condition, IndexedItem, LiveIndex
from cityops.projections.follower import Change
from cityops.projections.generations import ActiveGenerationStore
from cityops.projections.spatial import Feature, FeaturePage, FeatureQuery, SpatialQueriesBase
from cityops.projections.spatial_layers import (
    LAYERS,
    CitySource,
    Layer,
    ReadModelSource,
    city_features,
    simplest,
)
from cityops.projections.tables import GeometryKind, SummaryTable
from cityops.storage import ReadStore, row_document

ID_CHUNK = 500
"""Rows are re-read by id in chunks of this many (SQLite's parameter limit is far above)."""


@dataclass
class _TableState:
    """The indexes fed by one read-model table (one per geometry column shown)."""

    table: SummaryTable
    indexes: dict[str, LiveIndex] = field(default_factory=dict)
    loaded: bool = False
    dirty: set[str] = field(default_factory=set)


class EmbeddedSpatialQueries(SpatialQueriesBase):
    """Spatial queries over SQLite read models with in-memory STRtree indexes."""

    def __init__(self, store: ReadStore, tables: Sequence[SummaryTable], city: Any,
                 layers: Mapping[str, Layer] = LAYERS) -> None:
        super().__init__(layers)
        self.store = store
        self.city = city
        self.projection = city.map.projection
        self._lock = threading.RLock()
        by_name = {t.table: t for t in tables}
        self._tables: dict[str, _TableState] = {}
        attributes: dict[tuple[str, str], set[str]] = defaultdict(set)
        for layer in self.layers.values():
            if isinstance(layer.source, ReadModelSource):
                key = (layer.source.table, layer.source.geometry)
                attributes[key] |= {f.name for f in layer.filters}
                if layer.temporal:
                    attributes[key].add(layer.temporal)
        for (table_name, geometry), names in attributes.items():
            table = by_name.get(table_name)
            if table is None:
                continue  # a layer whose read model this system does not build
            state = self._tables.setdefault(table_name, _TableState(table))
            kind = table.geometry(geometry).kind
            state.indexes[geometry] = LiveIndex(self.projection, sorted(names),
                                                points=kind is GeometryKind.POINT)
        self._city: dict[str, tuple[LiveIndex, dict[str, Any]]] = {}
        self._generation: int | None = self._active_generation()

    def _active_generation(self) -> int | None:
        """The read models' active generation (None for a plain store)."""
        if isinstance(self.store, ActiveGenerationStore):
            return self.store.generations.active().number
        return None

    # --- keeping up with the followers ---------------------------------------------------

    def follow(self, followers: Sequence[Any]) -> None:
        """Register with the followers whose tables feed the indexes."""
        for follower in followers:
            follower.listeners.append(self.on_changes)

    def on_changes(self, changes: Sequence[Change]) -> None:
        """Note the rows a committed batch wrote (called on the follower's thread)."""
        with self._lock:
            for change in changes:
                state = self._tables.get(change.table)
                if state is not None and state.loaded:
                    state.dirty.add(change.aggregate_id)

    def invalidate(self) -> None:
        """Forget the indexes: the next question reloads them from the tables."""
        with self._lock:
            for state in self._tables.values():
                state.loaded = False
                state.dirty.clear()

    def _select_columns(self, state: _TableState) -> list[str]:
        columns = ["id", "lon", "lat"]
        for geometry in state.indexes:
            column = state.table.geometry(geometry)
            if column.kind is GeometryKind.AREA:
                columns.append(column.wkt_column)
        names = sorted({a for index in state.indexes.values() for a in index.attribute_names})
        return columns + [n for n in names if n not in columns]

    def _items(self, state: _TableState, rows: list[tuple[Any, ...]]) \
            -> dict[str, list[IndexedItem]]:
        """Index items for each geometry of the table, from selected rows (vectorised)."""
        columns = self._select_columns(state)
        position = {name: k for k, name in enumerate(columns)}
        types = {c.name: c.sql_type for c in state.table.all_columns}
        ids = [str(r[0]) for r in rows]
        attribute_values: dict[str, list[Any]] = {}
        for name in columns[3:]:
            values = [r[position[name]] for r in rows]
            if types.get(name) == "BOOLEAN":
                values = [None if v is None else bool(v) for v in values]
            attribute_values[name] = values
        items: dict[str, list[IndexedItem]] = {}
        for geometry_name, index in state.indexes.items():
            column = state.table.geometry(geometry_name)
            geometries = np.full(len(rows), None, dtype=object)
            if column.kind is GeometryKind.POINT:
                lons = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
                lats = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
                present = np.isfinite(lons) & np.isfinite(lats)
                geometries[present] = shapely.points(lons[present], lats[present])
            else:
                wkts = np.array([r[position[column.wkt_column]] for r in rows] + [None],
                                dtype=object)[:-1]
                present = np.array([w is not None for w in wkts], dtype=bool)
                geometries[present] = shapely.from_wkt(wkts[present])
            items[geometry_name] = [
                IndexedItem(item_id, geometries[k],
                            {a: attribute_values[a][k] for a in index.attribute_names})
                for k, item_id in enumerate(ids)
            ]
        return items

    def _refresh(self, state: _TableState) -> None:
        """Bring one table's indexes up to date (full load, or the noted rows)."""
        columns = ", ".join(self._select_columns(state))
        if not state.loaded:
            state.dirty.clear()
            state.loaded = True
            with self.store.transaction() as txn:
                txn.execute(f"SELECT {columns} FROM {state.table.table}")
                rows = txn.fetchall()
            for name, items in self._items(state, rows).items():
                state.indexes[name].replace_all(items)
            return
        if not state.dirty:
            return
        ids = sorted(state.dirty)
        state.dirty.clear()
        rows = []
        with self.store.transaction() as txn:
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start:start + ID_CHUNK]
                txn.execute(f"SELECT {columns} FROM {state.table.table} "
                            f"WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
                rows += txn.fetchall()
        found = {str(r[0]) for r in rows}
        for name, items in self._items(state, rows).items():
            state.indexes[name].upsert(items)
            state.indexes[name].remove(i for i in ids if i not in found)

    def _index(self, layer: Layer) -> LiveIndex:
        """The layer's index, up to date (call with the lock held)."""
        if isinstance(layer.source, CitySource):
            return self._city_layer(layer)[0]
        generation = self._active_generation()
        if generation != self._generation:
            self._generation = generation
            self.invalidate()
        state = self._tables.get(layer.source.table)
        if state is None or layer.source.geometry not in state.indexes:
            raise LookupError(f"this system has no read model {layer.source.table}")
        self._refresh(state)
        return state.indexes[layer.source.geometry]

    def _city_layer(self, layer: Layer) -> tuple[LiveIndex, dict[str, Any]]:
        assert isinstance(layer.source, CitySource)
        if layer.id not in self._city:
            features = city_features(self.city, layer.source.kind)
            index = LiveIndex(self.projection, [f.name for f in layer.filters],
                              points=layer.points)
            index.replace_all(
                IndexedItem(f.id, f.geometry, {k: f.doc.get(k) for k in index.attribute_names})
                for f in features
            )
            self._city[layer.id] = (index, {f.id: f for f in features})
        return self._city[layer.id]

    # --- answers ---------------------------------------------------------------------------

    @staticmethod
    def _condition(layer: Layer, query: FeatureQuery) -> Condition:
        between = {}
        if query.period is not None and layer.temporal is not None:
            between[layer.temporal] = query.period
        return Condition(equals={k: tuple(v) for k, v in query.where.items()}, between=between)

    def _fetch(self, layer: Layer, ids: Sequence[str],
               distances: Sequence[float] | None = None) -> list[Feature]:
        """The features of `ids`, in that order, with their current documents."""
        if not ids:
            return []
        if isinstance(layer.source, CitySource):
            by_id = self._city_layer(layer)[1]
            return [Feature(i, simplest(by_id[i].geometry), dict(by_id[i].doc),
                            distances[k] if distances is not None else None)
                    for k, i in enumerate(ids)]
        table = self._tables[layer.source.table].table
        column = table.geometry(layer.source.geometry)
        shape = column.wkt_column if column.kind is GeometryKind.AREA else "NULL"
        rows: dict[str, tuple[Any, ...]] = {}
        with self.store.transaction() as txn:
            for start in range(0, len(ids), ID_CHUNK):
                chunk = list(ids[start:start + ID_CHUNK])
                txn.execute(f"SELECT id, lon, lat, {shape}, doc FROM {table.table} "
                            f"WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
                rows.update((str(r[0]), r) for r in txn.fetchall())
        features = []
        for k, item_id in enumerate(ids):
            row = rows.get(item_id)
            if row is None:
                continue
            geometry = _row_geometry(column.kind, row)
            if geometry is None:
                continue
            features.append(Feature(item_id, geometry, row_document(row[4]),
                                    distances[k] if distances is not None else None))
        return features

    def features(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """Features of a layer matching `query`, ordered by id."""
        definition = self.layer(layer)
        self.check(definition, query)
        with self._lock:
            index = self._index(definition)
            slots = index.everything()
            if query.within is not None:
                slots = np.intersect1d(slots, index.intersecting(query.within))
            if query.bbox is not None:
                slots = np.intersect1d(slots, index.intersecting(shapely.box(*query.bbox)))
            slots = index.matching(slots, self._condition(definition, query))
            ids = sorted(index.ids(slots))
        end = None if query.limit is None else query.offset + query.limit
        return FeaturePage(self._fetch(definition, ids[query.offset:end]), len(ids))

    def feature(self, layer: str, feature_id: str) -> Feature | None:
        """One feature by id (None if absent or without geometry)."""
        definition = self.layer(layer)
        with self._lock:
            if isinstance(definition.source, CitySource) \
                    and feature_id not in self._city_layer(definition)[1]:
                return None
        found = self._fetch(definition, [feature_id])
        return found[0] if found else None

    def within_radius(self, layer: str, centre: GeoPoint, radius_m: float,
                      query: FeatureQuery) -> FeaturePage:
        """Features within `radius_m` metres (geodesic) of `centre`, nearest first."""
        definition = self.layer(layer)
        self.check(definition, query)
        self.check_distance(definition, radius_m=radius_m)
        with self._lock:
            index = self._index(definition)
            slots, distances = index.within_distance(centre.lon, centre.lat, radius_m,
                                                     self._condition(definition, query))
            ids = index.ids(slots)
        end = None if query.limit is None else query.offset + query.limit
        return FeaturePage(
            self._fetch(definition, ids[query.offset:end],
                        [float(d) for d in distances[query.offset:end]]),
            len(ids),
        )

    def nearest(self, layer: str, origin: GeoPoint, n: int,
                query: FeatureQuery) -> list[Feature]:
        """The `n` nearest features (geodesic), nearest first."""
        definition = self.layer(layer)
        self.check(definition, query)
        self.check_distance(definition, n=n)
        with self._lock:
            index = self._index(definition)
            slots, distances = index.nearest(origin.lon, origin.lat, n,
                                             self._condition(definition, query))
            ids = index.ids(slots)
        return self._fetch(definition, ids, [float(d) for d in distances])


def _row_geometry(kind: GeometryKind, row: tuple[Any, ...]) -> BaseGeometry | None:
    """A row's geometry from (id, lon, lat, wkt, ...)."""
    if kind is GeometryKind.POINT:
        if row[1] is None or row[2] is None:
            return None
        return shapely.Point(float(row[1]), float(row[2]))
    return simplest(shapely.from_wkt(row[3])) if row[3] is not None else None

