"""The production back end of the spatial queries: SQL over the PostGIS columns of the read
models (generated from their rows, GiST-indexed) and of the city's layers, which are
published into `map_*` tables when a process starts.

Radius questions use `geography` (metres on the WGS84 spheroid) with `ST_DWithin`, served by
the GiST index on `geom::geography`; nearest questions take candidates in index order with
the KNN operator `<->` and then order by exact distance (a first KNN pass gives an upper
bound on the n-th distance, a radius pass at that bound gives the exact n nearest);
bbox and within-polygon questions use `ST_Intersects` on `geometry(…, 4326)`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import shapely

from cityops.domain.geometry import GeoPoint
from cityops.maps.local_metric import LocalMetric, local_metric
from cityops.projections.spatial import Feature, FeaturePage, FeatureQuery, SpatialQueriesBase
from cityops.projections.spatial_layers import (
    LAYERS,
    CitySource,
    Layer,
    ReadModelSource,
    city_features,
    simplest,
)
from cityops.projections.tables import GeometryColumn, GeometryKind, SummaryTable
from cityops.storage import ReadStore, Transaction, row_document

MAP_LAYERS_TABLE = "map_layers"
PUBLISH_LOCK = "cityops-map-layers"
"""Advisory lock taken while the city's layers are published: processes starting together
publish once, one after the other."""
ORDER_BY_ID = 'id COLLATE "C"'
"""Bytewise order of ids, whatever the database's collation (the embedded index sorts the
same way)."""


def map_table(layer: Layer) -> str:
    """The PostGIS table of a city layer."""
    return "map_" + layer.id.replace("-", "_")


def _point(params: list[Any], point: GeoPoint) -> str:
    params.extend([point.lon, point.lat])
    return "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography"


class PostgisSpatialQueries(SpatialQueriesBase):
    """Spatial queries in SQL over PostGIS."""

    def __init__(self, store: ReadStore, tables: Sequence[SummaryTable], city: Any,
                 layers: Mapping[str, Layer] = LAYERS) -> None:
        super().__init__(layers)
        self.store = store
        self.city = city
        self._tables = {t.table: t for t in tables}

    # --- the city's layers in PostGIS ------------------------------------------------------

    def publish_city(self) -> None:
        """Write the city's layers into their `map_*` tables, unless the same city is there
        already (each layer is compared by a fingerprint of its content)."""
        with self.store.transaction() as txn:
            txn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PUBLISH_LOCK,))
            txn.execute(f"CREATE TABLE IF NOT EXISTS {MAP_LAYERS_TABLE} "
                        "(layer TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)")
            for layer in self.layers.values():
                if isinstance(layer.source, CitySource):
                    self._publish(txn, layer)

    def _publish(self, txn: Transaction, layer: Layer) -> None:
        assert isinstance(layer.source, CitySource)
        table = map_table(layer)
        names = [f.name for f in layer.filters]
        geometry_type = "Point" if layer.points else "MultiPolygon"
        columns = "".join(f", {n} TEXT" for n in names)
        txn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY{columns}, "
                    f"doc JSONB NOT NULL, geom geometry({geometry_type}, 4326) NOT NULL)")
        txn.execute(f"CREATE INDEX IF NOT EXISTS {table}_geom_gist ON {table} "
                    "USING GIST (geom)")
        if layer.points:
            txn.execute(f"CREATE INDEX IF NOT EXISTS {table}_geom_geog_gist ON {table} "
                        "USING GIST ((geom::geography))")
        features = city_features(self.city, layer.source.kind)
        rows = [
            (f.id, *(f.doc.get(n) for n in names), json.dumps(f.doc, sort_keys=True),
             shapely.to_wkb(f.geometry))
            for f in features
        ]
        digest = hashlib.sha256()
        for row in rows:
            digest.update(repr(row).encode())
        fingerprint = digest.hexdigest()
        txn.execute(f"SELECT fingerprint FROM {MAP_LAYERS_TABLE} WHERE layer = %s",
                    (layer.id,))
        current = txn.fetchone()
        if current is not None and current[0] == fingerprint:
            return
        txn.execute(f"DELETE FROM {table}")
        shape = "ST_GeomFromWKB(%s, 4326)" if layer.points \
            else "ST_Multi(ST_GeomFromWKB(%s, 4326))"
        placeholders = ", ".join(["%s"] * (len(names) + 2))
        txn.executemany(
            f"INSERT INTO {table} (id{''.join(', ' + n for n in names)}, doc, geom) "
            f"VALUES ({placeholders}, {shape})",
            rows,
        )
        txn.execute(f"INSERT INTO {MAP_LAYERS_TABLE} (layer, fingerprint) VALUES (%s, %s) "
                    "ON CONFLICT (layer) DO UPDATE SET fingerprint = excluded.fingerprint",
                    (layer.id, fingerprint))

    # --- SQL pieces ------------------------------------------------------------------------

    def _source(self, layer: Layer) -> tuple[str, str]:
        """(table, geometry column) of a layer."""
        if isinstance(layer.source, CitySource):
            return map_table(layer), "geom"
        source: ReadModelSource = layer.source
        if source.table not in self._tables:
            raise LookupError(f"this system has no read model {source.table}")
        self._tables[source.table].geometry(source.geometry)  # declared, or KeyError
        return source.table, source.geometry

    def _row_point(self, layer: Layer) -> GeometryColumn | None:
        """The layer's geometry if it is a read model's point, generated from the row's own
        `lon` and `lat` columns."""
        table, geometry = self._source(layer)
        if isinstance(layer.source, ReadModelSource):
            column = self._tables[table].geometry(geometry)
            if column.kind is GeometryKind.POINT:
                return column
        return None

    def _coordinates(self, layer: Layer) -> tuple[str, str]:
        """SQL of a point layer's longitude and latitude: a read model's own `lon` and
        `lat` columns (its point is generated from them; reading them is about a
        millisecond cheaper per radius question than taking the point apart), else the
        point's."""
        if self._row_point(layer) is not None:
            return "lon", "lat"
        _, geometry = self._source(layer)
        return f"ST_X({geometry})", f"ST_Y({geometry})"

    def _where(self, layer: Layer, query: FeatureQuery, params: list[Any]) -> list[str]:
        _, geometry = self._source(layer)
        point = self._row_point(layer)
        clauses = [point.present if point is not None else f"{geometry} IS NOT NULL"]
        for name, values in query.where.items():
            layer.filter(name)
            allowed = list(values)
            if not allowed:
                clauses.append("FALSE")
                continue
            clauses.append(f"{name} IN ({', '.join(['%s'] * len(allowed))})")
            params.extend(allowed)
        if query.period is not None and layer.temporal is not None:
            start, end = query.period
            if start is not None:
                clauses.append(f"{layer.temporal} >= %s")
                params.append(start)
            if end is not None:
                clauses.append(f"{layer.temporal} <= %s")
                params.append(end)
        if query.bbox is not None and point is not None:
            # A point is in the box (edges included, as ST_Intersects says) when its
            # coordinates are: counted and paged from the (lon, lat, id) index alone.
            clauses.append("lon >= %s AND lat >= %s AND lon <= %s AND lat <= %s")
            params.extend(query.bbox)
        elif query.bbox is not None:
            clauses.append(f"ST_Intersects({geometry}, ST_MakeEnvelope(%s, %s, %s, %s, 4326))")
            params.extend(query.bbox)
        if query.within is not None:
            clauses.append(f"ST_Intersects({geometry}, ST_GeomFromWKB(%s, 4326))")
            params.append(shapely.to_wkb(query.within))
        return clauses

    @staticmethod
    def _page(query: FeatureQuery, params: list[Any]) -> str:
        sql = ""
        if query.limit is not None:
            sql += " LIMIT %s"
            params.append(query.limit)
        if query.offset:
            sql += " OFFSET %s"
            params.append(query.offset)
        return sql

    def _features(self, rows: Sequence[tuple[Any, ...]], with_distance: bool) -> list[Feature]:
        # The page's geometries decoded in one call (one per row cost a tenth of a page).
        geometries = shapely.from_wkb([bytes(r[1]) if r[1] is not None else None for r in rows])
        return [
            Feature(str(r[0]), simplest(geometry), row_document(r[2]),
                    float(r[3]) if with_distance else None)
            for r, geometry in zip(rows, geometries, strict=True)
        ]

    # --- answers ---------------------------------------------------------------------------

    def features(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """Features of a layer matching `query`, ordered by id."""
        definition = self.layer(layer)
        self.check(definition, query)
        table, geometry = self._source(definition)
        params: list[Any] = []
        where = " AND ".join(self._where(definition, query, params))
        count_params = list(params)
        page = self._page(query, params)
        with self.store.reading() as txn:
            # Exact, from the bytewise id index alone when nothing but the geometry is asked
            # for (an index-only scan of a vacuumed table); else the filters' own indexes.
            txn.execute(f"SELECT count(*) FROM {table} WHERE {where}", count_params)
            count = txn.fetchone()
            # The page's ids first, in the order of the bytewise id index (no sort, and the
            # rows skipped by the offset are never read), then only those rows.
            txn.execute(f"SELECT t.id, ST_AsBinary(t.{geometry}), {_document_sql(query.fields)} "
                        f"FROM (SELECT id FROM {table} WHERE {where} "
                        f"ORDER BY {ORDER_BY_ID}{page}) AS p "
                        f"JOIN {table} AS t ON t.id = p.id "
                        f'ORDER BY p.id COLLATE "C"', params)
            rows = txn.fetchall()
        return FeaturePage(self._features(rows, False), int(count[0]) if count else 0)

    def feature(self, layer: str, feature_id: str) -> Feature | None:
        """One feature by id (None if absent or without geometry)."""
        definition = self.layer(layer)
        table, geometry = self._source(definition)
        with self.store.reading() as txn:
            txn.execute(f"SELECT id, ST_AsBinary({geometry}), doc FROM {table} "
                        f"WHERE id = %s AND {geometry} IS NOT NULL", (feature_id,))
            row = txn.fetchone()
        return self._features([row], False)[0] if row is not None else None

    def within_radius(self, layer: str, centre: GeoPoint, radius_m: float,
                      query: FeatureQuery) -> FeaturePage:
        """Features within `radius_m` metres (spheroid) of `centre`, nearest first."""
        definition = self.layer(layer)
        self.check(definition, query)
        self.check_distance(definition, radius_m=radius_m)
        plain = FeatureQuery(where=query.where, period=query.period, limit=query.limit,
                             offset=query.offset)
        rows, count = self._radius(definition, centre, radius_m, plain, count=True)
        return FeaturePage(self._features(rows, True), count)

    def _radius(self, layer: Layer, centre: GeoPoint, radius_m: float, query: FeatureQuery,
                *, count: bool) -> tuple[list[tuple[Any, ...]], int]:
        metric = local_metric(centre.lon, centre.lat, radius_m)
        if metric is None:
            return self._radius_measured(layer, centre, radius_m, query, count=count)
        return self._radius_bounded(layer, centre, radius_m, query, metric, count=count)

    def _radius_bounded(self, layer: Layer, centre: GeoPoint, radius_m: float,
                        query: FeatureQuery, metric: LocalMetric,
                        *, count: bool) -> tuple[list[tuple[Any, ...]], int]:
        """The radius question measuring the spheroidal distance only where the answer
        depends on it: the plane distance of the local metric (cheap arithmetic, within
        `metric.error` of the geodesic one) decides membership except in a thin ring
        around the radius, and bounds which rows can be on the page; the rows of the page
        are then ordered by the exact distance, as `_radius_measured` orders them all."""
        table, geometry = self._source(layer)
        error = metric.error
        outer = radius_m * (1 + error)
        params: list[Any] = [metric.lon, metric.metres_per_lon, metric.lat,
                             metric.metres_per_lat]
        x, y = self._coordinates(layer)
        plane = f"sqrt(power(({x} - %s) * %s, 2) + power(({y} - %s) * %s, 2))"
        where = self._where(layer, query, params)
        where.append(f"{geometry} && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
        params.extend(metric.envelope(outer))
        params.extend([radius_m * (1 - error), outer])
        ring = f"ST_DWithin(g::geography, {_point(params, centre)}, %s)"
        params.append(radius_m)
        distance = f"ST_Distance(g::geography, {_point(params, centre)})"
        bound = ""
        if query.limit is not None:
            # The k-th smallest plane distance bounds the k-th exact one: every row of the
            # first k by exact distance lies within that bound widened by the error twice.
            bound = ("WHERE plane <= %s * coalesce((SELECT plane FROM inside ORDER BY plane "
                     "OFFSET %s LIMIT 1), %s)")
            params.extend([(1 + error) / (1 - error), query.offset + query.limit - 1, outer])
        page = self._page(query, params)
        matched = "(SELECT count(*) FROM inside)" if count else "0"
        with self.store.reading() as txn:
            txn.execute(
                f"WITH candidates AS MATERIALIZED ("
                f"SELECT id, {geometry} AS g, {plane} AS plane FROM {table} "
                f"WHERE {' AND '.join(where)}), "
                f"inside AS MATERIALIZED (SELECT id, g, plane FROM candidates "
                f"WHERE plane <= %s OR (plane <= %s AND {ring})), "
                f"page AS (SELECT id, g, {distance} AS distance_m FROM inside {bound} "
                f"ORDER BY distance_m, {ORDER_BY_ID}{page}) "
                # The count comes even with an empty page (one beyond the last).
                f"SELECT p.id, ST_AsBinary(p.g), t.doc, p.distance_m, m.total "
                f"FROM (SELECT {matched} AS total) AS m LEFT JOIN "
                f"(page AS p JOIN {table} AS t ON t.id = p.id) ON TRUE "
                f'ORDER BY p.distance_m, p.id COLLATE "C"',
                params,
            )
            rows = txn.fetchall()
        total = int(rows[0][4]) if rows else 0
        return [row for row in rows if row[0] is not None], total

    def _radius_measured(self, layer: Layer, centre: GeoPoint, radius_m: float,
                         query: FeatureQuery, *, count: bool) \
            -> tuple[list[tuple[Any, ...]], int]:
        """The radius question measuring the exact distance of every row within it (where
        no local metric applies: near the poles, across the antimeridian, huge radii)."""
        table, geometry = self._source(layer)
        select_params: list[Any] = []
        distance = f"ST_Distance({geometry}::geography, {_point(select_params, centre)})"
        where_params: list[Any] = []
        where = self._where(layer, query, where_params)
        # Written out (not a CTE) so that the planner matches the expression index.
        where.append(f"ST_DWithin({geometry}::geography, {_point(where_params, centre)}, %s)")
        where_params.append(radius_m)
        sql_where = " AND ".join(where)
        page_params: list[Any] = []
        page = self._page(query, page_params)
        matched = 0
        with self.store.reading() as txn:
            # Ordering by distance measures every match anyway: the count comes with the
            # page (`count(*) OVER ()` is taken before LIMIT), in one pass over the index.
            txn.execute(
                f"SELECT id, ST_AsBinary({geometry}), doc, {distance} AS distance_m, "
                f"count(*) OVER () FROM {table} WHERE {sql_where} "
                f"ORDER BY distance_m, {ORDER_BY_ID}{page}",
                [*select_params, *where_params, *page_params],
            )
            rows = txn.fetchall()
            if count and rows:
                matched = int(rows[0][4])
            elif count and query.offset:
                # A page beyond the last: the rows do not tell how many there are.
                txn.execute(f"SELECT count(*) FROM {table} WHERE {sql_where}", where_params)
                row = txn.fetchone()
                matched = int(row[0]) if row else 0
        return rows, matched

    def nearest(self, layer: str, origin: GeoPoint, n: int,
                query: FeatureQuery) -> list[Feature]:
        """The `n` nearest features (spheroid), nearest first."""
        definition = self.layer(layer)
        self.check(definition, query)
        self.check_distance(definition, n=n)
        table, geometry = self._source(definition)
        plain = FeatureQuery(where=query.where, period=query.period, limit=n)
        params: list[Any] = []
        distance = f"ST_Distance({geometry}::geography, {_point(params, origin)})"
        where = " AND ".join(self._where(definition, plain, params))
        knn = f"{geometry}::geography <-> {_point(params, origin)}"
        params.append(n)
        with self.store.reading() as txn:
            txn.execute(f"SELECT max(d) FROM (SELECT {distance} AS d FROM {table} "
                        f"WHERE {where} ORDER BY {knn} LIMIT %s) AS candidates", params)
            row = txn.fetchone()
        if row is None or row[0] is None:
            return []
        # The n candidates in KNN order bound the n-th exact distance: everything nearer
        # lies within that bound, and the radius pass orders it exactly.
        bound = float(row[0]) * (1 + 1e-9) + 1e-6
        rows, _ = self._radius(definition, origin, bound, plain, count=False)
        return self._features(rows, True)


def _document_sql(fields: frozenset[str] | None) -> str:
    """The row's document (`t.doc`), or only the keys asked for (less to send and decode)."""
    if fields is None:
        return "t.doc"
    for key in fields:
        if not key.isidentifier():
            raise ValueError(f"not a document key: {key!r}")
    pairs = ", ".join(f"'{key}', t.doc -> '{key}'" for key in sorted(fields))
    return f"jsonb_build_object({pairs})"


