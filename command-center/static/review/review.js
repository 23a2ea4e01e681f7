// The after-action review page: the report of an incident (?incident=<id>), of a review
// (?review=<id>) or of a period (?start=&end=; neither: every incident, as for a drill),
// computed by the server from the events, drawn as charts and tables with its timeline; the
// review's findings and improvement plan, which planners write here; and the same content
// as a PDF report, CSV tables and JSON to download.

import { ApiError, currentUser, get, perform, post, requireSession, showOutcome } from "/static/common/api.js";
import { el } from "/static/dashboard/detail.js";

const Chart = window.Chart;
const WRITERS = new Set(["planner", "dispatcher", "admin"]);
const ASPECTS = ["detection", "response-time", "command", "coordination", "resources", "plan", "information", "other"];

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const total = Math.round(Math.abs(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const sign = seconds < 0 ? "-" : "";
  if (h) return `${sign}${h} h ${String(m).padStart(2, "0")} min`;
  return s ? `${sign}${m} min ${String(s).padStart(2, "0")} s` : `${sign}${m} min`;
}

function when(text) {
  if (!text) return "–";
  return new Date(text).toLocaleString(undefined, { hour12: false });
}

function table(element, head, rows, classes = []) {
  element.replaceChildren(el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))));
  const body = el("tbody");
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: head.length, class: "sub" }, "none")));
  rows.forEach((row, i) => body.append(el("tr", {}, row.map((cell, j) =>
    el("td", { class: (classes[i] || [])[j] || null }, cell)))));
  element.append(body);
}

class ReviewPage {
  constructor() {
    const params = new URLSearchParams(location.search);
    this.incident = params.get("incident");
    this.reviewId = params.get("review");
    this.start = params.get("start");
    this.end = params.get("end");
    this.user = currentUser();
    this.charts = {};
    this.document = null;
    $("back-to-dashboard").setAttribute("href", "/dashboard");
    $("download-pdf").addEventListener("click", () => this.download("pdf"));
    $("download-csv").addEventListener("click", () => this.download("csv"));
    $("download-json").addEventListener("click", () => this.download("json"));
  }

  /** The report's path (JSON), whose .pdf and .csv siblings give the same content. */
  base() {
    if (this.incident) return { json: `/reviews/incidents/${this.incident}`, files: `/reviews/incidents/${this.incident}/report`, name: `review-incident-${this.incident}` };
    if (this.reviewId) return { json: `/reviews/${this.reviewId}/report`, files: `/reviews/${this.reviewId}/report`, name: `review-${this.reviewId}` };
    return { json: "/reviews/period", files: "/reviews/period/report", name: "review-period" };
  }

  period() {
    return this.incident || this.reviewId ? {} : { start: this.start, end: this.end };
  }

  async load() {
    try {
      this.document = await get(this.base().json, this.period());
      this.render();
      showOutcome($("review-status"), `Computed from the events as of ${when(this.document.report.as_of)}`);
    } catch (error) {
      showOutcome($("review-status"), error);
    }
  }

  async download(kind) {
    const { files, name, json } = this.base();
    const status = $("review-status");
    try {
      let blob;
      let filename;
      if (kind === "json") {
        if (!this.document) this.document = await get(json, this.period());
        blob = new Blob([JSON.stringify(this.document, null, 2)], { type: "application/json" });
        filename = `${name}.json`;
      } else {
        const query = new URLSearchParams(Object.entries(this.period()).filter(([, v]) => v));
        const table = $("csv-table").value;
        if (kind === "csv") query.set("table", table);
        const session = requireSession();
        const response = await fetch(`${files}.${kind}${query.toString() ? `?${query}` : ""}`, {
          headers: { Authorization: `Bearer ${session.access_token}` }, credentials: "same-origin",
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new ApiError(response.status, body.error || "", body.detail || response.statusText, body);
        }
        blob = await response.blob();
        filename = kind === "csv" ? `${name}-${table}.csv` : `${name}.pdf`;
      }
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: filename, testid: `download-link-${kind}` });
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(url); link.remove(); }, 60000);
      showOutcome(status, `Downloaded ${filename}`);
    } catch (error) {
      showOutcome(status, error);
    }
  }

  render() {
    const { report, review, drill_id: drill } = this.document;
    const mark = $("drill-mark");
    mark.hidden = !drill;
    mark.textContent = drill ? `DRILL ${drill}` : "";
    document.body.dataset.kind = report.kind;
    if (report.kind === "incident") {
      $("review-title").textContent = `After-action review · ${report.title}`;
      $("review-subtitle").textContent = `${report.category} / ${report.incident_type}, level ${report.level}, ${report.status}; reported ${when(report.reported_at)} by ${report.reported_by}; plans ${report.plans.join(", ") || "–"}`;
    } else {
      $("review-title").textContent = "After-action review · period";
      $("review-subtitle").textContent = `${report.incidents.length} incident(s)${report.start ? ` reported ${when(report.start)} – ${when(report.end)}` : ""}`;
    }
    this.renderCharts(report);
    this.renderTables(report);
    this.renderRecord(review, report);
    this.renderTimeline(report);
  }

  chart(name, config) {
    if (this.charts[name]) this.charts[name].destroy();
    Chart.defaults.color = "#c5ced8";
    Chart.defaults.borderColor = "#2c3846";
    Chart.defaults.animation = false;
    this.charts[name] = new Chart($(name), { ...config, options: { responsive: true, maintainAspectRatio: false, ...config.options } });
  }

  renderCharts(report) {
    const incident = report.kind === "incident";
    const labels = report.milestones.map((m) => m.milestone);
    const actual = report.milestones.map((m) => ((incident ? m.after_report_s : m.p50_s) ?? null) / 60);
    const datasets = [{ label: incident ? "after report (min)" : "median after report (min)", data: actual,
      backgroundColor: report.milestones.map((m) => (incident && m.verdict === "missed" ? "#e0443e" : "#3d7be0")) }];
    if (incident) datasets.push({ label: "norm (min)", data: report.milestones.map((m) => (m.target_s ?? null) / 60), backgroundColor: "#7b8794" });
    this.chart("chart-milestones", { type: "bar", data: { labels, datasets },
      options: { indexAxis: "y", scales: { x: { type: "logarithmic", title: { display: true, text: "minutes (log)" } } } } });
    const resources = report.resources;
    const parts = [["queue", "queue_s", "#7b8794"], ["turnout", "turnout_s", "#ef8a25"], ["travel", "travel_s", "#3d7be0"]];
    this.chart("chart-resources", { type: "bar",
      data: { labels: resources.map((r) => r.call_sign), datasets: parts.map(([label, key, colour]) => ({ label, data: resources.map((r) => (r[key] ?? 0) / 60), backgroundColor: colour })) },
      options: { indexAxis: "y", scales: { x: { stacked: true, title: { display: true, text: "minutes" } }, y: { stacked: true } } } });
    this.chart("chart-use", { type: "bar",
      data: { labels: report.resource_use.map((u) => u.kind), datasets: [
        { label: "required", data: report.resource_use.map((u) => u.required), backgroundColor: "#7b8794" },
        { label: "used", data: report.resource_use.map((u) => u.used), backgroundColor: "#2fb35a" },
        { label: "arrived", data: report.resource_use.map((u) => u.arrived), backgroundColor: "#3d7be0" }] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  }

  renderTables(report) {
    if (report.kind === "incident") {
      table($("milestones-table"), ["milestone", "reached", "after report", "norm", "verdict"],
        report.milestones.map((m) => [m.milestone, when(m.at), minutes(m.after_report_s), minutes(m.target_s), m.verdict]),
        report.milestones.map((m) => [null, null, null, null, m.verdict]));
    } else {
      table($("milestones-table"), ["milestone", "count", "mean", "median", "p90", "met", "missed", "pending"],
        report.milestones.map((m) => [m.milestone, m.count, minutes(m.mean_s), minutes(m.p50_s), minutes(m.p90_s), m.met, m.missed, m.pending]));
      $("incidents-section").hidden = false;
      table($("incidents-table"), ["reported", "incident", "level", "status", "verified", "on scene", "late or never"],
        report.incidents.map((i) => [when(i.reported_at),
          el("a", { href: `/after-action-review?incident=${i.incident_id}` }, i.title), i.level, i.status,
          minutes(i.milestones[0].after_report_s), minutes(i.milestones[2].after_report_s), i.late_or_never]));
    }
    table($("resources-table"), ["resource", "department", "dispatched", "queue", "turnout", "travel", "response", "on scene", "by"],
      report.resources.map((r) => [`${r.call_sign} ${r.name} (${r.kind})`, r.department, when(r.dispatched_at), minutes(r.queue_s),
        minutes(r.turnout_s), minutes(r.travel_s), minutes(r.response_s), minutes(r.on_scene_s), r.dispatched_by || "–"]));
    table($("departments-table"), ["department", "resources", "first dispatch", "first on scene", "tasks", "on time", "late", "never", "pending"],
      report.departments.map((d) => [d.department, d.resources, minutes(d.first_dispatched_after_s), minutes(d.first_on_scene_after_s),
        d.tasks, d.on_time, d.late, d.never, d.pending]));
    table($("late-tasks-table"), ["department", "task", "due", "done", "verdict", "late by", "reason"],
      report.late_or_never.map((t) => [t.department, t.description, when(t.due), when(t.done_at), t.verdict, minutes(t.late_by_s), t.reason]),
      report.late_or_never.map((t) => [null, null, null, null, t.verdict]));
    table($("use-table"), ["kind", "required", "used", "arrived", "shortfall"],
      report.resource_use.map((u) => [u.kind, u.required, u.used, u.arrived, u.shortfall]));
    table($("objectives-table"), ["objective", "target", "measured", "verdict", "rating", "observations"],
      report.objectives.map((o) => [o.name, o.target, o.measured || "–", o.verdict, o.rating || "–", o.observations]),
      report.objectives.map((o) => [null, null, null, o.verdict]));
  }

  renderTimeline(report) {
    const list = $("review-timeline");
    list.replaceChildren(...report.timeline.map((e) => el("li", { testid: "timeline-entry", "data-stream": e.stream, "data-event": e.event },
      el("time", { datetime: e.at }, when(e.at)), el("span", { class: "who" }, `${e.actor || "–"} (${e.role || "–"})`), e.what)));
    if (report.timeline_left_out) list.append(el("li", { class: "sub" }, `… and ${report.timeline_left_out} later entries (CSV or JSON)`));
  }

  mayWrite() {
    return this.user && WRITERS.has(this.user.role);
  }

  async act(button, action, done) {
    const result = await perform(button, $("review-status"), action, done);
    if (result) await this.load();
  }

  renderRecord(review, report) {
    const body = $("record-body");
    body.replaceChildren();
    if (!review) {
      body.append(el("p", { class: "sub", testid: "no-review" }, "No review has been opened yet."));
      if (this.mayWrite() && (report.kind === "incident" || report.start)) {
        const button = el("button", { type: "button", class: "primary", testid: "open-review",
          onclick: () => this.act(button, () => post("/reviews", report.kind === "incident"
            ? { title: `Review of ${report.title}`, incident_id: report.incident_id }
            : { title: "Review of the period", start: report.start, end: report.end }), "Review opened") }, "Open the review");
        body.append(button);
      }
      return;
    }
    const path = `/reviews/${review.id}`;
    body.append(el("p", { testid: "review-state" }, `${review.title} · ${review.status} · opened by ${review.opened_by} ${when(review.opened_at)}`));
    if (review.summary) body.append(el("p", { testid: "review-summary" }, review.summary));
    const findings = review.findings.filter((f) => !f.withdrawn_at);
    table(body.appendChild(el("table", { testid: "findings-table" })), ["kind", "aspect", "finding", "department", "by"],
      findings.map((f) => [f.kind, f.aspect, f.text, f.department || "–", f.recorded_by]));
    const items = el("table", { testid: "improvements-table" });
    body.append(el("h3", {}, "Improvement plan"), items);
    table(items, ["what", "who", "by when", "status", "follow-up", ""],
      review.improvements.map((i) => [i.action, `${i.department}${i.assignee ? ` (${i.assignee})` : ""}`, when(i.due),
        `${i.status}${i.overdue ? " (overdue)" : ""}`,
        i.verified_in_drill ? `verified in drill ${i.verified_in_drill}` : (i.done_at ? `done ${when(i.done_at)}` : "–"),
        this.mayWrite() && i.status === "open" ? this.doneButton(path, i) : ""]),
      review.improvements.map((i) => [null, null, null, i.overdue ? "late" : null]));
    if (!this.mayWrite()) return;
    if (review.status === "open") body.append(this.summaryForm(path, review), this.findingForm(path));
    body.append(this.improvementForm(path, findings));
  }

  doneButton(path, item) {
    const button = el("button", { type: "button", testid: "improvement-done", "data-id": item.id,
      onclick: () => this.act(button, () => post(`${path}/improvements/${item.id}/done`, {}), "Marked done") }, "Done");
    return button;
  }

  summaryForm(path, review) {
    const text = el("textarea", { name: "summary", rows: 2, testid: "summary-text" }, review.summary);
    const form = el("form", { testid: "summary-form" }, el("label", {}, "Summary", text), el("button", { type: "submit" }, "Save summary"));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.act(form.querySelector("button"), () => post(`${path}/summary`, { summary: text.value }), "Summary saved"); });
    return form;
  }

  findingForm(path) {
    const text = el("textarea", { name: "text", rows: 2, testid: "finding-text" });
    const aspect = el("select", { name: "aspect", testid: "finding-aspect" }, ASPECTS.map((a) => el("option", { value: a }, a)));
    const kind = el("select", { name: "kind", testid: "finding-kind" }, el("option", { value: "area-for-improvement" }, "area for improvement"), el("option", { value: "strength" }, "strength"));
    const department = el("input", { name: "department", placeholder: "department code", testid: "finding-department" });
    const form = el("form", { testid: "finding-form" }, el("label", {}, "Finding", text), el("label", {}, "Aspect", aspect),
      el("label", {}, "Kind", kind), el("label", {}, "Department", department), el("button", { type: "submit", testid: "finding-submit" }, "Add finding"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.act(form.querySelector("button"), () => post(`${path}/findings`, { text: text.value, aspect: aspect.value, kind: kind.value, department: department.value || null }), "Finding recorded");
    });
    return form;
  }

  improvementForm(path, findings) {
    const action = el("textarea", { name: "action", rows: 2, testid: "improvement-action" });
    const department = el("input", { name: "department", placeholder: "department code", testid: "improvement-department" });
    const assignee = el("input", { name: "assignee", placeholder: "who", testid: "improvement-assignee" });
    const due = el("input", { name: "due", type: "date", testid: "improvement-due" });
    const finding = el("select", { name: "finding", testid: "improvement-finding" }, el("option", { value: "" }, "–"),
      findings.map((f) => el("option", { value: f.id }, f.text.slice(0, 40))));
    const form = el("form", { testid: "improvement-form" }, el("label", {}, "What", action), el("label", {}, "Department", department),
      el("label", {}, "Who", assignee), el("label", {}, "By when", due), el("label", {}, "Finding", finding),
      el("button", { type: "submit", testid: "improvement-submit" }, "Add to the plan"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.act(form.querySelector("button"), () => post(`${path}/improvements`, {
        action: action.value, department: department.value, assignee: assignee.value,
        due: due.value ? `${due.value}T23:59:00Z` : "", finding_id: finding.value || null,
      }), "Improvement planned");
    });
    return form;
  }
}

if (requireSession()) new ReviewPage().load();
