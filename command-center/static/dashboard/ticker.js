// The live ticker: one line per change pushed by /ws (what happened, to what, when), newest
// first, so a duty officer sees the city move without watching every panel.

import { el } from "./detail.js";
import { LAYER_TITLES, clockText, shortId } from "./words.js";

const KEEP = 120;

export class Ticker {
  constructor(list, { catalogue, onSelect }) {
    this.list = list;
    this.catalogue = catalogue;
    this.onSelect = onSelect;
  }

  describe(layer, doc) {
    if (!doc) return "";
    switch (layer) {
      case "grid-cases": return `${this.catalogue.categoryName(doc.category)} ${doc.grid_cell || ""}`;
      case "incidents": return `${doc.title} (level ${doc.level})`;
      case "hazard-sources": return doc.name;
      case "resources": return `${doc.call_sign} ${doc.name}`;
      case "hotline-tickets": return this.catalogue.topicName(doc.topic);
      case "warnings": return `${doc.headline || ""} (${doc.level || ""}, ${doc.status || ""})`;
      default: return "";
    }
  }

  add(change, doc) {
    const events = (change.events || []).join(", ") || "changed";
    const item = el("li", {
      testid: "ticker-item", class: `clickable layer-${change.layer}`, "data-layer": change.layer, "data-id": change.id,
      "data-events": (change.events || []).join(" "),
      onclick: () => this.onSelect(change.layer, change.id),
    },
    el("time", {}, clockText(change.at)), " ",
    el("span", { class: "what" }, `${LAYER_TITLES[change.layer] || change.layer} ${shortId(change.id)}`), " ",
    el("b", {}, events), " ",
    el("span", { class: "sub" }, this.describe(change.layer, doc)));
    this.list.prepend(item);
    while (this.list.children.length > KEEP) this.list.lastElementChild.remove();
  }
}
