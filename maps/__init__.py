"""The city's map: administrative hierarchy, unit grid, and the spatial questions of dispatch
and hazard supervision, measured in a metric CRS and answered in WGS84.

Nothing is loaded at import time: `load_demo_city()` / `load_city(directory)` read a city
when first asked, and the composition root keeps the result.
"""

from cityops.maps.city import City, CityInfo, DemoCity, load_city, load_demo_city
from cityops.maps.citymap import (
    AdministrativeArea,
    CityMap,
    GridCell,
    GridLocation,
    ImportReport,
    Inspector,
)
from cityops.maps.crs import MetricProjection, utm_crs_for
from cityops.maps.grid import GridSpec
from cityops.maps.hierarchy import AdministrativeHierarchy, TilingIssue
from cityops.maps.inventory import (
    EmergencyResource,
    Facility,
    FacilityKind,
    HazardSource,
    Sensor,
)
from cityops.maps.layers import AdminLevel
from cityops.maps.proximity import (
    DistanceModel,
    Nearby,
    Positioned,
    PositionIndex,
    StraightLine,
    nearest,
    nearest_of_kind,
    within_radius,
)
from cityops.maps.validity import GeometryRepair, InvalidGeometryPolicy
from cityops.maps.zones import (
    circle_zone,
    facilities_at_risk,
    facilities_in_zone,
    hazard_sources_near,
    impact_zone,
    zone_area_m2,
)

__all__ = [
    "AdminLevel",
    "AdministrativeArea",
    "AdministrativeHierarchy",
    "City",
    "CityInfo",
    "CityMap",
    "DemoCity",
    "DistanceModel",
    "EmergencyResource",
    "Facility",
    "FacilityKind",
    "GeometryRepair",
    "GridCell",
    "GridLocation",
    "GridSpec",
    "HazardSource",
    "ImportReport",
    "Inspector",
    "InvalidGeometryPolicy",
    "MetricProjection",
    "Nearby",
    "PositionIndex",
    "Positioned",
    "Sensor",
    "StraightLine",
    "TilingIssue",
    "circle_zone",
    "facilities_at_risk",
    "facilities_in_zone",
    "hazard_sources_near",
    "impact_zone",
    "load_city",
    "load_demo_city",
    "nearest",
    "nearest_of_kind",
    "utm_crs_for",
    "within_radius",
    "zone_area_m2",
]
