"""The after-action review as files: CSV tables for further analysis and a PDF report, both
made from the same document the API answers as JSON (`IncidentReviewPublic`,
`PeriodReviewPublic`): the report's figures and, when the review is opened, its findings and
improvement plan.

The PDF is written with fpdf2, its charts drawn as figures (bars against the norms), its
tables as tables; text in the city's time zone. A Unicode TrueType font is embedded as a
subset so that the demo city's Chinese names render wherever the file is opened: the one
configured (`CITYOPS_REPORT_FONT`), else the first of Debian's CJK fonts found, else DejaVu
Sans (then Chinese characters cannot be shown, and the report says so)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from cityops.domain.errors import InvalidValue

CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
"""Debian's CJK fonts with TrueType outlines (fonts-wqy-microhei, fonts-wqy-zenhei,
fonts-droid-fallback), in order of preference."""
NONE = "\u2013"
"""What a table shows for a value that is not there (an en dash)."""
LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class ReviewTable(StrEnum):
    """The tables of a review that CSV gives one at a time."""

    TIMELINE = "timeline"
    MILESTONES = "milestones"
    RESOURCES = "resources"
    DEPARTMENTS = "departments"
    TASKS = "tasks"
    LATE_OR_NEVER = "late_or_never"
    RESOURCE_USE = "resource_use"
    OBJECTIVES = "objectives"
    INCIDENTS = "incidents"
    """A period's incidents (an incident's review has one row: itself)."""
    FINDINGS = "findings"
    IMPROVEMENTS = "improvements"


# --- CSV --------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON, null as empty."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def table_rows(document: Mapping[str, Any], table: ReviewTable) -> list[dict[str, Any]]:
    """The rows of one table of a review document."""
    report = document["report"]
    review = document.get("review") or {}
    if table is ReviewTable.FINDINGS:
        return list(review.get("findings", []))
    if table is ReviewTable.IMPROVEMENTS:
        return list(review.get("improvements", []))
    if table is ReviewTable.INCIDENTS and report["kind"] == "incident":
        return [{k: report[k] for k in ("incident_id", "title", "category", "incident_type",
                                        "level", "status", "reported_at", "milestones")}
                | {"late_or_never": len(report["late_or_never"])}]
    return list(report[table.value])


def review_csv(document: Mapping[str, Any], table: ReviewTable) -> str:
    """One table of a review document as CSV (a header row, then a row per item; nested
    values as JSON)."""
    rows = table_rows(document, table)
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    if not columns:
        columns = _EMPTY_COLUMNS.get(table, ["none"])
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return out.getvalue()


_EMPTY_COLUMNS = {
    ReviewTable.OBJECTIVES: ["name", "target", "measured", "verdict", "rating",
                             "observations"],
    ReviewTable.FINDINGS: ["id", "kind", "aspect", "text", "department"],
    ReviewTable.IMPROVEMENTS: ["id", "action", "department", "assignee", "due", "status"],
    ReviewTable.RESOURCES: ["resource_id", "call_sign", "kind", "department"],
    ReviewTable.LATE_OR_NEVER: ["task_id", "department", "description", "due", "verdict"],
}


# --- PDF --------------------------------------------------------------------------------


def report_font(configured: Path | None) -> tuple[Path | None, bool]:
    """(the font file to embed, whether it has CJK glyphs); (None, False): none was found
    (fpdf2's core font is used, Latin-1 only)."""
    if configured is not None:
        if not configured.is_file():
            raise InvalidValue(f"the report font {configured} does not exist")
        return configured, True
    for candidate in CJK_FONTS:
        if candidate.is_file():
            return candidate, True
    if LATIN_FONT.is_file():
        return LATIN_FONT, False
    return None, False


def _minutes(seconds: float | None) -> str:
    """A duration for people: `12 min 30 s`, `1 h 05 min`."""
    if seconds is None:
        return NONE
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min {secs:02d} s" if secs else f"{sign}{minutes} min"


def _share_of_norm(milestone: Mapping[str, Any]) -> tuple[str, float | None, float | None,
                                                         str]:
    """A milestone as a bar of the chart: its time as a share of its norm (1 = the norm)."""
    after, target = milestone["after_report_s"], milestone["target_s"]
    text = f"{_minutes(after)} / {_minutes(target)}"
    if after is None or not target:
        return milestone["milestone"], None, 1.0 if target else None, text
    return milestone["milestone"], after / target, 1.0, text


class ReviewPdf(FPDF):
    """The report's pages: a header with the title and a DRILL mark, numbered footers."""

    def __init__(self, heading: str, drill_id: str | None, font: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.heading = heading
        self.drill_id = drill_id
        self.font_name = font
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(heading)
        self.set_creator("CityOps")

    def header(self) -> None:
        self.set_font(self.font_name, size=8)
        self.set_text_color(90, 90, 90)
        mark = f"DRILL {self.drill_id} · " if self.drill_id else ""
        self.cell(0, 5, f"{mark}CityOps after-action review · {self.heading}",
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.font_name, size=8)
        self.cell(0, 5, f"{self.page_no()}/{{nb}}", align="C")


class _Writer:
    """Writes one review document into a `ReviewPdf`."""

    def __init__(self, document: Mapping[str, Any], zone: tzinfo, font: Path | None,
                 cjk: bool) -> None:
        self.document = document
        self.report = document["report"]
        self.review = document.get("review")
        self.zone = zone
        heading = (self.report["title"] if self.report["kind"] == "incident"
                   else self._period_title())
        name = "report" if font is not None else "helvetica"
        self.pdf = ReviewPdf(heading, document.get("drill_id"), name)
        if font is not None:
            self.pdf.add_font(name, fname=str(font))
        self.cjk = cjk
        self.pdf.alias_nb_pages()

    def _period_title(self) -> str:
        start, end = self.report.get("start"), self.report.get("end")
        if start and end:
            return f"Period {self.when(start)} {NONE} {self.when(end)}"
        return "Every incident of the drill" if self.document.get("drill_id") else "Period"

    def when(self, text: str | None, date: bool = True) -> str:
        if not text:
            return NONE
        moment = datetime.fromisoformat(text).astimezone(self.zone)
        return moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")

    def text(self, value: str) -> str:
        if self.pdf.font_name == "helvetica":
            return value.encode("latin-1", "replace").decode("latin-1")
        return value

    # --- building blocks ---

    def title(self, text: str, size: int = 14) -> None:
        self.pdf.set_font(self.pdf.font_name, size=size)
        self.pdf.multi_cell(0, size * 0.5, self.text(text), new_x=XPos.LMARGIN,
                            new_y=YPos.NEXT)
        self.pdf.ln(1)
        self.pdf.set_font(self.pdf.font_name, size=9)

    def line(self, text: str) -> None:
        self.pdf.set_font(self.pdf.font_name, size=9)
        self.pdf.multi_cell(0, 4.5, self.text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]],
              widths: Sequence[float] | None = None) -> None:
        if not rows:
            self.line("(none)")
            self.pdf.ln(2)
            return
        self.pdf.set_font(self.pdf.font_name, size=8)
        with self.pdf.table(col_widths=tuple(widths) if widths else None,
                            text_align="LEFT", line_height=4.2,
                            headings_style=FontFace(fill_color=(225, 230, 240))) as table:
            row = table.row()
            for cell in head:
                row.cell(self.text(cell))
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(self.text(str(value)))
        self.pdf.ln(3)

    def bars(self, label: str, items: Sequence[tuple[str, float | None, float | None, str]]
             ) -> None:
        """A horizontal bar chart: one bar per item (its value) with its norm as a mark, red
        when the value passes the norm; each item's text is written after its bar."""
        pdf = self.pdf
        values = [v for _, v, n, _ in items for v in (v, n) if v is not None]
        if not values:
            return
        top = max(values) or 1.0
        self.line(label)
        left, width, height = pdf.l_margin + 38, pdf.epw - 38 - 42, 5.0
        if pdf.will_page_break(height * (len(items) + 1)):
            pdf.add_page()
        for name, value, norm, text in items:
            y = pdf.get_y()
            pdf.set_font(pdf.font_name, size=8)
            pdf.set_xy(pdf.l_margin, y)
            pdf.cell(38, height, self.text(name))
            pdf.set_fill_color(240, 240, 240)
            pdf.rect(left, y + 0.8, width, height - 1.6, "F")
            if value is not None:
                late = norm is not None and value > norm
                pdf.set_fill_color(*((200, 60, 50) if late else (60, 120, 190)))
                pdf.rect(left, y + 0.8, max(width * value / top, 0.4), height - 1.6, "F")
            if norm is not None:
                x = left + width * norm / top
                pdf.set_draw_color(30, 30, 30)
                pdf.set_line_width(0.6)
                pdf.line(x, y, x, y + height)
                pdf.set_line_width(0.2)
            pdf.set_xy(left + width + 1, y)
            pdf.cell(42, height, self.text(text))
            pdf.set_y(y + height)
        pdf.set_fill_color(255, 255, 255)
        pdf.set_draw_color(0, 0, 0)
        pdf.ln(2)

    # --- the report ---

    def write(self) -> bytes:
        pdf = self.pdf
        pdf.add_page()
        report = self.report
        drill = self.document.get("drill_id")
        self.title(("DRILL " + drill + " · " if drill else "") + "After-action review", 16)
        if report["kind"] == "incident":
            self.title(report["title"], 13)
            self.line(f"{report['category']} / {report['incident_type']}, level "
                      f"{report['level']}, {report['status']}; reported "
                      f"{self.when(report['reported_at'])} by {report['reported_by']}; "
                      f"commander {report['commander'] or NONE}; plans "
                      f"{', '.join(report['plans']) or NONE}")
        else:
            self.title(self._period_title(), 13)
            self.line(f"{len(report['incidents'])} incident(s)")
        self.line(f"Computed from the events as of {self.when(report['as_of'])} "
                  f"({self.zone}).")
        if not self.cjk:
            self.line("No CJK font was found: Chinese characters cannot be shown "
                      "(install fonts-wqy-microhei or set CITYOPS_REPORT_FONT).")
        pdf.ln(2)
        if self.review:
            self._review_record()
        self._milestones()
        self._resources()
        self._tasks()
        self._use()
        self._objectives()
        self._timeline()
        return bytes(pdf.output())

    def _review_record(self) -> None:
        review = self.review
        assert review is not None
        self.title(f"Review: {review['title']} ({review['status']})", 12)
        if review["summary"]:
            self.line(review["summary"])
            self.pdf.ln(1)
        findings = [f for f in review["findings"] if not f["withdrawn_at"]]
        self.line("Findings")
        self.table(["kind", "aspect", "finding", "department", "by"],
                   [[f["kind"], f["aspect"], f["text"], f["department"] or NONE,
                     f["recorded_by"]] for f in findings], (28, 24, 80, 28, 22))
        self.line("Improvement plan")
        self.table(["what", "who", "by when", "status", "follow-up"],
                   [[i["action"], i["department"] + (f" ({i['assignee']})" if i["assignee"]
                                                     else ""),
                     self.when(i["due"]), i["status"] + (" (overdue)" if i["overdue"] else ""),
                     (f"verified in drill {i['verified_in_drill']}"
                      if i["verified_in_drill"] else self.when(i["done_at"]))]
                    for i in review["improvements"]], (62, 34, 30, 24, 32))

    def _milestones(self) -> None:
        report = self.report
        self.title("Response times against the norms", 12)
        if report["kind"] == "incident":
            rows = report["milestones"]
            self.bars("Time from the report as a share of the norm (mark: the norm, 100 %)",
                      [_share_of_norm(m) for m in rows])
            self.table(["milestone", "reached", "after report", "norm", "verdict"],
                       [[m["milestone"], self.when(m["at"]), _minutes(m["after_report_s"]),
                         _minutes(m["target_s"]), m["verdict"]] for m in rows],
                       (32, 44, 36, 36, 34))
        else:
            rows = report["milestones"]
            self.bars("Median time from the report to each milestone",
                      [(m["milestone"], m["p50_s"], None, _minutes(m["p50_s"]))
                       for m in rows])
            self.table(["milestone", "count", "mean", "median", "p90", "met", "missed",
                        "pending"],
                       [[m["milestone"], m["count"], _minutes(m["mean_s"]),
                         _minutes(m["p50_s"]), _minutes(m["p90_s"]), m["met"], m["missed"],
                         m["pending"]] for m in rows])
            self.line("Incidents")
            self.table(["reported", "incident", "level", "status", "verified", "on scene",
                        "late/never"],
                       [[self.when(i["reported_at"]), i["title"], i["level"], i["status"],
                         _minutes(i["milestones"][0]["after_report_s"]),
                         _minutes(i["milestones"][2]["after_report_s"]), i["late_or_never"]]
                        for i in report["incidents"]], (32, 52, 14, 22, 22, 22, 18))

    def _resources(self) -> None:
        report = self.report
        self.title("Per resource", 12)
        self.table(["resource", "dept", "dispatched", "queue", "turnout", "travel",
                    "response", "on scene"],
                   [[f"{r['call_sign']} ({r['kind']})", r["department"],
                     self.when(r["dispatched_at"], date=False), _minutes(r["queue_s"]),
                     _minutes(r["turnout_s"]), _minutes(r["travel_s"]),
                     _minutes(r["response_s"]), _minutes(r["on_scene_s"])]
                    for r in report["resources"]], (40, 20, 20, 20, 20, 20, 20, 22))
        self.title("Per department", 12)
        self.table(["department", "resources", "first dispatch", "first on scene", "tasks",
                    "on time", "late", "never", "pending"],
                   [[d["department"], d["resources"], _minutes(d["first_dispatched_after_s"]),
                     _minutes(d["first_on_scene_after_s"]), d["tasks"], d["on_time"],
                     d["late"], d["never"], d["pending"]] for d in report["departments"]],
                   (30, 18, 24, 24, 14, 16, 14, 14, 16))

    def _tasks(self) -> None:
        report = self.report
        self.title("Plan tasks done late or never", 12)
        self.table(["department", "task", "due", "done", "verdict", "late by", "reason"],
                   [[t["department"], t["description"], self.when(t["due"], date=False),
                     self.when(t["done_at"], date=False), t["verdict"],
                     _minutes(t["late_by_s"]), t["reason"] or ""]
                    for t in report["late_or_never"]], (24, 44, 18, 18, 16, 22, 38))
        counts: dict[str, int] = {}
        for task in report["tasks"]:
            counts[task["verdict"]] = counts.get(task["verdict"], 0) + 1
        self.line("All tasks: " + (", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                                   or "none"))
        self.pdf.ln(2)

    def _use(self) -> None:
        uses = self.report["resource_use"]
        self.title("Resources used against the plans' requirements", 12)
        self.bars("Used (bar) against required (mark)",
                  [(u["kind"], float(u["used"]), float(u["required"]) or None,
                    f"{u['used']} of {u['required']}") for u in uses])
        self.table(["kind", "required", "used", "arrived", "shortfall"],
                   [[u["kind"], u["required"], u["used"], u["arrived"], u["shortfall"]]
                    for u in uses])

    def _objectives(self) -> None:
        objectives = self.report["objectives"]
        self.title("Exercise objectives", 12)
        if not objectives:
            self.line("No exercise objectives were measured for this review.")
            self.pdf.ln(2)
            return
        self.table(["objective", "target", "measured", "verdict", "rating", "observations"],
                   [[o["name"], o["target"], o["measured"] or NONE, o["verdict"],
                     o["rating"] or NONE, o["observations"]] for o in objectives])

    def _timeline(self) -> None:
        report = self.report
        self.title("Timeline", 12)
        self.table(["time", "who", "what"],
                   [[self.when(e["at"]), f"{e['actor'] or NONE} ({e['role'] or NONE})",
                     e["what"]] for e in report["timeline"]], (32, 38, 120))
        left_out = report.get("timeline_left_out") or 0
        if left_out:
            self.line(f"... and {left_out} later entries (see the CSV or JSON).")


def review_pdf(document: Mapping[str, Any], *, zone: tzinfo,
               font: Path | None = None) -> bytes:
    """A review document as a PDF report (`font`: the configured report font, if any)."""
    path, cjk = report_font(font)
    return _Writer(document, zone, path, cjk).write()
