"""Search answers: the places of the city a query names (the gazetteer), and the matches
of each kind (the read models' documents, as the lists show them)."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import Number, PointPublic, Public
from cityops.command_center.models.grid_cases import GridCaseRow
from cityops.command_center.models.hotline import HotlineTicketDocument
from cityops.command_center.models.incidents import IncidentDocument


class PlacePublic(Public):
    """A place of the city: what it is, its code, a point and the bbox to show it."""

    name: str
    kind: str = Field(description="district, street, community, cell, landmark, school, "
                                  "hospital, shelter or hazard-source")
    code: str | None = Field(description="Grid code, facility or hazard source id")
    detail: str | None = Field(description="The kind of landmark or of hazard source")
    point: PointPublic = Field(description="GeoJSON Point (WGS84)")
    bbox: list[Number] = Field(description="min lon, min lat, max lon, max lat (WGS84)")


class PlacesPublic(Public):
    data: list[PlacePublic]
    count: int


class GridCaseHitsPublic(Public):
    """The first matching grid cases (newest first) and how many matched in all."""

    data: list[GridCaseRow]
    count: int


class HotlineTicketHitsPublic(Public):
    """The first matching hotline tickets (newest first) and how many matched in all."""

    data: list[HotlineTicketDocument]
    count: int


class IncidentHitsPublic(Public):
    """The first matching incidents (newest first) and how many matched in all."""

    data: list[IncidentDocument]
    count: int


class SearchResultsPublic(Public):
    """What a search found: the places it understood, and the matches of each kind (null:
    not looked for)."""

    query: str
    words: list[str] = Field(description="The words looked for in the items' text")
    places: list[PlacePublic] = Field(description="Places the query names: the matches "
                                                  "are located there or name them")
    grid_cases: GridCaseHitsPublic | None
    hotline_tickets: HotlineTicketHitsPublic | None
    incidents: IncidentHitsPublic | None
