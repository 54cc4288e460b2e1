// Messages on their way to the API, kept in localStorage with their Idempotency-Key until the API has them:
// typed offline, they survive a reload and are sent once the connection is back. Repeating a send with the same
// key is safe (the API answers the first result and sends nothing twice), so a lost answer is simply retried.

import { NetworkError } from "./api.js";

const RETRY_MS = 5_000;

export class Outbox {
  constructor(api, storageKey, onChange) {
    this.api = api;
    this.storageKey = storageKey;
    this.onChange = onChange;
    this.items = load(storageKey);
    this.flushing = false;
    this.timer = null;
    /** Accepted by the API, not yet seen in the timeline: key → item (with eventId). */
    this.accepted = new Map();
  }

  add(room, roomId, message) {
    const item = { key: crypto.randomUUID(), room, roomId, message, createdAt: Date.now(), state: "pending" };
    this.items.push(item);
    this.save();
    this.flush();
    return item;
  }

  discard(key) {
    this.items = this.items.filter((item) => item.key !== key);
    this.save();
  }

  retry(key) {
    const item = this.items.find((candidate) => candidate.key === key);
    if (item) item.state = "pending";
    this.save();
    this.flush();
  }

  /** Everything still shown as unsent or unseen in a room, oldest first. */
  forRoom(roomId) {
    return [...this.items, ...this.accepted.values()].filter((item) => item.roomId === roomId);
  }

  /** The timeline now holds this event: its placeholder can go. */
  seen(eventId) {
    for (const [key, item] of this.accepted) {
      if (item.eventId === eventId) {
        this.accepted.delete(key);
        return true;
      }
    }
    return false;
  }

  /** Sends in order, one at a time; stops at the first message that cannot go yet and tries again later. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    clearTimeout(this.timer);
    try {
      for (const item of [...this.items]) {
        if (item.state === "failed") continue;
        item.state = "sending";
        this.onChange();
        try {
          const answer = await this.api.send(item.room, item.message, item.key);
          this.items = this.items.filter((candidate) => candidate.key !== item.key);
          this.save();
          if (answer?.eventId) this.accepted.set(item.key, { ...item, state: "sent", eventId: answer.eventId });
        } catch (error) {
          if (error instanceof NetworkError || error.retryable) {
            item.state = error instanceof NetworkError ? "offline" : "retrying";
            this.save();
            this.timer = setTimeout(() => this.flush(), error.retryAfterMs ?? RETRY_MS);
            return;
          }
          item.state = "failed";
          item.error = error.message;
          this.save();
        } finally {
          this.onChange();
        }
      }
    } finally {
      this.flushing = false;
    }
    // Written while this flush was sending: their turn now (nothing else would start a flush for them).
    if (this.items.some((item) => item.state === "pending")) return this.flush();
  }

  save() {
    localStorage.setItem(this.storageKey, JSON.stringify(this.items));
  }
}

function load(key) {
  try {
    const items = JSON.parse(localStorage.getItem(key) ?? "[]");
    return Array.isArray(items) ? items.map((item) => ({ ...item, state: item.state === "failed" ? "failed" : "pending" })) : [];
  } catch {
    return [];
  }
}
