"""The spatial questions of the command centre, asked the same way of either back end: the
features of a layer in a bbox or a polygon, within R metres of a point, the N nearest, the
hazard sources near an incident, the facilities in a hazard zone.

Two implementations give the same answers: `PostgisSpatialQueries` (production: PostGIS
columns with GiST indexes, `geography` for metres) and `EmbeddedSpatialQueries` (SQLite read
models and an in-memory STRtree kept up to date from the followers' changes). Distances are
geodesic metres on the WGS84 ellipsoid on both; polygon predicates are planar in WGS84 on
both (as PostGIS `geometry(…, 4326)` answers them); ties are ordered by id, compared
bytewise (PostgreSQL `COLLATE "C"`), so that pages are the same on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue, NotFound
from cityops.domain.geometry import GeoPoint
from cityops.projections.spatial_layers import LAYERS, Layer
from cityops.projections.tables import SummaryTable
from cityops.storage import ReadStore

MAX_RADIUS_M = 100_000.0
MAX_NEAREST = 100


class NotOnMap(NotFound):
    """A layer, or a feature of one, that is not on the map; the message can say what is."""

    def __init__(self, kind: str, item_id: object, hint: str = "") -> None:
        super().__init__(kind, repr(item_id) if isinstance(item_id, str) else item_id)
        if hint:
            self.args = (f"{self.args[0]}; {hint}",)


@dataclass(frozen=True)
class Feature:
    """A feature of a layer: id, WGS84 geometry, the row's document, and how far it is
    from the point asked about (radius and nearest questions)."""

    id: str
    geometry: BaseGeometry | None
    doc: dict[str, Any]
    distance_m: float | None = None


@dataclass(frozen=True)
class FeaturePage:
    """One page of features and how many matched in all."""

    features: list[Feature]
    matched: int


@dataclass(frozen=True)
class FeatureQuery:
    """What the features must satisfy, and which page of them is wanted."""

    where: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    """Filter name -> allowed (typed) values."""
    bbox: tuple[float, float, float, float] | None = None
    """WGS84 (min lon, min lat, max lon, max lat): features intersecting it."""
    within: BaseGeometry | None = None
    """A WGS84 polygon: features intersecting it (inside or on its edge)."""
    period: tuple[str | None, str | None] | None = None
    """(from, to) as UTC ISO text, either open: the layer's time must lie within."""
    limit: int | None = 10
    """None: every matching feature (exports)."""
    offset: int = 0
    fields: frozenset[str] | None = None
    """The document keys the caller reads (a back end may leave the others out, a key
    without a value reads as None); None: the whole document."""


EVERYTHING = FeatureQuery(limit=None)


class SpatialQueries(Protocol):
    """The spatial query interface the routers use, whatever the back end."""

    @property
    def layers(self) -> Mapping[str, Layer]:
        """The published layers by id."""
        ...

    def features(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """Features of a layer matching `query`, ordered by id."""
        ...

    def feature(self, layer: str, feature_id: str) -> Feature | None:
        """One feature (None if there is none with that id, or it has no geometry)."""
        ...

    def within_radius(self, layer: str, centre: GeoPoint, radius_m: float,
                      query: FeatureQuery) -> FeaturePage:
        """Features of a point layer at most `radius_m` metres from `centre`, nearest
        first; `query` gives the filters, period and page (not bbox or polygon)."""
        ...

    def nearest(self, layer: str, origin: GeoPoint, n: int,
                query: FeatureQuery) -> list[Feature]:
        """The `n` features of a point layer nearest to `origin` matching `query`'s filters
        and period, nearest first."""
        ...

    def follow(self, followers: Sequence[Any]) -> None:
        """Listen to the projection followers (the embedded index needs their changes)."""
        ...

    def close(self) -> None:
        """Release what the back end holds (not the read store: the system closes it)."""
        ...


class SpatialQueriesBase:
    """The checks both back ends make before they answer."""

    def __init__(self, layers: Mapping[str, Layer] = LAYERS) -> None:
        self._layers = dict(layers)

    @property
    def layers(self) -> Mapping[str, Layer]:
        """The published layers by id."""
        return self._layers

    def layer(self, name: str) -> Layer:
        """A layer by id, or a NotFound naming the layers there are."""
        try:
            return self._layers[name]
        except KeyError:
            known = ", ".join(sorted(self._layers))
            raise NotOnMap("layer", name, f"layers: {known}") from None

    def check(self, layer: Layer, query: FeatureQuery) -> None:
        """Refuse a query that the layer cannot answer, with the reason."""
        for name in query.where:
            layer.filter(name)
        if query.period is not None and layer.temporal is None:
            raise InvalidValue(f"{layer.id} has no time: it cannot be filtered by datetime")
        if query.limit is not None and query.limit < 0:
            raise InvalidValue("limit must not be negative")
        if query.offset < 0:
            raise InvalidValue("offset must not be negative")

    def check_distance(self, layer: Layer, radius_m: float | None = None,
                       n: int | None = None) -> None:
        """Distance questions are asked of point layers, within sensible bounds."""
        if not layer.points:
            raise InvalidValue(f"{layer.id} is a polygon layer: radius and nearest questions "
                               "are asked of point layers")
        if radius_m is not None and not (0 <= radius_m <= MAX_RADIUS_M):
            raise InvalidValue(f"radius must be 0..{MAX_RADIUS_M:,.0f} metres, got {radius_m}")
        if n is not None and not (1 <= n <= MAX_NEAREST):
            raise InvalidValue(f"the number of nearest features must be 1..{MAX_NEAREST}, "
                               f"got {n}")

    def follow(self, followers: Sequence[Any]) -> None:
        """Nothing to follow by default (PostGIS reads the tables as they are)."""

    def close(self) -> None:
        """Nothing to release by default (the read store is closed by the system)."""


# --- questions composed of the primitives (the same on both back ends) ---------------------

ACTIVE_HAZARD_SOURCES = {"status": ("active",)}


def hazard_sources_near_incident(spatial: SpatialQueries, incident_id: str, radius_m: float,
                                 *, limit: int = 50, offset: int = 0,
                                 recorded: Callable[[str], BaseGeometry | None] | None = None
                                 ) -> FeaturePage:
    """Active hazard sources within `radius_m` metres of an incident's location, nearest
    first. `recorded` gives the location of an incident the read model has not seen yet (one
    recorded a moment ago), from the write side; None if it does not exist there either."""
    location = _point_of(_geometry(spatial, "incidents", incident_id, recorded), "incident",
                         incident_id)
    return spatial.within_radius(
        "hazard-sources", location, radius_m,
        FeatureQuery(where=ACTIVE_HAZARD_SOURCES, limit=limit, offset=offset),
    )


def facilities_in_hazard_zone(spatial: SpatialQueries, source_id: str,
                              kinds: Sequence[str] = (), *,
                              recorded: Callable[[str], BaseGeometry | None] | None = None
                              ) -> FeaturePage:
    """The schools, hospitals and shelters (or only `kinds`) inside a hazard source's
    impact zone, ordered by id; `recorded` as for `hazard_sources_near_incident`."""
    zone = _geometry(spatial, "hazard-zones", source_id, recorded)
    if zone is None:
        raise NotOnMap("hazard source", source_id, "(or it has no impact zone)")
    where = {"kind": tuple(kinds)} if kinds else {}
    return spatial.features("facilities", FeatureQuery(where=where, within=zone, limit=None))


def _geometry(spatial: SpatialQueries, layer: str, feature_id: str,
              recorded: Callable[[str], BaseGeometry | None] | None) -> BaseGeometry | None:
    """A feature's geometry from the read model, else (not projected yet) as recorded."""
    found = spatial.feature(layer, feature_id)
    if found is not None and found.geometry is not None:
        return found.geometry
    if found is None and recorded is not None:
        return recorded(feature_id)
    return None


def _point_of(geometry: BaseGeometry | None, kind: str, feature_id: str) -> GeoPoint:
    if geometry is None:
        raise NotOnMap(kind, feature_id, "(or it is not on the map)")
    return GeoPoint(lon=float(geometry.x), lat=float(geometry.y))


def spatial_queries_for(store: ReadStore, tables: Sequence[SummaryTable],
                        city: Any) -> SpatialQueries:
    """The back end that matches the read store: PostGIS on PostgreSQL (the city's layers
    are published into it), the embedded STRtree index on SQLite."""
    if store.dialect == "postgres":
        from cityops.projections.spatial_postgis import PostgisSpatialQueries

        postgis = PostgisSpatialQueries(store, tables, city)
        postgis.publish_city()
        return postgis
    from cityops.projections.spatial_embedded import EmbeddedSpatialQueries

    return EmbeddedSpatialQueries(store, tables, city)
