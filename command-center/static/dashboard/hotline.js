// The hotline queue: tickets waiting for the centre (received, returned by a department) and
// those with departments, with their reply deadline; routing to a department, reviewing a
// department's return (accept: route elsewhere; reject: back to it), merging calls about the
// same matter, and for a department user returning a ticket that is not theirs.

import { post } from "/static/common/api.js";
import { el } from "./detail.js";
import { serverNow } from "/static/common/clock.js";
import { OPEN_TICKET_STATUSES, isPast, may, readOnly, returnsText, shortId, timeText, untilText } from "./words.js";

export class HotlineQueue {
  constructor(root, state, { user, catalogue, onSelect }) {
    this.rows = root.querySelector("[data-testid=ticket-rows]");
    this.state = state;
    this.user = user;
    this.catalogue = catalogue;
    this.onSelect = onSelect;
    let pending = null;
    const later = () => { if (!pending) pending = requestAnimationFrame(() => { pending = null; this.render(); }); };
    for (const name of ["change", "reset"]) {
      state.addEventListener(name, (e) => { if (e.detail.layer === "hotline-tickets") later(); });
    }
  }

  open() {
    const waiting = { received: 0, returned: 0 };
    return this.state.all("hotline-tickets").filter((d) => OPEN_TICKET_STATUSES.has(d.status))
      .sort((a, b) => ((a.status in waiting ? 0 : 1) - (b.status in waiting ? 0 : 1))
        || String(a.reply_deadline || a.received_at).localeCompare(String(b.reply_deadline || b.received_at)));
  }

  render() {
    const now = serverNow();
    this.rows.replaceChildren(...this.open().slice(0, 300).map((doc) => el("tr", {
      class: "clickable", testid: "ticket-row", "data-id": doc.id, "data-status": doc.status,
      onclick: () => this.onSelect("hotline-tickets", doc.id),
    },
    el("td", {}, el("b", {}, this.catalogue.topicName(doc.topic)), el("div", { class: "sub" }, shortId(doc.id), ` · ${doc.channel}`,
      (doc.extra_calls || []).length ? ` · ${doc.extra_calls.length + 1} calls` : "")),
    el("td", {}, doc.ticket_type),
    el("td", {}, doc.status, doc.department ? el("div", { class: "sub" }, doc.department)
      : doc.status === "returned" && doc.returned_by ? el("div", { class: "sub" }, `returned by ${doc.returned_by}: to review`) : null),
    el("td", { class: isPast(doc.reply_deadline, now) ? "overdue" : "", testid: "ticket-deadline" },
      doc.reply_deadline ? untilText(doc.reply_deadline, now) : ""))));
  }

  view() {
    const user = this.user;
    const catalogue = this.catalogue;
    const state = this.state;
    return {
      title: (doc) => `Ticket ${shortId(doc.id)} · ${catalogue.topicName(doc.topic)}`,
      historyPath: (id) => `/hotline-tickets/${id}/history`,
      eventNote: (event) => {
        const f = event.facts || {};
        return [f.department && `to ${f.department}`, f.reason, f.answer, f.reply, f.note, f.primary_id && `into ${shortId(f.primary_id)}`]
          .filter(Boolean).join(" · ");
      },
      facts: (doc) => [
        ["Status", doc.status, "detail-status"],
        ["Type", `${doc.ticket_type} via ${doc.channel}`],
        ["Topic", catalogue.topicName(doc.topic)],
        ["Caller", doc.caller ? [doc.caller.name, doc.caller.phone].filter(Boolean).join(" · ") : ""],
        ["Description", doc.description],
        ["Department", doc.department || (doc.proposed_department ? `proposed: ${doc.proposed_department}` : "")],
        ["Reply by", doc.reply_deadline ? `${timeText(doc.reply_deadline)} (${untilText(doc.reply_deadline)})` : ""],
        ["Returned by", doc.status === "returned" && doc.returned_by ? `${doc.returned_by}: ${doc.return_reason || ""}` : "", "detail-returned-by"],
        ["Returns reviewed", returnsText((doc.returns || []).filter((r) => r.outcome !== "awaiting-review"))],
        ["Grid cell", doc.grid_cell],
        ["Calls merged", (doc.extra_calls || []).length || ""],
        ["Version", doc.version, "detail-version"],
      ],
      actions: (doc) => {
        if (readOnly(user)) return [];
        const path = (name) => `/hotline-tickets/${doc.id}/${name}`;
        const actions = [];
        if (doc.status === "returned" && may(user, "hotline-ticket", "review-return")) {
          const others = catalogue.departmentOptions().filter(([value]) => value !== doc.returned_by);
          const proposed = doc.proposed_department !== doc.returned_by ? doc.proposed_department : "";
          actions.push({
            name: "accept-return", label: "Accept return", style: "primary", done: "Return accepted: routed",
            fields: [{ name: "department", label: "Route to", type: "select", value: proposed || (others[0] || [""])[0], options: others },
              { name: "reason", label: "Review note", type: "textarea" }],
            run: (values, v) => post(path("return-review"), { accept: true, department: values.department || null, reason: values.reason }, { version: v }),
          });
          actions.push({
            name: "reject-return", label: "Reject return", style: "danger", done: `Return rejected: back to ${doc.returned_by}`,
            fields: [{ name: "reason", label: `Why it is ${doc.returned_by}'s`, type: "textarea", required: true }],
            run: (values, v) => post(path("return-review"), { accept: false, reason: values.reason }, { version: v }),
          });
        }
        if (doc.status === "received" && may(user, "hotline-ticket", "route")) {
          actions.push({
            name: "route", label: "Route", style: "primary", done: "Routed",
            fields: [{ name: "department", label: "Department", type: "select", value: doc.proposed_department || "", options: catalogue.departmentOptions() },
              { name: "note", label: "Note", type: "textarea" }],
            run: (values, v) => post(path("assign"), { department: values.department || null, note: values.note }, { version: v }),
          });
        }
        if (["received", "returned", "assigned"].includes(doc.status) && may(user, "hotline-ticket", "merge")) {
          const candidates = [...(doc.possible_duplicates || []).map((d) => (typeof d === "string" ? d : d.ticket_id || d.id)),
            ...state.all("hotline-tickets").filter((t) => t.id !== doc.id && t.topic === doc.topic && OPEN_TICKET_STATUSES.has(t.status)).map((t) => t.id)];
          const options = [...new Set(candidates)].filter(Boolean).map((id) => [id, `${shortId(id)} ${catalogue.topicName(state.get("hotline-tickets", id)?.topic || "")}`]);
          actions.push({
            name: "merge", label: "Merge into…", done: "Merged",
            fields: [options.length ? { name: "primary_id", label: "The ticket of the same matter", type: "select", value: options[0][0], options }
              : { name: "primary_id", label: "Ticket id of the same matter", required: true },
            { name: "note", label: "Note", type: "textarea" }],
            run: (values, v) => post(path("merge"), { primary_id: values.primary_id, note: values.note }, { version: v }),
          });
        }
        if (doc.status === "assigned" && may(user, "hotline-ticket", "return")) {
          actions.push({ name: "return-ticket", label: "Return to centre", done: "Returned", fields: [{ name: "reason", label: "Why it is not ours", required: true }], run: (values, v) => post(path("return"), { reason: values.reason }, { version: v }) });
        }
        return actions;
      },
    };
  }
}
