"""The catalogue is data, loaded and validated at start-up: the built-in files load, a bad file
is refused with the file and the problem, and routing proposes the most specific department.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cityops.domain.catalogue import (
    CaseClass,
    Catalogue,
    LimitUnit,
    RoutingRule,
    TimeLimit,
    Urgency,
)
from cityops.domain.errors import CatalogueError, InvalidValue

# --- the built-in files -------------------------------------------------------------------


def test_the_built_in_catalogue_loads(catalogue):
    assert len(catalogue.case_categories) >= 30
    assert {"water", "gas", "sanitation", "command-centre"} <= set(catalogue.departments)
    assert 0 < catalogue.yellow_fraction < 1
    assert set(catalogue.stage_limits) >= {"reported", "registered", "handled", "verified"}
    assert sorted(level.rank for level in catalogue.incident_levels.values()) == [1, 2, 3, 4]
    assert catalogue.calendar.timezone.key == "Asia/Shanghai"


def test_every_category_is_classified_and_has_a_limit_per_urgency(catalogue):
    for code, category in catalogue.case_categories.items():
        assert category.code == code
        expected = CaseClass.COMPONENT if code.startswith("C") else CaseClass.EVENT
        assert category.case_class is expected
        assert category.major_code + category.minor_code == code[1:]
        assert category.department in catalogue.departments
        assert set(category.time_limits) == set(Urgency)
        urgent, normal = (category.time_limit(u) for u in (Urgency.URGENT, Urgency.NORMAL))
        assert urgent.unit is LimitUnit.HOURS
        assert urgent.duration(catalogue.calendar) <= normal.duration(catalogue.calendar)


def test_a_manhole_cover_is_a_component_of_public_facilities(catalogue):
    cover = catalogue.case_category("C0101")
    assert cover.case_class is CaseClass.COMPONENT
    assert (cover.major_code, cover.minor_code) == ("01", "01")
    assert cover.major_name == "Public facilities"
    assert cover.time_limit(Urgency.URGENT) == TimeLimit(2, LimitUnit.HOURS)
    assert cover.time_limit(Urgency.NORMAL) == TimeLimit(8, LimitUnit.WORKING_HOURS)


@pytest.mark.parametrize(("lookup", "code", "problem"), [
    ("case_category", "C9999", "unknown grid-case category 'C9999'"),
    ("department", "ministry", "unknown department 'ministry'"),
    ("resource_kind", "dragon", "unknown resource kind 'dragon'"),
    ("incident_level", "V", "unknown incident level 'V'; levels are"),
    ("hotline_topic", "gossip", "unknown hotline topic 'gossip'"),
])
def test_a_look_up_of_an_unknown_code_says_what_is_unknown(catalogue, lookup, code, problem):
    with pytest.raises(InvalidValue) as error:
        getattr(catalogue, lookup)(code)
    assert problem in str(error.value)


def test_an_incident_type_must_belong_to_its_category(catalogue):
    category, types = next(iter(catalogue.incident_categories.items()))
    known = next(iter(types.types))
    assert catalogue.incident_type(category, known) == known
    with pytest.raises(InvalidValue, match="is not in category"):
        catalogue.incident_type(category, "no-such-type")
    with pytest.raises(InvalidValue, match="unknown incident category"):
        catalogue.incident_type("no-such-category", known)


# --- defects in the files -----------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A copy of the built-in data files to break."""
    source = resources.files("cityops.domain").joinpath("data")
    target = tmp_path / "data"
    with resources.as_file(source) as folder:
        shutil.copytree(folder, target)
    return target


def edit(folder: Path, name: str, change: Callable[[Any], None]) -> None:
    path = folder / name
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def first_category(data: Any) -> dict[str, Any]:
    return data["categories"][0]  # type: ignore[no-any-return]


Defect = tuple[str, Callable[[Any], None], str]
DEFECTS: dict[str, Defect] = {
    "missing field": ("case_categories.json",
                      lambda d: first_category(d).pop("name"),
                      "categories.0.name: Field required"),
    "unexpected field": ("departments.json",
                         lambda d: d["departments"][0].update(colour="blue"),
                         "departments.0.colour: Extra inputs are not permitted"),
    "bad category code": ("case_categories.json",
                          lambda d: first_category(d).update(code="X0101"),
                          "categories.0.code: String should match pattern"),
    "missing urgency": ("case_categories.json",
                        lambda d: first_category(d)["time_limits"].pop("urgent"),
                        "time limit missing for urgency urgent"),
    "negative time limit": ("case_categories.json",
                            lambda d: first_category(d)["time_limits"]["normal"].update(
                                amount=-1),
                            "time_limits.normal.amount: Input should be greater than 0"),
    "unknown unit": ("case_categories.json",
                     lambda d: first_category(d)["time_limits"]["normal"].update(
                         unit="fortnights"),
                     "time_limits.normal.unit: Input should be"),
    "unknown department in a category": ("case_categories.json",
                                         lambda d: first_category(d).update(
                                             department="ministry-of-magic"),
                                         "case_categories.json C0101: unknown department "
                                         "'ministry-of-magic'"),
    "duplicate category code": ("case_categories.json",
                                lambda d: d["categories"].append(first_category(d)),
                                "case_categories.json: code 'C0101' appears more than once"),
    "duplicate department code": ("departments.json",
                                  lambda d: d["departments"].append(d["departments"][0]),
                                  "departments.json: code 'command-centre' appears more than "
                                  "once"),
    "no categories": ("case_categories.json", lambda d: d.update(categories=[]),
                      "categories: List should have at least 1 item"),
    "unknown time zone": ("calendar.json", lambda d: d.update(timezone="Mars/Olympus"),
                          "calendar.json: unknown time zone 'Mars/Olympus'"),
    "malformed time zone": ("calendar.json", lambda d: d.update(timezone="../etc/passwd"),
                            "calendar.json: unknown time zone '../etc/passwd'"),
    "bad weekend day": ("calendar.json", lambda d: d.update(weekend=[6, 8]),
                        "weekend days are ISO weekday numbers"),
    "bad holiday date": ("calendar.json", lambda d: d["holidays"].append("2026-02-30"),
                         "holidays.56: Input should be a valid date"),
    "bad working period": ("calendar.json", lambda d: d.update(working_periods=[["8h", "12h"]]),
                           "working_periods.0.0: Input should be in a valid time format"),
    "unknown routing category": ("routing.json",
                                 lambda d: d["rules"].append(
                                     {"category": "X9999", "department": "water"}),
                                 "routing.json rule 9: unknown category or topic 'X9999'"),
    "unknown routing department": ("routing.json",
                                   lambda d: d["rules"][0].update(department="nobody"),
                                   "routing.json rule 1: unknown department 'nobody'"),
    "unknown topic category": ("hotline_topics.json",
                               lambda d: d["topics"][0].update(case_category="C9999"),
                               "hotline_topics.json consultation-policy: unknown case category "
                               "'C9999'"),
    "unknown topic department": ("hotline_topics.json",
                                 lambda d: d["topics"][0].update(department="nobody"),
                                 "hotline_topics.json consultation-policy: unknown department "
                                 "'nobody'"),
    "yellow fraction out of range": ("supervision.json",
                                     lambda d: d.update(yellow_fraction=1.5),
                                     "yellow_fraction: Input should be less than 1"),
    "incident levels not ranked 1 to 4": ("incident_categories.json",
                                          lambda d: d["levels"][0].update(
                                              rank=d["levels"][1]["rank"]),
                                          "levels must have ranks 1 to 4"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_defective_file_is_refused_naming_the_file_and_the_problem(data_dir, defect):
    name, change, problem = DEFECTS[defect]
    edit(data_dir, name, change)
    with pytest.raises(CatalogueError) as error:
        Catalogue.load(data_dir)
    message = str(error.value)
    assert name in message
    assert problem in message


def test_a_file_that_is_not_json_is_refused(data_dir):
    (data_dir / "case_categories.json").write_text('{"version": 1, "categories": [', "utf-8")
    with pytest.raises(CatalogueError) as error:
        Catalogue.load(data_dir)
    assert str(error.value).startswith(f"{data_dir / 'case_categories.json'}: not valid JSON")


def test_a_missing_file_is_refused(data_dir):
    (data_dir / "routing.json").unlink()
    with pytest.raises(CatalogueError, match=r"routing\.json: file not found"):
        Catalogue.load(data_dir)


@pytest.mark.parametrize(("periods", "problem"), [
    ([["08:30", "12:00"], ["11:30", "17:30"]], "working periods overlap"),
    ([["13:30", "17:30"], ["08:30", "12:00"]], "out of order"),
    ([["08:30", "08:30"]], "is empty"),
])
def test_bad_working_periods_are_refused(data_dir, periods, problem):
    edit(data_dir, "calendar.json", lambda d: d.update(working_periods=periods))
    with pytest.raises(CatalogueError) as error:
        Catalogue.load(data_dir)
    assert "calendar" in str(error.value)
    assert problem in str(error.value)


def test_a_day_both_holiday_and_make_up_day_is_refused(data_dir):
    edit(data_dir, "calendar.json", lambda d: d["extra_working_days"].append("2026-10-01"))
    with pytest.raises(CatalogueError, match="both holiday and working day"):
        Catalogue.load(data_dir)


def test_a_calendar_error_names_the_file(data_dir):
    edit(data_dir, "calendar.json",
         lambda d: d.update(working_periods=[["08:30", "12:00"], ["11:30", "17:30"]]))
    with pytest.raises(CatalogueError, match=r"calendar\.json"):
        Catalogue.load(data_dir)


def test_a_time_zone_that_is_a_region_is_refused(data_dir):
    edit(data_dir, "calendar.json", lambda d: d.update(timezone="Asia"))
    with pytest.raises(CatalogueError, match="unknown time zone 'Asia'"):
        Catalogue.load(data_dir)


def test_an_edited_copy_loads(data_dir):
    """The defects above are the only thing wrong: the untouched copy loads."""
    edit(data_dir, "supervision.json", lambda d: d.update(yellow_fraction=0.75))
    assert Catalogue.load(data_dir).yellow_fraction == 0.75


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "area", "department"), [
    # exposed garbage: sanitation by default, urban management in district D04
    ("E0101", "D01-S01-C13-01", "sanitation"),
    ("E0101", "D04-S01-C01-01", "urban-management"),
    ("E0101", "D04", "urban-management"),
    ("E0101", None, "sanitation"),
    # street order: a prefix rule for E04*, an exact rule for illegal parking
    ("E0401", "D01-S01-C13-01", "urban-management"),
    ("E0402", "D01-S01-C13-01", "traffic-police"),
    # public facilities: C01* to water, gas covers to gas
    ("C0101", None, "water"),
    ("C0103", None, "gas"),
    # no rule: the category's own department
    ("C0401", "D02-S01-C01-01", "landscaping"),
    # a hotline topic routes to its department
    ("street-lighting", None, "roads"),
])
def test_routing_of_the_built_in_rules(catalogue, category, area, department):
    assert catalogue.route(category, area) == department


def rules(*specs: tuple[str, str, str]) -> tuple[RoutingRule, ...]:
    return tuple(RoutingRule(category=c, area=a, department=d) for c, a, d in specs)


def test_an_area_rule_beats_a_citywide_one_even_for_a_prefix(catalogue):
    routed = replace(catalogue, routing_rules=rules(
        ("E0101", "*", "police"), ("E01*", "D04", "housing"),
    ))
    assert routed.route("E0101", "D04-S01-C01-01") == "housing"
    assert routed.route("E0101", "D03-S01-C01-01") == "police"


def test_a_deeper_area_beats_a_shallower_one(catalogue):
    routed = replace(catalogue, routing_rules=rules(
        ("E01*", "D04", "housing"), ("E01*", "D04-S02", "transport"),
    ))
    assert routed.route("E0102", "D04-S02-C03-04") == "transport"
    assert routed.route("E0102", "D04-S01-C03-04") == "housing"


def test_an_exact_category_beats_a_prefix_in_the_same_area(catalogue):
    routed = replace(catalogue, routing_rules=rules(
        ("E01*", "D04", "housing"), ("E0102", "D04", "environment"), ("E*", "*", "police"),
        ("E0*", "*", "fire"),
    ))
    assert routed.route("E0102", "D04-S01-C01-01") == "environment"
    assert routed.route("E0101", "D04-S01-C01-01") == "housing"
    # Among prefixes, the longer one is more specific.
    assert routed.route("E0201", "D01-S01-C01-01") == "fire"


def test_an_area_code_matches_whole_segments_only(catalogue):
    routed = replace(catalogue, routing_rules=rules(("E0101", "D04", "housing")))
    assert routed.route("E0101", "D041-S01-C01-01") == "sanitation"
    assert routed.route("E0101", "D04-S01-C01-01") == "housing"


def test_routing_falls_back_to_the_category_department(catalogue):
    routed = replace(catalogue, routing_rules=())
    assert routed.route("C0103", "D01-S01-C01-01") == "gas"


def test_routing_an_unknown_category_is_refused(catalogue):
    with pytest.raises(InvalidValue, match="unknown category or topic 'Z0000'"):
        catalogue.route("Z0000", None)
