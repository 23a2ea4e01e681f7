"""Every alert the warning desk can send is a valid CAP 1.2 document: alert, update and
cancellation; each level on both scales; polygon and circle areas; both languages; a drill's
exercise; a restricted warning. Each is checked against the OASIS schema and the standard's
rules beyond it (`cap.render` refuses otherwise), and read back field by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from lxml import etree

from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.warnings.content import (
    AdminAreaRef,
    AdminLevel,
    AlertStatus,
    Certainty,
    LevelKind,
    MessageType,
    NoticeReference,
    Scope,
    Urgency,
    WarningArea,
    WarningCircle,
    WarningContent,
    WarningLevel,
    WarningNotice,
    WarningOrigin,
    WarningText,
)
from cityops.feeds import cap
from cityops.feeds.cap_warnings import SEVERITY_BY_RANK, alert_message, cap_categories

CST = timezone(timedelta(hours=8))
SENT = datetime(2026, 3, 10, 9, 0, tzinfo=CST)
WARNING = UUID("6f1c2d1e-0000-4000-8000-000000000001")
INCIDENT = UUID("6f1c2d1e-0000-4000-8000-0000000000aa")
SENDER = "command-centre@cityops.invalid"
NS = {"cap": cap.CAP_NAMESPACE}
ZONE = Area(wkt="POLYGON ((118.78 32.04, 118.80 32.04, 118.80 32.06, 118.78 32.06, "
                "118.78 32.04))")
COLOURS = [("red", 1), ("orange", 2), ("yellow", 3), ("blue", 4)]
INCIDENT_LEVELS = [("I", 1), ("II", 2), ("III", 3), ("IV", 4)]


def content(*, level: tuple[str, int] = ("red", 1), kind: LevelKind = LevelKind.COLOUR,
            circles: bool = False, scope: Scope = Scope.PUBLIC,
            expires: datetime = SENT + timedelta(hours=6)) -> WarningContent:
    area = WarningArea(
        description="LPG depot impact zone",
        polygons=() if circles else (ZONE,),
        circles=(WarningCircle(GeoPoint(118.795, 32.05), 1.5),) if circles else (),
        admin_areas=(AdminAreaRef(AdminLevel.DISTRICT, "D01", "West"),
                     AdminAreaRef(AdminLevel.COMMUNITY, "D01-S02-C03", "Riverside")))
    return WarningContent(
        category="accident-disaster", event_type="gas-leak",
        level=WarningLevel(level[0], kind, level[1]), urgency=Urgency.IMMEDIATE,
        certainty=Certainty.OBSERVED,
        texts=(WarningText("en-US", "Gas leak at the LPG depot", "Gas is leaking.",
                           "Leave the area now.", "Gas leak"),
               WarningText("zh-CN", "液化气站燃气泄漏", "燃气正在泄漏。", "请立即撤离。",
                           "燃气泄漏")),
        area=area, onset=SENT, expires=expires, contact="12345",
        scope=scope, restriction="emergency-management fire police"
        if scope is Scope.RESTRICTED else "",
        origin=WarningOrigin(kind="incident", incident_id=INCIDENT, title="Gas leak"))


def notice(sequence: int = 1, msg_type: MessageType = MessageType.ALERT, *,
           status: AlertStatus = AlertStatus.ACTUAL, body: WarningContent | None = None,
           references: tuple[NoticeReference, ...] = ()) -> WarningNotice:
    return WarningNotice(
        warning_id=WARNING, identifier=f"cityops-warning.{WARNING}.{sequence}",
        sequence=sequence, msg_type=msg_type, sent=SENT + timedelta(minutes=sequence),
        sender=SENDER, sender_name="City Emergency Command Centre", status=status,
        content=body or content(), references=references,
        note="area widened" if msg_type is MessageType.UPDATE else "",
        drill_id="drill-7" if status is AlertStatus.EXERCISE else None,
        issued_by="duty-zhao", approved_by="duty-li")


def document(value: WarningNotice) -> Any:
    return etree.fromstring(cap.render(alert_message(value)))


def texts(root: Any, path: str) -> list[str]:
    return [e.text or "" for e in root.findall(path, NS)]


@pytest.mark.parametrize("kind, levels", [(LevelKind.COLOUR, COLOURS),
                                          (LevelKind.INCIDENT_LEVEL, INCIDENT_LEVELS)])
def test_each_level_maps_to_its_severity(kind: LevelKind, levels: list[tuple[str, int]]) -> None:
    severities = []
    for level in levels:
        root = document(notice(body=content(level=level, kind=kind)))
        severities.append(texts(root, "cap:info/cap:severity"))
        assert texts(root, "cap:info/cap:eventCode[cap:valueName='CITYOPS-LEVEL']/cap:value") \
            == [level[0]] * 2
    assert severities == [[s] * 2 for s in ("Extreme", "Severe", "Moderate", "Minor")]
    assert SEVERITY_BY_RANK == {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}


def test_an_alert_carries_the_whole_warning_in_both_languages() -> None:
    root = document(notice())
    assert texts(root, "cap:identifier") == [f"cityops-warning.{WARNING}.1"]
    assert texts(root, "cap:sender") == [SENDER]
    assert texts(root, "cap:sent") == ["2026-03-10T09:01:00+08:00"]
    assert texts(root, "cap:status") == ["Actual"]
    assert texts(root, "cap:msgType") == ["Alert"]
    assert texts(root, "cap:scope") == ["Public"]
    assert texts(root, "cap:incidents") == [f"{WARNING} {INCIDENT}"]
    assert root.find("cap:references", NS) is None
    # One info block per language, zh-CN first (the content's order).
    assert texts(root, "cap:info/cap:language") == ["zh-CN", "en-US"]
    assert texts(root, "cap:info/cap:headline") == ["液化气站燃气泄漏", "Gas leak at the LPG depot"]
    assert texts(root, "cap:info/cap:event") == ["燃气泄漏", "Gas leak"]
    assert texts(root, "cap:info/cap:instruction") == ["请立即撤离。", "Leave the area now."]
    assert texts(root, "cap:info/cap:category") == ["Safety", "Infra"] * 2
    assert texts(root, "cap:info/cap:urgency") == ["Immediate"] * 2
    assert texts(root, "cap:info/cap:certainty") == ["Observed"] * 2
    assert texts(root, "cap:info/cap:onset") == ["2026-03-10T09:00:00+08:00"] * 2
    assert texts(root, "cap:info/cap:expires") == ["2026-03-10T15:00:00+08:00"] * 2
    assert texts(root, "cap:info/cap:senderName") == ["City Emergency Command Centre"] * 2
    assert texts(root, "cap:info/cap:contact") == ["12345"] * 2
    assert texts(root, "cap:info/cap:area/cap:areaDesc") == ["LPG depot impact zone"] * 2
    ring = texts(root, "cap:info/cap:area/cap:polygon")[0].split()
    assert ring[0] == ring[-1] == "32.04,118.78"  # latitude first
    assert texts(root, "cap:info[1]/cap:area/cap:geocode/cap:valueName") == [
        "CITYOPS-DISTRICT", "CITYOPS-COMMUNITY"]
    assert texts(root, "cap:info[1]/cap:area/cap:geocode/cap:value") == ["D01", "D01-S02-C03"]


def test_a_circle_area_is_latitude_longitude_and_kilometres() -> None:
    root = document(notice(body=content(circles=True)))
    assert texts(root, "cap:info/cap:area/cap:circle") == ["32.05,118.795 1.5"] * 2
    assert root.find("cap:info/cap:area/cap:polygon", NS) is None


def test_an_update_and_a_cancellation_reference_every_earlier_message() -> None:
    first = notice()
    update = notice(2, MessageType.UPDATE, references=(first.reference,),
                    body=content(circles=True))
    cancel = notice(3, MessageType.CANCEL, references=(first.reference, update.reference))
    update_root, cancel_root = document(update), document(cancel)
    assert texts(update_root, "cap:msgType") == ["Update"]
    assert texts(update_root, "cap:note") == ["area widened"]
    assert texts(update_root, "cap:references") == [
        f"{SENDER},cityops-warning.{WARNING}.1,2026-03-10T09:01:00+08:00"]
    assert texts(cancel_root, "cap:msgType") == ["Cancel"]
    assert texts(cancel_root, "cap:references") == [
        f"{SENDER},cityops-warning.{WARNING}.1,2026-03-10T09:01:00+08:00 "
        f"{SENDER},cityops-warning.{WARNING}.2,2026-03-10T09:02:00+08:00"]


def test_a_drill_warning_is_an_exercise() -> None:
    root = document(notice(status=AlertStatus.EXERCISE))
    assert texts(root, "cap:status") == ["Exercise"]


def test_a_restricted_warning_names_who_may_receive_it() -> None:
    root = document(notice(body=content(scope=Scope.RESTRICTED)))
    assert texts(root, "cap:scope") == ["Restricted"]
    assert texts(root, "cap:restriction") == ["emergency-management fire police"]


@pytest.mark.parametrize("msg_type", list(MessageType))
@pytest.mark.parametrize("status", list(AlertStatus))
@pytest.mark.parametrize("circles", [False, True])
@pytest.mark.parametrize("scope", list(Scope))
def test_every_combination_is_valid_against_the_oasis_schema(
        msg_type: MessageType, status: AlertStatus, circles: bool, scope: Scope) -> None:
    first = notice(status=status)
    references = () if msg_type is MessageType.ALERT else (first.reference,)
    value = notice(1 if msg_type is MessageType.ALERT else 2, msg_type, status=status,
                   references=references, body=content(circles=circles, scope=scope))
    data = cap.render(alert_message(value))
    root = etree.fromstring(data)
    assert cap.schema_problems(root) == []
    assert cap.rule_problems(root) == []


def test_a_cancellation_sent_after_the_warning_expired_is_still_valid() -> None:
    first = notice()
    late = replace(notice(2, MessageType.CANCEL, references=(first.reference,)),
                   sent=SENT + timedelta(hours=8))
    cap.render(alert_message(late))


def test_every_catalogue_event_type_has_a_cap_category() -> None:
    import json
    from importlib import resources

    raw = json.loads(resources.files("cityops.domain").joinpath(
        "data", "incident_categories.json").read_text("utf-8"))
    for category in raw["categories"]:
        for event_type in category["types"]:
            assert cap_categories(category["code"], event_type["code"]) != ("Other",), \
                event_type["code"]
    assert cap_categories("unknown", "unknown") == ("Other",)
