"""The shared-data catalogue: loaded and validated with clear errors, and applied field by
field by the one sharing function."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cityops.domain.actors import Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import CatalogueError
from cityops.feeds.sharing import (
    Recipient,
    SharingCatalogue,
    SharingClass,
    load_sharing_policy,
    required_fields,
    stream_fields,
)
from cityops.feeds.streams import Stream

RAW: dict[str, Any] = json.loads(
    resources.files("cityops.domain").joinpath("data", "sharing.json").read_text("utf-8"))


def load(raw: Any, catalogue: Catalogue) -> SharingCatalogue:
    return SharingCatalogue.from_data(raw, label="test sharing.json",
                                      departments=catalogue.departments,
                                      fields=stream_fields())


def expected_receivers(text: str, departments: list[str]) -> set[str]:
    """Who should get a field, read from the file independently of the code under test."""
    if text == "shared":
        return {"city-wide", *departments}
    if text == "not-shared":
        return set()
    condition = RAW["conditions"][text.removeprefix("conditional:")]
    return set(condition["departments"])


FIELDS = [(stream, name, text) for stream, feed in RAW["feeds"].items()
          for name, text in feed["fields"].items()]


@pytest.mark.parametrize(("stream", "name", "text"), FIELDS,
                         ids=[f"{s}.{n}" for s, n, _ in FIELDS])
def test_each_field_reaches_exactly_the_recipients_its_class_allows(
        stream: str, name: str, text: str, sharing: SharingCatalogue,
        catalogue: Catalogue) -> None:
    departments = sorted(catalogue.departments)
    value = {"a": f"value of {name}"}
    received = set()
    if name in sharing.share(Stream(stream), {name: value}, Recipient.city_wide()):
        received.add("city-wide")
    for department in departments:
        shared = sharing.share(Stream(stream), {name: value, "unrelated": 1},
                               Recipient.department_feed(department))
        if name in shared:
            assert shared[name] is value
            received.add(department)
    assert received == expected_receivers(text, departments)


def test_caller_personal_data_goes_only_to_the_hotline_and_the_police(
        sharing: SharingCatalogue, catalogue: Catalogue) -> None:
    facts = {"caller_name": "Zhang San", "caller_phone": "13812345678",
             "calls": [{"caller_name": "Li Si"}], "topic": "noise",
             "possible_duplicates": ["x"]}
    for department in catalogue.departments:
        shared = sharing.share(Stream.HOTLINE, facts, Recipient.department_feed(department))
        personal = {"caller_name", "caller_phone", "calls"} & set(shared)
        if department in ("hotline", "police"):
            assert personal == {"caller_name", "caller_phone", "calls"}
        else:
            assert personal == set(), department
        assert shared["topic"] == "noise"
        assert "possible_duplicates" not in shared
    assert sharing.share(Stream.HOTLINE, facts, Recipient.city_wide()) == {"topic": "noise"}


def test_roles_of_a_condition_apply_to_people_not_to_departments(
        sharing: SharingCatalogue) -> None:
    facts = {"caller_phone": "13812345678"}
    operator = Recipient(role=Role.HOTLINE_OPERATOR)
    leader = Recipient(role=Role.LEADER)
    assert sharing.share(Stream.HOTLINE, facts, operator) == facts
    assert sharing.share(Stream.HOTLINE, facts, leader) == {}


def test_a_field_the_catalogue_does_not_know_is_withheld(sharing: SharingCatalogue) -> None:
    shared = sharing.share(Stream.GRID_CASES, {"category": "C0101", "secret_note": "x"},
                           Recipient.department_feed("water"))
    assert shared == {"category": "C0101"}


def test_the_built_in_catalogue_covers_every_field_of_every_stream(
        sharing: SharingCatalogue) -> None:
    for stream in Stream:
        assert set(sharing.feeds[stream].fields) == set(required_fields(stream))
        assert sharing.feeds[stream].scope and sharing.feeds[stream].update_frequency
    assert sharing.sharing_of(Stream.HOTLINE, "caller_name").sharing is SharingClass.CONDITIONAL
    assert sharing.sharing_of(Stream.RESOURCES, "notes").sharing is SharingClass.NOT_SHARED
    with pytest.raises(CatalogueError, match="has no field 'nope'"):
        sharing.sharing_of(Stream.RESOURCES, "nope")


def test_the_catalogue_as_published_lists_conditions_and_classes(
        sharing: SharingCatalogue) -> None:
    published = sharing.as_dict()
    assert published["feeds"]["hotline"]["fields"]["caller_name"] == (
        "conditional:caller-personal-data")
    assert published["conditions"]["caller-personal-data"]["departments"] == [
        "hotline", "police"]
    json.dumps(published)  # plain data


# --- validation ------------------------------------------------------------------------------


def broken(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    change(raw)
    return raw


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["feeds"]["hotline"]["fields"].pop("caller_phone"),
     "feeds.hotline.fields: field 'caller_phone' (of HotlineTicket.Received) has no sharing "
     "class"),
    (lambda r: r["feeds"]["hotline"]["fields"].update(caller_email="shared"),
     "'caller_email' is not a field of the hotline feed"),
    (lambda r: r["feeds"]["hotline"]["fields"].update(caller_name="conditional:friends"),
     "feeds.hotline.fields.caller_name: unknown condition 'friends'"),
    (lambda r: r["feeds"]["hotline"]["fields"].update(caller_name="secret"),
     "'secret' is not a sharing class"),
    (lambda r: r["conditions"]["caller-personal-data"]["departments"].append("mi5"),
     "conditions.caller-personal-data: unknown department 'mi5'"),
    (lambda r: r["conditions"]["caller-personal-data"]["roles"].append("spy"),
     "conditions.caller-personal-data: unknown role 'spy'"),
    (lambda r: r["conditions"]["caller-personal-data"].update(departments=[], roles=[]),
     "names no department and no role"),
    (lambda r: r["feeds"].pop("resources"), "feeds.resources: missing"),
    (lambda r: r["feeds"].update(weather=r["feeds"]["hazards"]),
     "feeds.weather: unknown stream"),
    (lambda r: r["feeds"]["incidents"].update(scope=""), "feeds.incidents.scope"),
    (lambda r: r["feeds"]["incidents"].update(refresh="hourly"),
     "feeds.incidents.refresh: Extra inputs are not permitted"),
])
def test_a_bad_catalogue_is_refused_with_what_is_wrong(change: Any, message: str,
                                                       catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueError) as refused:
        load(broken(change), catalogue)
    assert message in str(refused.value)
    assert str(refused.value).startswith("test sharing.json: ")


def test_every_problem_is_listed_at_once(catalogue: Catalogue) -> None:
    def two_problems(raw: dict[str, Any]) -> None:
        raw["feeds"]["hotline"]["fields"].pop("caller_name")
        raw["feeds"]["grid-cases"]["fields"]["photos"] = "maybe"

    with pytest.raises(CatalogueError) as refused:
        load(broken(two_problems), catalogue)
    assert "caller_name" in str(refused.value) and "'maybe'" in str(refused.value)


def test_a_catalogue_file_that_is_missing_or_not_json_is_a_clear_error(
        tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueError, match="file not found"):
        load_sharing_policy(tmp_path / "none.json", departments=catalogue.departments)
    bad = tmp_path / "bad.json"
    bad.write_text("{feeds:", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"bad.json: not valid JSON"):
        load_sharing_policy(bad, departments=catalogue.departments)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(RAW), encoding="utf-8")
    assert load_sharing_policy(good, departments=catalogue.departments).source == str(good)
