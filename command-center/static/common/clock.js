// The server's time on the pages: deadlines, "overdue" and supervision lights are counted
// from the command centre's clock, never from the browser's alone (a browser's clock may be
// wrong, and the demo or a drill runs on a clock of its own, at its own speed).
// A reading {server_time, clock_rate} comes from GET /clock when a page starts and again
// with the live push's welcome, snapshot and position messages (every few seconds); between
// readings the time runs on at the server's rate, measured with the browser's monotonic
// timer. The only place of the pages that reads the browser's own clock.
// Shared by the dashboard and the field page.

import { DRILL_HEADER, currentDrill, currentSession } from "./api.js";

let reading = null;

/** Take a reading of the server's clock; `takenAt` (performance.now()) when it was true. */
export function setServerTime(serverTime, rate = 1, takenAt = performance.now()) {
  const server = Date.parse(serverTime);
  if (Number.isNaN(server)) return;
  reading = { server, at: takenAt, rate: Number.isFinite(rate) ? rate : 1 };
}

/** Take the reading a live message carries, if it carries one. */
export function readServerTime(message) {
  if (message && message.server_time) setServerTime(message.server_time, message.clock_rate);
}

/** Ask GET /clock (the middle of the round trip is when its answer was true). */
export async function syncServerClock() {
  const sent = performance.now();
  // In a drill, the drill's own clock (its participants only: with the login).
  const headers = { Accept: "application/json" };
  const drill = currentDrill();
  const session = currentSession();
  if (drill && session) {
    headers[DRILL_HEADER] = drill.id;
    headers.Authorization = `Bearer ${session.access_token}`;
  }
  const response = await fetch("/clock", { headers });
  if (!response.ok) throw new Error(`GET /clock answered ${response.status}`);
  const body = await response.json();
  setServerTime(body.server_time, body.clock_rate, (sent + performance.now()) / 2);
  return body;
}

let pastInstant = null;

/** Stand the pages' clock at a past instant of the city (ms since the epoch; null: run
 *  with the server again): lights and deadlines are then counted as they stood then. */
export function standAt(instant) {
  pastInstant = instant === null || instant === undefined ? null : Number(instant);
}

/** The server's time now, in milliseconds since the epoch (the browser's clock only while
 *  no reading was ever taken: the server could not be reached at all); the instant shown
 *  while the dashboard shows the past. */
export function serverNow() {
  if (pastInstant !== null) return pastInstant;
  if (!reading) return Date.now();
  return reading.server + (performance.now() - reading.at) * reading.rate;
}

/** Whether the time comes from the server (a reading was taken). */
export function hasServerTime() {
  return reading !== null;
}
