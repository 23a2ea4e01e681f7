// The field page's outbox: a report or a verification made without signal is kept in
// IndexedDB (with its photos as blobs and its Idempotency-Key) and sent when the phone is
// back online. The key is chosen once, when the inspector presses the button, and never
// changes: if an answer is lost and the command is sent again, the command centre
// recognises the key and nothing is done twice. Photos are content-addressed, so uploading
// one again is harmless too.
//
// Each item belongs to the user who made it: on a shared phone another inspector's login
// never sends it under their name.

import { ApiError, currentSession, currentUser, request } from "/static/common/api.js";
import { serverNow } from "/static/common/clock.js";
import { uploadPhoto } from "./photos.js";

const DB_NAME = "cityops-field";
const STORE = "outbox";
const SENT_KEY = "cityops.field.sent";
const SENT_KEPT = 20;

function openDb() {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(DB_NAME, 1);
    opening.onupgradeneeded = () => {
      opening.result.createObjectStore(STORE, { keyPath: "key" });
    };
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
}

async function withStore(mode, work) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("outbox transaction aborted"));
    });
  } finally {
    db.close();
  }
}

/** Every item waiting in the outbox, oldest first. */
export async function pendingItems() {
  const items = (await withStore("readonly", (store) => store.getAll())) || [];
  return items.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

async function saveItem(item) {
  await withStore("readwrite", (store) => store.put(item));
}

/** Drop an item the inspector gave up on. */
export async function discard(key) {
  await withStore("readwrite", (store) => store.delete(key));
}

/** What this phone sent lately (for the "sent" list): newest first. */
export function recentlySent() {
  try {
    return JSON.parse(localStorage.getItem(SENT_KEY) || "[]");
  } catch {
    return [];
  }
}

function rememberSent(entry) {
  const kept = [entry, ...recentlySent().filter((e) => e.key !== entry.key)].slice(0, SENT_KEPT);
  localStorage.setItem(SENT_KEY, JSON.stringify(kept));
}

/**
 * Put a command in the outbox. kind: "report" | "verify"; path: where to POST; body: the
 * JSON body without photos; photos: [{ref} | {blob, name, type}]; version: If-Match (or
 * null); label: how the inspector recognises it.
 */
export async function enqueue({ key, kind, path, body, photos, version = null, label }) {
  const user = currentUser();
  const item = {
    key, kind, path, body, version, label,
    photos: photos.map((p) => (p.ref ? { ref: p.ref, name: p.name || "" }
      : { blob: p.blob, name: p.name || "photo", type: p.type || p.blob.type })),
    user: user ? user.username : null,
    createdAt: new Date(serverNow()).toISOString(),
    state: "waiting",
    error: null,
  };
  await saveItem(item);
  return item;
}

let flushing = null;

/**
 * Send what waits, in order. Resolves to {sent: [...results], offline: bool}. A network
 * failure stops the round (still offline); a refusal marks that item failed with the
 * command centre's message and goes on with the next.
 */
export function flush(onProgress = () => {}) {
  if (!flushing) {
    flushing = sendAll(onProgress).finally(() => { flushing = null; });
  }
  return flushing;
}

async function sendAll(onProgress) {
  const sent = [];
  const user = currentUser();
  if (!currentSession() || !user) return { sent, offline: false };
  for (const item of await pendingItems()) {
    if (item.user !== user.username || item.state === "failed") continue;
    try {
      const result = await sendOne(item, onProgress);
      await discard(item.key);
      rememberSent({ key: item.key, kind: item.kind, label: item.label, at: new Date(serverNow()).toISOString(),
        caseId: result && result.id, cell: result && result.grid_cell, status: result && result.status,
        outsideCells: Boolean(result && result.outside_assigned_cells) });
      sent.push({ item, result });
      onProgress(item, "sent");
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500
          || error.status === 401) {
        item.state = "waiting";
        item.error = error.message;
        await saveItem(item);
        onProgress(item, "waiting");
        return { sent, offline: true };
      }
      item.state = "failed";
      item.error = error.message;
      await saveItem(item);
      onProgress(item, "failed");
    }
  }
  return { sent, offline: false };
}

async function sendOne(item, onProgress) {
  item.state = "sending";
  onProgress(item, "sending");
  // Photos first: each uploaded one is remembered at once, so a lost signal half-way does
  // not upload it again (and if it did, the same bytes land on the same photo).
  for (const photo of item.photos) {
    if (photo.ref) continue;
    const file = new File([photo.blob], photo.name, { type: photo.type });
    const uploaded = await uploadPhoto(file);
    photo.ref = uploaded.photo;
    delete photo.blob;
    await saveItem(item);
  }
  const body = { ...item.body, photos: item.photos.map((p) => p.ref) };
  return request("POST", item.path, { body, commandId: item.key, version: item.version });
}

/** Try a failed item again (after the inspector read why it failed). */
export async function retry(key) {
  const item = (await pendingItems()).find((i) => i.key === key);
  if (!item) return;
  item.state = "waiting";
  item.error = null;
  await saveItem(item);
}
