// The time slider: drag it back and the dashboard shows the city as it stood at that moment
// (the map, the queues and the key figures, fetched with `as_of`), the live push paused and
// a banner saying it is the past, with the instant in the city's time zone (from the
// server's clock and the server's time zone, never the browser's). Letting go of the slider
// returns to live, unless "hold" is ticked: then the moment let go at stays shown (as does
// one chosen with the keyboard) until "Back to live", Escape, or the slider's right end.

import { get, viewAsOf } from "/static/common/api.js";
import { serverNow, standAt } from "/static/common/clock.js";

const STEP_MS = 1000;
const DRAG_PAUSE_MS = 350;

export class TimeSlider {
  /** `reload()` fetches every layer again; `live` is the dashboard's LiveConnection;
   *  `onChange(past)` tells the panels (past: the instant shown, or null for live). */
  constructor(root, banner, { reload, live, onChange = () => {} }) {
    this.root = root;
    this.banner = banner;
    this.reload = reload;
    this.live = live;
    this.onChange = onChange;
    this.input = root.querySelector("[data-testid=time-slider]");
    this.label = root.querySelector("[data-testid=time-slider-label]");
    this.back = banner.querySelector("[data-testid=back-to-live]");
    this.instantText = banner.querySelector("[data-testid=past-instant]");
    this.first = null;
    this.timezone = "UTC";
    this.shown = null;
    this.timer = null;
    this.loading = Promise.resolve();
  }

  async start() {
    const range = await get("/time-travel");
    this.timezone = range.timezone;
    if (!range.first_event) {
      this.root.hidden = true; // nothing recorded yet: no past to show
      return this;
    }
    this.first = Date.parse(range.first_event);
    this.root.hidden = false;
    this.stretch();
    this.input.value = this.input.max;
    this.label.textContent = "live";
    this.hold = this.root.querySelector("[data-testid=time-hold]");
    this.pointer = false;
    this.input.addEventListener("pointerdown", () => { this.pointer = true; });
    window.addEventListener("pointerup", () => this.letGo());
    window.addEventListener("pointercancel", () => this.letGo());
    // Dragging (or the arrow keys) shows the moment once the slider rests a little.
    this.input.addEventListener("input", () => this.dragged());
    this.input.addEventListener("keydown", (event) => { if (event.key === "Escape") this.toLive(); });
    this.back.addEventListener("click", () => this.toLive());
    // The right end follows the server's clock while live.
    setInterval(() => { if (this.shown === null) { this.stretch(); this.input.value = this.input.max; } }, 5000);
    return this;
  }

  /** The slider spans the first event to the server's time now. */
  stretch() {
    this.input.min = String(Math.floor(this.first / STEP_MS) * STEP_MS);
    this.input.max = String(Math.floor(serverNow() / STEP_MS) * STEP_MS);
    this.input.step = String(STEP_MS);
  }

  dragged(released = false) {
    const value = Number(this.input.value);
    const atEnd = value >= Number(this.input.max);
    this.label.textContent = atEnd ? "live" : this.format(value);
    clearTimeout(this.timer);
    const go = () => (atEnd ? this.toLive() : this.showAt(value));
    if (released) go();
    else this.timer = setTimeout(go, DRAG_PAUSE_MS);
  }

  /** The pointer let go of the slider: back to live, or (held) the moment let go at. */
  letGo() {
    if (!this.pointer) return;
    this.pointer = false;
    if (this.hold.checked) this.dragged(true);
    else this.toLive();
  }

  format(ms) {
    const text = new Intl.DateTimeFormat("sv-SE", {
      timeZone: this.timezone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).format(new Date(ms));
    return `${text} (${this.timezone})`;
  }

  /** Show the city as it stood at `ms` (since the epoch). */
  async showAt(ms) {
    const iso = new Date(ms).toISOString();
    if (this.shown === iso) return;
    if (this.shown === null) this.live.close(); // no live change may overwrite the past
    this.shown = iso;
    viewAsOf(iso);
    standAt(ms);
    document.body.classList.add("in-the-past");
    document.body.dataset.asOf = iso;
    this.banner.hidden = false;
    this.instantText.textContent = this.format(ms);
    this.input.value = String(ms);
    this.onChange(iso);
    this.loading = this.reload();
    await this.loading;
    if (this.shown === iso) document.body.dataset.pastLoaded = iso;
  }

  /** Back to the city now: the live push resumes and sends a fresh snapshot. */
  async toLive() {
    clearTimeout(this.timer);
    this.stretch();
    this.input.value = this.input.max;
    this.label.textContent = "live";
    if (this.shown === null) return;
    this.shown = null;
    viewAsOf(null);
    standAt(null);
    document.body.classList.remove("in-the-past");
    delete document.body.dataset.asOf;
    delete document.body.dataset.pastLoaded;
    this.banner.hidden = true;
    this.onChange(null);
    this.loading = this.reload();
    await this.loading;
    this.live.start();
  }
}
