"""Read-model table of hazard sources, with their grade and how many alarms are open."""

from __future__ import annotations

from cityops.domain.hazard import HazardSource, open_alarms
from cityops.projections.tables import Column, SummaryTable


def hazard_source_table() -> SummaryTable:
    return SummaryTable(
        table="rm_hazard_sources",
        aggregate_class=HazardSource,
        columns=(
            Column("hazard_type", "TEXT", lambda h: h.hazard_type, indexed=True),
            Column("grade", "INTEGER", lambda h: h.grade, indexed=True),
            Column("open_alarm_count", "INTEGER", lambda h: len(open_alarms(h)), indexed=True),
        ),
    )
