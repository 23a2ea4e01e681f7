"""The city as a scenario file is checked against (`domain/exercises/scenario.py`): places by
gazetteer name, the city's boundary, the hazard sources with their sensors and the resources
of its inventory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cityops.domain.exercises.scenario import HazardSourceRef, ResourceRef, SensorRef
from cityops.domain.geometry import GeoPoint
from cityops.maps.gazetteer import Gazetteer, normalised

if TYPE_CHECKING:
    from cityops.maps.city import City


class CityScenarioReference:
    """A loaded `City` answering the questions a scenario's checks ask."""

    def __init__(self, city: City) -> None:
        self.city = city
        self._gazetteer: Gazetteer | None = None
        self._sources = {
            source.id: HazardSourceRef(
                id=source.id, name=source.name,
                sensors={s.id: SensorRef(id=s.id, direction=s.direction, warning=s.warning,
                                         alarm=s.alarm, unit=s.unit) for s in source.sensors})
            for source in city.hazard_sources}
        self._resources = {r.id.upper(): ResourceRef(call_sign=r.id, kind=r.kind,
                                                     department=r.department)
                           for r in city.resources}

    @property
    def gazetteer(self) -> Gazetteer:
        # Built on first use: it indexes every cell of the city.
        if self._gazetteer is None:
            self._gazetteer = Gazetteer.of_city(self.city)
        return self._gazetteer

    def place(self, name: str) -> GeoPoint | None:
        wanted = normalised(name)
        for place in self.gazetteer.find(name, limit=20):
            if wanted in place.forms or (place.code or "").upper() == name.strip().upper():
                return place.point
        return None

    def places_like(self, name: str) -> list[str]:
        return [place.name for place in self.gazetteer.find(name, limit=3)]

    def in_city(self, point: GeoPoint) -> bool:
        return self.city.map.contains(point)

    def hazard_source(self, name_or_id: str) -> HazardSourceRef | None:
        found = self._sources.get(name_or_id.strip())
        if found is not None:
            return found
        wanted = normalised(name_or_id)
        return next((s for s in self._sources.values() if normalised(s.name) == wanted), None)

    def resource(self, call_sign: str) -> ResourceRef | None:
        return self._resources.get(call_sign.strip().upper())
