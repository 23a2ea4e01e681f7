// What the dashboard knows of the city right now: the documents of each live layer, keyed by
// id, filled from the REST lists at start and then kept by the /ws snapshot and changes.
// Panels and the map listen to it instead of fetching on their own, so every screen shows
// the same version of an item.

export const LIVE_LAYERS = ["incidents", "grid-cases", "hazard-sources", "resources", "hotline-tickets", "warnings"];

export class CityState extends EventTarget {
  constructor() {
    super();
    this.layers = Object.fromEntries(LIVE_LAYERS.map((layer) => [layer, new Map()]));
    this.presence = new Map(); // "layer/id" -> viewers
  }

  /** Replace a layer's content (REST load or a ws snapshot). */
  reset(layer, items) {
    const map = new Map();
    for (const item of items) map.set(item.doc.id, item);
    this.layers[layer] = map;
    this.dispatchEvent(new CustomEvent("reset", { detail: { layer } }));
  }

  /** One item changed (doc null: it is gone from this user's view). */
  put(layer, id, doc, geometry, change = null) {
    const items = this.layers[layer];
    if (!items) return;
    const before = items.get(id) || null;
    if (doc === null) {
      items.delete(id);
    } else {
      // An answer to our own command may come after a newer live change: keep the newer.
      if (before && (before.doc.version ?? 0) > (doc.version ?? 0)) return;
      items.set(id, { doc, geometry: geometry || geometryOf(layer, doc) });
    }
    this.dispatchEvent(new CustomEvent("change", { detail: { layer, id, before, change } }));
  }

  get(layer, id) {
    const item = this.layers[layer] && this.layers[layer].get(id);
    return item ? item.doc : null;
  }

  all(layer) {
    return [...this.layers[layer].values()].map((item) => item.doc);
  }

  setPresence(layer, id, viewers) {
    this.presence.set(`${layer}/${id}`, viewers);
    this.dispatchEvent(new CustomEvent("presence", { detail: { layer, id, viewers } }));
  }

  viewersOf(layer, id) {
    return this.presence.get(`${layer}/${id}`) || [];
  }
}

/** Where an item is on the map: the feature's geometry, else the document's own point. */
export function geometryOf(layer, doc) {
  if (layer === "resources") {
    const position = doc.position;
    if (position && position.point) return position.point;
    if (position && position.type === "Point") return position;
    if (doc.latest_position && doc.latest_position.point) return doc.latest_position.point;
    return doc.home_base || null;
  }
  if (layer === "warnings") return null; // drawn by its area (map.js), not a point
  return doc.location || null;
}

/** A GeoJSON Feature from the live push as a store item. */
export function itemOfFeature(feature) {
  const doc = { ...feature.properties };
  if (doc.id === undefined) doc.id = feature.id;
  return { doc, geometry: feature.geometry };
}
