// The search box of the top bar: places of the city by name (GET /search/places) and grid
// cases, hotline tickets and incidents by description, place and id (GET /search), so a
// dispatcher finds "the pipe on Reservoir Road" without coordinates. Choosing a place fits
// the map to it; a search that names a place moves the map there; choosing an item opens it
// like a click in its queue.

import { get } from "/static/common/api.js";
import { geometryOf } from "./store.js";

const TYPING_PAUSE_MS = 300;
const KINDS = [
  ["grid_cases", "grid-cases", "Cases", (doc) => `${doc.description || ""} · ${doc.grid_cell || ""} · ${doc.status}`],
  ["hotline_tickets", "hotline-tickets", "Tickets", (doc) => `${doc.description || ""} · ${doc.status}`],
  ["incidents", "incidents", "Incidents", (doc) => `${doc.title || ""} · ${doc.level || ""} · ${doc.status}`],
];

function el(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

export class SearchBox {
  constructor(form, { map, state, onSelect }) {
    this.form = form;
    this.input = form.querySelector("[data-testid=search-input]");
    this.results = form.querySelector("[data-testid=search-results]");
    this.map = map;
    this.state = state;
    this.onSelect = onSelect;
    this.timer = null;
    this.asked = 0;
    form.addEventListener("submit", (event) => { event.preventDefault(); this.run(); });
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(), TYPING_PAUSE_MS);
    });
    this.input.addEventListener("keydown", (event) => { if (event.key === "Escape") this.close(); });
    document.addEventListener("click", (event) => { if (!form.contains(event.target)) this.close(); });
  }

  close() {
    this.results.hidden = true;
  }

  async run() {
    const q = this.input.value.trim();
    const asked = ++this.asked;
    if (!q) { this.close(); return; }
    this.results.dataset.state = "busy";
    let places;
    let found;
    try {
      [places, found] = await Promise.all([get("/search/places", { q, limit: 5 }), get("/search", { q, limit: 8 })]);
    } catch (error) {
      if (asked !== this.asked) return;
      this.results.replaceChildren(el("p", { class: "outcome", "data-state": "error", "data-testid": "search-error" }, error.message));
      this.results.dataset.state = "error";
      this.results.hidden = false;
      return;
    }
    if (asked !== this.asked) return; // a later search has been asked meanwhile
    this.render(places.data, found);
    // The place the search names is where the dispatcher is looking: show it.
    if (found.places.length) this.map.showPlace(found.places[0]);
  }

  render(places, found) {
    const sections = [];
    if (places.length) {
      const list = el("ul");
      for (const place of places) {
        const item = el("li", { class: "clickable", "data-testid": "search-place", "data-kind": place.kind, "data-code": place.code || "" });
        item.append(el("b", {}, place.name), el("span", { class: "sub" }, ` ${place.detail || place.kind}${place.code ? ` · ${place.code}` : ""}`));
        item.addEventListener("click", () => { this.map.showPlace(place); this.close(); });
        list.append(item);
      }
      sections.push(el("h4", {}, "Places"), list);
    }
    for (const [key, layer, title, describe] of KINDS) {
      const hits = found[key];
      if (!hits || !hits.count) continue;
      const list = el("ul");
      for (const doc of hits.data) {
        const item = el("li", { class: "clickable", "data-testid": "search-hit", "data-layer": layer, "data-id": doc.id });
        item.append(el("span", {}, describe(doc)));
        item.addEventListener("click", () => { this.open(layer, doc); this.close(); });
        list.append(item);
      }
      const more = hits.count > hits.data.length ? ` (first ${hits.data.length} of ${hits.count})` : ` (${hits.count})`;
      sections.push(el("h4", {}, `${title}${more}`), list);
    }
    if (!sections.length) sections.push(el("p", { class: "hint", "data-testid": "search-nothing" }, "Nothing found."));
    this.results.replaceChildren(...sections);
    this.results.dataset.state = "ok";
    this.results.hidden = false;
  }

  open(layer, doc) {
    // A match may be closed, so not among the open items the dashboard holds: keep it too.
    if (!this.state.get(layer, doc.id)) this.state.put(layer, doc.id, doc, geometryOf(layer, doc));
    this.onSelect(layer, doc.id);
  }
}
