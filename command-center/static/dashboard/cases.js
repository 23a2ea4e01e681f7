// The case queue: grid cases waiting for the centre or with the departments, with their
// supervision light and deadline, the bulk register/reject of a selection, and the case view
// for the detail pane with the actions of the workflow (register, reject, dispatch, accept or
// reject a department's return, approve or refuse an extension or a suspension, verify, close;
// for a department: handle, return, ask for more time or for a suspension, resume).

import { get, post, request, showOutcome } from "/static/common/api.js";
import { el } from "./detail.js";
import { serverNow } from "/static/common/clock.js";
import { OPEN_CASE_STATUSES, caseLight, localInputToIso, may, readOnly, returnsText, shortId, timeText, untilText } from "./words.js";

const FILTERS = {
  "to-register": (d) => d.status === "reported",
  "to-dispatch": (d) => d.status === "registered",
  "returns-to-review": (d) => d.status === "returned",
  "with-departments": (d) => ["dispatched", "handled", "suspended"].includes(d.status),
  extensions: (d) => Boolean(d.pending_extension),
  "suspension-requests": (d) => Boolean(d.pending_suspension),
  "to-close": (d) => d.status === "verified",
  "all-open": (d) => OPEN_CASE_STATUSES.has(d.status),
};
const LIGHT_ORDER = { red: 0, yellow: 1, green: 2 };

/** A department user's queue is what is with their department. */
function departmentFilter(user) {
  return (d) => ["dispatched", "handled", "suspended"].includes(d.status) || Boolean(d.pending_extension) || Boolean(d.pending_suspension);
}

export class CaseQueue {
  constructor(root, state, { user, catalogue, onSelect }) {
    this.root = root;
    this.state = state;
    this.user = user;
    this.catalogue = catalogue;
    this.onSelect = onSelect;
    this.selected = new Set();
    this.rows = root.querySelector("[data-testid=case-rows]");
    this.filter = root.querySelector("[data-testid=case-filter]");
    this.bulkBar = root.querySelector("[data-testid=bulk-bar]");
    this.bulkOutcome = root.querySelector("[data-testid=bulk-outcome]");
    this.selectAll = root.querySelector("[data-testid=select-all-cases]");
    this.bulkEnabled = may(user, "grid-case", "register");
    if (user.role === "department-user") {
      this.filter.replaceChildren(el("option", { value: "department" }, `With ${user.department}`),
        el("option", { value: "all-open" }, "All open"));
    } else if (user.role === "inspector") {
      this.filter.value = "with-departments";
    }
    if (!this.bulkEnabled) this.selectAll.closest("th").replaceChildren();
    this.filter.addEventListener("change", () => { this.selected.clear(); this.render(); });
    this.selectAll.addEventListener("change", () => {
      for (const doc of this.visible()) {
        if (this.selectAll.checked) this.selected.add(doc.id); else this.selected.delete(doc.id);
      }
      this.render();
    });
    root.querySelector("[data-testid=bulk-register]").addEventListener("click", (e) => this.bulk("register", {}, e.target));
    root.querySelector("[data-testid=bulk-reject]").addEventListener("click", (e) => this.bulk("reject",
      { reason: root.querySelector("[data-testid=bulk-reject-reason]").value }, e.target));
    let pending = null;
    const later = () => { if (!pending) pending = requestAnimationFrame(() => { pending = null; this.render(); }); };
    state.addEventListener("change", (e) => { if (e.detail.layer === "grid-cases") later(); });
    state.addEventListener("reset", (e) => { if (e.detail.layer === "grid-cases") later(); });
    state.addEventListener("presence", (e) => { if (e.detail.layer === "grid-cases") later(); });
  }

  visible() {
    const key = this.filter.value;
    const test = key === "department" ? departmentFilter(this.user) : FILTERS[key] || FILTERS["all-open"];
    const now = serverNow();
    return this.state.all("grid-cases").filter(test).sort((a, b) => {
      const la = LIGHT_ORDER[caseLight(a, now)] ?? 3;
      const lb = LIGHT_ORDER[caseLight(b, now)] ?? 3;
      return la - lb || String(a.stage_deadline || a.handling_deadline || "").localeCompare(String(b.stage_deadline || b.handling_deadline || ""));
    });
  }

  openCount() {
    return this.state.all("grid-cases").filter((d) => OPEN_CASE_STATUSES.has(d.status)).length;
  }

  render() {
    const now = serverNow();
    const docs = this.visible();
    for (const id of [...this.selected]) if (!docs.some((d) => d.id === id)) this.selected.delete(id);
    this.rows.replaceChildren(...docs.slice(0, 300).map((doc) => {
      const light = caseLight(doc, now);
      const deadline = doc.handling_deadline && ["dispatched", "handled", "suspended"].includes(doc.status)
        ? doc.handling_deadline : doc.stage_deadline;
      const viewers = this.state.viewersOf("grid-cases", doc.id).filter((v) => v.user_id !== this.user.username);
      const row = el("tr", {
        testid: "case-row", "data-id": doc.id, "data-status": doc.status, "data-light": light || "",
        "data-version": doc.version, class: "clickable",
        onclick: (event) => { if (event.target.type !== "checkbox") this.onSelect("grid-cases", doc.id); },
      },
      el("td", {}, this.bulkEnabled && doc.status === "reported"
        ? el("input", { type: "checkbox", testid: "case-select", checked: this.selected.has(doc.id), "aria-label": "Select",
          onchange: (event) => { if (event.target.checked) this.selected.add(doc.id); else this.selected.delete(doc.id); this.renderBulkBar(); } })
        : null),
      el("td", {}, el("span", { class: `light ${light || "none"}`, title: light || "no light" }),
        el("b", {}, this.catalogue.categoryName(doc.category)), el("div", { class: "sub" }, shortId(doc.id),
          doc.department ? ` · ${doc.department}` : doc.proposed_department ? ` · → ${doc.proposed_department}` : "",
          doc.pending_extension ? " · extension asked" : "",
          doc.pending_suspension ? " · suspension asked" : "",
          doc.status === "returned" && doc.returned_by ? ` · returned by ${doc.returned_by}` : "",
          doc.outside_assigned_cells ? el("span", { class: "outside-cells", testid: "case-outside-cells", title: "reported by an inspector outside the cells assigned to them" }, " · outside reporter's cells") : null,
          viewers.length ? el("span", { class: "viewing", testid: "row-presence" }, ` · viewing: ${viewers.map((v) => v.user_id).join(", ")}`) : null)),
      el("td", {}, doc.grid_cell || ""),
      el("td", { testid: "case-status" }, doc.status),
      el("td", { class: light === "red" ? "overdue" : "", testid: "case-deadline" }, deadline ? untilText(deadline, now) : ""));
      return row;
    }));
    this.renderBulkBar();
  }

  renderBulkBar() {
    const n = this.selected.size;
    this.bulkBar.hidden = !this.bulkEnabled || n === 0;
    this.root.querySelector("[data-testid=bulk-count]").textContent = `${n} selected`;
  }

  /** Register or reject the selection: one bulk request if the server has the bulk route,
   *  else one command per case. Each case succeeds or fails on its own. */
  async bulk(action, args, button) {
    const items = [...this.selected].map((id) => ({ id, version: this.state.get("grid-cases", id)?.version }));
    if (!items.length) return;
    button.disabled = true;
    showOutcome(this.bulkOutcome, null);
    try {
      const results = await bulkCommand("grid-cases", action, items, args);
      for (const result of results) if (result.ok && result.document) this.state.put("grid-cases", result.id, result.document, null);
      const failed = results.filter((r) => !r.ok);
      const done = results.length - failed.length;
      this.selected = new Set(failed.map((r) => r.id));
      const verb = action === "register" ? "Registered" : "Rejected";
      const outcome = failed.length
        ? Object.assign(new Error(`${verb} ${done} of ${results.length}; not done: ${failed.map((r) => `${shortId(r.id)}: ${r.error}`).join("; ")}`), { isConflict: failed.some((r) => r.status === 409 || r.status === 412) })
        : `${verb} ${done} case${done === 1 ? "" : "s"}`;
      showOutcome(this.bulkOutcome, outcome);
    } catch (error) {
      showOutcome(this.bulkOutcome, error);
    } finally {
      button.disabled = false;
      this.render();
    }
  }

  /** The detail view of one case. */
  view() {
    const user = this.user;
    const catalogue = this.catalogue;
    const departments = catalogue.departmentOptions();
    return {
      title: (doc) => `Case ${shortId(doc.id)} · ${catalogue.categoryName(doc.category)}`,
      historyPath: (id) => `/grid-cases/${id}/history`,
      eventNote: (event) => {
        const f = event.facts || {};
        return [f.department && `to ${f.department}`, f.reason, f.result, f.note, f.instructions,
          f.fixed === false && "not fixed: rework", f.requested_deadline && `until ${timeText(f.requested_deadline)}`,
        f.expected_resume_at && `resume expected ${timeText(f.expected_resume_at)}`]
          .filter(Boolean).join(" · ");
      },
      facts: (doc) => {
        const light = caseLight(doc);
        return [
          ["Status", doc.status, "detail-status"],
          ["Light", light ? el("span", { class: `light-label ${light}` }, light) : "", "detail-light"],
          ["Category", `${doc.category} ${catalogue.categoryName(doc.category)}`],
          ["Urgency", doc.urgency],
          ["Grid cell", doc.grid_cell],
          ["Department", doc.department || (doc.proposed_department ? `proposed: ${doc.proposed_department}` : "")],
          ["Stage deadline", doc.stage_deadline ? `${timeText(doc.stage_deadline)} (${untilText(doc.stage_deadline)})` : ""],
          ["Handling deadline", doc.handling_deadline ? `${timeText(doc.handling_deadline)} (${untilText(doc.handling_deadline)})` : ""],
          ["Extension asked", doc.pending_extension ? `until ${timeText(doc.pending_extension.requested_deadline)}: ${doc.pending_extension.reason}` : ""],
          ["Suspension asked", doc.pending_suspension ? `${doc.pending_suspension.reason}${doc.pending_suspension.expected_resume_at ? ` (resume expected ${timeText(doc.pending_suspension.expected_resume_at)})` : ""}` : "", "detail-pending-suspension"],
          ["Suspended", doc.status === "suspended" ? `${doc.suspension_reason || ""}${doc.expected_resume_at ? ` (resume expected ${timeText(doc.expected_resume_at)})` : ""}` : ""],
          ["Returned by", doc.status === "returned" && doc.returned_by ? `${doc.returned_by}: ${doc.return_reason || ""}` : "", "detail-returned-by"],
          ["Returns reviewed", returnsText((doc.returns || []).filter((r) => r.outcome !== "awaiting-review"))],
          ["Description", doc.description],
          ["Result", doc.result],
          ["Reported", `${timeText(doc.reported_at)} by ${doc.source}`],
          ["Reworks / returns", doc.rework_count || doc.return_count ? `${doc.rework_count} / ${doc.return_count}` : ""],
          ["Outside reporter's cells", doc.outside_assigned_cells ? "yes: reported by an inspector outside the cells assigned to them" : ""],
          ["Verifier", doc.assigned_verifier ? `${doc.assigned_verifier} (assigned by the centre)` : "the inspector of the cell"],
          ["Version", doc.version, "detail-version"],
        ];
      },
      actions: (doc) => {
        if (readOnly(user)) return [];
        const can = (name) => may(user, "grid-case", name);
        const path = (name) => `/grid-cases/${doc.id}/${name}`;
        const actions = [];
        const s = doc.status;
        if (s === "reported" && can("register")) {
          actions.push({ name: "register", label: "Register", style: "primary", done: "Registered", run: (_, v) => post(path("register"), {}, { version: v }) });
        }
        if (s === "reported" && can("reject")) {
          actions.push({
            name: "reject", label: "Reject", style: "danger", done: "Rejected",
            fields: [
              { name: "reason", label: "Reason", type: "select", value: "not-city-management", options: [["duplicate", "duplicate"], ["not-city-management", "not a city-management matter"], ["not-reproducible", "not reproducible"]] },
              { name: "duplicate_of", label: "Duplicate of (case id, for duplicates)", value: (doc.possible_duplicates || [])[0]?.case_id || (doc.possible_duplicates || [])[0] || "" },
              { name: "note", label: "Note", type: "textarea" },
            ],
            run: (values, v) => post(path("reject"), { reason: values.reason, note: values.note, duplicate_of: values.reason === "duplicate" && values.duplicate_of ? values.duplicate_of : null }, { version: v }),
          });
        }
        if (s === "returned" && can("review-return")) {
          // The department's "not ours" is a claim: the centre accepts it (another
          // department) or rejects it (back to the same one, on the clock it had).
          const others = departments.filter(([value]) => value !== doc.returned_by);
          const proposed = doc.proposed_department !== doc.returned_by ? doc.proposed_department : "";
          actions.push({
            name: "accept-return", label: "Accept return", style: "primary", done: "Return accepted: dispatched",
            fields: [
              { name: "department", label: "Dispatch to", type: "select", value: proposed || (others[0] || [""])[0], options: others },
              { name: "reason", label: "Review note", type: "textarea" },
              { name: "instructions", label: "Instructions", type: "textarea" },
            ],
            run: (values, v) => post(path("return-review"), { accept: true, department: values.department || null, reason: values.reason, instructions: values.instructions }, { version: v }),
          });
          actions.push({
            name: "reject-return", label: "Reject return", style: "danger", done: `Return rejected: back to ${doc.returned_by}`,
            fields: [{ name: "reason", label: `Why it is ${doc.returned_by}'s`, type: "textarea", required: true }],
            run: (values, v) => post(path("return-review"), { accept: false, reason: values.reason }, { version: v }),
          });
        }
        if (s === "registered" && can("dispatch")) {
          actions.push({
            name: "dispatch", label: "Dispatch", style: "primary", done: "Dispatched",
            fields: [
              { name: "department", label: "Department", type: "select", value: doc.proposed_department || "", options: departments },
              { name: "instructions", label: "Instructions", type: "textarea" },
            ],
            confirm: "Dispatch",
            run: (values, v) => post(path("dispatch"), { department: values.department || null, instructions: values.instructions }, { version: v }),
          });
        }
        if (doc.pending_extension && can("decide-extension")) {
          actions.push({ name: "approve-extension", label: "Approve extension", style: "primary", done: "Extension approved", run: (_, v) => post(path("extension-decision"), { approve: true }, { version: v }) });
          actions.push({ name: "refuse-extension", label: "Refuse extension", fields: [{ name: "reason", label: "Reason", required: true }], done: "Extension refused", run: (values, v) => post(path("extension-decision"), { approve: false, reason: values.reason }, { version: v }) });
        }
        if (s === "dispatched" && can("handle")) {
          actions.push({ name: "handle", label: "Report handled", style: "primary", done: "Reported as handled", fields: [{ name: "result", label: "Result", type: "textarea", required: true }], run: (values, v) => post(path("handle"), { result: values.result }, { version: v }) });
        }
        if (s === "dispatched" && can("return")) {
          actions.push({ name: "return", label: "Return to centre", fields: [{ name: "reason", label: "Why it is not ours", required: true }, { name: "suggested_department", label: "Suggested department", type: "select", value: "", options: [["", "—"], ...departments] }], done: "Returned to the centre", run: (values, v) => post(path("return"), { reason: values.reason, suggested_department: values.suggested_department || null }, { version: v }) });
        }
        if (s === "dispatched" && !doc.pending_extension && can("request-extension")) {
          const base = Date.parse(doc.handling_deadline || "") || serverNow();
          const suggested = new Date(base + 24 * 3600 * 1000);
          const local = new Date(suggested.getTime() - suggested.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
          actions.push({ name: "request-extension", label: "Request extension", done: "Extension requested", fields: [{ name: "requested_deadline", label: "New deadline", type: "datetime-local", value: local, required: true }, { name: "reason", label: "Reason", required: true }], run: (values, v) => post(path("extension-requests"), { requested_deadline: new Date(values.requested_deadline).toISOString(), reason: values.reason }, { version: v }) });
        }
        if (doc.pending_suspension && can("decide-suspension")) {
          actions.push({ name: "approve-suspension", label: "Approve suspension", style: "primary", done: "Suspension approved: the clock stands still", run: (_, v) => post(path("suspension-decision"), { approve: true }, { version: v }) });
          actions.push({ name: "refuse-suspension", label: "Refuse suspension", fields: [{ name: "reason", label: "Reason", required: true }], done: "Suspension refused", run: (values, v) => post(path("suspension-decision"), { approve: false, reason: values.reason }, { version: v }) });
        }
        if (s === "dispatched" && !doc.pending_suspension && can("request-suspension")) {
          actions.push({
            name: "request-suspension", label: "Request suspension", done: "Suspension requested",
            fields: [{ name: "reason", label: "Why the work must wait", required: true },
              { name: "expected_resume_at", label: "Expected resume (optional)", type: "datetime-local" }],
            run: (values, v) => post(path("suspension-requests"), { reason: values.reason, expected_resume_at: localInputToIso(values.expected_resume_at) }, { version: v }),
          });
        }
        if (s === "handled" && can("verify")) {
          actions.push({ name: "verify", label: "Verify", style: "primary", done: "Verification recorded", fields: [{ name: "fixed", label: "On site", type: "select", value: "yes", options: [["yes", "fixed"], ["no", "not fixed: rework"]] }, { name: "note", label: "Note", type: "textarea" }], confirm: "Record verification", run: (values, v) => post(path("verify"), { fixed: values.fixed === "yes", note: values.note }, { version: v }) });
        }
        if (["registered", "dispatched", "returned", "suspended", "handled"].includes(s) && can("assign-verifier")) {
          actions.push({ name: "assign-verifier", label: "Assign verifier", done: "Verifier assigned", fields: [{ name: "inspector", label: "Inspector (id)", value: doc.assigned_verifier || "", required: true }, { name: "reason", label: "Reason" }], run: (values, v) => post(path("assign-verifier"), { inspector: values.inspector, reason: values.reason }, { version: v }) });
        }
        if (s === "verified" && can("close")) {
          actions.push({ name: "close", label: "Close", style: "primary", done: "Closed", run: (_, v) => post(path("close"), {}, { version: v }) });
        }
        if (s === "dispatched" && can("suspend")) {
          actions.push({ name: "suspend", label: "Suspend", fields: [{ name: "reason", label: "Reason (long work)", required: true }], done: "Suspended", run: (values, v) => post(path("suspend"), { reason: values.reason }, { version: v }) });
        }
        if (s === "suspended" && can("resume")) {
          actions.push({ name: "resume", label: "Resume", done: "Resumed", run: (_, v) => post(path("resume"), {}, { version: v }) });
        }
        return actions;
      },
    };
  }
}

let bulkRoutes = null;
const BULK_CHUNK = 200;

/** Whether the server has POST /{resource}/bulk/{action} (it came with the conflict work;
 *  an older server answers per item). Asked once, from the OpenAPI document. */
async function hasBulkRoute(resource) {
  if (bulkRoutes === null) {
    try {
      const spec = await get("/openapi.json");
      bulkRoutes = new Set(Object.keys(spec.paths || {}).filter((p) => p.includes("/bulk/")));
    } catch {
      bulkRoutes = new Set();
    }
  }
  return [...bulkRoutes].some((p) => p.startsWith(`/${resource}/bulk/`));
}

/** Run one action on many items; resolves to [{id, ok, status, error, document}]. */
export async function bulkCommand(resource, action, items, args = {}) {
  if (await hasBulkRoute(resource)) {
    const results = [];
    // The server takes a screenful at a time (200 items per request).
    for (let start = 0; start < items.length; start += BULK_CHUNK) {
      const chunk = items.slice(start, start + BULK_CHUNK);
      const body = await request("POST", `/${resource}/bulk/${action}`, { body: { items: chunk, ...args } });
      results.push(...body.results);
    }
    return results;
  }
  const results = [];
  for (const item of items) {
    try {
      const document = await post(`/${resource}/${item.id}/${action}`, args, { version: item.version });
      results.push({ id: item.id, ok: true, status: 200, error: null, document });
    } catch (error) {
      results.push({ id: item.id, ok: false, status: error.status, error: error.message, document: null });
    }
  }
  return results;
}
