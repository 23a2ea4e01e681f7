// Photos on the field page: upload one with progress (XMLHttpRequest: fetch cannot report
// upload progress), and the picker that shows each chosen photo with its progress, its error
// and a button to take it out again. A photo chosen without signal stays as a blob and goes
// with the outbox item.

import { ApiError, currentSession, endSession } from "/static/common/api.js";

export const MAX_PHOTOS = 12;

/** Upload one photo to POST /photos; resolves to the answer ({photo: "photo:<sha256>", ...}). */
export function uploadPhoto(file, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const session = currentSession();
    if (!session) {
      reject(new ApiError(401, "not-authenticated", "Please log in again", null));
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/photos");
    xhr.setRequestHeader("Authorization", `Bearer ${session.access_token}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
        return;
      }
      const message = body && typeof body.detail === "string" ? body.detail
        : `The photo was not accepted (${xhr.status})`;
      if (xhr.status === 401) {
        endSession();
        document.dispatchEvent(new CustomEvent("cityops:unauthenticated"));
      }
      reject(new ApiError(xhr.status, body && body.error, message, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network",
      "No signal: the photo will be sent with the report when the phone is back online", null)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "Upload cancelled", null)));
    xhr.send(form);
  });
}

/**
 * The photos of one form. `list` is the <ul> that shows them; `input` the file input.
 * Each entry: {id, file, ref, state: "uploading"|"uploaded"|"offline"|"failed", error}.
 */
export class PhotoPicker {
  constructor(input, list, { onChange = () => {} } = {}) {
    this.input = input;
    this.list = list;
    this.onChange = onChange;
    this.entries = [];
    this.counter = 0;
    input.addEventListener("change", () => {
      for (const file of input.files) this.add(file);
      input.value = "";
    });
  }

  /** Whether no photo is still uploading. */
  get settled() {
    return this.entries.every((e) => e.state !== "uploading");
  }

  /** Photos that can go with the command: refused ones are left out (their error shows). */
  usable() {
    return this.entries.filter((e) => e.state === "uploaded" || e.state === "offline");
  }

  /** What the outbox keeps: the reference, or the blob still to upload. */
  forOutbox() {
    return this.usable().map((e) => (e.ref ? { ref: e.ref, name: e.file.name }
      : { blob: e.file, name: e.file.name, type: e.file.type }));
  }

  clear() {
    for (const entry of this.entries) URL.revokeObjectURL(entry.preview);
    this.entries = [];
    this.list.replaceChildren();
    this.onChange();
  }

  add(file) {
    if (this.entries.length >= MAX_PHOTOS) {
      this.showLimit();
      return;
    }
    const entry = { id: ++this.counter, file, ref: null, state: "uploading", error: null,
      progress: 0, preview: URL.createObjectURL(file) };
    this.entries.push(entry);
    this.render(entry);
    this.onChange();
    uploadPhoto(file, (fraction) => {
      entry.progress = fraction;
      this.render(entry);
    }).then((answer) => {
      entry.ref = answer.photo;
      entry.state = "uploaded";
    }).catch((error) => {
      entry.state = error.status === 0 ? "offline" : "failed";
      entry.error = error.message;
    }).finally(() => {
      this.render(entry);
      this.onChange();
    });
  }

  remove(entry) {
    this.entries = this.entries.filter((e) => e !== entry);
    URL.revokeObjectURL(entry.preview);
    const item = this.list.querySelector(`[data-photo="${entry.id}"]`);
    if (item) item.remove();
    this.onChange();
  }

  showLimit() {
    const note = document.createElement("li");
    note.className = "photo-note";
    note.dataset.testid = "photo-limit";
    note.textContent = `At most ${MAX_PHOTOS} photos per report`;
    this.list.append(note);
    setTimeout(() => note.remove(), 4000);
  }

  render(entry) {
    let item = this.list.querySelector(`[data-photo="${entry.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.className = "photo";
      item.dataset.photo = String(entry.id);
      item.dataset.testid = "photo-item";
      const img = document.createElement("img");
      img.alt = entry.file.name || "photo";
      // A file the browser cannot show (not an image after all) shows no broken picture.
      img.addEventListener("error", () => { img.hidden = true; });
      img.src = entry.preview;
      const progress = document.createElement("progress");
      progress.max = 1;
      progress.dataset.testid = "photo-progress";
      const status = document.createElement("span");
      status.className = "photo-status";
      status.dataset.testid = "photo-status";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "photo-remove";
      remove.textContent = "✕";
      remove.setAttribute("aria-label", "Remove this photo");
      remove.addEventListener("click", () => this.remove(entry));
      item.append(img, progress, status, remove);
      this.list.append(item);
    }
    item.dataset.state = entry.state;
    item.querySelector("progress").value = entry.progress;
    item.querySelector("progress").hidden = entry.state !== "uploading";
    const status = item.querySelector(".photo-status");
    status.textContent = {
      uploading: `${Math.round(entry.progress * 100)} %`,
      uploaded: "✓ uploaded",
      offline: "waiting for signal",
      failed: entry.error || "refused",
    }[entry.state];
    if (entry.state === "failed") status.setAttribute("role", "alert");
  }
}
