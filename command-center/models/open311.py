"""Open311 GeoReport v2 as the API answers it in JSON (the same fields in the spec's XML,
`text/xml`): discovery, the service list and definitions, and service requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cityops.command_center.models.common import Number, Public, sometimes

XML_TOO: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {"schema": {"type": "string"}}}}}
"""The same answer in the spec's XML (format `xml`): the fields of the JSON schema as
elements."""


class EndpointPublic(Public):
    specification: str
    url: str
    changeset: str | None
    type: str
    formats: list[str]


class DiscoveryPublic(Public):
    """Service discovery: where the GeoReport v2 endpoint is and which formats it speaks."""

    changeset: str | None
    contact: str
    key_service: str
    endpoints: list[EndpointPublic]


class ServicePublic(Public):
    """A matter citizens may report."""

    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="Whether it has a service definition with attributes")
    type: Literal["realtime"]
    keywords: str = Field(description="Comma-separated")
    group: str


class AttributeValuePublic(Public):
    key: str
    name: str


class AttributePublic(Public):
    """A question a request of the service answers."""

    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValuePublic] = sometimes("The choices of a (multi)value list")


class ServiceDefinitionPublic(Public):
    service_code: str
    attributes: list[AttributePublic]


class PostedRequestPublic(Public):
    """The answer to a POST: the request's id, the city's notice, the client's account and
    a token to find the request again."""

    service_request_id: str
    service_notice: str | None
    account_id: str | None
    token: str


class RequestTokenPublic(Public):
    service_request_id: str
    token: str


class ServiceRequestPublic(Public):
    """A service request's status and details (never who reported it)."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None = Field(description="W3C date-time in the city's zone")
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: Number | None
    long: Number | None
    media_url: str | None
