// The pages' one way to talk to the command centre's REST API: the login session (kept in
// sessionStorage, so it ends with the browser tab), every request with its bearer token, a
// fresh Idempotency-Key per command (a retried click does not act twice) and If-Match with
// the version the user was looking at (a conflicting action is refused, never overwrites).
// Shared by the dashboard and the field page.

const SESSION_KEY = "cityops.session";
const DRILL_KEY = "cityops.drill";
export const DRILL_HEADER = "X-CityOps-Drill";

/** The drill this tab is switched into ({id, name}) or null: the live city. */
export function currentDrill() {
  try {
    const drill = JSON.parse(sessionStorage.getItem(DRILL_KEY) || "null");
    return drill && drill.id ? drill : null;
  } catch {
    return null;
  }
}

/** Switch this tab into a drill ({id, name}), or back to the live city (null). */
export function switchDrill(drill) {
  if (drill) sessionStorage.setItem(DRILL_KEY, JSON.stringify({ id: drill.id, name: drill.name }));
  else sessionStorage.removeItem(DRILL_KEY);
}

/** The logged-in session {access_token, expires_at, user} or null (none, or expired). */
export function currentSession() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    session = null;
  }
  if (!session || !session.access_token) return null;
  if (session.expires_at && Date.parse(session.expires_at) <= Date.now()) {
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }
  return session;
}

/** The user of the session ({username, role, department, display_name}) or null. */
export function currentUser() {
  const session = currentSession();
  return session ? session.user : null;
}

/** Forget the session (logout, or the server no longer accepts its token). */
export function endSession() {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(DRILL_KEY);
}

/** Log in with POST /auth/login; keeps the session and returns its user.
 *  A refusal throws an ApiError carrying the API's own message. */
export async function login(username, password) {
  const body = await request("POST", "/auth/login", {
    body: { username, password }, authenticated: false, command: false,
  });
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(body));
  return body.user;
}

/** The session, or a redirect to the login page that comes back here afterwards. */
export function requireSession(loginPath = "/login") {
  const session = currentSession();
  if (!session) {
    const next = encodeURIComponent(location.pathname + location.search);
    location.replace(`${loginPath}?next=${next}`);
    return null;
  }
  return session;
}

/** An error the API answered with (or a network failure, status 0): `message` is what
 *  the user should read. */
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** Whether the action was refused because someone else changed the item first. */
  get isConflict() {
    return this.status === 409 || this.status === 412;
  }
}

/** A new command id for the Idempotency-Key header. */
export function newCommandId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  // Non-secure contexts (plain http on a LAN address) have no randomUUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function messageOf(status, body, fallback) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string" && body.detail) return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    }
    if (typeof body.message === "string") return body.message;
  }
  return fallback || `The server answered ${status}`;
}

/**
 * One request to the API; resolves to the parsed JSON body (null for an empty one).
 * options: body (JSON), query (object; arrays repeat the parameter), version (sent as
 * If-Match), commandId (Idempotency-Key; POST/PUT/PATCH/DELETE get a fresh one unless
 * `command: false`), authenticated (default true), live (the live city, whatever drill the
 * tab is in), drill (a drill's id: this call goes to that drill).
 */
export async function request(method, path, options = {}) {
  const { body, query, version, commandId, authenticated = true, command = true } = options;
  const headers = { Accept: "application/json" };
  if (authenticated) {
    const session = currentSession();
    if (!session) {
      requireSession();
      throw new ApiError(401, "not-authenticated", "Please log in again", null);
    }
    headers.Authorization = `Bearer ${session.access_token}`;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // In a drill, every call goes to the drill's own city (its answers say so); `drill` (an
  // id) sends one call to that drill (the drill room), `live` to the live city.
  const drill = options.drill ? { id: options.drill } : options.live ? null : currentDrill();
  if (drill) headers[DRILL_HEADER] = drill.id;
  if (method !== "GET" && command) headers["Idempotency-Key"] = commandId || newCommandId();
  if (version !== undefined && version !== null) headers["If-Match"] = String(version);
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      for (const one of Array.isArray(value) ? value : [value]) params.append(key, String(one));
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (error) {
    throw new ApiError(0, "network", `The command centre cannot be reached (${error.message})`, null);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    const code = parsed && typeof parsed === "object" ? parsed.error || "" : "";
    const error = new ApiError(response.status, code,
      messageOf(response.status, parsed, response.statusText), parsed);
    if (response.status === 401 && authenticated) {
      // The token expired or was revoked: the page must log in again.
      endSession();
      document.dispatchEvent(new CustomEvent("cityops:unauthenticated", { detail: error }));
    }
    throw error;
  }
  return parsed;
}

let viewedInstant = null;
/** The API paths that answer "as it was at instant T" (`as_of`). */
const AS_OF_PATHS = /^\/(grid-cases|incidents|plans|resources|hazard-sources|hotline-tickets|warnings|statistics|spatial|ogc|exports)(\/|$)/;

/** Show the city as it stood at `iso` (an ISO 8601 instant; null: now): every GET of a
 *  path that takes `as_of` then asks for that instant (the time slider). */
export function viewAsOf(iso) {
  viewedInstant = iso || null;
}

/** The instant shown (null: now). */
export function viewedAsOf() {
  return viewedInstant;
}

/** GET `path` with query parameters. */
export function get(path, query) {
  if (viewedInstant && AS_OF_PATHS.test(path)) query = { ...(query || {}), as_of: viewedInstant };
  return request("GET", path, { query });
}

/** POST a command; `version` is the version the user saw (If-Match). */
export function post(path, body = {}, { version, commandId } = {}) {
  return request("POST", path, { body, version, commandId });
}

/** Show the outcome of an action in a status element: its result, or the API's message.
 *  The element gets data-state="ok" | "error" | "conflict" | "busy" for styling and tests. */
export function showOutcome(element, outcome) {
  if (!element) return;
  if (outcome instanceof Error) {
    element.dataset.state = outcome.isConflict ? "conflict" : "error";
    element.textContent = outcome.message;
    element.setAttribute("role", "alert");
  } else if (outcome === null) {
    element.dataset.state = "busy";
    element.textContent = "Working…";
    element.removeAttribute("role");
  } else {
    element.dataset.state = "ok";
    element.textContent = String(outcome);
    element.setAttribute("role", "status");
  }
}

/** Run an action for a button: disable it while it runs and show the outcome. Resolves
 *  to the action's result, or null when it failed (the error is shown). */
export async function perform(button, statusElement, action, successText) {
  if (button) button.disabled = true;
  showOutcome(statusElement, null);
  try {
    const result = await action();
    showOutcome(statusElement, typeof successText === "function" ? successText(result) : successText);
    return result;
  } catch (error) {
    showOutcome(statusElement, error);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Text for user content: never inserted as HTML. */
export function escapeText(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
