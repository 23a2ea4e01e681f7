// The drill switch of the pages: a selector of the drills the user takes part in ("Live
// city" or a drill), and, while the tab is switched into a drill, a DRILL banner across the
// top of the screen with the drill's name and clock. Every REST call and the live push of
// the tab then go to the drill's own city (api.js, live.js, clock.js send the drill).
// Shared by the dashboard, the field page and the planners' drill room.

import { currentDrill, currentSession, request, switchDrill } from "./api.js";
import { serverNow } from "./clock.js";

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function banner(drill) {
  const bar = el("div", { class: "drill-banner", "data-testid": "drill-banner", role: "status" });
  bar.append(el("strong", {}, "DRILL"), el("span", { "data-testid": "drill-name" }, drill.name),
    el("span", { class: "drill-clock", "data-testid": "drill-clock" }, ""));
  const tick = () => {
    const at = new Date(serverNow());
    bar.querySelector(".drill-clock").textContent =
      `drill time ${at.toISOString().slice(0, 16).replace("T", " ")} UTC — not live data`;
  };
  tick();
  setInterval(tick, 1000);
  return bar;
}

async function selector() {
  const box = el("label", { class: "drill-switch", "data-testid": "drill-switch" }, "City: ");
  const select = el("select", { "data-testid": "drill-select" });
  select.append(el("option", { value: "" }, "Live city"));
  box.append(select);
  const drill = currentDrill();
  try {
    const drills = await request("GET", "/drills", { live: true });
    for (const d of drills.data) {
      const option = el("option", { value: d.id }, `Drill: ${d.name} (${d.status})`);
      option.dataset.name = d.name;
      select.append(option);
    }
  } catch {
    // Not logged in yet, or no drills: the live city only.
  }
  select.value = drill ? drill.id : "";
  if (drill && select.value !== drill.id) {
    // The drill is gone (deleted) or the user no longer takes part: back to live.
    switchDrill(null);
    location.reload();
  }
  select.addEventListener("change", () => {
    const option = select.selectedOptions[0];
    switchDrill(select.value ? { id: select.value, name: option.dataset.name } : null);
    location.reload();
  });
  return box;
}

export async function mountDrillSwitch() {
  if (!currentSession()) return;
  const drill = currentDrill();
  if (drill) {
    document.body.classList.add("in-drill");
    document.body.prepend(banner(drill));
  }
  const box = await selector();
  if (drill || box.querySelectorAll("option").length > 1) {
    const place = document.querySelector("[data-drill-switch]") || document.body;
    place.prepend(box);
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", mountDrillSwitch);
} else {
  mountDrillSwitch();
}
