"""Read-model table of hotline tickets, with the reply deadline for supervision and the facts
the hotline statistics count."""

from __future__ import annotations

from cityops.domain.hotline.ticket import HotlineTicket
from cityops.projections.statistics import TICKET_TALLY
from cityops.projections.tables import (
    DEPARTMENT_PAGES,
    ROW_POINT,
    Column,
    SummaryTable,
    utc_text,
)

TICKET_STATISTICS_INDEX = ("department", "status", "is_open", "replied_at", "replied_on_time",
                           "satisfaction", "reply_deadline")
"""The columns the hotline statistics read: an index over them covers the query, now and
(in the history, after the interval) at a past instant."""


def ticket_table() -> SummaryTable:
    return SummaryTable(
        table="rm_tickets",
        aggregate_class=HotlineTicket,
        columns=(
            Column("topic", "TEXT", lambda t: t.topic, indexed=True),
            Column("department", "TEXT", lambda t: t.department),  # first of page indexes
            Column("grid_cell", "TEXT", lambda t: t.grid_cell, indexed=True),
            Column("is_open", "BOOLEAN", lambda t: t.is_open, indexed=True),
            Column("reply_deadline", "TEXT", lambda t: utc_text(t.reply_deadline)),
            # The reply and the citizen's evaluation, counted by the hotline statistics.
            Column("replied_at", "TEXT", lambda t: utc_text(t.replied_at)),
            Column("replied_on_time", "BOOLEAN", lambda t: t.replied_on_time),
            Column("satisfaction", "TEXT",
                   lambda t: t.satisfaction.value if t.satisfaction else None),
        ),
        geometries=(ROW_POINT,),
        indexes=(TICKET_STATISTICS_INDEX,),
        page_indexes=DEPARTMENT_PAGES,
        tallies=(TICKET_TALLY,),
    )
