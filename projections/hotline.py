"""Read-model table of hotline tickets, with the reply deadline for supervision."""

from __future__ import annotations

from cityops.domain.hotline.ticket import HotlineTicket
from cityops.projections.tables import ROW_POINT, Column, SummaryTable, utc_text


def ticket_table() -> SummaryTable:
    return SummaryTable(
        table="rm_tickets",
        aggregate_class=HotlineTicket,
        columns=(
            Column("topic", "TEXT", lambda t: t.topic, indexed=True),
            Column("department", "TEXT", lambda t: t.department, indexed=True),
            Column("grid_cell", "TEXT", lambda t: t.grid_cell, indexed=True),
            Column("is_open", "BOOLEAN", lambda t: t.is_open, indexed=True),
            Column("reply_deadline", "TEXT", lambda t: utc_text(t.reply_deadline)),
        ),
        geometries=(ROW_POINT,),
    )
