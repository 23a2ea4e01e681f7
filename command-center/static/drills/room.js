// The planners' drill room: start a drill from a window of history (or the one the demo
// offers), with a scenario on top or none, follow each drill's progress (its clock, events
// replayed and skipped, its exercise's objectives met / missed / pending as measured live)
// and steer it: pause, resume, speed, jump forward, invite, finish, delete; evaluators rate
// each objective (P / S / M / U with observations). Times are the server's (GET /clock),
// never the browser's.

import { ApiError, currentUser, endSession, request, requireSession } from "../common/api.js";
import { serverNow, syncServerClock } from "../common/clock.js";

const SPEEDS = ["1", "5", "10", "30", "60", "100", "max"];
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function say(where, message, state = "ok") {
  const out = $(`[data-testid="${where}"]`);
  out.textContent = message;
  out.dataset.state = state;
}

function short(iso) {
  return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?(\+00:00|Z)$/, " UTC").slice(0, 20) : "";
}

async function act(method, path, body) {
  try {
    await request(method, path, { body, live: true });
    say("room-outcome", "");
  } catch (error) {
    say("room-outcome", error instanceof ApiError ? error.message : String(error), "error");
  }
  await refresh();
}

function button(label, testid, onClick) {
  const b = el("button", { type: "button", "data-testid": testid }, label);
  b.addEventListener("click", onClick);
  return b;
}

function row(d) {
  const tr = el("tr", { "data-testid": "drill-row", "data-drill": d.id, "data-state": d.status });
  const name = el("td");
  name.append(el("strong", {}, d.name), el("br"), el("small", {}, d.id));
  const state = el("td");
  state.append(el("span", { class: "state", "data-state": d.status, "data-testid": "drill-state" },
    d.window_replayed ? `${d.status}, window replayed` : d.status));
  if (d.failure) state.append(el("div", { class: "failure" }, d.failure));
  const base = `/drills/${d.id}`;
  const actions = el("td", { class: "actions" });
  if (d.status === "running") actions.append(button("Pause", "drill-pause", () => act("POST", `${base}/pause`)));
  if (d.status === "paused") actions.append(button("Resume", "drill-resume", () => act("POST", `${base}/resume`)));
  if (d.status === "running" || d.status === "paused") {
    const speed = el("select", { "data-testid": "drill-speed", "aria-label": "Speed" });
    for (const s of SPEEDS) speed.append(el("option", { value: s }, s === "max" ? "max" : `${s}x`));
    speed.value = d.speed === "max" ? "max" : d.speed.replace("x", "");
    speed.addEventListener("change", () => act("POST", `${base}/speed`, { speed: speed.value }));
    actions.append(speed);
    actions.append(button("Jump +15 min", "drill-jump", () => {
      const now = Date.parse(d.drill_time) + 15 * 60 * 1000;
      const to = new Date(Math.min(now, Date.parse(d.window_to))).toISOString();
      act("POST", `${base}/jump`, { to });
    }));
    actions.append(button("Invite…", "drill-invite", () => {
      const users = (prompt("Invite users (comma separated)") || "").split(",").map((u) => u.trim()).filter(Boolean);
      if (users.length) act("POST", `${base}/participants`, { users });
    }));
    actions.append(button("Finish", "drill-finish", () => act("POST", `${base}/finish`)));
  }
  actions.append(button("Delete", "drill-delete", () => {
    if (confirm(`Delete drill ${d.name}? Everything in it is removed.`)) act("DELETE", base);
  }));
  const skipped = `${d.events_skipped} (${d.branched_aggregates})`;
  for (const cell of [name, state,
    el("td", {}, `${short(d.window_from)} – ${short(d.window_to)}`),
    el("td", { "data-testid": "drill-time" }, short(d.drill_time)),
    el("td", {}, d.speed),
    el("td", { "data-testid": "drill-replayed" }, String(d.events_replayed)),
    el("td", { "data-testid": "drill-skipped" }, skipped),
    el("td", {}, d.participants.join(", ")), actions]) tr.append(cell);
  return tr;
}

const STATUS_TEXT = { met: "met", missed: "missed", pending: "pending" };

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

/** The exercise's objectives under the drill's row: each measured now, with its rating. */
function objectivesRow(d) {
  const tr = el("tr", { class: "objectives", "data-testid": "drill-objectives", "data-drill": d.id });
  const cell = el("td", { colspan: "9" });
  const table = el("table", { class: "objectives" });
  const head = el("tr");
  for (const title of ["Objective", "Target", "Status", "Measured", "Rating", ""]) head.append(el("th", {}, title));
  table.append(head);
  for (const o of d.objectives) {
    const line = el("tr", { "data-testid": "objective", "data-objective": o.id, "data-status": o.measure.status });
    const [latest] = o.ratings.slice(-1);
    const status = el("td");
    status.append(el("span", { class: "objective-status", "data-status": o.measure.status,
      "data-testid": "objective-status", title: o.measure.detail }, STATUS_TEXT[o.measure.status]));
    status.append(el("div", { class: "detail" }, o.measure.detail));
    const rating = el("td", { "data-testid": "objective-rating" },
      latest ? `${latest.rating} (${latest.meaning}) by ${latest.evaluator}: ${latest.observations}` : "not rated");
    const actions = el("td");
    if (d.exercise_id) actions.append(button("Rate…", "objective-rate", () => rate(d, o)));
    for (const c of [el("td", {}, o.description), el("td", {}, minutes(o.within_s)), status,
      el("td", {}, minutes(o.measure.measured_s)), rating, actions]) line.append(c);
    table.append(line);
  }
  cell.append(el("div", { class: "injects" }, `Scenario ${d.scenario}: ${d.injects_delivered} injects delivered`), table);
  tr.append(cell);
  return tr;
}

/** The rating dialog: an evaluator rates one objective of the drill's exercise. */
function rate(d, objective) {
  const dialog = $('[data-testid="rate-dialog"]');
  const form = dialog.querySelector("form");
  form.reset();
  dialog.querySelector('[data-testid="rate-objective"]').textContent = objective.description;
  say("rate-outcome", "");
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (event.submitter && event.submitter.value === "cancel") {
      dialog.close();
      return;
    }
    const data = new FormData(form);
    try {
      await request("POST", `/exercises/${d.exercise_id}/ratings`, {
        drill: d.id,
        body: { objective_id: objective.id, rating: data.get("rating"), observations: data.get("observations") },
      });
      dialog.close();
      await refresh();
    } catch (error) {
      say("rate-outcome", error instanceof ApiError ? error.message : String(error), "error");
    }
  };
  dialog.showModal();
}

async function refresh() {
  try {
    const drills = await request("GET", "/drills", { live: true });
    $('[data-testid="drill-rows"]').replaceChildren(...drills.data.flatMap(
      (d) => (d.objectives.length ? [row(d), objectivesRow(d)] : [row(d)])));
  } catch (error) {
    say("room-outcome", error instanceof ApiError ? error.message : String(error), "error");
  }
}

async function offers() {
  const list = await request("GET", "/drills/ready", { live: true });
  if (!list.length) return;
  $('[data-testid="offers"]').hidden = false;
  $('[data-testid="offer-list"]').replaceChildren(...list.map((offer) => {
    const li = el("li", { "data-testid": "offer" });
    li.append(el("strong", {}, offer.title),
      offer.scenario ? ` with the scenario ${offer.scenario}. ` : " ", `${offer.note} `);
    li.append(button("Start", "offer-start", async () => {
      const fresh = (await request("GET", "/drills/ready", { live: true }))
        .find((o) => o.title === offer.title) || offer;
      const { note, ...body } = fresh;
      await start(body);
    }));
    return li;
  }));
}

async function scenarios() {
  const select = $('[data-testid="start-scenario"]');
  try {
    for (const s of await request("GET", "/scenarios", { live: true })) {
      select.append(el("option", { value: s.name }, `${s.title} (${s.name}, ${s.objectives.length} objectives)`));
    }
  } catch (error) {
    say("start-outcome", error instanceof ApiError ? error.message : String(error), "error");
  }
}

async function start(body) {
  try {
    const drill = await request("POST", "/drills", { body, live: true });
    say("start-outcome", `Started ${drill.name}`);
  } catch (error) {
    say("start-outcome", error instanceof ApiError ? error.message : String(error), "error");
  }
  await refresh();
}

async function main() {
  if (!requireSession()) return;
  const user = currentUser();
  $('[data-testid="user-badge"]').textContent = `${user.display_name || user.username} (${user.role})`;
  $('[data-testid="to-dashboard"]').addEventListener("click", () => location.assign("/dashboard"));
  $('[data-testid="logout"]').addEventListener("click", () => {
    endSession();
    location.replace("/login?logout");
  });
  await syncServerClock();
  const tick = () => {
    $('[data-testid="server-time"]').textContent =
      `server time ${new Date(serverNow()).toISOString().slice(0, 19).replace("T", " ")} UTC`;
  };
  tick();
  setInterval(tick, 1000);
  // The form starts with the last hour of the server's time.
  const now = serverNow();
  $('[data-testid="start-to"]').value = new Date(now).toISOString();
  $('[data-testid="start-from"]').value = new Date(now - 3600 * 1000).toISOString();
  $('[data-testid="start-form"]').addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const speed = form.get("speed");
    const body = {
      title: form.get("title"), window_from: form.get("window_from"),
      window_to: form.get("window_to"), speed: speed === "max" ? "max" : Number(speed),
      scenario: form.get("scenario") || null,
      participants: String(form.get("participants") || "").split(",").map((u) => u.trim()).filter(Boolean),
    };
    // The planner's own scenario file: sent as text, named after the file; the server
    // checks it against the city and refuses it with every problem by line.
    const file = form.get("scenario_file");
    if (file && file.size > 0) {
      body.scenario = file.name.replace(/\.(ya?ml)$/i, "");
      body.scenario_text = await file.text();
    }
    start(body);
  });
  await scenarios();
  await offers();
  await refresh();
  document.body.dataset.ready = "true"; // the form holds the server's times and scenarios
  setInterval(refresh, 1000);
}

main();
