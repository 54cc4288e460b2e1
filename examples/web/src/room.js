// The open room: its messages (live), typing, receipts, the composer (through the API and the outbox), message
// actions (reply, react, thread, edit, delete), the thread pane and the room's notification setting.

import { renderEvent } from "./event.js";
import { roomIdentity, roomTitle } from "./identity.js";
import { excerpt, plainText, renderList, rovingFocus } from "./render.js";
import { buildModel } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const TYPING_EVERY_MS = 3_000;
const TYPING_TIMEOUT_MS = 6_000;

export class RoomView {
  constructor({ client, api, writes, session, outbox, announce, draftKey, startDirect }) {
    Object.assign(this, { client, api, writes, session, outbox, announce, draftKey, startDirect });
    this.me = client.getUserId();
    this.roomId = null;
    this.threadRootId = null;
    this.replyTo = null;
    this.editing = null;
    this.file = null;
    this.picking = null;
    this.confirming = null;
    this.lastTyping = 0;
    this.frame = 0;
    this.bind();
  }

  get room() {
    return this.roomId ? this.client.getRoom(this.roomId) : null;
  }

  get identity() {
    return this.room ? roomIdentity(this.room) : null;
  }

  open(roomId) {
    if (this.roomId !== roomId) {
      this.stopTyping();
      // Each room keeps its own draft (localStorage: across reloads); an unsent text is never lost by switching.
      $("composer-input").value = localStorage.getItem(this.draftKey + roomId) ?? "";
    }
    this.roomId = roomId;
    this.closeThread();
    this.clearComposerModes();
    const room = this.room;
    const title = room ? roomTitle(room, this.identity) : "Room";
    $("room-name").textContent = title;
    $("room-topic").textContent = room?.currentState.getStateEvents("m.room.topic", "")?.getContent()?.topic ?? "";
    renderEvent($("room-event"), room);
    $("composer-label").textContent = `Message ${title}`;
    for (const id of ["composer-input", "send", "attach"]) $(id).disabled = !room;
    $("messages").replaceChildren();
    this.loadNotifications();
    if (room && room.getLiveTimeline().getEvents().length < 20) this.loadOlder();
    this.render();
  }

  /** Renders on the next frame: a burst of sync events costs one render. */
  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const room = this.room;
    if (!room) return;
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const model = buildModel(room, this.me);
    for (const id of model.ids) this.outbox.seen(id);
    const decorate = (view) => ({ ...view, picking: view.eventId === this.picking, confirming: view.eventId === this.confirming });
    const pending = this.outbox.forRoom(room.roomId).filter((item) => !model.ids.has(item.eventId));
    const views = [...model.main.map(decorate), ...pending.filter((item) => !item.message.threadRootId).map((item) => this.pendingView(item))];
    const direct = this.identity?.kind === "direct";
    renderList(list, views, { session: this.session, actions: true, direct, previews: !direct });
    if (atBottom) list.scrollTop = list.scrollHeight;
    $("load-older").hidden = !room.getLiveTimeline().getPaginationToken("b");
    if (this.threadRootId) {
      const threadViews = [
        ...model.thread(this.threadRootId).map(decorate),
        ...pending.filter((item) => item.message.threadRootId === this.threadRootId).map((item) => this.pendingView(item)),
      ];
      renderList($("thread-messages"), threadViews, { session: this.session, actions: false });
    }
    this.drawTyping();
    this.markRead();
  }

  pendingView(item) {
    const member = this.room?.getMember(this.me);
    return {
      key: `pending:${item.key}`,
      outboxKey: item.key,
      eventId: item.eventId ?? null,
      sender: this.me,
      senderName: member?.name ?? this.me,
      avatarMxc: null,
      ts: item.createdAt,
      mine: true,
      body: item.message.body,
      html: null,
      attachment: null,
      pending: item.state,
      reactions: [],
      readBy: [],
    };
  }

  onTimeline(event, room, toStart, live) {
    if (room.roomId === this.roomId) this.render();
    if (!live || toStart || event.getType() !== "m.room.message" || event.getSender() === this.me) return;
    const relation = event.getContent()?.["m.relates_to"]?.rel_type;
    if (relation === "m.replace") return;
    const name = room.getMember(event.getSender())?.name ?? event.getSender();
    if (room.roomId === this.roomId) this.announce(`${name}${relation === "m.thread" ? " in a thread" : ""}: ${excerpt(plainText(event.getContent()), 160)}`);
    else this.announce(`New message from ${name} in ${room.name}`);
  }

  /** A limited sync (after a long gap) restarts the live timeline: fetch what the gap held. */
  onReset(room) {
    if (room.roomId === this.roomId) this.loadOlder();
  }

  changedEvent(roomId) {
    if (roomId === this.roomId) renderEvent($("room-event"), this.room);
  }

  changed(roomId) {
    if (roomId === this.roomId) this.render();
  }

  changedTyping(roomId) {
    if (roomId === this.roomId) this.drawTyping();
  }

  drawTyping() {
    const names = (this.room?.getMembers() ?? []).filter((member) => member.typing && member.userId !== this.me).map((member) => member.name);
    const text = !names.length ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
    if ($("typing").textContent !== text) $("typing").textContent = text;
  }

  /** Reading is seeing: the newest message of the open room is marked read while the page is visible. */
  markRead() {
    const room = this.room;
    if (!room || document.visibilityState !== "visible") return;
    const events = room.getLiveTimeline().getEvents();
    const newest = events.findLast((event) => event.getId() && !event.getId().startsWith("~") && event.getSender() !== this.me);
    if (!newest || this.readSent === newest.getId() || room.hasUserReadEvent(this.me, newest.getId())) return;
    this.readSent = newest.getId();
    this.client.sendReadReceipt(newest).catch(() => {
      this.readSent = null;
    });
  }

  async loadOlder() {
    const room = this.room;
    if (!room) return;
    try {
      await this.client.scrollback(room, 30);
    } catch {
      // Offline: the button stays and the reader can try again.
    }
    this.render();
  }

  async loadNotifications() {
    const select = $("notifications");
    select.disabled = true;
    const identity = this.identity;
    // Direct rooms have no notification route in the API: every message in them is for the person.
    select.closest("label").hidden = identity?.kind === "direct";
    if (!identity || identity.kind === "direct") return;
    try {
      const { level } = await this.api.notifications(identity);
      select.value = level;
      select.disabled = false;
    } catch {
      select.disabled = false;
    }
  }

  // --- composer -------------------------------------------------------------------------------------------

  async submit() {
    const input = $("composer-input");
    const text = input.value.trim();
    const room = this.room;
    const identity = this.identity;
    if (!room || !identity || (!text && !this.file)) return;
    this.stopTyping();
    try {
      if (this.editing) {
        await this.writes.edit(identity, this.editing, text);
      } else {
        const message = { body: text || this.file?.name, format: "markdown" };
        if (this.replyTo) message.replyToId = this.replyTo;
        if (this.file) message.attachment = await this.uploadFile(identity, this.file);
        this.outbox.add(identity, room.roomId, message);
      }
      input.value = "";
      localStorage.removeItem(this.draftKey + room.roomId);
      this.clearComposerModes();
    } catch (error) {
      this.announce(`Not sent: ${error.message}`);
      if (error.name === "UploadError" || error.errcode !== undefined) $("upload-error").textContent = error.message;
    }
    this.render();
  }

  /** Uploads with a progress bar (a large file goes to the homeserver directly and can take a while). */
  async uploadFile(identity, file) {
    const progress = $("upload-progress");
    $("upload-error").textContent = "";
    progress.hidden = false;
    progress.value = 0;
    progress.max = file.size || 1;
    this.announce(`Uploading ${file.name}…`);
    try {
      progress.dataset.events = "0";
      const attachment = await this.writes.upload(identity, file, (sent, total) => {
        progress.max = total || 1;
        progress.value = sent;
        progress.dataset.events = String(Number(progress.dataset.events) + 1);
      });
      progress.value = progress.max;
      return attachment;
    } finally {
      progress.hidden = true;
    }
  }

  typing() {
    const text = $("composer-input").value;
    if (!this.roomId) return;
    if (text) localStorage.setItem(this.draftKey + this.roomId, text);
    else localStorage.removeItem(this.draftKey + this.roomId);
    if (!text) return this.stopTyping();
    if (Date.now() - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = Date.now();
    this.client.sendTyping(this.roomId, true, TYPING_TIMEOUT_MS).catch(() => {});
  }

  stopTyping() {
    if (!this.lastTyping || !this.roomId) return;
    this.lastTyping = 0;
    this.client.sendTyping(this.roomId, false, 0).catch(() => {});
  }

  clearComposerModes() {
    this.replyTo = null;
    this.editing = null;
    this.file = null;
    $("attach").value = "";
    $("reply-bar").hidden = true;
    $("attachment-bar").hidden = true;
  }

  setBar(text) {
    $("reply-text").textContent = text;
    $("reply-bar").hidden = false;
    $("composer-input").focus();
  }

  // --- message actions ------------------------------------------------------------------------------------

  async act(action, li) {
    const identity = this.identity;
    const eventId = li.dataset.eventId;
    const name = li.querySelector(".sender")?.textContent ?? "";
    const text = li.querySelector(".body")?.textContent ?? "";
    try {
      if (action === "reply") {
        this.replyTo = eventId;
        this.editing = null;
        this.setBar(`Replying to ${name}: ${excerpt(text, 60)}`);
      } else if (action === "edit") {
        this.editing = eventId;
        this.replyTo = null;
        $("composer-input").value = text;
        this.setBar("Editing your message");
      } else if (action === "thread") {
        this.openThread(eventId);
      } else if (action === "react") {
        this.picking = this.picking === eventId ? null : eventId;
        this.render();
      } else if (action.startsWith("react:") || action.startsWith("reaction:")) {
        const key = action.slice(action.indexOf(":") + 1);
        const mine = li.querySelector(`[data-action="${CSS.escape(`reaction:${key}`)}"]`)?.getAttribute("aria-pressed") === "true";
        this.picking = null;
        await this.writes.react(identity, eventId, key, !mine);
      } else if (action === "delete") {
        this.confirming = eventId;
        this.render();
      } else if (action === "delete-cancel") {
        this.confirming = null;
        this.render();
      } else if (action === "delete-confirm") {
        this.confirming = null;
        await this.writes.remove(identity, eventId);
        this.announce("Message deleted");
      } else if (action === "direct") {
        await this.startDirect(li.dataset.senderSlug, name);
      } else if (action === "retry") {
        this.outbox.retry(li.dataset.key.replace(/^pending:/, ""));
      } else if (action === "discard") {
        this.outbox.discard(li.dataset.key.replace(/^pending:/, ""));
        this.render();
      }
    } catch (error) {
      this.announce(`That did not work: ${error.message}`);
    }
  }

  openThread(rootId) {
    this.threadRootId = rootId;
    $("thread").hidden = false;
    $("search").hidden = true;
    $("chat").classList.add("with-thread");
    $("chat").dataset.pane = "side";
    $("thread-messages").replaceChildren();
    this.draw();
    $("thread-input").focus();
  }

  closeThread() {
    if (this.threadRootId && $("chat").dataset.pane === "side") $("chat").dataset.pane = "room";
    this.threadRootId = null;
    $("thread").hidden = true;
    if ($("search").hidden) $("chat").classList.remove("with-thread");
  }

  bind() {
    const form = $("composer");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("composer-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Escape") {
        this.clearComposerModes();
      }
    });
    $("composer-input").addEventListener("input", () => this.typing());
    $("reply-cancel").addEventListener("click", () => {
      if (this.editing) $("composer-input").value = "";
      this.clearComposerModes();
      $("composer-input").focus();
    });
    $("attach").addEventListener("change", () => {
      this.file = $("attach").files?.[0] ?? null;
      $("upload-error").textContent = "";
      $("attachment-text").textContent = this.file ? `Attached: ${this.file.name}` : "";
      $("attachment-bar").hidden = !this.file;
    });
    $("attachment-cancel").addEventListener("click", () => {
      this.file = null;
      $("attach").value = "";
      $("attachment-bar").hidden = true;
    });
    $("load-older").addEventListener("click", () => this.loadOlder());
    $("notifications").addEventListener("change", async (event) => {
      const level = event.target.value;
      try {
        await this.api.setNotifications(this.identity, level);
        this.announce(`Notifications for ${this.room?.name}: ${event.target.selectedOptions[0].textContent}`);
      } catch (error) {
        this.announce(`Notifications not changed: ${error.message}`);
        this.loadNotifications();
      }
    });
    $("thread-close").addEventListener("click", () => {
      const root = this.threadRootId;
      this.closeThread();
      document.querySelector(`#messages [data-event-id="${CSS.escape(root ?? "")}"]`)?.focus();
    });
    $("thread-composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("thread-input").value.trim();
      const identity = this.identity;
      if (!text || !identity || !this.threadRootId) return;
      this.outbox.add(identity, this.roomId, { body: text, format: "markdown", threadRootId: this.threadRootId });
      $("thread-input").value = "";
      this.render();
    });
    for (const list of [$("messages"), $("thread-messages")]) {
      list.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-action]");
        const li = event.target.closest("li.message");
        if (button && li && !["download", "image"].includes(button.dataset.action)) this.act(button.dataset.action, li);
      });
      list.addEventListener("keydown", (event) => rovingFocus([...list.querySelectorAll(":scope > li.message")], event));
    }
  }
}
