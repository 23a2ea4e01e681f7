// The detail pane of the one item the user has open (a case, an incident, a ticket): its
// facts, who else is looking at it, the actions this user may take, the outcome of the last
// action, and its timeline from the event history.
//
// An action is bound to the version the user was looking at when they started it: if the
// item changes meanwhile (someone else acted), a banner says so and the command goes out with
// If-Match of the version shown, so the server refuses it with a clear conflict message
// instead of silently acting on a state the user never saw.

import { get, showOutcome } from "/static/common/api.js";
import { LAYER_TITLES, clockText, timeText } from "./words.js";

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") node.dataset.testid = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
export { el };

export class DetailPane {
  constructor(element, state, { live, user, onClose }) {
    this.element = element;
    this.state = state;
    this.live = live;
    this.user = user;
    this.onClose = onClose;
    this.layer = null;
    this.id = null;
    this.view = null;
    this.openedVersion = null;
    this.openForm = null; // name of the action whose form is open
    this.lastOutcome = null;
    state.addEventListener("change", (e) => {
      if (e.detail.layer === this.layer && e.detail.id === this.id) this.itemChanged(e.detail);
      else if (this.view && (this.view.related || []).includes(e.detail.layer)) this.renderExtra();
    });
    state.addEventListener("reset", (e) => {
      if (e.detail.layer === this.layer) this.itemChanged({});
    });
    state.addEventListener("presence", (e) => {
      if (e.detail.layer === this.layer && e.detail.id === this.id) this.renderPresence();
    });
  }

  get doc() {
    return this.layer ? this.state.get(this.layer, this.id) : null;
  }

  /** Open an item; `view` says how to show it and which actions it offers. */
  open(layer, id, view) {
    this.layer = layer;
    this.id = id;
    this.view = view;
    this.openForm = null;
    this.lastOutcome = null;
    const doc = this.doc;
    this.openedVersion = doc ? doc.version : null;
    if (this.live) this.live.viewing(layer, id);
    this.render();
    this.loadHistory();
  }

  close() {
    if (this.live) this.live.viewing(this.layer, null);
    this.layer = null;
    this.id = null;
    this.view = null;
    this.element.replaceChildren(el("p", { class: "hint" }, "Select a case, incident or ticket on the map or in a list."));
    if (this.onClose) this.onClose();
  }

  itemChanged(detail) {
    const doc = this.doc;
    if (!doc) {
      this.render();
      return;
    }
    if (this.openForm && doc.version !== this.openedVersion) {
      // Keep the user's half-filled form and the version it is about; say what changed.
      this.renderBanner(detail.change);
      this.renderFacts();
    } else {
      this.openedVersion = doc.version;
      this.render();
    }
    this.loadHistory();
  }

  render() {
    const doc = this.doc;
    this.element.replaceChildren();
    this.element.dataset.layer = this.layer || "";
    this.element.dataset.id = this.id || "";
    if (!doc) {
      // An action can take the item out of the user's view (a department returning a case):
      // its outcome stays shown, so the user still learns that it was done.
      this.outcome = el("p", { class: "outcome", testid: "action-status", "aria-live": "assertive" });
      this.element.append(this.outcome, el("p", { class: "hint", testid: "detail-gone" },
        `This ${LAYER_TITLES[this.layer] || "item"} is no longer in your view.`));
      if (this.lastOutcome !== null) showOutcome(this.outcome, this.lastOutcome);
      return;
    }
    this.element.dataset.version = String(doc.version ?? "");
    const header = el("header", { class: "detail-header" },
      el("h2", { testid: "detail-title" }, this.view.title(doc)),
      el("button", { type: "button", class: "close", "aria-label": "Close", testid: "detail-close", onclick: () => this.close() }, "×"));
    this.banner = el("div", { class: "stale-banner", testid: "stale-banner", hidden: true });
    this.presence = el("div", { class: "presence", testid: "presence", hidden: true });
    this.facts = el("dl", { class: "facts", testid: "detail-facts" });
    this.actions = el("div", { class: "actions", testid: "detail-actions" });
    this.outcome = el("p", { class: "outcome", testid: "action-status", "aria-live": "assertive" });
    this.extra = el("div", { class: "extra" });
    this.history = el("ol", { class: "timeline", testid: "timeline" });
    this.element.append(header, this.banner, this.presence, this.facts, this.actions, this.outcome,
      this.extra, el("h3", {}, "Timeline"), this.history);
    this.renderFacts();
    this.renderPresence();
    this.renderActions();
    if (this.lastOutcome !== null) showOutcome(this.outcome, this.lastOutcome);
    this.renderExtra();
  }

  /** The view's own sections (resources, tasks...), which also follow related layers. */
  renderExtra() {
    const doc = this.doc;
    if (!doc || !this.extra || !this.view.extra) return;
    this.extra.replaceChildren();
    this.view.extra(doc, this.extra);
  }

  renderFacts() {
    const doc = this.doc;
    if (!doc || !this.facts) return;
    this.facts.replaceChildren();
    this.element.dataset.status = doc.status || "";
    for (const [label, value, testid] of this.view.facts(doc)) {
      if (value === null || value === undefined || value === "") continue;
      this.facts.append(el("dt", {}, label), el("dd", { testid: testid || null },
        value instanceof Node ? value : String(value)));
    }
  }

  renderBanner(change) {
    const doc = this.doc;
    const what = change && change.events ? ` (${change.events.join(", ")})` : "";
    this.banner.hidden = false;
    this.banner.textContent = `Changed since you opened it: version ${this.openedVersion} → ${doc.version}${what}. `
      + "Your action will be checked against what you saw.";
    this.banner.append(el("button", {
      type: "button", testid: "stale-reload",
      onclick: () => { this.openForm = null; this.openedVersion = this.doc?.version ?? null; this.render(); },
    }, "Show the new state"));
  }

  renderPresence() {
    if (!this.presence) return;
    const me = this.user ? this.user.username : null;
    const others = this.state.viewersOf(this.layer, this.id).filter((v) => v.user_id !== me);
    this.presence.hidden = others.length === 0;
    this.presence.replaceChildren();
    if (others.length) {
      this.presence.append("Also on this now: ",
        ...others.map((v, i) => el("span", { class: "viewer", testid: "viewer" },
          `${i ? ", " : ""}${v.user_id} (${v.role})`)));
    }
  }

  renderActions() {
    const doc = this.doc;
    this.actions.replaceChildren();
    const actions = this.view.actions(doc);
    for (const action of actions) {
      const button = el("button", {
        type: "button", class: action.style || "", testid: `action-${action.name}`,
        onclick: () => (action.fields && action.fields.length
          ? this.toggleForm(action) : this.run(action, {}, button)),
      }, action.label);
      this.actions.append(button);
    }
    if (this.openForm) {
      const action = actions.find((a) => a.name === this.openForm);
      if (action) this.actions.append(this.form(action));
    }
  }

  toggleForm(action) {
    this.openForm = this.openForm === action.name ? null : action.name;
    this.openedVersion = this.doc.version;
    this.renderActions();
  }

  form(action) {
    const form = el("form", { class: "action-form", testid: `form-${action.name}` });
    for (const field of action.fields) {
      let input;
      if (field.type === "select") {
        input = el("select", { name: field.name, testid: `field-${field.name}` },
          field.options.map(([value, label]) => el("option", { value, selected: value === field.value }, label)));
      } else if (field.type === "textarea") {
        input = el("textarea", { name: field.name, rows: 2, testid: `field-${field.name}`, required: field.required }, field.value || "");
      } else {
        input = el("input", { name: field.name, type: field.type || "text", value: field.value ?? "", testid: `field-${field.name}`, required: field.required });
      }
      form.append(el("label", {}, field.label, input));
    }
    const submit = el("button", { type: "submit", class: action.style || "primary", testid: `confirm-${action.name}` }, action.confirm || action.label);
    form.append(submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form).entries());
      this.run(action, values, submit);
    });
    return form;
  }

  async run(action, values, button) {
    const version = this.openForm === action.name ? this.openedVersion : this.doc.version;
    if (button) button.disabled = true;
    this.lastOutcome = null;  // a re-render meanwhile must not show the previous action's
    showOutcome(this.outcome, null);
    try {
      const result = await action.run(values, version);
      this.lastOutcome = action.done || `${action.label}: done`;
      this.openForm = null;
      if (result && result.id === this.id && this.layer) {
        this.openedVersion = result.version;
        this.state.put(this.layer, this.id, result, null);
      }
      this.render();
      showOutcome(this.outcome, this.lastOutcome);
    } catch (error) {
      this.lastOutcome = error;
      showOutcome(this.outcome, error);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  }

  async loadHistory() {
    if (!this.view || !this.view.historyPath) return;
    const layer = this.layer;
    const id = this.id;
    try {
      const events = await get(this.view.historyPath(id));
      if (layer !== this.layer || id !== this.id || !this.history) return;
      this.history.replaceChildren(...events.slice().reverse().map((event) => el("li", { testid: "timeline-entry", "data-event": event.event },
        el("time", {}, timeText(event.at)), " ",
        el("b", {}, event.event), " ",
        el("span", { class: "who" }, event.actor ? `${event.actor.user_id} (${event.actor.role})` : ""),
        this.view.eventNote ? el("div", { class: "note" }, this.view.eventNote(event)) : null)));
    } catch (error) {
      if (this.history) this.history.replaceChildren(el("li", { class: "error" }, `Timeline not available: ${error.message}`));
    }
  }
}

export { clockText };
