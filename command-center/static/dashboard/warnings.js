// The warning desk: draft a public or inter-agency warning from a selected incident or hazard
// alarm (texts in Chinese and English), approve it (a second person for a public warning),
// issue it, update it (a wider area, a new level or expiry) and cancel it. The warnings come
// from the CityState ("warnings" layer, kept live by /ws); their areas are drawn on the map
// (map.js). Every action is a REST command; the server decides what is allowed.

import { post, showOutcome } from "/static/common/api.js";
import { serverNow } from "/static/common/clock.js";
import { el } from "./detail.js";
import { LEVEL_COLOURS, OPEN_INCIDENT_STATUSES, readOnly, shortId, timeText } from "./words.js";

export const WARNING_COLOURS = {
  red: "#e0443e", orange: "#ef8a25", yellow: "#e8c21c", blue: "#3d7be0", ...LEVEL_COLOURS,
};
const IN_FORCE = new Set(["issued", "update-drafted", "update-approved"]);
const PREPARING = new Set(["drafted", "update-drafted"]);
const APPROVED = new Set(["approved", "update-approved"]);
const CENTRE = new Set(["dispatcher", "admin"]);
const LEVELS = ["", "red", "orange", "yellow", "blue", "I", "II", "III", "IV"];
const DEFAULT_CONTACT = "City service hotline 12345";
/** The public Atom feed of the alerts in force (served by the CAP publishing, docs/cap.md). */
export const FEED_URL = "/cap/alerts.atom";

/** A warning's status as shown now: expired once an issued warning's expiry has passed. */
export function warningStatus(doc, now = serverNow()) {
  const content = doc.content;
  if (IN_FORCE.has(doc.status) && content && Date.parse(content.expires) <= now) return "expired";
  return doc.status;
}

/** What a warning shows on the map: the content in force, else the one being prepared. */
export function shownContent(doc) {
  return doc.content || doc.draft || null;
}

function templates(kind, title) {
  const what = title || (kind === "hazard-alarm" ? "the hazard source" : "the incident");
  return {
    "zh-CN": { headline: `${what}：请远离该区域`, description: `${what} 正在处置中。`, instruction: "关闭门窗，远离该区域，听从现场指挥。" },
    "en-US": { headline: `${what}: keep away from the area`, description: `Responders are dealing with ${what}.`, instruction: "Close windows, keep away from the area and follow the responders' instructions." },
  };
}

export class WarningDesk {
  constructor(root, state, { user, onSelect }) {
    this.root = root;
    this.state = state;
    this.user = user;
    this.onSelect = onSelect;
    this.form = root.querySelector("[data-testid=warning-form]");
    this.list = root.querySelector("[data-testid=warning-list]");
    this.outcome = root.querySelector("[data-testid=warning-outcome]");
    const feed = root.querySelector("[data-testid=warning-feed-link]");
    if (feed) feed.href = FEED_URL;
    this.open = new Map(); // warning id -> the open inline form ("update" | "cancel")
    this.form.hidden = readOnly(user) || !CENTRE.has(user.role);
    this.buildForm();
    let pending = null;
    const later = () => { if (!pending) pending = requestAnimationFrame(() => { pending = null; this.render(); }); };
    for (const name of ["change", "reset"]) {
      state.addEventListener(name, (e) => {
        if (e.detail.layer === "warnings") later();
        if (["incidents", "hazard-sources"].includes(e.detail.layer)) this.refreshOrigins();
      });
    }
  }

  count() {
    return this.state.all("warnings").filter((d) => IN_FORCE.has(warningStatus(d))).length;
  }

  // --- the draft form ------------------------------------------------------------------------

  field(name) {
    return this.form.querySelector(`[data-testid=warning-${name}]`);
  }

  buildForm() {
    const select = (name, options, label) => el("select", { testid: `warning-${name}`, "aria-label": label },
      options.map(([value, text]) => el("option", { value }, text)));
    const input = (name, attributes) => el("input", { testid: `warning-${name}`, ...attributes });
    const textarea = (name, label) => el("textarea", { testid: `warning-${name}`, rows: "2", "aria-label": label });
    const row = (label, ...controls) => el("label", { class: "row" }, el("span", {}, label), ...controls);
    this.form.replaceChildren(
      el("h3", {}, "Draft a warning"),
      row("From", select("origin", [["incident", "an incident"], ["hazard-alarm", "a hazard alarm"]], "Draft from")),
      row("Incident", select("incident", [], "Incident")),
      row("Hazard alarm", select("hazard", [], "Hazard alarm")),
      row("Level", select("level", LEVELS.map((l) => [l, l || "as the origin"]), "Warning level")),
      row("Urgency", select("urgency", ["immediate", "expected", "future", "past", "unknown"].map((v) => [v, v]), "Urgency")),
      row("Certainty", select("certainty", ["observed", "likely", "possible", "unlikely", "unknown"].map((v) => [v, v]), "Certainty")),
      row("Radius km", input("radius", { type: "number", min: "0.1", max: "100", step: "0.1", value: "1", title: "A circle around the incident when it has no affected area" })),
      row("Expires in h", input("hours", { type: "number", min: "0.25", max: "168", step: "0.25", value: "6" })),
      row("Scope", select("scope", [["public", "public"], ["restricted", "restricted (agencies)"]], "Scope")),
      row("Restriction", input("restriction", { type: "text", placeholder: "who may receive it (restricted)" })),
      row("Contact", input("contact", { type: "text", value: DEFAULT_CONTACT })),
      el("h4", {}, "中文 (zh-CN)"),
      input("headline-zh", { type: "text", maxlength: "160", "aria-label": "Headline (Chinese)" }),
      textarea("description-zh", "Description (Chinese)"),
      textarea("instruction-zh", "Instruction (Chinese)"),
      el("h4", {}, "English (en-US)"),
      input("headline-en", { type: "text", maxlength: "160", "aria-label": "Headline (English)" }),
      textarea("description-en", "Description (English)"),
      textarea("instruction-en", "Instruction (English)"),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", testid: "warning-draft" }, "Draft warning")),
    );
    for (const part of ["headline", "description", "instruction"]) {
      for (const suffix of ["zh", "en"]) {
        this.field(`${part}-${suffix}`).addEventListener("input", (e) => { e.target.dataset.edited = "true"; });
      }
    }
    this.field("origin").addEventListener("change", () => { this.refreshOrigins(); this.fillTexts(); });
    this.field("incident").addEventListener("change", () => this.fillTexts());
    this.field("hazard").addEventListener("change", () => this.fillTexts());
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.draft(); });
    this.refreshOrigins();
  }

  /** Draft from this incident (the incident board and detail pane call it). */
  draftFrom(incidentId) {
    this.field("origin").value = "incident";
    this.refreshOrigins();
    this.field("incident").value = incidentId;
    this.fillTexts(true);
  }

  refreshOrigins() {
    if (!this.form || this.form.hidden) return;
    const incident = this.field("incident");
    const hazard = this.field("hazard");
    const keepIncident = incident.value;
    const keepHazard = hazard.value;
    const incidents = this.state.all("incidents").filter((d) => OPEN_INCIDENT_STATUSES.has(d.status));
    incident.replaceChildren(...incidents.map((d) => el("option", { value: d.id }, `${d.title} (level ${d.level})`)));
    const alarms = [];
    for (const source of this.state.all("hazard-sources")) {
      for (const alarm of source.open_alarms || []) alarms.push([`${source.id}/${alarm.alarm_id}`, `${source.name} · ${alarm.sensor_id}`]);
    }
    hazard.replaceChildren(...alarms.map(([value, text]) => el("option", { value }, text)));
    if (keepIncident && incidents.some((d) => d.id === keepIncident)) incident.value = keepIncident;
    if (keepHazard && alarms.some(([value]) => value === keepHazard)) hazard.value = keepHazard;
    const fromIncident = this.field("origin").value === "incident";
    incident.closest("label").hidden = !fromIncident;
    hazard.closest("label").hidden = fromIncident;
    this.fillTexts(); // the texts nobody edited follow the origin
  }

  /** Fill the texts from a template naming the origin (the drafter edits them). */
  fillTexts(force = false) {
    const kind = this.field("origin").value;
    let title = "";
    if (kind === "incident") title = (this.state.get("incidents", this.field("incident").value) || {}).title;
    else {
      const [sourceId] = (this.field("hazard").value || "").split("/");
      title = (this.state.get("hazard-sources", sourceId) || {}).name;
    }
    const words = templates(kind, title);
    for (const [lang, suffix] of [["zh-CN", "zh"], ["en-US", "en"]]) {
      for (const part of ["headline", "description", "instruction"]) {
        const input = this.field(`${part}-${suffix}`);
        if (force || !input.dataset.edited) input.value = words[lang][part];
      }
    }
  }

  texts() {
    return [["zh-CN", "zh"], ["en-US", "en"]].map(([language, suffix]) => ({
      language,
      headline: this.field(`headline-${suffix}`).value,
      description: this.field(`description-${suffix}`).value,
      instruction: this.field(`instruction-${suffix}`).value,
    }));
  }

  expiresIn(hours) {
    return new Date(serverNow() + Number(hours) * 3600 * 1000).toISOString();
  }

  async draft() {
    const kind = this.field("origin").value;
    const body = {
      origin: kind, texts: this.texts(), expires: this.expiresIn(this.field("hours").value),
      contact: this.field("contact").value, urgency: this.field("urgency").value,
      certainty: this.field("certainty").value, scope: this.field("scope").value,
      restriction: this.field("restriction").value,
    };
    if (this.field("level").value) body.level = this.field("level").value;
    const radius = Number(this.field("radius").value) || 1;
    if (kind === "incident") {
      const incident = this.state.get("incidents", this.field("incident").value);
      if (!incident) { showOutcome(this.outcome, new Error("Select an open incident to draft from")); return; }
      body.incident_id = incident.id;
      if (!incident.affected_area && incident.location) {
        // No affected area: a circle around the incident, of the radius given.
        body.area = { circles: [{ centre: incident.location, radius_km: radius }] };
      }
    } else {
      const [sourceId, alarmId] = (this.field("hazard").value || "").split("/");
      const source = this.state.get("hazard-sources", sourceId);
      if (!source || !alarmId) { showOutcome(this.outcome, new Error("Select a hazard alarm to draft from")); return; }
      body.hazard_source_id = sourceId;
      body.alarm_id = alarmId;
      body.category = "accident-disaster";
      body.event_type = source.hazard_type === "reservoir" ? "dam-failure" : "hazmat-leak";
    }
    const button = this.field("draft");
    button.disabled = true;
    showOutcome(this.outcome, null);
    try {
      const doc = await post("/warnings", body);
      this.state.put("warnings", doc.id, doc, null);
      showOutcome(this.outcome, `Warning ${shortId(doc.id)} drafted: a second person approves it`);
    } catch (error) {
      showOutcome(this.outcome, error);
    } finally {
      button.disabled = false;
    }
  }

  // --- the list --------------------------------------------------------------------------------

  render() {
    const docs = this.state.all("warnings")
      .filter((d) => d.status !== "discarded")
      .sort((a, b) => String(b.drafted_at).localeCompare(String(a.drafted_at)));
    this.list.replaceChildren(...docs.map((doc) => this.card(doc)));
    const count = document.querySelector("[data-count=warnings]");
    if (count) count.textContent = String(this.count());
  }

  card(doc) {
    const status = warningStatus(doc);
    const content = shownContent(doc) || {};
    const english = (content.texts || []).find((t) => t.language === "en-US") || {};
    const badge = el("span", { class: "level" }, content.level || "?");
    badge.style.background = WARNING_COLOURS[content.level] || "#7b8794";
    const areas = ((content.area || {}).admin_areas || []).filter((a) => a.level === "community").length;
    const actions = this.actions(doc, status);
    return el("li", { class: "card clickable", testid: "warning-card", "data-id": doc.id, "data-status": status, "data-alert-status": doc.alert_status },
      el("div", { class: "card-head" }, badge, el("b", { testid: "warning-headline" }, english.headline || doc.headline || ""),
        el("span", { class: "status", testid: "warning-status" }, status + (doc.alert_status === "exercise" ? " · EXERCISE" : ""))),
      el("div", { class: "sub" }, `${content.scope || ""} · ${(content.area || {}).description || ""}${areas ? ` (${areas} communities)` : ""}`),
      el("div", { class: "sub" }, `drafted by ${doc.drafted_by || "?"}`,
        doc.approved_by ? ` · approved by ${doc.approved_by}` : "",
        doc.sequence ? ` · ${doc.sequence} message(s) sent, last ${timeText(doc.last_sent_at)}` : "",
        content.expires ? ` · expires ${timeText(content.expires)}` : ""),
      actions);
  }

  actions(doc, status) {
    const user = this.user;
    if (readOnly(user) || !CENTRE.has(user.role)) return null;
    const box = el("div", { class: "actions" });
    const outcome = el("p", { class: "outcome", testid: "warning-card-outcome" });
    const run = async (button, path, body, text) => {
      button.disabled = true;
      showOutcome(outcome, null);
      try {
        const answer = await post(`/warnings/${doc.id}/${path}`, body, { version: doc.version });
        this.open.delete(doc.id);
        this.state.put("warnings", answer.id, answer, null);
        showOutcome(this.outcome, text);
      } catch (error) {
        showOutcome(outcome, error);
        button.disabled = false;
      }
    };
    const button = (testid, text, onclick, cls = "") => el("button", { type: "button", testid, class: cls, onclick: (e) => { e.stopPropagation(); onclick(e.currentTarget); } }, text);
    const content = doc.draft || {};
    const wroteIt = (doc.authors || []).includes(user.username);
    if (PREPARING.has(status)) {
      if (wroteIt && content.scope === "public") {
        box.append(el("span", { class: "hint", testid: "warning-needs-second" }, "Waiting for a second person's approval"));
      } else {
        box.append(button("warning-approve", "Approve", (b) => run(b, "approve", {}, "Approved: it can be issued"), "primary"));
      }
    }
    if (APPROVED.has(status)) {
      box.append(button("warning-issue", "Issue", (b) => run(b, "issue", {}, status === "approved" ? "Issued" : "Update issued"), "primary"));
    }
    if (status === "issued") {
      box.append(button("warning-update", "Update…", () => { this.open.set(doc.id, "update"); this.render(); }));
    }
    if (IN_FORCE.has(status)) {
      box.append(button("warning-cancel", "Cancel…", () => { this.open.set(doc.id, "cancel"); this.render(); }, "danger"));
    }
    if (PREPARING.has(status) || APPROVED.has(status)) {
      box.append(button("warning-discard", "Discard draft", (b) => run(b, "discard", { reason: "Not needed" }, "Draft discarded")));
    }
    const form = this.open.get(doc.id);
    if (form === "cancel") {
      const reason = el("input", { type: "text", testid: "warning-cancel-reason", placeholder: "Why it is over", value: "The danger is over" });
      box.append(el("div", { class: "action-form" }, reason,
        button("warning-cancel-confirm", "Send the cancellation", (b) => run(b, "cancel", { reason: reason.value }, "Cancelled"), "danger")));
    } else if (form === "update") {
      box.append(this.updateForm(doc, run, button));
    }
    box.append(outcome);
    return box.children.length > 1 ? box : null;
  }

  /** An update: a wider (or narrower) circle or the origin's area as it is now, level, expiry. */
  updateForm(doc, run, button) {
    const content = doc.content;
    const circle = (content.area.circles || [])[0];
    const radius = el("input", { type: "number", testid: "warning-update-radius", min: "0.1", max: "100", step: "0.1", value: circle ? String(circle.radius_km * 2) : "" });
    const fromOrigin = el("input", { type: "checkbox", testid: "warning-update-from-origin" });
    const level = el("select", { testid: "warning-update-level", "aria-label": "Level" }, LEVELS.map((l) => el("option", { value: l, selected: l === content.level }, l || "unchanged")));
    const hours = el("input", { type: "number", testid: "warning-update-hours", min: "0.25", max: "168", step: "0.25", value: "6" });
    const reason = el("input", { type: "text", testid: "warning-update-reason", value: "The situation changed" });
    const english = content.texts.find((t) => t.language === "en-US");
    const headline = el("input", { type: "text", testid: "warning-update-headline-en", value: english.headline, maxlength: "160" });
    const send = (b) => {
      const texts = content.texts.map((t) => ({ language: t.language, headline: t.language === "en-US" ? headline.value : t.headline, description: t.description, instruction: t.instruction, event: t.event || "" }));
      const body = { texts, expires: this.expiresIn(hours.value), contact: content.contact, urgency: content.urgency, certainty: content.certainty, scope: content.scope, restriction: content.restriction, reason: reason.value };
      if (level.value) body.level = level.value;
      if (fromOrigin.checked) body.area_from_origin = true;
      else if (circle && radius.value) body.area = { circles: [{ centre: circle.centre ? { type: "Point", coordinates: circle.centre } : null, radius_km: Number(radius.value) }], description: content.area.description };
      run(b, "update", body, "Update drafted: a second person approves it");
    };
    return el("div", { class: "action-form" },
      circle ? el("label", {}, "Radius km ", radius) : el("span", { class: "hint" }, "The area stays as issued unless taken from the origin again"),
      el("label", {}, fromOrigin, " take the origin's area as it is now"),
      el("label", {}, "Level ", level), el("label", {}, "Expires in h ", hours),
      el("label", {}, "Headline (en) ", headline), el("label", {}, "Reason ", reason),
      button("warning-update-confirm", "Draft the update", send, "primary"));
  }
}
