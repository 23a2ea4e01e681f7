"""What the demo city has where, as data for its generator (`cityops.maps.demo_city`): hazard
sources with sensors, schools, hospitals, shelters, emergency resources and display landmarks,
placed in km east/north of the city centre. Every place is checked to lie inside the city.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.affinity import scale
from shapely.geometry.base import BaseGeometry

from cityops.maps.crs import MetricProjection


def _gas(sensor_id: str, label: str) -> dict[str, Any]:
    # Combustible gas detectors: first alarm at 20 %LEL, second at 40 %LEL.
    return {"id": sensor_id, "kind": "gas-concentration", "unit": "%LEL", "direction": "high",
            "warning": 20.0, "alarm": 40.0, "label": label}


def _sensor(sensor_id: str, kind: str, unit: str, direction: str, warning: float,
            alarm: float, label: str) -> dict[str, Any]:
    return {"id": sensor_id, "kind": kind, "unit": unit, "direction": direction,
            "warning": warning, "alarm": alarm, "label": label}


HAZARD_SOURCES: list[dict[str, Any]] = [
    {"id": "HS-01", "name": "Jinhe Fine Chemicals Plant", "type": "chemical-plant",
     "owner_name": "Jinhe Fine Chemicals Co., Ltd.", "owner_contact": "Safety office 025-5550-0101",
     "grade": 1, "impact_radius_m": 1000, "at": (3.0, -0.6), "sensors": [
         _gas("HS-01-GAS-01", "Tank farm gas detector"),
         _sensor("HS-01-TEMP-01", "temperature", "°C", "high", 85.0, 95.0,
                 "Reactor R-2 temperature"),
         _sensor("HS-01-PRES-01", "pressure", "MPa", "high", 1.6, 1.8, "Reactor R-2 pressure"),
         _sensor("HS-01-LVL-01", "liquid-level", "m", "low", 2.0, 1.2,
                 "Cooling water tank level"),
     ]},
    {"id": "HS-02", "name": "Eastgate LPG Storage Depot", "type": "lpg-depot",
     "owner_name": "Demo City Gas Group", "owner_contact": "Dispatch room 025-5550-0102",
     "grade": 2, "impact_radius_m": 500, "at": (3.2, 2.0), "sensors": [
         _gas("HS-02-GAS-01", "Loading bay gas detector"),
         _sensor("HS-02-PRES-01", "pressure", "MPa", "high", 1.6, 1.77,
                 "Sphere tank T-1 pressure"),
         _sensor("HS-02-LVL-01", "liquid-level", "m", "high", 8.5, 9.0, "Sphere tank T-1 level"),
     ]},
    {"id": "HS-03", "name": "Drum Tower Gas Station", "type": "gas-station",
     "owner_name": "Sinoroad Petroleum Demo City Branch",
     "owner_contact": "Station manager 025-5550-0103",
     "grade": 4, "impact_radius_m": 100, "at": (-1.5, 1.8), "sensors": [
         _gas("HS-03-GAS-01", "Forecourt gas detector"),
         _sensor("HS-03-LVL-01", "liquid-level", "m", "high", 2.4, 2.6,
                 "Underground tank level"),
     ]},
    {"id": "HS-04", "name": "Qingshan Reservoir Dam", "type": "reservoir-dam",
     "owner_name": "Demo City Water Resources Bureau",
     "owner_contact": "Dam management station 025-5550-0104",
     "grade": 1, "at": (2.4, -2.5),
     # The flood path below the dam down to the river: the zone that matters, not a circle.
     "impact_zone_km": [(2.0, -2.7), (2.8, -2.7), (3.4, -1.2), (3.6, 0.2), (2.2, 0.5),
                        (1.6, -1.0)],
     "sensors": [
         _sensor("HS-04-WL-01", "water-level", "m", "high", 48.5, 50.0,
                 "Reservoir water level"),
         _sensor("HS-04-PRES-01", "pressure", "MPa", "high", 0.25, 0.3, "Dam seepage pressure"),
     ]},
    {"id": "HS-05", "name": "Pine Hill Slope", "type": "landslide-slope",
     "owner_name": "Hillside District Natural Resources Office",
     "owner_contact": "Geological hazard desk 025-5550-0105",
     "grade": 2, "impact_radius_m": 300, "at": (1.3, -2.2), "sensors": [
         _sensor("HS-05-WL-01", "water-level", "m", "high", 12.0, 13.5,
                 "Borehole groundwater level"),
         _sensor("HS-05-PRES-01", "pressure", "MPa", "high", 0.08, 0.12, "Pore water pressure"),
     ]},
    {"id": "HS-06", "name": "Metro Line 3 Lotus Lake Station Excavation",
     "type": "deep-excavation", "owner_name": "Demo City Metro Construction Co.",
     "owner_contact": "Site safety officer 025-5550-0106",
     "grade": 3, "impact_radius_m": 150, "at": (1.2, 1.6), "sensors": [
         _sensor("HS-06-WL-01", "water-level", "m", "high", 6.0, 7.0, "Pit groundwater level"),
         _sensor("HS-06-PRES-01", "pressure", "MPa", "high", 0.35, 0.45,
                 "Retaining wall earth pressure"),
     ]},
    {"id": "HS-07", "name": "Ferry Pier Chemical Warehouse", "type": "chemical-storage",
     "owner_name": "Riverport Logistics Co., Ltd.",
     "owner_contact": "Warehouse duty room 025-5550-0107",
     "grade": 2, "impact_radius_m": 800, "at": (-2.5, -0.6), "sensors": [
         _sensor("HS-07-GAS-01", "gas-concentration", "ppm", "high", 25.0, 50.0,
                 "Ammonia detector"),
         _sensor("HS-07-TEMP-01", "temperature", "°C", "high", 30.0, 40.0,
                 "Warehouse temperature"),
     ]},
    {"id": "HS-08", "name": "Southbank Gas Station", "type": "gas-station",
     "owner_name": "Sinoroad Petroleum Demo City Branch",
     "owner_contact": "Station manager 025-5550-0108",
     "grade": 4, "impact_radius_m": 100, "at": (-1.0, -2.0),
     "sensors": [_gas("HS-08-GAS-01", "Forecourt gas detector")]},
]

FACILITIES: list[dict[str, Any]] = [
    # Schools: capacity in pupils.
    {"id": "SCH-01", "kind": "school", "name": "Drum Tower Primary School", "capacity": 1200,
     "at": (-2.0, 1.2)},
    {"id": "SCH-02", "kind": "school", "name": "Old Town Middle School", "capacity": 1800,
     "at": (-0.8, 2.2)},
    {"id": "SCH-03", "kind": "school", "name": "Eastgate Primary School", "capacity": 1000,
     "at": (1.5, 2.4)},
    {"id": "SCH-04", "kind": "school", "name": "Lotus Lake Experimental School",
     "capacity": 1500, "at": (2.9, 1.7)},
    {"id": "SCH-05", "kind": "school", "name": "Silk Market Kindergarten", "capacity": 300,
     "at": (0.9, 1.0)},
    {"id": "SCH-06", "kind": "school", "name": "Southbank Primary School", "capacity": 900,
     "at": (-2.6, -1.2)},
    {"id": "SCH-07", "kind": "school", "name": "Willow Bank Middle School", "capacity": 1600,
     "at": (-1.6, -1.0)},
    {"id": "SCH-08", "kind": "school", "name": "Hillside Primary School", "capacity": 1100,
     "at": (2.3, -1.0)},
    {"id": "SCH-09", "kind": "school", "name": "Quarry Road School", "capacity": 700,
     "at": (3.4, -2.0)},
    {"id": "SCH-10", "kind": "school", "name": "Paper Mill Vocational School",
     "capacity": 2000, "at": (-0.6, -2.5)},
    # Hospitals: capacity in beds.
    {"id": "HOS-01", "kind": "hospital", "name": "City People's Hospital", "capacity": 1500,
     "at": (-1.0, 0.9)},
    {"id": "HOS-02", "kind": "hospital", "name": "Eastgate Hospital of Traditional Medicine",
     "capacity": 600, "at": (2.0, 2.0)},
    {"id": "HOS-03", "kind": "hospital", "name": "Southbank District Hospital",
     "capacity": 500, "at": (-2.0, -2.2)},
    {"id": "HOS-04", "kind": "hospital", "name": "Hillside Community Health Centre",
     "capacity": 80, "at": (1.6, -1.6)},
    {"id": "HOS-05", "kind": "hospital", "name": "Demo City Children's Hospital",
     "capacity": 400, "at": (-3.0, 2.2)},
    {"id": "HOS-06", "kind": "hospital", "name": "Riverside Trauma Centre", "capacity": 300,
     "at": (0.8, 0.2)},
    # Shelters: capacity in places.
    {"id": "SHL-01", "kind": "shelter", "name": "Drum Tower Square Shelter", "capacity": 3000,
     "at": (-1.8, 2.5)},
    {"id": "SHL-02", "kind": "shelter", "name": "Old Town Sports Park Shelter",
     "capacity": 5000, "at": (-3.2, 0.8)},
    {"id": "SHL-03", "kind": "shelter", "name": "Eastgate Stadium Shelter", "capacity": 8000,
     "at": (1.0, 2.6)},
    {"id": "SHL-04", "kind": "shelter", "name": "Lotus Lake Park Shelter", "capacity": 4000,
     "at": (2.2, 1.1)},
    {"id": "SHL-05", "kind": "shelter", "name": "Southbank Riverside Park Shelter",
     "capacity": 6000, "at": (-0.9, -0.6)},
    {"id": "SHL-06", "kind": "shelter", "name": "Ferry Pier School Gymnasium Shelter",
     "capacity": 1500, "at": (-3.2, -2.0)},
    {"id": "SHL-07", "kind": "shelter", "name": "Hillside Central Park Shelter",
     "capacity": 5000, "at": (1.4, -0.3)},
    {"id": "SHL-08", "kind": "shelter", "name": "Stone Quarry Plaza Shelter",
     "capacity": 2500, "at": (3.1, -2.6)},
    {"id": "SHL-09", "kind": "shelter", "name": "Paper Mill Exhibition Hall Shelter",
     "capacity": 3500, "at": (0.0, -1.8)},
]

BASES = {
    # name: position (km)
    "Old Town Fire Station": (-1.2, 1.5),
    "Eastgate Fire Station": (1.8, 1.4),
    "Southbank Fire Station": (-1.8, -1.6),
    "Hillside Special Service Fire Station": (2.0, -1.8),
    "City Emergency Rescue Team Base": (-0.3, 1.2),
    "Jade River Water Rescue Station North": (-0.5, 0.45),
    "Jade River Water Rescue Station South": (2.5, 0.35),
    "City People's Hospital": (-1.0, 0.9),
    "Eastgate Hospital of Traditional Medicine": (2.0, 2.0),
    "Southbank District Hospital": (-2.0, -2.2),
    "Riverside Trauma Centre": (0.8, 0.2),
    "Emergency Medical Centre": (0.0, 1.5),
    "Old Town Police Station": (-2.4, 1.9),
    "Eastgate Police Station": (2.6, 2.3),
    "Southbank Police Station": (-1.2, -1.4),
    "Hillside Police Station": (1.2, -0.9),
    "City Public Security Bureau": (-0.5, 1.8),
    "Drainage Depot West": (-0.2, -0.8),
    "Drainage Depot East": (1.5, 0.2),
    "Roads Maintenance Yard": (-3.0, -0.9),
    "Gas Company Emergency Repair Station": (2.8, 0.9),
    "City Emergency Supply Depot": (-3.3, -2.2),
    "Eastgate Stadium Shelter": (1.0, 2.6),
    "Southbank Riverside Park Shelter": (-0.9, -0.6),
}

RESOURCES: list[dict[str, Any]] = [
    {"id": "FE-01", "kind": "fire-engine", "department": "fire", "name": "Old Town Engine 1",
     "base": "Old Town Fire Station"},
    {"id": "FE-02", "kind": "fire-engine", "department": "fire", "name": "Old Town Engine 2",
     "base": "Old Town Fire Station"},
    {"id": "FE-03", "kind": "fire-engine", "department": "fire", "name": "Eastgate Engine 1",
     "base": "Eastgate Fire Station"},
    {"id": "FE-04", "kind": "fire-engine", "department": "fire", "name": "Eastgate Engine 2",
     "base": "Eastgate Fire Station"},
    {"id": "FE-05", "kind": "fire-engine", "department": "fire", "name": "Southbank Engine 1",
     "base": "Southbank Fire Station"},
    {"id": "FE-06", "kind": "fire-engine", "department": "fire", "name": "Hillside Engine 1",
     "base": "Hillside Special Service Fire Station"},
    {"id": "LT-01", "kind": "ladder-truck", "department": "fire",
     "name": "Eastgate Aerial Ladder 1", "base": "Eastgate Fire Station"},
    {"id": "HZ-01", "kind": "hazmat-team", "department": "fire",
     "name": "Special Service Hazmat Squad", "base": "Hillside Special Service Fire Station"},
    {"id": "RT-01", "kind": "rescue-team", "department": "fire",
     "name": "Southbank Rescue Squad", "base": "Southbank Fire Station"},
    {"id": "RT-02", "kind": "rescue-team", "department": "emergency-management",
     "name": "City Emergency Rescue Team", "base": "City Emergency Rescue Team Base"},
    {"id": "WB-01", "kind": "water-rescue-boat", "department": "fire",
     "name": "Jade River Boat 1", "base": "Jade River Water Rescue Station North"},
    {"id": "WB-02", "kind": "water-rescue-boat", "department": "fire",
     "name": "Jade River Boat 2", "base": "Jade River Water Rescue Station South"},
    {"id": "AMB-01", "kind": "ambulance", "department": "health", "name": "Ambulance 101",
     "base": "City People's Hospital"},
    {"id": "AMB-02", "kind": "ambulance", "department": "health", "name": "Ambulance 102",
     "base": "City People's Hospital"},
    {"id": "AMB-03", "kind": "ambulance", "department": "health", "name": "Ambulance 201",
     "base": "Eastgate Hospital of Traditional Medicine"},
    {"id": "AMB-04", "kind": "ambulance", "department": "health", "name": "Ambulance 301",
     "base": "Southbank District Hospital"},
    {"id": "AMB-05", "kind": "ambulance", "department": "health", "name": "Ambulance 401",
     "base": "Riverside Trauma Centre"},
    {"id": "AMB-06", "kind": "ambulance", "department": "health", "name": "Ambulance 501",
     "base": "Emergency Medical Centre"},
    {"id": "PC-01", "kind": "police-car", "department": "police", "name": "Old Town Patrol 1",
     "base": "Old Town Police Station"},
    {"id": "PC-02", "kind": "police-car", "department": "police", "name": "Eastgate Patrol 1",
     "base": "Eastgate Police Station"},
    {"id": "PC-03", "kind": "police-car", "department": "police",
     "name": "Southbank Patrol 1", "base": "Southbank Police Station"},
    {"id": "PC-04", "kind": "police-car", "department": "police", "name": "Hillside Patrol 1",
     "base": "Hillside Police Station"},
    {"id": "PC-05", "kind": "police-car", "department": "police", "name": "City Patrol 1",
     "base": "City Public Security Bureau"},
    {"id": "DP-01", "kind": "drainage-pump-truck", "department": "water",
     "name": "Pump Truck West 1", "base": "Drainage Depot West"},
    {"id": "DP-02", "kind": "drainage-pump-truck", "department": "water",
     "name": "Pump Truck West 2", "base": "Drainage Depot West"},
    {"id": "DP-03", "kind": "drainage-pump-truck", "department": "water",
     "name": "Pump Truck East 1", "base": "Drainage Depot East"},
    {"id": "EV-01", "kind": "engineering-vehicle", "department": "roads",
     "name": "Road Repair Unit 1", "base": "Roads Maintenance Yard"},
    {"id": "EV-02", "kind": "engineering-vehicle", "department": "gas",
     "name": "Gas Emergency Repair Unit 1", "base": "Gas Company Emergency Repair Station"},
    {"id": "SD-01", "kind": "supply-depot", "department": "emergency-management",
     "name": "City Emergency Supply Depot", "base": "City Emergency Supply Depot"},
    {"id": "SR-01", "kind": "shelter", "department": "emergency-management",
     "name": "Eastgate Stadium Shelter", "base": "Eastgate Stadium Shelter",
     "facility_id": "SHL-03"},
    {"id": "SR-02", "kind": "shelter", "department": "emergency-management",
     "name": "Southbank Riverside Park Shelter", "base": "Southbank Riverside Park Shelter",
     "facility_id": "SHL-05"},
]

RIVER_HALF_WIDTH_M = 80.0
RESERVOIR_KM = ((2.4, -3.45), 0.9, 0.35)
"""Centre, half-length and half-width (km) of the reservoir lake south of the dam."""


def draw_inventory(
    projection: MetricProjection,
    centre: tuple[float, float],
    outline: BaseGeometry,
    river_line: BaseGeometry,
    avenue_line: BaseGeometry,
) -> dict[str, list[dict[str, Any]]]:
    """The GeoJSON features of hazard_sources, facilities, resources and landmarks (the
    outline, river and avenue in the metric CRS)."""
    cx, cy = centre

    def metric(km: tuple[float, float]) -> shapely.Point:
        return shapely.Point(cx + 1000.0 * km[0], cy + 1000.0 * km[1])

    def point(km: tuple[float, float], what: str) -> dict[str, Any]:
        place = metric(km)
        if not outline.contains(place):
            raise AssertionError(f"{what} at {km} km is outside the demo city")
        return dict(shapely.geometry.mapping(projection.to_wgs84(place)))

    def feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "Feature", "properties": properties, "geometry": geometry}

    hazards = []
    for source in HAZARD_SOURCES:
        properties = {k: v for k, v in source.items() if k not in ("at", "impact_zone_km")}
        if "impact_zone_km" in source:
            zone = shapely.Polygon([metric(p).coords[0] for p in source["impact_zone_km"]])
            properties["impact_zone"] = dict(shapely.geometry.mapping(projection.to_wgs84(zone)))
        hazards.append(feature(point(source["at"], source["id"]), properties))
    facilities = [
        feature(point(f["at"], f["id"]), {k: v for k, v in f.items() if k != "at"})
        for f in FACILITIES
    ]
    resources = [feature(point(BASES[r["base"]], r["id"]), r) for r in RESOURCES]

    around = outline.buffer(1500.0)
    river = river_line.buffer(RIVER_HALF_WIDTH_M, cap_style="flat").intersection(around)
    (lx, ly), half_length, half_width = RESERVOIR_KM
    lake = scale(metric((lx, ly)).buffer(1000.0, quad_segs=16),
                                  half_length, half_width)
    landmarks = [
        feature(dict(shapely.geometry.mapping(projection.to_wgs84(shape))),
                {"name": name, "kind": kind})
        for name, kind, shape in (
            ("Jade River", "river", river),
            ("Qingshan Reservoir", "reservoir", lake),
            ("Central Avenue", "road", avenue_line.intersection(around)),
        )
    ]
    return {"hazard_sources": hazards, "facilities": facilities, "resources": resources,
            "landmarks": landmarks}
