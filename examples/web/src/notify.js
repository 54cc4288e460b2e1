// Unread badges, mention highlights and browser notifications. The counts are the homeserver's own (the room's
// `unread_notifications` in /sync, as matrix-js-sdk keeps them), so they agree with every other Matrix client and
// with the member's notification level (all, mentions, mute); a read receipt clears them.

import { NotificationCountType } from "matrix-js-sdk";
import { el, excerpt, plainText } from "./render.js";

/**
 * The room's unread and mention counts, as badges for its button in the room list (none when there are none).
 * Each badge shows a number and says what it counts to screen readers, so the button's name stays its text.
 */
export function roomBadges(room) {
  const total = room.getUnreadNotificationCount(NotificationCountType.Total) ?? 0;
  const highlight = room.getUnreadNotificationCount(NotificationCountType.Highlight) ?? 0;
  const badges = [];
  if (highlight > 0) badges.push(badge("highlight", highlight, `@${highlight}`, `${highlight === 1 ? "mention" : "mentions"} of you`));
  if (total > 0) badges.push(badge("unread", total, String(total), "unread"));
  return badges;
}

/** Both counts as one comparable value. */
export function roomCounts(room) {
  return `${room.getUnreadNotificationCount(NotificationCountType.Total) ?? 0}/${room.getUnreadNotificationCount(NotificationCountType.Highlight) ?? 0}`;
}

function badge(kind, count, shown, meaning) {
  const node = el("span", `badge ${kind}`);
  node.dataset.count = String(count);
  const visible = el("span", null, shown);
  visible.setAttribute("aria-hidden", "true");
  node.append(visible, el("span", "visually-hidden", `, ${count} ${meaning}`));
  return node;
}

/** Whether a message event mentions `me`: by `m.mentions` (what the API writes), or `@room`. */
export function mentions(event, me) {
  const content = event.getContent() ?? {};
  const declared = content["m.mentions"];
  return Boolean(declared?.user_ids?.includes(me) || declared?.room);
}

/**
 * Browser notifications for mentions while the tab is hidden. Permission is asked only when the person presses
 * the button (browsers refuse a request that is not a user gesture), and the button shows only while it can help.
 */
export class Notifier {
  constructor(button) {
    this.button = button;
    this.supported = typeof window.Notification === "function";
    button.addEventListener("click", async () => {
      if (!this.supported) return;
      await Notification.requestPermission();
      this.update();
    });
    this.update();
  }

  update() {
    this.button.hidden = !this.supported || Notification.permission !== "default";
  }

  /** A live message from someone else that mentions me, seen while the tab is hidden, becomes a notification. */
  onMessage(event, room, me, onOpen) {
    if (!this.supported || Notification.permission !== "granted" || document.visibilityState !== "hidden") return;
    if (event.getType() !== "m.room.message" || event.getSender() === me || !mentions(event, me)) return;
    if (event.getContent()?.["m.relates_to"]?.rel_type === "m.replace") return;
    const name = room.getMember(event.getSender())?.name ?? event.getSender();
    let notification;
    try {
      notification = new Notification(`${name} mentioned you in ${room.name}`, {
        body: excerpt(plainText(event.getContent()), 140),
        tag: event.getId(),
        lang: document.documentElement.lang,
      });
    } catch {
      // Some browsers only notify from a service worker: the badge and the highlight still tell.
      return;
    }
    notification.addEventListener("click", () => {
      window.focus();
      onOpen(room.roomId);
      notification.close();
    });
  }
}
