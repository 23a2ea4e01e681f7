"""Open311 service definitions: every datatype of the spec is checked as the spec describes
it, and a request's answers are validated against its service's definition."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cityops.command_center.open311 import (
    Attribute,
    AttributeValue,
    Datatype,
    Format,
    Intake,
    Open311Error,
    Service,
    render,
)

COLOURS = (AttributeValue("red", "Red"), AttributeValue("blue", "Blue"))
SERVICE = Service(
    code="S1", name="Sample", description="A sample service", group="g", keywords=("a",),
    intake=Intake.GRID, department="roads", notice="We will look at it.",
    attributes=(
        Attribute("info", Datatype.TEXT, "Read me", 1, variable=False),
        Attribute("depth", Datatype.NUMBER, "Depth in cm", 2, required=True),
        Attribute("seen", Datatype.DATETIME, "When you saw it", 3),
        Attribute("plate", Datatype.STRING, "Number plate", 4),
        Attribute("notes", Datatype.TEXT, "Anything else", 5),
        Attribute("colour", Datatype.SINGLEVALUELIST, "Colour", 6, values=COLOURS),
        Attribute("colours", Datatype.MULTIVALUELIST, "Colours", 7, values=COLOURS),
    ),
)


def test_answers_of_every_datatype_are_parsed() -> None:
    answers = SERVICE.attribute_answers({
        "depth": ["12.5"], "seen": ["2024-05-01T08:00:00+08:00"], "plate": ["SU A1234"],
        "notes": ["line one\nline two"], "colour": ["red"], "colours": ["blue", "red"],
    })
    assert answers == {"depth": 12.5, "seen": "2024-05-01T08:00:00+08:00",
                       "plate": "SU A1234", "notes": "line one\nline two", "colour": "red",
                       "colours": ["blue", "red"]}
    # A multivaluelist may also come as one comma-separated value.
    assert SERVICE.attribute_answers({"depth": ["1"], "colours": ["red,blue"]})["colours"] \
        == ["blue", "red"]


@pytest.mark.parametrize(("given", "expected"), [
    ({}, "attribute depth is required"),
    ({"depth": ["deep"]}, "depth must be a number"),
    ({"depth": ["nan"]}, "depth must be a finite number"),
    ({"depth": ["1", "2"]}, "takes one value, not 2"),
    ({"depth": ["1"], "seen": ["2024-05-01 08:00"]}, "must include its time zone"),
    ({"depth": ["1"], "seen": ["May 1st"]}, "must be a W3C date-time"),
    ({"depth": ["1"], "plate": ["two\nlines"]}, "one line of text"),
    ({"depth": ["1"], "colour": ["green"]}, "'green' is not one of red, blue"),
    ({"depth": ["1"], "colours": ["red", "green"]}, "'green' is not one of red, blue"),
    ({"depth": ["1"], "info": ["x"]}, "information for the user"),
    ({"depth": ["1"], "size": ["L"]}, "has no attribute 'size'"),
])
def test_bad_answers_say_what_is_wrong(given: dict[str, list[str]], expected: str) -> None:
    with pytest.raises(Open311Error) as refused:
        SERVICE.attribute_answers(given)
    assert refused.value.status == 400
    assert any(expected in d for d in refused.value.descriptions), refused.value.descriptions


def test_the_definition_renders_as_the_specs_xml() -> None:
    root = ET.fromstring(render(Format.XML, "service_definition", None, SERVICE.definition()))
    attributes = root.findall("attributes/attribute")
    assert [a.findtext("order") for a in attributes] == [str(i) for i in range(1, 8)]
    colours = attributes[6]
    assert colours.findtext("datatype") == "multivaluelist"
    assert [(v.findtext("key"), v.findtext("name")) for v in colours.findall("values/value")] \
        == [("red", "Red"), ("blue", "Blue")]
    # Only list datatypes carry values; an unset description is an empty element.
    assert attributes[1].find("values") is None
    assert attributes[1].find("datatype_description") is not None
    assert attributes[1].findtext("datatype_description") == ""
