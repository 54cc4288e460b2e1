// Search: the homeserver's own full-text search (POST /_matrix/client/v3/search) with the person's own session, so
// it covers exactly the rooms this person is in (the homeserver decides, for this page and any other client). A
// result opens in context: the messages around it (GET /rooms/{roomId}/context/{eventId}).

import { roomTitle } from "./identity.js";
import { el, excerpt, plainText } from "./render.js";

const $ = (id) => document.getElementById(id);
const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class Search {
  constructor({ client, session, openRoom, onShow }) {
    Object.assign(this, { client, session, openRoom, onShow });
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run($("search-input").value.trim());
    });
    $("search-close").addEventListener("click", () => this.close());
    $("search-results").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-event-id]");
      if (button) this.context(button.dataset.roomId, button.dataset.eventId);
    });
  }

  async run(term) {
    if (!term) return;
    this.show();
    const list = $("search-results");
    $("search-context").replaceChildren();
    $("search-status").textContent = `Searching for “${term}”…`;
    try {
      const body = { search_categories: { room_events: { search_term: term, order_by: "recent", filter: { limit: 20, types: ["m.room.message"] } } } };
      const answer = await this.matrix("POST", "/search", body);
      const results = answer.search_categories?.room_events?.results ?? [];
      list.replaceChildren(...results.map(({ result }) => this.item(result)));
      $("search-status").textContent = results.length ? `${results.length} ${results.length === 1 ? "message" : "messages"} found for “${term}”` : `Nothing found for “${term}”`;
    } catch (error) {
      list.replaceChildren();
      $("search-status").textContent = `Search failed: ${error.message}`;
    }
  }

  item(event) {
    const room = this.client.getRoom(event.room_id);
    const sender = room?.getMember(event.sender)?.name ?? event.sender;
    const button = el("button", "search-hit secondary");
    button.type = "button";
    button.dataset.eventId = event.event_id;
    button.dataset.roomId = event.room_id;
    button.append(
      el("span", "search-where", `${room ? roomTitle(room) : "A room"} · ${sender} · ${TIME.format(event.origin_server_ts)}`),
      el("span", "search-text", excerpt(plainText(event.content), 160)),
    );
    const li = el("li");
    li.append(button);
    return li;
  }

  /** The found message with the few before and after it, the found one marked. */
  async context(roomId, eventId) {
    const box = $("search-context");
    try {
      const answer = await this.matrix("GET", `/rooms/${encodeURIComponent(roomId)}/context/${encodeURIComponent(eventId)}?limit=6`);
      const room = this.client.getRoom(roomId);
      const events = [...(answer.events_before ?? []).reverse(), answer.event, ...(answer.events_after ?? [])].filter((event) => event?.type === "m.room.message");
      const list = el("ol", "context-list");
      list.setAttribute("aria-label", "The message in context");
      for (const event of events) {
        const li = el("li", event.event_id === eventId ? "context-item hit" : "context-item");
        if (event.event_id === eventId) li.setAttribute("aria-current", "true");
        li.append(el("span", "sender", room?.getMember(event.sender)?.name ?? event.sender), el("span", null, `: ${excerpt(plainText(event.content), 200)}`));
        list.append(li);
      }
      const open = el("button", null, `Go to ${room ? roomTitle(room) : "the room"}`);
      open.type = "button";
      open.addEventListener("click", () => {
        this.close();
        this.openRoom(roomId);
      });
      box.replaceChildren(el("h3", null, "In context"), list, open);
      list.querySelector(".hit")?.scrollIntoView({ block: "nearest" });
    } catch (error) {
      box.replaceChildren(el("p", "error", `Could not load the context: ${error.message}`));
    }
  }

  show() {
    $("search").hidden = false;
    this.onShow?.(true);
  }

  close() {
    $("search").hidden = true;
    this.onShow?.(false);
    $("search-input").focus();
  }

  async matrix(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${this.session.accessToken}` } };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await this.session.fetch(`${this.session.homeserverUrl}/_matrix/client/v3${path}`, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error ?? `HTTP ${response.status}`);
    return data;
  }
}
