// The pages' client of the /ws live push: sends hello with the bearer token and the
// subscription, keeps the (generation, position) of the last message it applied so that a
// reconnect resumes with no gap and no duplicate, and hands snapshots, changes and presence to
// the page. A `resync` from the server (this client fell behind, or the read models were
// rebuilt) is followed by a fresh snapshot, which the page applies as a whole.
// Shared by the dashboard and the field page.

import { currentDrill, currentSession, endSession } from "./api.js";
import { readServerTime } from "./clock.js";

const PING_EVERY_MS = 20000;
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 15000;
// The server sends this client's changes together, one frame at most every BATCH_MS: a busy
// city then costs the server (and the browser) a frame per tick, not one per change.
const BATCH_MS = 50;

/**
 * A live connection. handlers:
 *  snapshot({generation, position, layers})   the whole state of the subscription
 *  change({layer, id, events, at, feature})   feature null: it left the subscription
 *                                             (a batched `changes` frame: one call each)
 *  presence({layer, id, viewers})
 *  status(state, detail)   state: "connecting" | "live" | "resyncing" | "offline" | "closed"
 *  welcome({user, generation})
 */
export class LiveConnection {
  constructor(subscription, handlers = {}, { path = "/ws", batchMs = BATCH_MS } = {}) {
    this.subscription = subscription;
    this.handlers = handlers;
    this.path = path;
    this.batchMs = batchMs;
    this.generation = null;
    this.position = null;
    this.socket = null;
    this.closed = false;
    this.retryMs = RECONNECT_FIRST_MS;
    this.viewingNow = null;
    this.pingTimer = null;
    this.retryTimer = null;
  }

  /** Open the connection (and keep reopening it until close()). */
  start() {
    this.closed = false;
    this.connect();
    return this;
  }

  /** Close for good (logout, leaving the page). */
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.socket) this.socket.close(1000, "bye");
    this.emit("status", "closed");
  }

  /** Change what this client follows; the server answers with a fresh snapshot. */
  subscribe(subscription) {
    this.subscription = subscription;
    this.send({ type: "subscribe", subscribe: subscription });
  }

  /** Tell the others which item this user has open (null: none). */
  viewing(layer, id) {
    this.viewingNow = id ? { layer, id } : null;
    this.send(id ? { type: "viewing", layer, id } : { type: "viewing", id: null });
  }

  emit(name, ...args) {
    const handler = this.handlers[name];
    if (handler) handler(...args);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  connect() {
    const session = currentSession();
    if (!session) {
      this.emit("status", "closed", "not logged in");
      document.dispatchEvent(new CustomEvent("cityops:unauthenticated"));
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.emit("status", "connecting");
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      const resume = this.generation !== null && this.position !== null
        ? { generation: this.generation, position: this.position } : null;
      socket.send(JSON.stringify({
        type: "hello", token: session.access_token, subscribe: this.subscription, resume,
        batch_ms: this.batchMs, ...(currentDrill() ? { drill: currentDrill().id } : {}),
      }));
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      clearInterval(this.pingTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      // 4401: the login is not (or no longer) valid; 1008: the account was disabled.
      if (event.code === 4401 || event.code === 1008) {
        endSession();
        this.closed = true;
        this.emit("status", "closed", event.reason || "not authenticated");
        document.dispatchEvent(new CustomEvent("cityops:unauthenticated"));
        return;
      }
      if (this.closed) return;
      this.emit("status", "offline", event.reason || `connection lost (${event.code})`);
      this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
    });
  }

  applyChange(message) {
    // A change at or before the position already applied is a duplicate (a resume
    // overlapping what was seen): skip it.
    if (message.generation === this.generation && this.position !== null
        && message.position <= this.position) return;
    this.generation = message.generation;
    this.position = message.position;
    this.emit("change", message);
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    // The server's time comes with welcome, snapshot and position: the pages count from it.
    readServerTime(message);
    switch (message.type) {
      case "welcome":
        this.retryMs = RECONNECT_FIRST_MS;
        this.emit("welcome", message);
        // Presence is per connection: tell the server again after a reconnect.
        if (this.viewingNow) this.viewing(this.viewingNow.layer, this.viewingNow.id);
        break;
      case "snapshot":
        this.generation = message.generation;
        this.position = message.position;
        this.emit("snapshot", message);
        this.emit("status", "live");
        break;
      case "change":
        this.applyChange(message);
        this.emit("status", "live");
        break;
      case "changes":
        // The changes of one tick (batch_ms), in order: each as a single change.
        for (const change of message.changes) this.applyChange(change);
        this.emit("status", "live");
        break;
      case "position":
        if (message.generation === this.generation
            && (this.position === null || message.position > this.position)) {
          this.position = message.position;
        }
        this.emit("status", "live");
        break;
      case "presence":
        this.emit("presence", message);
        break;
      case "resync":
        // The server sends a fresh snapshot right after; until then the page is stale.
        this.generation = null;
        this.position = null;
        this.emit("status", "resyncing", message.reason);
        break;
      case "error":
        this.emit("status", "offline", message.message);
        this.emit("error", message);
        break;
      default:
        break;
    }
  }
}
