"""Open311 GeoReport v2 through HTTP, as a citizens' reporting app uses it: list the services,
read a definition, submit requests with a real API key issued by the admin, follow them by id,
by token and by search, in XML and JSON; and what it must never see (who reported)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.accounts.commands import IssueApiKey, RevokeApiKey
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.hotline.ticket import Channel, TicketType

BASE = "/open311/v2"
ADMIN = Actor(user_id="admin-1", role=Role.ADMIN)
IN_TOWN = {"lat": "32.05", "long": "118.80"}
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name",
                  "service_code", "description", "agency_responsible", "service_notice",
                  "requested_datetime", "updated_datetime", "expected_datetime", "address",
                  "address_id", "zipcode", "lat", "long", "media_url")
CALLER = {"first_name": "Wei", "last_name": "Zhangsun", "phone": "13812345678",
          "email": "wei.zhangsun@example.org"}
"""Personal data an app sends; none of it may come back out of any GET."""


def issue_key(api: Any, name: str = "Citizen App") -> tuple[str, str]:
    issued = IssueApiKey.new(name)
    api.system.accounts.handle(issued, CommandContext(actor=ADMIN))
    return issued.key, issued.key_id


def xml_of(response: Any) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.text)


def xml_items(root: ET.Element, item: str) -> list[dict[str, str | None]]:
    return [{child.tag: child.text for child in element} for element in root.findall(item)]


def errors_of(response: Any, fmt: str) -> list[dict[str, Any]]:
    """The spec's error list, from either format, as (code, description) dicts."""
    if fmt == "json":
        body: list[dict[str, Any]] = response.json()
        return body
    root = xml_of(response)
    assert root.tag == "errors"
    return [{"code": int(e["code"] or 0), "description": e["description"]}
            for e in xml_items(root, "error")]


def post(api: Any, fields: dict[str, str], fmt: str = "json", expect: int = 201,
         headers: dict[str, str] | None = None) -> Any:
    response = api.client.post(f"{BASE}/requests.{fmt}", data=fields, headers=headers or {})
    assert response.status_code == expect, response.text
    return response


def submitted(response: Any, fmt: str) -> dict[str, Any]:
    if fmt == "json":
        body: list[dict[str, Any]] = response.json()
        assert len(body) == 1
        return body[0]
    root = xml_of(response)
    assert root.tag == "service_requests"
    items = xml_items(root, "request")
    assert len(items) == 1
    return items[0]


def requests_of(api: Any, path: str, fmt: str, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get(f"{BASE}/{path}.{fmt}", params=params)
    assert response.status_code == 200, response.text
    if fmt == "json":
        body: list[dict[str, Any]] = response.json()
        return body
    root = xml_of(response)
    assert root.tag == "service_requests"
    return xml_items(root, "request")


def lamp(key: str, **changes: str) -> dict[str, str]:
    return {"api_key": key, "service_code": "C0105", **IN_TOWN,
            "description": "The street lamp at the corner is out", **changes}


def housing(key: str, **changes: str) -> dict[str, str]:
    return {"api_key": key, "service_code": "housing", "address_string": "12 Paper Mill St",
            "description": "The lift of our building has been broken for a week",
            "attribute[request_type]": "complaint", **changes}


# --- services -------------------------------------------------------------------------------


def test_the_service_list_is_the_catalogue_minus_emergencies_in_both_formats(api: Any) -> None:
    catalogue = api.system.catalogue
    listed = api.client.get(f"{BASE}/services.json").json()
    codes = [s["service_code"] for s in listed]
    emergency_categories = {t.case_category for t in catalogue.hotline_topics.values()
                            if t.emergency and t.case_category}
    expected_grid = [c for c in catalogue.case_categories if c not in emergency_categories]
    expected_hotline = [t.code for t in catalogue.hotline_topics.values()
                        if not t.emergency and t.case_category is None]
    assert codes == expected_grid + expected_hotline
    assert emergency_categories and not emergency_categories & set(codes)
    # A city-management topic is offered as its precise category, not twice.
    assert "garbage" not in codes and "E0101" in codes
    assert "gas-smell" not in codes and "housing" in codes
    for service in listed:
        assert set(service) == {"service_code", "service_name", "description", "metadata",
                                "type", "keywords", "group"}
        assert service["metadata"] is True and service["type"] == "realtime"

    root = xml_of(api.client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    as_xml = xml_items(root, "service")
    assert [s["service_code"] for s in as_xml] == codes
    lamp_service = next(s for s in as_xml if s["service_code"] == "C0105")
    assert lamp_service["service_name"] == "Street lamp"
    assert lamp_service["metadata"] == "true" and lamp_service["group"] == "Public facilities"
    assert "street lighting out" in (lamp_service["keywords"] or "")


def test_service_definitions_in_both_formats(api: Any) -> None:
    definition = api.client.get(f"{BASE}/services/C0105.json").json()
    assert definition["service_code"] == "C0105"
    info, urgency = definition["attributes"]
    assert (info["variable"], info["order"]) == (False, 1)
    assert (urgency["code"], urgency["datatype"], urgency["required"], urgency["order"]) == \
        ("urgency", "singlevaluelist", False, 2)
    assert [v["key"] for v in urgency["values"]] == ["normal", "urgent"]
    assert "4 hours" in urgency["values"][1]["name"]  # the category's urgent time limit

    root = xml_of(api.client.get(f"{BASE}/services/housing.xml"))
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "housing"
    attributes = root.findall("attributes/attribute")
    request_type = next(a for a in attributes if a.findtext("code") == "request_type")
    assert request_type.findtext("required") == "true"
    assert request_type.findtext("datatype") == "singlevaluelist"
    assert [v.findtext("key") for v in request_type.findall("values/value")] == \
        [t.value for t in TicketType]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_jurisdiction_and_format_are_the_specs_errors(api: Any,
                                                                      fmt: str) -> None:
    missing = api.client.get(f"{BASE}/services/E9999.{fmt}")
    assert missing.status_code == 404
    [error] = errors_of(missing, fmt)
    assert error["code"] == 404 and "E9999" in error["description"]

    elsewhere = api.client.get(f"{BASE}/services.{fmt}", params={"jurisdiction_id": "other"})
    assert elsewhere.status_code == 404
    assert "jurisdiction_id 'other'" in errors_of(elsewhere, fmt)[0]["description"]
    ours = api.system.settings.open311_jurisdiction_id
    assert api.client.get(f"{BASE}/services.{fmt}",
                          params={"jurisdiction_id": ours}).status_code == 200

    html = api.client.get(f"{BASE}/services.html")
    assert html.status_code == 400
    assert "use .xml or .json" in errors_of(html, "xml")[0]["description"]


# --- POST requests --------------------------------------------------------------------------


def test_a_grid_report_round_trip_by_id_and_by_token(api: Any) -> None:
    key, _ = issue_key(api)
    answer = submitted(post(api, lamp(key, **{"attribute[urgency]": "urgent",
                                              "media_url": "https://img.example.org/1.jpg",
                                              "account_id": "acct-77"}), "xml"), "xml")
    request_id = answer["service_request_id"]
    assert answer["account_id"] == "acct-77"
    assert "Roads and Bridges Department" in (answer["service_notice"] or "")

    # It entered the grid intake through the domain's own command, attributed to the client.
    case = api.system.grid_cases.case(UUID(request_id))
    assert (case.category, case.urgency.value, case.source) == \
        ("C0105", "urgent", CaseSource.HOTLINE)
    assert case.photos == ["https://img.example.org/1.jpg"]
    first = next(iter(api.system.grid_cases.events.get(case.id)))
    assert first.actor == Actor(user_id="open311:Citizen App", role=Role.SYSTEM)

    for fmt in ("json", "xml"):
        [found] = requests_of(api, f"requests/{request_id}", fmt)
        assert tuple(found) == REQUEST_FIELDS
        assert found["service_request_id"] == request_id
        assert (found["status"], found["service_code"], found["service_name"]) == \
            ("open", "C0105", "Street lamp")
        assert found["address_id"] == case.grid_cell
        assert "Southbank District" in (found["address"] or "")
        assert float(found["lat"] or 0) == 32.05 and float(found["long"] or 0) == 118.80
        assert found["media_url"] == "https://img.example.org/1.jpg"
        assert found["agency_responsible"] == "City Supervision and Command Centre"
        moment = datetime.fromisoformat(found["requested_datetime"] or "")
        assert moment.utcoffset() == timedelta(hours=8)  # the city's time zone
        assert moment == case.reported_at.replace(microsecond=0)  # W3C seconds

        [resolved] = requests_of(api, f"tokens/{answer['token']}", fmt)
        assert resolved == {"service_request_id": request_id, "token": answer["token"]}

    missing = api.client.get(f"{BASE}/tokens/{UUID(int=7)}.json")
    assert missing.status_code == 404
    assert api.client.get(f"{BASE}/requests/{UUID(int=7)}.xml").status_code == 404
    assert api.client.get(f"{BASE}/requests/not-an-id.json").status_code == 404


def test_a_request_switched_into_a_drill_is_refused_and_files_nothing(api: Any) -> None:
    """Open311 serves the live city only: a request sent with the drill switch would have
    become live data while its sender thought it was in a drill."""
    key, _ = issue_key(api)
    drill = str(UUID(int=12))
    for headers, cookies in (({"X-CityOps-Drill": drill}, {}), ({}, {"cityops_drill": drill})):
        api.client.cookies.clear()
        for name, value in cookies.items():
            api.client.cookies.set(name, value)
        refused = post(api, lamp(key), "json", expect=400, headers=headers)
        [error] = refused.json()
        assert "live city only" in error["description"], error
    api.client.cookies.clear()
    assert requests_of(api, "requests", "json") == []


def test_a_hotline_request_keeps_the_caller_private(api: Any) -> None:
    key, _ = issue_key(api, "Neighbourhood app")
    response = api.client.post(f"{BASE}/requests.json", json={
        **housing(key), **CALLER, "device_id": "phone-123",
        "media_url": "https://img.example.org/lift.jpg",
        "attribute": {"request_type": "request-for-help"}})
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]

    # The hotline has the caller's name and phone to call back; the app said it was a phone.
    ticket = api.system.hotline.ticket(UUID(request_id))
    assert (ticket.caller_name, ticket.caller_phone) == ("Wei Zhangsun", "13812345678")
    assert (ticket.channel, ticket.ticket_type, ticket.topic) == \
        (Channel.MOBILE_APP, TicketType.REQUEST_FOR_HELP, "housing")
    assert "12 Paper Mill St" in ticket.description

    api.settle()
    for fmt in ("json", "xml"):
        by_id = api.client.get(f"{BASE}/requests/{request_id}.{fmt}")
        listed = api.client.get(f"{BASE}/requests.{fmt}")
        by_token = api.client.get(f"{BASE}/tokens/{response.json()[0]['token']}.{fmt}")
        for answer in (by_id, listed, by_token):
            assert answer.status_code == 200
            for private in ("Zhangsun", "13812345678", "5678", "wei.zhangsun", "phone-123"):
                assert private not in answer.text
        [found] = requests_of(api, f"requests/{request_id}", fmt)
        assert found["address"] == "12 Paper Mill St" and found["lat"] in (None, "")
        assert found["media_url"] == "https://img.example.org/lift.jpg"
        assert found["agency_responsible"] == "12345 Citizen Service Hotline"


def test_a_retry_files_nothing_new(api: Any) -> None:
    key, _ = issue_key(api)
    fields = lamp(key, device_id="phone-9")
    first = submitted(post(api, fields), "json")
    again = post(api, fields, expect=200)  # the same request: answered again, not filed
    assert submitted(again, "json") == first
    other_device = submitted(post(api, lamp(key, device_id="phone-10")), "json")
    assert other_device["service_request_id"] != first["service_request_id"]

    keyed = {"Idempotency-Key": "app-outbox-41"}
    one = submitted(post(api, housing(key), headers=keyed), "json")
    two = submitted(post(api, housing(key), headers=keyed, expect=200), "json")
    assert one == two
    reused = post(api, housing(key, description="Another matter"), headers=keyed, expect=409)
    assert "app-outbox-41" in errors_of(reused, "json")[0]["description"]
    api.settle()
    assert len(requests_of(api, "requests", "json")) == 3


@pytest.mark.parametrize(("changes", "status", "expected"), [
    ({"service_code": "E9999"}, 404, "service_code 'E9999' was not found"),
    ({"service_code": ""}, 400, "service_code was not provided"),
    ({"service_code": "housing", "attribute[request_type]": ""}, 400,
     "attribute request_type is required"),
    ({"service_code": "housing"}, 400, "attribute request_type is required"),
    ({"attribute[urgency]": "very"}, 400, "'very' is not one of normal, urgent"),
    ({"attribute[colour]": "red"}, 400, "has no attribute 'colour'"),
    ({"attribute[not_an_emergency]": "ok"}, 400, "is information for the user"),
    ({"lat": "32.05", "long": ""}, 400, "lat and long go together"),
    ({"lat": "north", "long": "118.8"}, 400, "lat must be a number"),
    ({"lat": "", "long": "", "address_string": "Paper Mill Street"}, 400,
     "an address string alone cannot be placed"),
    ({"lat": "", "long": "", "address_id": "X99"}, 400, "'X99' is not a unit grid cell"),
    ({"lat": "", "long": ""}, 400, "a location is required"),
    ({"lat": "31.0", "long": "118.0"}, 400, "outside the city"),
    ({"phone": "call me"}, 400, "is not a phone number"),
    ({"email": "nobody"}, 400, "is not an e-mail address"),
    ({"media_url": "file:///etc/passwd"}, 400, "media_url must be an http(s):// address"),
    ({"description": "x" * 4001}, 400, "description is longer than 4000"),
    ({"jurisdiction_id": "elsewhere"}, 404, "jurisdiction_id 'elsewhere' was not found"),
])
def test_bad_requests_are_refused_with_what_is_wrong(api: Any, changes: dict[str, str],
                                                    status: int, expected: str) -> None:
    key, _ = issue_key(api)
    fields = {k: v for k, v in {**lamp(key), **changes}.items() if v != ""}
    for fmt in ("json", "xml"):
        refused = post(api, fields, fmt, expect=status)
        descriptions = [e["description"] for e in errors_of(refused, fmt)]
        assert any(expected in d for d in descriptions), (fmt, descriptions)
        assert all(e["code"] == status for e in errors_of(refused, fmt))
    api.settle()
    assert requests_of(api, "requests", "json") == []


def test_every_problem_is_answered_at_once(api: Any) -> None:
    key, _ = issue_key(api)
    refused = post(api, {"api_key": key, "service_code": "housing", "phone": "x"},
                   expect=400)
    descriptions = " | ".join(e["description"] for e in refused.json())
    for problem in ("a location is required", "request_type is required",
                    "not a phone number"):
        assert problem in descriptions


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_api_keys_missing_wrong_and_revoked_are_refused(api: Any, fmt: str) -> None:
    key, key_id = issue_key(api)
    no_key = {k: v for k, v in lamp(key).items() if k != "api_key"}
    assert errors_of(post(api, no_key, fmt, expect=403), fmt) == \
        [{"code": 403, "description": "api_key was not provided"}]
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    assert errors_of(post(api, lamp(wrong), fmt, expect=403), fmt)[0]["description"] == \
        "api_key is invalid or revoked"
    post(api, lamp(key), fmt)
    api.system.accounts.handle(
        RevokeApiKey(key_id=key_id, reason="app retired"),
        CommandContext(actor=ADMIN))
    assert errors_of(post(api, lamp(key, description="Again"), fmt, expect=403),
                     fmt)[0]["description"] == "api_key is invalid or revoked"


def test_an_address_id_is_a_grid_cell_and_places_the_request(api: Any) -> None:
    key, _ = issue_key(api)
    cell = api.system.city.map.cell("D03-S03-C03-0034")
    answer = submitted(post(api, lamp(key, lat="", long="", address_id=cell.code)
                            | {"lat": "", "long": ""}), "json")
    case = api.system.grid_cases.case(UUID(answer["service_request_id"]))
    assert case.grid_cell == cell.code
    assert (case.location.lon, case.location.lat) == (cell.centre.lon, cell.centre.lat)


def test_a_hotline_request_about_a_place_outside_the_city_is_still_taken(api: Any) -> None:
    key, _ = issue_key(api)
    answer = submitted(post(api, housing(key, lat="31.0", long="118.0")), "json")
    [found] = requests_of(api, f"requests/{answer['service_request_id']}", "json")
    assert (found["lat"], found["long"], found["address_id"]) == (31.0, 118.0, None)


# --- searching ------------------------------------------------------------------------------


def test_searching_requests_by_service_status_dates_and_ids(api: Any) -> None:
    key, _ = issue_key(api)
    lamp_one = submitted(post(api, lamp(key)), "json")["service_request_id"]
    lamp_two = submitted(post(api, lamp(key, description="Another dark lamp",
                                        lat="32.06", long="118.81")), "json")["service_request_id"]
    bin_case = submitted(post(api, lamp(key, service_code="C0302",
                                        description="Trash bin overflowing")),
                         "json")["service_request_id"]
    ticket = submitted(post(api, housing(key)), "json")["service_request_id"]
    # An inspector's case is a public matter of the street: it is listed too. A phone call
    # to the hotline is not: what a caller told an operator is not published.
    inspected = api.post("/grid-cases", {"category": "C0105", "description": "Lamp pole bent",
                                         "location": api.IN_TOWN}, role="inspector",
                         expect=201)["id"]
    called = api.post("/hotline-tickets", {"ticket_type": "complaint", "topic": "housing",
                                           "description": "Noise from the flat upstairs",
                                           "caller_name": "Wang Fang",
                                           "caller_phone": "13900001111"},
                      role="hotline-operator", expect=201)["id"]
    api.post(f"/grid-cases/{lamp_two}/reject", {"reason": "duplicate", "duplicate_of": lamp_one})
    api.settle()

    def ids(fmt: str = "json", **params: Any) -> set[str]:
        return {r["service_request_id"] or "" for r in requests_of(api, "requests", fmt,
                                                                    **params)}

    everything = {lamp_one, lamp_two, bin_case, ticket, inspected}
    assert ids() == ids("xml") == everything
    assert called not in ids()
    assert api.client.get(f"{BASE}/requests/{called}.json").status_code == 404
    assert ids(service_code="C0105") == {lamp_one, lamp_two, inspected}
    assert ids("xml", service_code="C0302,housing") == {bin_case, ticket}
    assert ids(status="closed") == {lamp_two}
    assert ids(status="open") == everything - {lamp_two}
    assert ids(status="open,closed") == everything
    [rejected] = requests_of(api, "requests", "xml", status="closed")
    assert rejected["status_notes"] == f"Duplicate of request {lamp_one}."
    assert rejected["expected_datetime"] is None
    assert ids(service_request_id=f"{ticket},{called},{lamp_one}", status="closed") == \
        {ticket, lamp_one}

    now = api.system.grid_cases.clock()
    future = (now + timedelta(days=1)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert ids(start_date=future) == set()
    past = (now - timedelta(days=1)).isoformat()
    assert ids(start_date=past) == everything
    assert ids(end_date=past) == set()
    newest_first = [r["service_request_id"] for r in requests_of(api, "requests", "json")]
    times = [r["requested_datetime"] for r in requests_of(api, "requests", "json")]
    assert times == sorted(times, reverse=True) and len(newest_first) == 5

    for params, expected in (
        ({"status": "pending"}, "status must be open or closed"),
        ({"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-06-01T00:00:00Z"},
         "spans more than 90 days"),
        ({"start_date": "2024-02-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"},
         "start_date is after end_date"),
        ({"start_date": "2024-01-01T00:00:00"}, "must include its time zone"),
        ({"end_date": "yesterday"}, "must be a W3C date-time"),
        ({"service_code": "nope"}, "service_code 'nope' was not found"),
    ):
        for fmt in ("json", "xml"):
            refused = api.client.get(f"{BASE}/requests.{fmt}", params=params)
            assert refused.status_code in (400, 404)
            assert expected in errors_of(refused, fmt)[0]["description"]


def test_status_follows_the_case_through_the_centre(api: Any) -> None:
    key, _ = issue_key(api)
    request_id = submitted(post(api, lamp(key)), "json")["service_request_id"]
    path = f"/grid-cases/{request_id}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch", {})
    [dispatched] = requests_of(api, f"requests/{request_id}", "json")
    case = api.system.grid_cases.case(UUID(request_id))
    assert dispatched["status"] == "open"
    assert dispatched["agency_responsible"] == "Roads and Bridges Department"
    assert dispatched["status_notes"] == "Dispatched to the Roads and Bridges Department."
    assert datetime.fromisoformat(dispatched["expected_datetime"]) == \
        case.handling_deadline.replace(microsecond=0)  # type: ignore[union-attr]
    assert dispatched["updated_datetime"] >= dispatched["requested_datetime"]


def test_a_merged_hotline_request_reads_as_closed(api: Any) -> None:
    key, _ = issue_key(api)
    first = submitted(post(api, housing(key, lat="32.05", long="118.80")),
                      "json")["service_request_id"]
    second = submitted(post(api, housing(key, lat="32.05", long="118.80",
                                         description="Lift still broken")),
                       "json")["service_request_id"]
    api.post(f"/hotline-tickets/{second}/merge", {"primary_id": first},
             role="hotline-operator")
    [merged] = requests_of(api, f"requests/{second}", "xml")
    assert (merged["status"], merged["status_notes"]) == \
        ("closed", "Merged with an earlier request about the same matter.")
    [primary] = requests_of(api, f"requests/{first}", "xml")
    assert primary["status"] == "open"
