// The dispatcher's dashboard: wires the map, the queues and boards, the detail pane, the
// ticker and the key figures to one CityState, filled from the REST API and kept live by
// /ws. Every action goes through the REST commands (see detail.js).

import { endSession, get, requireSession } from "/static/common/api.js";
import { syncServerClock } from "/static/common/clock.js";
import { LiveConnection } from "/static/common/live.js";
import { CaseQueue } from "./cases.js";
import { Catalogue } from "./catalogue.js";
import { DetailPane } from "./detail.js";
import { KeyFigures } from "./figures.js";
import { SearchBox } from "./search.js";
import { HotlineQueue } from "./hotline.js";
import { IncidentBoard, ResourcePanel } from "./incidents.js";
import { CityMap } from "./map.js";
import { CityState, LIVE_LAYERS, geometryOf, itemOfFeature } from "./store.js";
import { Ticker } from "./ticker.js";
import { TimeSlider } from "./timetravel.js";
import { WarningDesk } from "./warnings.js";
import { clockText, readOnly } from "./words.js";

const REST_LISTS = {
  "grid-cases": ["/grid-cases", { open_only: true }],
  incidents: ["/incidents", { open_only: true }],
  "hazard-sources": ["/hazard-sources", {}],
  resources: ["/resources", {}],
  "hotline-tickets": ["/hotline-tickets", { open_only: true }],
  warnings: ["/warnings", {}],
};
const PAGE = 500;
const LIGHT_TICK_MS = 30000;

function toLogin() {
  endSession();
  const next = encodeURIComponent(location.pathname);
  location.replace(`/login?next=${next}`);
}

/** Every page of one REST list (the read models page at 500). */
async function loadAll(path, query) {
  const docs = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await get(path, { ...query, limit: PAGE, offset });
    docs.push(...page.data);
    if (docs.length >= page.count || page.data.length === 0 || offset > 20 * PAGE) return docs;
  }
}

async function main() {
  const session = requireSession();
  if (!session) return;
  const user = session.user;
  document.addEventListener("cityops:unauthenticated", toLogin);
  document.body.dataset.role = user.role;
  document.body.classList.toggle("read-only", readOnly(user));
  const badge = document.querySelector("[data-testid=user-badge]");
  badge.textContent = `${user.display_name || user.username} · ${user.role}${user.department ? ` · ${user.department}` : ""}`;
  badge.dataset.username = user.username;

  // Lights and deadlines count from the server's clock: read it before anything is drawn.
  await syncServerClock().catch((error) => console.warn("server clock", error));
  const catalogue = await Catalogue.load();
  const state = new CityState();
  const detailElement = document.querySelector("[data-testid=detail]");
  const tileUrl = document.querySelector("meta[name=cityops-tile-url]").content || null;

  let live = null;
  const views = {};
  const detail = new DetailPane(detailElement, state, { live: null, user, onClose: () => { resources.showFor(null); map.focus(null, null); } });
  let warnings = null;
  const select = (layer, id) => {
    if (layer === "warnings") {
      document.querySelector("[data-tab=warnings]").click();
      const card = document.querySelector(`[data-testid=warning-card][data-id="${CSS.escape(id)}"]`);
      if (card) card.scrollIntoView({ block: "nearest" });
      return;
    }
    const view = views[layer];
    if (!view) return;
    // The warning desk drafts from the incident last selected.
    if (layer === "incidents" && warnings) warnings.draftFrom(id);
    detail.open(layer, id, view);
    map.focus(layer, id);
    if (layer === "incidents") resources.showFor(id);
    for (const row of document.querySelectorAll(".selected")) row.classList.remove("selected");
    for (const row of document.querySelectorAll(`[data-id="${CSS.escape(id)}"]`)) row.classList.add("selected");
  };
  const map = new CityMap(document.getElementById("map"), state, { tileUrl, onSelect: select, catalogue });
  const cases = new CaseQueue(document.querySelector("[data-testid=case-queue]"), state, { user, catalogue, onSelect: select });
  const incidents = new IncidentBoard(document.querySelector("[data-testid=incident-board]"), state, { user, catalogue, onSelect: select });
  const hotline = new HotlineQueue(document.querySelector("[data-testid=hotline-queue]"), state, { user, catalogue, onSelect: select });
  const resources = new ResourcePanel(document.querySelector("[data-testid=resource-panel]"), state, { user, catalogue });
  const ticker = new Ticker(document.querySelector("[data-testid=ticker-list]"), { catalogue, onSelect: select });
  warnings = new WarningDesk(document.querySelector("[data-testid=warning-desk]"), state, { user, onSelect: select });
  const figures = new KeyFigures(document.querySelector("[data-testid=key-figures]"), document.querySelector("[data-testid=figures-panel]"), state);
  new SearchBox(document.querySelector("[data-testid=search]"), { map, state, onSelect: select });
  views["grid-cases"] = cases.view();
  views.incidents = incidents.view();
  views["hotline-tickets"] = hotline.view();

  // Each role starts where its work is: the hotline operator at the hotline queue.
  setupTabs(user.role === "hotline-operator" ? "hotline" : "cases");
  const counts = () => {
    document.querySelector("[data-count=cases]").textContent = String(cases.openCount());
    document.querySelector("[data-count=incidents]").textContent = String(incidents.open().length);
    document.querySelector("[data-count=hotline]").textContent = String(hotline.open().length);
  };
  state.addEventListener("change", counts);
  state.addEventListener("reset", counts);

  // The map's base layers and the first content come from REST; the live snapshot then
  // replaces each layer it carries, and changes keep it current.
  map.loadBaseMap().catch((error) => console.warn("base map", error));
  // `everything`: replace every layer (the time slider's past, or back to now).
  const loadLayers = (everything = false) => Promise.all(LIVE_LAYERS.map(async (layer) => {
    const [path, query] = REST_LISTS[layer];
    const extra = user.role === "department-user" && layer === "grid-cases" ? { department: user.department, open_only: true } : {};
    try {
      const docs = await loadAll(path, { ...query, ...extra });
      if (everything || !state.liveLayers || !state.liveLayers.has(layer)) {
        state.reset(layer, docs.map((doc) => ({ doc, geometry: geometryOf(layer, doc) })));
      }
    } catch (error) {
      console.warn(`could not load ${layer}`, error);
    }
  }));
  await loadLayers();
  figures.start();

  const status = document.querySelector("[data-testid=live-status]");
  live = new LiveConnection({
    layers: [...LIVE_LAYERS, "presence"], bbox: null, categories: null, levels: null,
    department: user.role === "department-user" ? user.department : null,
  }, {
    snapshot: (message) => {
      state.liveLayers = new Set(Object.keys(message.layers || {}));
      for (const [layer, features] of Object.entries(message.layers || {})) {
        if (state.layers[layer]) state.reset(layer, features.map(itemOfFeature));
      }
    },
    change: (message) => {
      const item = message.feature ? itemOfFeature(message.feature) : null;
      const known = state.get(message.layer, message.id);
      state.put(message.layer, message.id, item ? item.doc : null, item ? item.geometry : null, message);
      ticker.add(message, item ? item.doc : known);
    },
    presence: (message) => state.setPresence(message.layer, message.id, message.viewers || []),
    status: (value, why) => {
      status.dataset.state = value;
      status.textContent = { connecting: "connecting…", live: "live", resyncing: "resyncing…", offline: "offline – reconnecting", closed: "disconnected" }[value] || value;
      status.title = why || "";
    },
  }).start();
  detail.live = live;

  // The time slider: the city at a past moment, live paused while it is shown.
  const slider = new TimeSlider(document.querySelector("[data-testid=time-travel]"),
    document.querySelector("[data-testid=past-banner]"), {
      live,
      reload: async () => {
        state.liveLayers = null;
        await loadLayers(true);
        await figures.refresh();
        map.refreshLights(); cases.render();
        clock.textContent = clockText();
      },
      onChange: (past) => {
        document.body.classList.toggle("read-only", past !== null || readOnly(user));
        status.dataset.state = past ? "past" : "connecting";
        status.textContent = past ? "paused: the past" : "connecting…";
      },
    });
  slider.start().catch((error) => console.warn("time slider", error));

  document.querySelector("[data-testid=logout]").addEventListener("click", () => {
    live.close();
    endSession();
    location.replace("/login?logout=1");
  });
  const clock = document.querySelector("[data-testid=clock]");
  setInterval(() => { clock.textContent = clockText(); }, 1000);
  clock.textContent = clockText();
  // Lights change as time passes: re-light the map and the queue.
  // Warnings expire as time passes too.
  setInterval(() => { map.refreshLights(); cases.render(); map.redrawLayer("warnings"); warnings.render(); }, LIGHT_TICK_MS);
  document.body.dataset.ready = "true";
}

function setupTabs(first) {
  const tabs = document.querySelectorAll("[data-tab]");
  const show = (name) => {
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
    window.dispatchEvent(new Event("resize"));
  };
  for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.tab));
  show(first);
}

main().catch((error) => {
  const detail = document.querySelector("[data-testid=detail]");
  detail.textContent = `The dashboard could not start: ${error.message}`;
  console.error(error);
});
