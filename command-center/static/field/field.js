// The inspector's mobile page: report a case (location from GPS or a tap on the map,
// category from the catalogue, description, photos), see the cells they patrol and the
// handled cases there waiting for their verification, and verify them. Works without
// signal: what is sent goes through the outbox (IndexedDB), which keeps it with its
// Idempotency-Key until the phone is back online.

import {
  currentUser, endSession, get, newCommandId, requireSession, showOutcome,
} from "/static/common/api.js";
import { serverNow, syncServerClock } from "/static/common/clock.js";
import { LiveConnection } from "/static/common/live.js";
import {
  discard, enqueue, flush, pendingItems, recentlySent, retry,
} from "./outbox.js";
import { PhotoPicker } from "./photos.js";

const L = window.L;
const LIGHT_COLOURS = { green: "#2fb35a", yellow: "#e8c21c", red: "#e0443e" };
const FLUSH_EVERY_MS = 30000;
const TASKS_EVERY_MS = 60000;

const $ = (selector, root = document) => root.querySelector(selector);
const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

const page = {
  user: null,
  categories: new Map(),
  map: null,
  cellsLayer: null,
  cellsBounds: null,
  taskMarkers: null,
  locationMarker: null,
  location: null,
  tasks: [],
  activeTab: "report",
  reportPhotos: null,
  live: null,
};

// --- start ------------------------------------------------------------------------------

async function start() {
  const session = requireSession(`/login`);
  if (!session) return;
  page.user = currentUser();
  const badge = byTestId("user-badge");
  badge.textContent = page.user.display_name || page.user.username;
  badge.title = `${page.user.username} (${page.user.role})`;
  document.addEventListener("cityops:unauthenticated", () => requireSession());
  byTestId("logout").addEventListener("click", () => {
    if (page.live) page.live.close();
    endSession();
    location.replace("/login?logout=1&next=/field");
  });
  setUpTabs();
  setUpSignal();
  setUpMap();
  setUpReportForm();
  byTestId("outbox-send").addEventListener("click", () => sendWaiting());
  // Deadlines count from the server's clock (offline: from the last reading, or none).
  await Promise.all([loadCatalogue(), loadBaseMap(), loadCells(),
    syncServerClock().catch((error) => console.warn("server clock", error))]);
  // One fit once both are in (a second fit during the first one's animation is dropped):
  // my cells if I have any, else the city.
  const districts = page.base.districts.getLayers().length ? page.base.districts.getBounds() : null;
  const fit = page.cellsBounds || districts;
  if (fit) page.map.fitBounds(fit, { padding: [8, 8], animate: false });
  await Promise.all([refreshTasks(), renderOutbox()]);
  sendWaiting();
  setInterval(() => sendWaiting(), FLUSH_EVERY_MS);
  setInterval(() => refreshTasks(), TASKS_EVERY_MS);
}

function setUpTabs() {
  for (const button of document.querySelectorAll(".field-tabs [data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
}

function showTab(name) {
  page.activeTab = name;
  for (const button of document.querySelectorAll(".field-tabs [data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll(".tab-panel")) {
    panel.hidden = panel.dataset.panel !== name;
  }
  if (name === "outbox") renderOutbox();
  if (name === "tasks") refreshTasks();
}

function setUpSignal() {
  const show = () => {
    const signal = byTestId("signal");
    signal.dataset.state = navigator.onLine ? "online" : "offline";
    signal.textContent = navigator.onLine ? "online" : "no signal";
  };
  show();
  window.addEventListener("offline", show);
  window.addEventListener("online", () => {
    show();
    sendWaiting();
    refreshTasks();
  });
}

// --- map --------------------------------------------------------------------------------

function setUpMap() {
  page.map = L.map("field-map", { zoomControl: true, attributionControl: true, tap: true });
  page.map.attributionControl.setPrefix(false);
  page.map.attributionControl.addAttribution("City layers: CityOps");
  const tileUrl = $("meta[name=cityops-tile-url]").content || null;
  if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(page.map);
  page.base = {
    districts: L.geoJSON(null, { style: { color: "#7fa7d9", weight: 2, fillColor: "#1b2838", fillOpacity: tileUrl ? 0.05 : 0.6 }, interactive: false }).addTo(page.map),
    communities: L.geoJSON(null, { style: { color: "#3f5670", weight: 1, fill: false }, interactive: false }).addTo(page.map),
  };
  page.cellsLayer = L.geoJSON(null, {
    style: { color: "#4aa3ff", weight: 1, fillColor: "#4aa3ff", fillOpacity: 0.08 },
    interactive: false,
  }).addTo(page.map);
  page.taskMarkers = L.layerGroup().addTo(page.map);
  page.map.setView([32.05, 118.8], 13);
  page.map.on("click", (event) => {
    if (page.activeTab !== "report") return;
    setLocation({ lon: event.latlng.lng, lat: event.latlng.lat, source: "map" });
  });
}

async function loadBaseMap() {
  try {
    const [districts, communities] = await Promise.all([
      get("/spatial/districts/features", { limit: 1000 }),
      get("/spatial/communities/features", { limit: 10000 }),
    ]);
    page.base.districts.addData(districts);
    page.base.communities.addData(communities);
  } catch (error) {
    byTestId("map-hint").textContent = `Base map not loaded: ${error.message}`;
  }
}

async function loadCells() {
  const hint = byTestId("map-hint");
  try {
    const cells = await get("/field/me/cells");
    page.cellsLayer.addData(cells);
    const communities = cells.inspector.communities.join(", ");
    hint.dataset.state = "cells";
    hint.textContent = `${cells.numberMatched} cells assigned to you (${communities}). Tap the map to place a report.`;
    if (cells.features.length) {
      page.cellsBounds = page.cellsLayer.getBounds();
      startLive(cells.bbox);
    }
  } catch (error) {
    hint.dataset.state = "no-cells";
    hint.textContent = error.status === 403
      ? "No cells are assigned to you (only grid inspectors patrol cells). Tap the map to place a report."
      : `Your cells could not be loaded: ${error.message}`;
  }
}

function startLive(bbox) {
  // Cases in my cells change when a department reports them handled: refresh the tasks.
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => refreshTasks(), 300);
  };
  try {
    page.live = new LiveConnection(
      { layers: ["grid-cases"], bbox, categories: null, levels: null, department: null },
      { snapshot: soon, change: soon },
    ).start();
  } catch {
    page.live = null; // the tasks are still refreshed every minute
  }
}

// --- location ---------------------------------------------------------------------------

function setLocation({ lon, lat, accuracy = null, source }) {
  page.location = { lon, lat, accuracy, source };
  const latlng = [lat, lon];
  if (!page.locationMarker) {
    page.locationMarker = L.marker(latlng, { draggable: true, title: "Report location" })
      .addTo(page.map);
    page.locationMarker.on("dragend", () => {
      const moved = page.locationMarker.getLatLng();
      setLocation({ lon: moved.lng, lat: moved.lat, source: "map" });
    });
  } else {
    page.locationMarker.setLatLng(latlng);
  }
  const where = byTestId("report-location");
  where.dataset.state = source;
  const how = source === "gps"
    ? `from GPS${accuracy ? ` (± ${Math.round(accuracy)} m)` : ""}` : "picked on the map";
  where.textContent = `${lat.toFixed(6)}, ${lon.toFixed(6)} — ${how}`;
}

function useGps() {
  const where = byTestId("report-location");
  if (!("geolocation" in navigator)) {
    where.dataset.state = "error";
    where.textContent = "This phone gives no position: tap the map instead";
    return;
  }
  where.dataset.state = "locating";
  where.textContent = "Finding your position…";
  navigator.geolocation.getCurrentPosition((position) => {
    const { longitude, latitude, accuracy } = position.coords;
    setLocation({ lon: longitude, lat: latitude, accuracy, source: "gps" });
    page.map.setView([latitude, longitude], Math.max(page.map.getZoom(), 17), { animate: false });
  }, (error) => {
    where.dataset.state = "error";
    where.textContent = `No GPS position (${error.message || "refused"}): tap the map instead`;
  }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
}

// --- catalogue and the report form ------------------------------------------------------

async function loadCatalogue() {
  const select = byTestId("report-category");
  try {
    const catalogue = await get("/catalogue");
    const groups = new Map();
    for (const category of catalogue.case_categories) {
      page.categories.set(category.code, category);
      const label = category.class === "component" ? "Components (city assets)" : "Events";
      if (!groups.has(label)) {
        const group = document.createElement("optgroup");
        group.label = label;
        groups.set(label, group);
      }
      const option = document.createElement("option");
      option.value = category.code;
      option.textContent = `${category.name} (${category.code})`;
      groups.get(label).append(option);
    }
    select.append(...groups.values());
  } catch (error) {
    showOutcome(byTestId("report-outcome"), error);
  }
}

function setUpReportForm() {
  const form = byTestId("report-form");
  const submit = byTestId("report-submit");
  page.reportPhotos = new PhotoPicker(byTestId("report-photo-input"), byTestId("report-photos"), {
    onChange: () => { submit.disabled = !page.reportPhotos.settled; },
  });
  byTestId("use-gps").addEventListener("click", useGps);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const outcome = byTestId("report-outcome");
    const data = new FormData(form);
    const problem = !page.location ? "Choose where: use your position or tap the map"
      : !data.get("category") ? "Choose a category"
        : !String(data.get("description")).trim() ? "Say what is wrong" : null;
    if (problem) {
      outcome.dataset.state = "error";
      outcome.textContent = problem;
      return;
    }
    if (!page.reportPhotos.settled) {
      outcome.dataset.state = "busy";
      outcome.textContent = "Wait until the photos are uploaded";
      return;
    }
    const category = String(data.get("category"));
    const key = newCommandId();
    submit.disabled = true;
    showOutcome(outcome, null);
    try {
      await enqueue({
        key, kind: "report", path: "/grid-cases",
        body: {
          source: "inspector", category, urgency: String(data.get("urgency") || "normal"),
          description: String(data.get("description")).trim(),
          location: { type: "Point", coordinates: [page.location.lon, page.location.lat] },
        },
        photos: page.reportPhotos.forOutbox(),
        label: `${page.categories.get(category)?.name || category}: ${String(data.get("description")).trim().slice(0, 60)}`,
      });
      const result = await sendNow(key);
      if (result.state === "failed") {
        // Refused as it is (the message says why): the form keeps what was typed.
        await discard(key);
        outcome.dataset.state = "error";
        outcome.textContent = result.error;
        outcome.setAttribute("role", "alert");
        return;
      }
      if (result.state === "sent") {
        outcome.dataset.state = "ok";
        outcome.textContent = `Reported: case ${result.caseId.slice(0, 8)} in cell ${result.cell}`
          + (result.result && result.result.outside_assigned_cells ? " (outside your assigned cells: marked as such)" : "");
      } else if (result.state === "sent-elsewhere") {
        outcome.dataset.state = "ok";
        outcome.textContent = "Reported";
      } else {
        outcome.dataset.state = "queued";
        outcome.textContent = "No signal: the report is kept on this phone and will be sent when you are back online";
      }
      form.reset();
      page.reportPhotos.clear();
      page.location = null;
      if (page.locationMarker) {
        page.locationMarker.remove();
        page.locationMarker = null;
      }
      const where = byTestId("report-location");
      where.dataset.state = "none";
      where.textContent = "No location yet";
    } catch (error) {
      showOutcome(outcome, error);
    } finally {
      submit.disabled = false;
      renderOutbox();
    }
  });
}

/** Send the outbox now and say what became of item `key`: sent, failed or waiting. */
async function sendNow(key) {
  // Two rounds at most: a round already running when the item was queued may not have it.
  for (let round = 0; round < 2; round += 1) {
    const { sent, offline } = await flush(() => renderOutbox());
    const done = sent.find((s) => s.item.key === key);
    if (done) return { state: "sent", caseId: done.result.id, cell: done.result.grid_cell, result: done.result };
    const waiting = (await pendingItems()).find((i) => i.key === key);
    if (!waiting) return { state: "sent-elsewhere" };
    if (waiting.state === "failed") return { state: "failed", error: waiting.error };
    if (offline) break;
  }
  return { state: "waiting" };
}

async function sendWaiting() {
  const { sent } = await flush(() => renderOutbox());
  await renderOutbox();
  if (sent.some((s) => s.item.kind === "verify")) refreshTasks();
}

// --- verification tasks -----------------------------------------------------------------

async function refreshTasks() {
  const outcome = byTestId("tasks-outcome");
  let body;
  try {
    body = await get("/field/me/tasks", { limit: 200 });
  } catch (error) {
    if (error.status === 403) {
      outcome.dataset.state = "ok";
      outcome.textContent = "Verification tasks are for grid inspectors.";
    } else if (error.status !== 0) {
      showOutcome(outcome, error);
    }
    return;
  }
  outcome.textContent = "";
  // Tasks with a verification waiting in the outbox are not shown twice.
  const queued = new Set((await pendingItems()).filter((i) => i.kind === "verify")
    .map((i) => i.path.split("/")[2]));
  const openForm = document.querySelector(".task:not([hidden]) .verify-form:not([hidden])");
  const editing = openForm ? openForm.closest(".task").dataset.id : null;
  page.tasks = body.data.filter((t) => !queued.has(t.id));
  byTestId("task-count").textContent = page.tasks.length ? String(page.tasks.length) : "";
  byTestId("tasks-empty").hidden = page.tasks.length > 0;
  const list = byTestId("task-list");
  const kept = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const items = page.tasks.map((task) => {
    // The task being verified keeps its form (and its photos) across a refresh.
    if (task.id === editing && kept.has(task.id)) {
      fillTask(kept.get(task.id), task);
      return kept.get(task.id);
    }
    return renderTask(task);
  });
  list.replaceChildren(...items);
  drawTaskMarkers();
}

function deadlineText(iso) {
  if (!iso) return "no deadline";
  const at = new Date(iso);
  const minutes = Math.round((at - serverNow()) / 60000);
  const span = (m) => {
    const h = Math.floor(Math.abs(m) / 60);
    const rest = Math.abs(m) % 60;
    return h >= 48 ? `${Math.round(h / 24)} days` : h ? `${h} h ${rest} min` : `${rest} min`;
  };
  const when = at.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
  return minutes >= 0 ? `verify by ${when} (in ${span(minutes)})`
    : `verify by ${when} — overdue by ${span(minutes)}`;
}

function fillTask(li, task) {
  const category = page.categories.get(task.category);
  li.dataset.id = task.id;
  li.dataset.light = task.light || "none";
  li.dataset.version = String(task.version);
  $(".light", li).title = task.light ? `supervision light: ${task.light}` : "";
  $(".task-category", li).textContent = category ? category.name : task.category;
  $(".task-cell", li).textContent = task.grid_cell || "";
  $(".task-description", li).textContent = task.description;
  $(".task-result", li).textContent = task.result ? `${task.department}: ${task.result}` : "";
  $(".task-deadline", li).textContent = deadlineText(task.verify_by);
  li.dataset.assigned = task.assigned_to_me ? "yes" : "no";
  $(".task-cell", li).textContent += task.assigned_to_me ? " · assigned to you by the centre" : "";
}

function renderTask(task) {
  const li = $("#task-template").content.firstElementChild.cloneNode(true);
  fillTask(li, task);
  const form = $(".verify-form", li);
  const open = byTestId("task-verify-open", li);
  const submit = byTestId("verify-submit", form);
  const photos = new PhotoPicker(byTestId("verify-photo-input", form), byTestId("verify-photos", form), {
    onChange: () => { submit.disabled = !photos.settled; },
  });
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    open.textContent = form.hidden ? "Verify on site" : "Close";
    const [lon, lat] = task.location.coordinates;
    page.map.setView([lat, lon], Math.max(page.map.getZoom(), 17), { animate: false });
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const outcome = byTestId("verify-outcome", form);
    const verdict = new FormData(form).get("fixed");
    const note = String(new FormData(form).get("note") || "").trim();
    const problem = !verdict ? "Say whether it is fixed"
      : verdict === "no" && !note ? "Say what is still wrong (a note is needed for rework)" : null;
    if (problem) {
      outcome.dataset.state = "error";
      outcome.textContent = problem;
      return;
    }
    if (!photos.settled) {
      outcome.dataset.state = "busy";
      outcome.textContent = "Wait until the photos are uploaded";
      return;
    }
    const key = newCommandId();
    submit.disabled = true;
    showOutcome(outcome, null);
    try {
      const current = page.tasks.find((t) => t.id === task.id) || task;
      await enqueue({
        key, kind: "verify", path: `/grid-cases/${task.id}/verify`,
        body: { fixed: verdict === "yes", note },
        photos: photos.forOutbox(), version: current.version,
        label: `${verdict === "yes" ? "Fixed" : "Rework"}: ${$(".task-category", li).textContent} in ${task.grid_cell}`,
      });
      const result = await sendNow(key);
      if (result.state === "failed") {
        await discard(key);
        outcome.dataset.state = "error";
        outcome.textContent = result.error;
        outcome.setAttribute("role", "alert");
        return;
      }
      const done = result.state !== "waiting";
      outcome.dataset.state = done ? "ok" : "queued";
      outcome.textContent = !done
        ? "No signal: the verification is kept on this phone and will be sent when you are back online"
        : result.result && result.result.status === "dispatched" ? "Sent back to the department as rework"
          : "Verified: the case goes to closing";
      setTimeout(() => refreshTasks(), done ? 1500 : 0);
    } catch (error) {
      showOutcome(outcome, error);
    } finally {
      submit.disabled = false;
      renderOutbox();
    }
  });
  return li;
}

function drawTaskMarkers() {
  page.taskMarkers.clearLayers();
  for (const task of page.tasks) {
    const [lon, lat] = task.location.coordinates;
    L.circleMarker([lat, lon], {
      radius: 8, weight: 2, color: "#10151c",
      fillColor: LIGHT_COLOURS[task.light] || "#7b8794", fillOpacity: 0.95,
    }).bindTooltip(`${$(".task-category", document.querySelector(`.task[data-id="${task.id}"]`))?.textContent || task.category} — ${task.grid_cell}`)
      .on("click", () => {
        showTab("tasks");
        const li = document.querySelector(`.task[data-id="${task.id}"]`);
        if (li) li.scrollIntoView({ behavior: "smooth", block: "center" });
      })
      .addTo(page.taskMarkers);
  }
}

// --- outbox view ------------------------------------------------------------------------

async function renderOutbox() {
  const items = await pendingItems();
  const me = page.user ? page.user.username : null;
  byTestId("outbox-count").textContent = items.length ? String(items.length) : "";
  byTestId("outbox-empty").hidden = items.length > 0;
  const list = byTestId("outbox-list");
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.dataset.testid = "outbox-item";
    li.dataset.state = item.state;
    li.dataset.key = item.key;
    const label = document.createElement("span");
    label.textContent = item.label;
    const state = document.createElement("small");
    state.dataset.testid = "outbox-item-state";
    state.textContent = item.user !== me ? `waiting for ${item.user} to log in`
      : item.state === "failed" ? `refused: ${item.error}`
        : item.state === "sending" ? "sending…"
          : `waiting for signal${item.photos.length ? ` (${item.photos.length} photo${item.photos.length === 1 ? "" : "s"})` : ""}`;
    li.append(label, state);
    if (item.state === "failed" && item.user === me) {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Try again";
      again.addEventListener("click", async () => { await retry(item.key); sendWaiting(); });
      const drop = document.createElement("button");
      drop.type = "button";
      drop.className = "danger";
      drop.textContent = "Discard";
      drop.addEventListener("click", async () => { await discard(item.key); renderOutbox(); });
      li.append(again, drop);
    }
    return li;
  }));
  const sent = byTestId("sent-list");
  sent.replaceChildren(...recentlySent().map((entry) => {
    const li = document.createElement("li");
    li.dataset.testid = "sent-item";
    const when = new Date(entry.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    li.textContent = `${when} ${entry.label}${entry.caseId ? ` → case ${entry.caseId.slice(0, 8)}` : ""}${entry.cell ? ` (${entry.cell})` : ""}`
      + (entry.outsideCells ? " · outside your cells" : "");
    li.dataset.outside = entry.outsideCells ? "yes" : "no";
    return li;
  }));
}

start().catch((error) => {
  const outcome = byTestId("report-outcome");
  showOutcome(outcome, error);
});
