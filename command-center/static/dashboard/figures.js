// Key figures and charts for leaders (GET /statistics/key-figures): open cases by light, the
// on-time rate per department and incidents by category; and the resources' response times
// (GET /statistics/response-times) by kind, resource or incident. Refreshed on a timer and
// shortly after live changes, never more than once every few seconds.

import { get } from "/static/common/api.js";
import { LIGHT_COLOURS } from "./words.js";

const Chart = window.Chart;
const REFRESH_MS = 60000;
const AFTER_CHANGE_MS = 3000;

export class KeyFigures {
  constructor(header, panel, state) {
    this.header = header;
    this.panel = panel;
    this.state = state;
    this.charts = {};
    this.timer = null;
    this.soon = null;
    Chart.defaults.color = "#c5ced8";
    Chart.defaults.borderColor = "#2c3846";
    Chart.defaults.animation = false;
    state.addEventListener("change", () => this.refreshSoon());
    this.responseTimes = new ResponseTimes(panel.querySelector("[data-testid=response-times]"));
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  refreshSoon() {
    if (this.soon || this.forbidden) return;
    this.soon = setTimeout(() => { this.soon = null; this.refresh(); }, AFTER_CHANGE_MS);
  }

  async refresh() {
    let figures;
    try {
      figures = await get("/statistics/key-figures");
    } catch (error) {
      if (error.status === 403) {
        // Not this role's to read (a department sees its own cases, not the city's figures).
        clearInterval(this.timer);
        this.timer = null;
        this.header.hidden = true;
        document.querySelector("[data-tab=figures]")?.setAttribute("hidden", "");
        this.forbidden = true;
      }
      return;
    }
    this.figures = figures;
    const set = (name, value) => {
      const node = this.header.querySelector(`[data-figure="${name}"]`);
      if (node) node.textContent = String(value ?? "–");
    };
    const lights = figures.open_cases_by_light || {};
    set("green", lights.green); set("yellow", lights.yellow); set("red", lights.red);
    set("incidents", Object.values(figures.open_incidents_by_category || {}).reduce((a, b) => a + b, 0));
    set("tickets", figures.hotline ? figures.hotline.open : "–");
    this.draw(figures);
    await this.responseTimes.refresh();
  }

  draw(figures) {
    const lights = figures.open_cases_by_light || {};
    this.chart("lights", "doughnut", ["on time", "due soon", "overdue"],
      [{ data: [lights.green || 0, lights.yellow || 0, lights.red || 0], backgroundColor: [LIGHT_COLOURS.green, LIGHT_COLOURS.yellow, LIGHT_COLOURS.red], borderWidth: 0 }]);
    const rates = Object.entries(figures.on_time_rate_by_department || {});
    this.chart("on-time", "bar", rates.map(([d]) => d),
      [{ label: "on-time rate %", data: rates.map(([, r]) => (r === null ? 0 : Math.round(r * 1000) / 10)), backgroundColor: "#4aa3ff" }],
      { indexAxis: "y", scales: { x: { min: 0, max: 100 } }, plugins: { legend: { display: false } } });
    const incidents = Object.entries(figures.incidents_by_category || {});
    this.chart("incidents", "bar", incidents.map(([c]) => c),
      [{ label: "incidents", data: incidents.map(([, n]) => n), backgroundColor: "#ef8a25" }],
      { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
  }

  chart(name, type, labels, datasets, options = {}) {
    const canvas = this.panel.querySelector(`[data-chart="${name}"]`);
    if (!canvas) return;
    const existing = this.charts[name];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets = datasets;
      existing.update();
      return;
    }
    this.charts[name] = new Chart(canvas, { type, data: { labels, datasets }, options: { responsive: true, maintainAspectRatio: false, ...options } });
  }
}

const INTERVALS = ["queue", "turnout", "travel", "response", "on_scene"];
const GROUPS = {
  kind: { heading: "Kind", rows: "by_kind", label: (row) => row.kind },
  resource: { heading: "Resource", rows: "by_resource", label: (row) => `${row.call_sign || row.resource_id} (${row.kind})` },
  incident: { heading: "Incident", rows: "by_incident", label: (row) => `${row.title || row.incident_id} (${row.level || "–"})` },
};

/** Seconds as m:ss (h:mm:ss from an hour). */
export function clockDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** The table of queue, turnout, travel, response and on-scene times (p50 / p90). */
class ResponseTimes {
  constructor(section) {
    this.section = section;
    this.figures = null;
    this.choice = section.querySelector("[data-testid=response-times-by]");
    this.choice.addEventListener("change", () => this.render());
  }

  async refresh() {
    try {
      this.figures = await get("/statistics/response-times");
    } catch {
      return; // not this role's to read, or a passing failure: the next refresh tries again
    }
    this.render();
  }

  render() {
    if (!this.figures) return;
    const group = GROUPS[this.choice.value] || GROUPS.kind;
    this.section.querySelector("[data-testid=response-times-key]").textContent = group.heading;
    const rows = this.figures[group.rows] || [];
    const body = this.section.querySelector("[data-testid=response-times-rows]");
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = "response-times-row";
      tr.dataset.key = this.choice.value === "kind" ? row.kind : (row.resource_id || row.incident_id);
      const cells = [group.label(row), String(row.assignments),
        ...INTERVALS.map((name) => `${clockDuration(row[name].p50_s)} / ${clockDuration(row[name].p90_s)}`)];
      for (const [index, text] of cells.entries()) {
        const td = document.createElement("td");
        td.textContent = text;
        if (index >= 2) td.title = `${row[INTERVALS[index - 2]].count} measured`;
        tr.append(td);
      }
      return tr;
    }));
    this.section.querySelector("[data-testid=response-times-empty]").hidden = rows.length > 0;
  }
}
