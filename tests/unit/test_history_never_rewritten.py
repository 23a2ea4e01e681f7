"""History is never rewritten through any interface: no code of CityOps updates, deletes,
truncates or drops a stored event or a link of the hash chain (the recorders only insert;
tamper checks read)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "domain", "projections", "ingest", "feeds", "command-center", "maps")

REWRITE = re.compile(
    r"\b(UPDATE|DELETE\s+FROM|TRUNCATE(\s+TABLE)?|DROP\s+TABLE(\s+IF\s+EXISTS)?|ALTER\s+TABLE)"
    r"\s+[\w.{}\"]*(stored_events|_events\b|event_chain|\{events\}|\{chain\})",
    re.IGNORECASE)


def rewrites_history(source: str) -> list[str]:
    """The statements in `source` that would change or remove stored events or links."""
    return [m.group(0) for m in REWRITE.finditer(source)]


def test_the_check_recognises_a_rewrite() -> None:
    assert rewrites_history('c.execute("UPDATE stored_events SET state = ?")')
    assert rewrites_history("DELETE FROM gridcases_events WHERE notification_id = 3")
    assert rewrites_history('SQL("TRUNCATE {}.{}").format(schema, "x_events")') == []
    assert rewrites_history("TRUNCATE incidents_events")
    assert rewrites_history("DELETE FROM {schema}.gridcases_event_chain")
    assert rewrites_history("INSERT INTO stored_events VALUES (?,?,?,?)") == []
    assert rewrites_history("SELECT link FROM event_chain") == []


def test_no_code_of_cityops_rewrites_a_stored_event_or_its_link() -> None:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            statements = rewrites_history(path.read_text(encoding="utf-8"))
            if statements:
                found[str(path.relative_to(REPO))] = statements
    assert found == {}
