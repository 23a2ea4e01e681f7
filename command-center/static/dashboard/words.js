// The domain's words on screen (states, levels, lights, roles), the supervision light as it
// is now (on the server's clock), and which actions each role is offered. The server decides what is allowed; this
// only keeps buttons off the screens of people who may not use them.

import { serverNow } from "/static/common/clock.js";

export const LAYER_TITLES = {
  "grid-cases": "Grid case",
  incidents: "Incident",
  "hazard-sources": "Hazard source",
  resources: "Resource",
  "hotline-tickets": "Hotline ticket",
  warnings: "Warning",
};

export const LEVEL_COLOURS = { I: "#e0443e", II: "#ef8a25", III: "#e8c21c", IV: "#3d7be0" };
export const LEVEL_NAMES = {
  I: "I especially major", II: "II major", III: "III relatively major", IV: "IV general",
};
export const LIGHT_COLOURS = { green: "#2fb35a", yellow: "#e8c21c", red: "#e0443e" };
export const RESOURCE_COLOURS = {
  available: "#26c6da", dispatched: "#ef8a25", "en-route": "#ef8a25", "on-scene": "#e0443e",
  returning: "#4aa3ff", "out-of-service": "#7b8794",
};

export const OPEN_CASE_STATUSES = new Set(
  ["reported", "registered", "dispatched", "returned", "suspended", "handled", "verified"]);
export const OPEN_INCIDENT_STATUSES = new Set(["reported", "verified", "responding", "contained"]);
export const OPEN_TICKET_STATUSES = new Set(["received", "assigned", "accepted", "returned", "replied"]);

/** The supervision light of a case now: frozen while suspended, else from the instants the
 *  server's read model says it turns yellow and red, on the server's clock. */
export function caseLight(doc, now = serverNow()) {
  if (!OPEN_CASE_STATUSES.has(doc.status)) return null;
  if (doc.frozen_light) return doc.frozen_light;
  if (doc.yellow_at && doc.red_at) {
    if (now >= Date.parse(doc.red_at)) return "red";
    if (now >= Date.parse(doc.yellow_at)) return "yellow";
    return "green";
  }
  return doc.light || null;
}

/** "in 2 h 05 min" / "35 min overdue". */
export function untilText(iso, now = serverNow()) {
  if (!iso) return "";
  const minutes = Math.round((Date.parse(iso) - now) / 60000);
  const span = (m) => (m >= 60 * 24 ? `${Math.floor(m / 1440)} d ${Math.floor((m % 1440) / 60)} h`
    : m >= 60 ? `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min` : `${m} min`);
  return minutes >= 0 ? `in ${span(minutes)}` : `${span(-minutes)} overdue`;
}

export function timeText(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function clockText(iso) {
  return new Date(iso || serverNow()).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Whether an instant (ISO text) has passed on the server's clock. */
export function isPast(iso, now = serverNow()) {
  return Boolean(iso) && Date.parse(iso) < now;
}

/** What the centre's reviews made of an item's returns: "1 rejected, 1 accepted". */
export function returnsText(returns) {
  const counts = {};
  for (const r of returns || []) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
  return Object.entries(counts).map(([outcome, n]) => `${n} ${outcome.replace("-", " ")}`).join(", ");
}

/** "<input type=datetime-local>" value -> ISO time with its offset (empty stays null). */
export function localInputToIso(value) {
  return value ? new Date(value).toISOString() : null;
}

export function shortId(id) {
  return String(id || "").slice(0, 8);
}

const CENTRE = ["dispatcher", "admin"];

/** Which actions a role is offered on the dashboard. */
export const ACTIONS_BY_ROLE = {
  "grid-case": {
    register: CENTRE, reject: CENTRE, dispatch: CENTRE, "decide-extension": CENTRE,
    "review-return": CENTRE, "decide-suspension": CENTRE, suspend: CENTRE, close: CENTRE,
    "assign-verifier": CENTRE,
    // Resuming only starts the clock again: the department may do it when it can work.
    resume: [...CENTRE, "department-user"],
    verify: ["inspector", ...CENTRE],
    handle: ["department-user"], return: ["department-user"],
    "request-extension": ["department-user"], "request-suspension": ["department-user"],
  },
  "hotline-ticket": {
    route: ["hotline-operator", ...CENTRE], merge: ["hotline-operator", ...CENTRE],
    "review-return": ["hotline-operator", ...CENTRE],
    return: ["department-user"],
  },
  incident: { "assign-resource": CENTRE, verify: CENTRE, contain: CENTRE, "waive-task": CENTRE },
};

export function may(user, subject, action) {
  if (!user) return false;
  const roles = (ACTIONS_BY_ROLE[subject] || {})[action] || [];
  return roles.includes(user.role);
}

/** Whether the user only reads (a leader, a planner): no action buttons at all. */
export function readOnly(user) {
  return !user || user.role === "leader" || user.role === "planner";
}
