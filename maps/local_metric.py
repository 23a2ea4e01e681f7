"""A cheap, bounded stand-in for the geodesic distance near one point, so that a radius
question measures the exact (spheroidal) distance only where the answer depends on it.

Around a centre at latitude φ0 the ellipsoid is locally flat: a degree of longitude is
N(φ0)·cos φ0·π/180 metres and a degree of latitude M(φ0)·π/180 metres (N and M the radii
of curvature of WGS84). The plane distance over those scales differs from the geodesic one
by a relative error that grows with the distance and with tan φ0 (the meridians converge);
`LocalMetric.error` bounds it with a wide margin (measured against geographiclib, the
largest error is under a tenth of the bound at every latitude it is used at).

A point whose plane distance is below r·(1-ε) is surely within r, one above r·(1+ε) surely
beyond; only the thin ring between needs the exact distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WGS84_A = 6_378_137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
MAX_LATITUDE = 70.0
"""Beyond it the meridians converge too fast for a flat neighbourhood to pay off."""
MAX_ERROR = 0.05
"""A larger bound (radius of hundreds of kilometres) gains nothing over measuring exactly."""
_EARTH_M = 6_350_000.0


@dataclass(frozen=True)
class LocalMetric:
    """Metres per degree of longitude and latitude at a centre, and the relative error
    bound of the plane distance for points up to twice `reach` metres away."""

    lon: float
    lat: float
    metres_per_lon: float
    metres_per_lat: float
    error: float

    def distance(self, lon: float, lat: float) -> float:
        """The plane distance in metres from the centre (within `error` of the geodesic)."""
        return math.hypot((lon - self.lon) * self.metres_per_lon,
                          (lat - self.lat) * self.metres_per_lat)

    def envelope(self, metres: float) -> tuple[float, float, float, float]:
        """The lon/lat box holding every point whose plane distance is at most `metres`."""
        dlon = metres / self.metres_per_lon
        dlat = metres / self.metres_per_lat
        return self.lon - dlon, self.lat - dlat, self.lon + dlon, self.lat + dlat


def local_metric(lon: float, lat: float, reach: float) -> LocalMetric | None:
    """The local metric at (lon, lat) for distances up to `reach` metres, or None where a
    flat neighbourhood is not good enough (near the poles, across the antimeridian, or for
    a reach so large that the bound would be loose): measure exactly there."""
    if abs(lat) > MAX_LATITUDE or reach < 0:
        return None
    phi = math.radians(lat)
    sin2 = math.sin(phi) ** 2
    m = WGS84_A * (1 - WGS84_E2) / (1 - WGS84_E2 * sin2) ** 1.5
    n = WGS84_A / math.sqrt(1 - WGS84_E2 * sin2)
    error = 0.002 + 3 * (1 + abs(math.tan(phi))) * (2 * reach / _EARTH_M)
    if error > MAX_ERROR:
        return None
    metric = LocalMetric(lon, lat, n * math.cos(phi) * math.pi / 180, m * math.pi / 180,
                         error)
    minx, miny, maxx, maxy = metric.envelope(2 * reach)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        return None
    return metric
