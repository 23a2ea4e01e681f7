// The one map: the city's own districts, communities and unit grid as the base map (a tile
// server only if one is configured), and the live layers drawn from the CityState: incidents
// by level, grid cases by supervision light, hazard sources with their impact zones and
// alarms, resources by status where they are now, hotline tickets.

import { get } from "/static/common/api.js";
import { WARNING_COLOURS, shownContent, warningStatus } from "./warnings.js";
import {
  LEVEL_COLOURS, LIGHT_COLOURS, OPEN_CASE_STATUSES, OPEN_INCIDENT_STATUSES,
  OPEN_TICKET_STATUSES, RESOURCE_COLOURS, caseLight, shortId,
} from "./words.js";

const L = window.L;
const GRID_MIN_ZOOM = 15;

export class CityMap {
  constructor(element, state, { tileUrl, onSelect, catalogue }) {
    this.state = state;
    this.onSelect = onSelect;
    this.catalogue = catalogue;
    this.map = L.map(element, { preferCanvas: true, zoomControl: true, attributionControl: true });
    this.map.attributionControl.setPrefix(false);
    this.renderer = L.canvas({ padding: 0.3 });
    this.markers = {};
    this.zones = L.layerGroup();
    this.overlays = {
      incidents: L.layerGroup(),
      "grid-cases": L.layerGroup(),
      "hazard-sources": L.layerGroup(),
      resources: L.layerGroup(),
      "hotline-tickets": L.layerGroup(),
      warnings: L.layerGroup(),
    };
    // Warning areas are few and large: drawn as SVG, so each is an element of the page.
    this.svg = L.svg({ padding: 0.3 });
    for (const layer of Object.keys(this.overlays)) this.markers[layer] = new Map();
    this.base = {
      districts: L.geoJSON(null, { style: { color: "#7fa7d9", weight: 2.5, fill: true, fillColor: "#1b2838", fillOpacity: 0.6 }, renderer: this.renderer, interactive: false }),
      communities: L.geoJSON(null, { style: { color: "#3f5670", weight: 1, fill: false }, renderer: this.renderer, interactive: false }),
      grid: L.geoJSON(null, { style: { color: "#2f4256", weight: 0.5, fill: false }, renderer: this.renderer, interactive: false }),
    };
    this.labels = L.layerGroup();
    this.gridLoadedFor = null;
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: 19, attribution: "Base map: configured tile server" }).addTo(this.map);
      this.base.districts.setStyle({ fillOpacity: 0.05 });
    }
    this.base.districts.addTo(this.map);
    this.base.communities.addTo(this.map);
    this.base.grid.addTo(this.map);
    this.labels.addTo(this.map);
    this.zones.addTo(this.map);
    for (const [layer, group] of Object.entries(this.overlays)) {
      if (layer !== "hotline-tickets") group.addTo(this.map);
    }
    L.control.layers(null, {
      "Incidents (by level)": this.overlays.incidents,
      "Grid cases (by light)": this.overlays["grid-cases"],
      "Hazard sources": this.overlays["hazard-sources"],
      "Hazard impact zones": this.zones,
      "Resources (by status)": this.overlays.resources,
      "Hotline tickets": this.overlays["hotline-tickets"],
      "Warning areas": this.overlays.warnings,
      Communities: this.base.communities,
      "Unit grid (zoom in)": this.base.grid,
    }, { collapsed: true }).addTo(this.map);
    this.addLegend();
    this.map.attributionControl.addAttribution("City layers: CityOps");
    this.map.on("moveend", () => this.loadGrid());
    state.addEventListener("reset", (e) => this.redrawLayer(e.detail.layer));
    state.addEventListener("change", (e) => this.redrawItem(e.detail.layer, e.detail.id));
  }

  /** Draw the administrative areas and fit the map to the city. */
  async loadBaseMap() {
    const [districts, communities] = await Promise.all([
      get("/spatial/districts/features", { limit: 1000 }),
      get("/spatial/communities/features", { limit: 10000 }),
    ]);
    this.base.districts.addData(districts);
    this.base.communities.addData(communities);
    for (const feature of districts.features) {
      const centre = L.geoJSON(feature).getBounds().getCenter();
      const label = document.createElement("span");
      label.textContent = feature.properties.name || feature.id;
      L.marker(centre, {
        interactive: false, keyboard: false,
        icon: L.divIcon({ className: "district-label", html: label, iconSize: null }),
      }).addTo(this.labels);
    }
    const bounds = this.base.districts.getBounds();
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [10, 10] });
    else this.map.setView([32.05, 118.79], 13);
  }

  /** The unit grid is thousands of cells: only drawn, for the visible area, when zoomed in. */
  async loadGrid() {
    if (this.map.getZoom() < GRID_MIN_ZOOM || !this.map.hasLayer(this.base.grid)) {
      this.base.grid.clearLayers();
      this.gridLoadedFor = null;
      return;
    }
    const b = this.map.getBounds().pad(0.2);
    const key = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(4)).join(",");
    if (this.gridLoadedFor && this.gridLoadedFor.contains(this.map.getBounds())) return;
    this.gridLoadedFor = b;
    try {
      const cells = await get("/spatial/grid-cells/features", { bbox: key, limit: 5000 });
      this.base.grid.clearLayers();
      this.base.grid.addData(cells);
    } catch {
      this.gridLoadedFor = null;
    }
  }

  addLegend() {
    const legend = L.control({ position: "bottomleft" });
    legend.onAdd = () => {
      const div = L.DomUtil.create("div", "legend");
      div.dataset.testid = "map-legend";
      const row = (colour, text, shape = "dot") => {
        const line = document.createElement("div");
        const swatch = document.createElement("i");
        swatch.className = shape;
        swatch.style.background = colour;
        line.append(swatch, document.createTextNode(text));
        div.append(line);
      };
      const title = (text) => { const h = document.createElement("b"); h.textContent = text; div.append(h); };
      title("Cases");
      row(LIGHT_COLOURS.green, "on time"); row(LIGHT_COLOURS.yellow, "due soon"); row(LIGHT_COLOURS.red, "overdue");
      title("Incidents");
      for (const [level, colour] of Object.entries(LEVEL_COLOURS)) row(colour, `level ${level}`, "diamond");
      title("Resources");
      row(RESOURCE_COLOURS.available, "available", "square"); row(RESOURCE_COLOURS["en-route"], "dispatched / en route", "square");
      row(RESOURCE_COLOURS["on-scene"], "on scene", "square");
      title("Hazard sources");
      row("#b05cff", "source (zone dashed)", "square"); row("#e0443e", "open alarm", "square");
      title("Warnings");
      row(WARNING_COLOURS.orange, "area in force (draft dashed)", "square");
      return div;
    };
    legend.addTo(this.map);
  }

  redrawLayer(layer) {
    if (!this.overlays[layer]) return;
    this.overlays[layer].clearLayers();
    this.markers[layer].clear();
    if (layer === "hazard-sources") this.zones.clearLayers();
    for (const id of this.state.layers[layer].keys()) this.redrawItem(layer, id);
  }

  /** Re-light every case: lights change as time passes, not only when events arrive. */
  refreshLights() {
    for (const id of this.state.layers["grid-cases"].keys()) this.redrawItem("grid-cases", id);
  }

  redrawItem(layer, id) {
    if (!this.overlays[layer]) return;
    if (layer === "warnings") { this.redrawWarning(id); return; }
    const old = this.markers[layer].get(id);
    if (old) {
      this.overlays[layer].removeLayer(old.marker);
      if (old.zone) this.zones.removeLayer(old.zone);
      this.markers[layer].delete(id);
    }
    const item = this.state.layers[layer].get(id);
    if (!item || !item.geometry || item.geometry.type !== "Point") return;
    const style = this.styleOf(layer, item.doc);
    if (!style) return;
    const [lon, lat] = item.geometry.coordinates;
    const marker = L.circleMarker([lat, lon], { renderer: this.renderer, ...style });
    // Tooltips get a text node: free text typed by users is never parsed as HTML.
    const label = document.createElement("span");
    label.textContent = this.labelOf(layer, item.doc);
    marker.bindTooltip(label);
    marker.on("click", () => this.onSelect(layer, id));
    marker.addTo(this.overlays[layer]);
    let zone = null;
    if (layer === "hazard-sources") zone = this.zoneOf(item.doc, lat, lon);
    if (this.selection && this.selected === `${layer}/${id}`) this.selection.setLatLng([lat, lon]);
    this.markers[layer].set(id, { marker, zone });
  }

  /** A warning's area: its polygons and circles, by level; a draft dashed; nothing once
   *  cancelled, discarded or expired. */
  redrawWarning(id) {
    const old = this.markers.warnings.get(id);
    if (old) { this.overlays.warnings.removeLayer(old.marker); this.markers.warnings.delete(id); }
    const item = this.state.layers.warnings.get(id);
    if (!item) return;
    const doc = item.doc;
    const status = warningStatus(doc);
    const content = shownContent(doc);
    if (!content || !content.area || ["cancelled", "discarded", "expired"].includes(status)) return;
    const draft = !doc.content;
    const colour = WARNING_COLOURS[content.level] || "#ef8a25";
    const style = {
      color: colour, weight: 2, fillColor: colour, fillOpacity: draft ? 0.08 : 0.2,
      dashArray: draft ? "6 5" : null, renderer: this.svg,
      className: `warning-area warning-${status}`,
    };
    const group = L.featureGroup();
    for (const polygon of content.area.polygons || []) L.geoJSON(polygon, { style: () => style }).addTo(group);
    for (const circle of content.area.circles || []) {
      const [lon, lat] = circle.centre;
      L.circle([lat, lon], { radius: circle.radius_km * 1000, ...style }).addTo(group);
    }
    const english = (content.texts || []).find((t) => t.language === "en-US") || {};
    const label = document.createElement("span");
    label.textContent = `Warning ${content.level} · ${english.headline || ""} · ${status}`;
    group.bindTooltip(label);
    group.on("click", () => this.onSelect("warnings", id));
    group.addTo(this.overlays.warnings);
    group.eachLayer((part) => {
      const mark = (path) => {
        const element = path.getElement && path.getElement();
        if (element) { element.dataset.warningId = id; element.dataset.status = status; }
      };
      if (part.eachLayer) part.eachLayer(mark); else mark(part);
    });
    this.markers.warnings.set(id, { marker: group, zone: null });
  }

  zoneOf(doc, lat, lon) {
    const alarm = (doc.open_alarms || []).length > 0;
    const style = { color: alarm ? "#e0443e" : "#b05cff", weight: alarm ? 2 : 1, dashArray: "4 4", fillOpacity: alarm ? 0.15 : 0.05, interactive: false, renderer: this.renderer };
    let zone = null;
    if (doc.impact_zone) zone = L.geoJSON(doc.impact_zone, { style, interactive: false });
    else if (doc.impact_radius_m) zone = L.circle([lat, lon], { radius: doc.impact_radius_m, ...style });
    if (zone) zone.addTo(this.zones);
    return zone;
  }

  styleOf(layer, doc) {
    switch (layer) {
      case "grid-cases": {
        if (!OPEN_CASE_STATUSES.has(doc.status)) return null;
        const light = caseLight(doc);
        return { radius: 6, color: "#0d1218", weight: 1, fillColor: LIGHT_COLOURS[light] || "#7b8794", fillOpacity: 0.95 };
      }
      case "incidents":
        if (!OPEN_INCIDENT_STATUSES.has(doc.status)) return null;
        return { radius: 11 - (doc.level_rank || 4), color: "#ffffff", weight: 2, fillColor: LEVEL_COLOURS[doc.level] || "#7b8794", fillOpacity: 0.95 };
      case "hazard-sources": {
        if (doc.status === "decommissioned") return null;
        const alarm = (doc.open_alarms || []).length > 0;
        return { radius: alarm ? 9 : 6, color: alarm ? "#ffdddd" : "#0d1218", weight: alarm ? 3 : 1, fillColor: alarm ? "#e0443e" : "#b05cff", fillOpacity: 0.9 };
      }
      case "resources":
        return { radius: 5, color: "#0d1218", weight: 1, fillColor: RESOURCE_COLOURS[doc.status] || "#7b8794", fillOpacity: 0.9 };
      case "hotline-tickets":
        if (!OPEN_TICKET_STATUSES.has(doc.status)) return null;
        return { radius: 4, color: "#0d1218", weight: 1, fillColor: "#4aa3ff", fillOpacity: 0.8 };
      default:
        return null;
    }
  }

  labelOf(layer, doc) {
    const text = (value) => String(value ?? "");
    switch (layer) {
      case "grid-cases":
        return `Case ${shortId(doc.id)} · ${text(this.catalogue.categoryName(doc.category))} · ${text(doc.status)}`;
      case "incidents":
        return `Incident level ${text(doc.level)} · ${text(doc.title)} · ${text(doc.status)}`;
      case "hazard-sources":
        return `${text(doc.name)} · grade ${text(doc.grade)}${(doc.open_alarms || []).length ? " · ALARM" : ""}`;
      case "resources":
        return `${text(doc.call_sign)} ${text(doc.name)} · ${text(doc.status)}`;
      case "hotline-tickets":
        return `Ticket ${shortId(doc.id)} · ${text(doc.topic)} · ${text(doc.status)}`;
      default:
        return "";
    }
  }

  /** Fit the map to a place of the gazetteer (GET /search/places) and outline it. */
  showPlace(place) {
    if (this.placeOutline) this.placeOutline.remove();
    const [minLon, minLat, maxLon, maxLat] = place.bbox;
    const bounds = L.latLngBounds([minLat, minLon], [maxLat, maxLon]);
    this.map.fitBounds(bounds.pad(0.1), { maxZoom: 17 });
    const [lon, lat] = place.point.coordinates;
    this.placeOutline = minLon === maxLon && minLat === maxLat
      ? L.circleMarker([lat, lon], { radius: 18, color: "#ffd54f", weight: 2, fill: false, interactive: false })
      : L.rectangle(bounds, { color: "#ffd54f", weight: 2, dashArray: "6 4", fill: false, interactive: false });
    this.placeOutline.addTo(this.map);
    this.map.getContainer().dataset.place = place.code || place.name;
  }

  /** Bring the selected item into view and ring it, so the eye finds it on a busy map. */
  focus(layer, id) {
    if (this.selection) this.selection.remove();
    this.selection = null;
    this.selected = layer ? `${layer}/${id}` : null;
    const item = layer && this.state.layers[layer] && this.state.layers[layer].get(id);
    if (item && item.geometry && item.geometry.type === "Point") {
      const [lon, lat] = item.geometry.coordinates;
      this.selection = L.circleMarker([lat, lon], {
        radius: 15, color: "#ffffff", weight: 2, dashArray: "3 3", fill: false, interactive: false,
      }).addTo(this.map);
      if (!this.map.getBounds().pad(-0.1).contains([lat, lon])) this.map.panTo([lat, lon]);
    }
  }
}
