// The incident board (open incidents by level, with their commander, assigned resources and
// plan tasks), the incident view for the detail pane (timeline from the incident's history),
// and the resource panel: resources by status, and for the selected incident the nearest
// available ones with a one-click dispatch.

import { get, post, showOutcome } from "/static/common/api.js";
import { el } from "./detail.js";
import {
  LEVEL_COLOURS, LEVEL_NAMES, OPEN_INCIDENT_STATUSES, RESOURCE_COLOURS, may, readOnly,
  isPast, shortId, timeText, untilText,
} from "./words.js";

/** Who reads after-action reviews (the sharing catalogue's after-action-review roles). */
const REVIEW_READERS = new Set(["planner", "dispatcher", "leader", "admin"]);

/** A task still to be done: assigned or acknowledged (done, cancelled and waived are settled). */
const isOpenTask = (t) => t.status === "assigned" || t.status === "acknowledged";

export class IncidentBoard {
  constructor(root, state, { user, catalogue, onSelect }) {
    this.list = root.querySelector("[data-testid=incident-list]");
    this.state = state;
    this.user = user;
    this.catalogue = catalogue;
    this.onSelect = onSelect;
    let pending = null;
    const later = () => { if (!pending) pending = requestAnimationFrame(() => { pending = null; this.render(); }); };
    for (const name of ["change", "reset"]) {
      state.addEventListener(name, (e) => { if (["incidents", "resources"].includes(e.detail.layer)) later(); });
    }
  }

  open() {
    return this.state.all("incidents").filter((d) => OPEN_INCIDENT_STATUSES.has(d.status))
      .sort((a, b) => (a.level_rank || 9) - (b.level_rank || 9) || String(b.reported_at).localeCompare(String(a.reported_at)));
  }

  render() {
    this.list.replaceChildren(...this.open().map((doc) => {
      const assigned = (doc.resources || []).filter((r) => !r.released_at);
      const tasks = doc.tasks || [];
      const late = tasks.filter((t) => isOpenTask(t) && t.due && isPast(t.due));
      const badge = el("span", { class: "level" }, doc.level || "?");
      badge.style.background = LEVEL_COLOURS[doc.level] || "#7b8794";
      return el("li", { class: "card clickable", testid: "incident-card", "data-id": doc.id, "data-level": doc.level, onclick: () => this.onSelect("incidents", doc.id) },
        el("div", { class: "card-head" }, badge, el("b", {}, doc.title), el("span", { class: "status" }, doc.status)),
        el("div", { class: "sub" }, `${this.catalogue.incidentTypeName(doc.category, doc.incident_type)} · reported ${timeText(doc.reported_at)}`,
          doc.commander ? ` · commander ${doc.commander}` : ""),
        el("div", { class: "sub" }, `${assigned.length} resource${assigned.length === 1 ? "" : "s"} assigned · ${doc.open_tasks ?? tasks.filter(isOpenTask).length} open task(s)`,
          late.length ? el("span", { class: "overdue" }, ` · ${late.length} late`) : ""));
    }));
  }

  view() {
    const user = this.user;
    const state = this.state;
    const catalogue = this.catalogue;
    return {
      title: (doc) => `Incident · ${doc.title}`,
      related: ["resources"],
      historyPath: (id) => `/incidents/${id}/history`,
      eventNote: (event) => {
        const f = event.facts || {};
        return [f.level && `level ${f.level}`, f.text, f.reason, f.note, f.description, f.commander && `commander ${f.commander}`]
          .filter(Boolean).join(" · ");
      },
      facts: (doc) => [
        ["Status", doc.status, "detail-status"],
        ["Level", LEVEL_NAMES[doc.level] || doc.level, "detail-level"],
        ["Category", catalogue.incidentTypeName(doc.category, doc.incident_type)],
        ["Warning", doc.warning],
        ["Commander", doc.commander],
        ["Reported", `${timeText(doc.reported_at)} by ${doc.reported_by || doc.source}`],
        ["Description", doc.description],
        ["Casualties", doc.casualties ? Object.entries(doc.casualties).map(([k, v]) => `${k} ${v}`).join(", ") : ""],
        ["Shortfall", Object.entries(doc.resource_shortfall || {}).map(([k, v]) => `${v} × ${catalogue.resourceKindName(k)}`).join(", ")],
        ["Version", doc.version, "detail-version"],
      ],
      extra: (doc, container) => {
        const assigned = (doc.resources || []).filter((r) => !r.released_at);
        container.append(el("h3", {}, "Assigned resources"), el("ul", { class: "plain", testid: "assigned-resources" },
          assigned.length ? assigned.map((r) => {
            const res = state.get("resources", r.resource_id);
            return el("li", { testid: "assigned-resource", "data-id": r.resource_id },
              res ? `${res.call_sign} ${res.name} · ${res.status}` : `${catalogue.resourceKindName(r.kind)} ${shortId(r.resource_id)}`,
              el("span", { class: "sub" }, ` · since ${timeText(r.assigned_at)}`));
          }) : el("li", { class: "sub" }, "none")));
        const tasks = doc.tasks || [];
        container.append(el("h3", {}, "Plan tasks"), el("ul", { class: "plain", testid: "plan-tasks" },
          tasks.length ? tasks.map((t) => el("li", { testid: "plan-task", "data-id": t.id, "data-status": t.status },
            el("b", {}, t.department), ` ${t.description} · ${t.status}`,
            isOpenTask(t) && t.due ? el("span", { class: isPast(t.due) ? "overdue" : "sub" }, ` · due ${untilText(t.due)}`) : "",
            t.done_late ? el("span", { class: "overdue" }, " · done late") : "",
            t.status === "waived" ? el("span", { class: "sub" }, ` · waived by ${t.waived_by}: ${t.waive_reason}`) : "",
            t.status === "cancelled" ? el("span", { class: "sub" }, ` · ${t.cancel_reason}`) : "")) : el("li", { class: "sub" }, "none")));
        if (user && REVIEW_READERS.has(user.role)) {
          // The after-action review: the response measured from the events, findings, plan.
          container.append(el("p", {}, el("a", { href: `/after-action-review?incident=${encodeURIComponent(doc.id)}`, testid: "review-link" }, "After-action review →")));
        }
        const reports = doc.situation_reports || [];
        if (reports.length) {
          container.append(el("h3", {}, "Situation reports"), el("ul", { class: "plain" },
            reports.slice(-5).reverse().map((r) => el("li", {}, el("time", {}, timeText(r.at)), ` ${r.text}`))));
        }
      },
      actions: (doc) => {
        if (readOnly(user) || !may(user, "incident", "contain")) return [];
        const path = (name) => `/incidents/${doc.id}/${name}`;
        const actions = [];
        if (doc.status === "reported") actions.push({ name: "verify-incident", label: "Verify", style: "primary", done: "Verified", run: (_, v) => post(path("verify"), {}, { version: v }) });
        if (["verified", "responding"].includes(doc.status)) {
          actions.push({ name: "situation-report", label: "Situation report", done: "Situation report added", fields: [{ name: "text", label: "Situation", type: "textarea", required: true }], run: (values, v) => post(path("situation-reports"), { text: values.text }, { version: v }) });
        }
        if (doc.status === "responding") {
          actions.push({ name: "change-level", label: "Change level", done: "Level changed", fields: [{ name: "level", label: "Level", type: "select", value: doc.level, options: Object.entries(LEVEL_NAMES) }, { name: "reason", label: "Reason", required: true }], run: (values, v) => post(path("level"), values, { version: v }) });
          actions.push({ name: "contain", label: "Contained", done: "Contained", run: (_, v) => post(path("contain"), {}, { version: v }) });
        }
        if (doc.status === "verified") {
          actions.push({ name: "respond", label: "Start response", style: "primary", done: "Response started", fields: [{ name: "level", label: "Response level", type: "select", value: doc.level || "IV", options: Object.entries(LEVEL_NAMES) }], run: (values, v) => post(path("respond"), { level: values.level }, { version: v }) });
        }
        const openTasks = (doc.tasks || []).filter(isOpenTask);
        if (["responding", "contained"].includes(doc.status) && openTasks.length && may(user, "incident", "waive-task")) {
          // For the commander: a task the response no longer needs, so that the incident can close.
          actions.push({ name: "waive-task", label: "Waive a task", done: "Task waived", fields: [
            { name: "task", label: "Task", type: "select", value: openTasks[0].id, options: openTasks.map((t) => [t.id, `${t.department}: ${t.description}`]) },
            { name: "reason", label: "Reason", required: true },
          ], run: (values, v) => post(path(`tasks/${values.task}/waive`), { reason: values.reason }, { version: v }) });
        }
        // Closing needs every task done, cancelled or waived: the server says which are open.
        if (doc.status === "contained") actions.push({ name: "close-incident", label: openTasks.length ? `Close (${openTasks.length} open task${openTasks.length === 1 ? "" : "s"})` : "Close", done: "Closed", run: (_, v) => post(path("close"), {}, { version: v }) });
        return actions;
      },
    };
  }
}

export class ResourcePanel {
  constructor(root, state, { user, catalogue }) {
    this.root = root;
    this.state = state;
    this.user = user;
    this.catalogue = catalogue;
    this.summary = root.querySelector("[data-testid=resource-summary]");
    this.list = root.querySelector("[data-testid=nearest-list]");
    this.hint = root.querySelector("[data-testid=nearest-hint]");
    this.title = root.querySelector("[data-testid=nearest-title]");
    this.outcome = root.querySelector("[data-testid=resource-outcome]");
    this.incidentId = null;
    this.kind = "";
    let pending = null;
    state.addEventListener("change", (e) => {
      if (e.detail.layer === "resources" && !pending) pending = requestAnimationFrame(() => { pending = null; this.renderSummary(); });
      if (e.detail.layer === "resources" && this.incidentId && !this.refreshing) {
        this.refreshing = setTimeout(() => { this.refreshing = null; this.loadNearest(); }, 1000);
      }
    });
    state.addEventListener("reset", (e) => { if (e.detail.layer === "resources") this.renderSummary(); });
  }

  renderSummary() {
    const counts = {};
    for (const doc of this.state.all("resources")) counts[doc.status] = (counts[doc.status] || 0) + 1;
    this.summary.replaceChildren(...Object.entries(counts).sort().map(([status, n]) => {
      const dot = el("i", { class: "dot" });
      dot.style.background = RESOURCE_COLOURS[status] || "#7b8794";
      return el("span", { class: "count-chip", testid: "resource-count", "data-status": status }, dot, `${n} ${status}`);
    }));
  }

  /** Show the nearest available resources for this incident (null: none selected). */
  async showFor(incidentId) {
    this.incidentId = incidentId;
    // Start with the kind the incident is short of: the dispatcher's most likely need.
    const incident = incidentId ? this.state.get("incidents", incidentId) : null;
    this.kind = Object.keys((incident && incident.resource_shortfall) || {})[0] || "";
    await this.loadNearest();
  }

  async loadNearest() {
    const incident = this.incidentId ? this.state.get("incidents", this.incidentId) : null;
    if (!incident || !incident.location) {
      this.hint.hidden = false;
      this.list.replaceChildren();
      this.title.textContent = "Nearest available resources";
      return;
    }
    this.hint.hidden = true;
    this.title.textContent = `Nearest available resources · ${incident.title}`;
    const [lon, lat] = incident.location.coordinates;
    const kinds = Object.keys({ ...(incident.resource_shortfall || {}), ...(incident.required_resources || {}) });
    let result;
    try {
      result = await get("/spatial/resources/nearest", { point: `${lon},${lat}`, status: "available", n: 8, kind: this.kind || undefined });
    } catch (error) {
      showOutcome(this.outcome, error);
      return;
    }
    if (this.incidentId !== incident.id) return;
    const picker = el("select", { testid: "nearest-kind", "aria-label": "Kind", onchange: (e) => { this.kind = e.target.value; this.loadNearest(); } },
      el("option", { value: "" }, "any kind"),
      ...[...new Set([...kinds, ...this.catalogue.resourceKinds().map((k) => k.code)])].map((code) =>
        el("option", { value: code, selected: code === this.kind }, `${this.catalogue.resourceKindName(code)}${(incident.resource_shortfall || {})[code] ? ` (short ${incident.resource_shortfall[code]})` : ""}`)));
    const canDispatch = !readOnly(this.user) && may(this.user, "incident", "assign-resource")
      && ["verified", "responding", "contained"].includes(incident.status);
    this.list.replaceChildren(el("li", { class: "picker" }, picker), ...result.features.map((feature) => {
      const p = feature.properties;
      return el("li", { class: "card", testid: "nearest-resource", "data-id": feature.id },
        el("div", { class: "card-head" }, el("b", {}, `${p.call_sign} ${p.name}`),
          el("span", { class: "status" }, `${Math.round(p.distance_m)} m`)),
        el("div", { class: "sub" }, `${this.catalogue.resourceKindName(p.kind)} · ${p.department}`),
        canDispatch ? el("button", {
          type: "button", class: "primary", testid: "dispatch-resource",
          onclick: (event) => this.dispatch(incident.id, feature.id, p, event.target),
        }, "Dispatch") : null);
    }));
  }

  async dispatch(incidentId, resourceId, properties, button) {
    const incident = this.state.get("incidents", incidentId);
    button.disabled = true;
    showOutcome(this.outcome, null);
    try {
      const doc = await post(`/incidents/${incidentId}/resources`, { resource_id: resourceId }, { version: incident?.version });
      this.state.put("incidents", incidentId, doc, null);
      showOutcome(this.outcome, `${properties.call_sign} dispatched to ${doc.title}`);
      await this.loadNearest();
    } catch (error) {
      showOutcome(this.outcome, error);
      button.disabled = false;
    }
  }
}
