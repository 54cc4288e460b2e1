// Message list rendering: keyed by event id, each item rebuilt only when what it shows changed, and the focus
// kept on the same control across a rebuild (so live updates never steal a keyboard user's place).

import DOMPurify from "dompurify";
import { localSlug } from "./identity.js";
import { blobUrl, downloadPath, humanSize, thumbnailPath } from "./media.js";
import { addPreviews } from "./preview.js";

export const QUICK_REACTIONS = [
  ["👍", "thumbs up"],
  ["❤️", "heart"],
  ["😄", "smile"],
  ["🎉", "party"],
  ["👀", "eyes"],
];
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const FULL_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const SANITIZE = {
  ALLOWED_TAGS: ["a", "b", "strong", "i", "em", "u", "s", "del", "code", "pre", "p", "br", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "span", "table", "thead", "tbody", "tr", "th", "td"],
  ALLOWED_ATTR: ["href", "title"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
};

/** @param ctx {{session, me, listLabel, actions: boolean}} */
export function renderList(list, views, ctx) {
  const existing = new Map([...list.children].map((li) => [li.dataset.key, li]));
  const wanted = new Set(views.map((view) => view.key));
  for (const [key, li] of existing) if (!wanted.has(key)) li.remove();
  let previous = null;
  for (const view of views) {
    let li = existing.get(view.key);
    const signature = JSON.stringify(view);
    if (!li) {
      li = document.createElement("li");
      li.dataset.key = view.key;
      li.className = "message";
      li.tabIndex = -1;
    }
    if (li.dataset.signature !== signature) {
      const focused = li.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      fill(li, view, ctx);
      li.dataset.signature = signature;
      if (focused) li.querySelector(`[data-action="${CSS.escape(focused)}"]`)?.focus();
    }
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== li) list.insertBefore(li, expected);
    previous = li;
  }
  // Roving tab stop: exactly one message is in the tab order (the last one unless the reader moved).
  const items = [...list.children];
  if (items.length && !items.some((li) => li.tabIndex === 0)) items.at(-1).tabIndex = 0;
}

function fill(li, view, ctx) {
  li.replaceChildren();
  li.classList.toggle("mine", Boolean(view.mine));
  li.classList.toggle("mentions-me", Boolean(view.mentionsMe));
  li.classList.toggle("pending", Boolean(view.pending));
  // The platform's notices (event reminders, changes, cancellation) read differently from people's messages.
  li.classList.toggle("notice", view.msgtype === "m.notice");
  li.dataset.eventId = view.eventId ?? "";
  li.setAttribute("aria-label", label(view));

  li.append(avatar(view.senderName, view.avatarMxc, ctx.session));
  const meta = el("div", "meta");
  // Someone else's name starts (or opens) a direct chat with them.
  const slug = !view.mine && ctx.actions && !ctx.direct ? localSlug(view.sender) : null;
  if (slug) {
    const sender = el("button", "link sender", view.senderName);
    sender.type = "button";
    sender.dataset.action = "direct";
    sender.title = `Direct message with ${view.senderName}`;
    li.dataset.senderSlug = slug;
    meta.append(sender);
  } else {
    meta.append(el("span", "sender", view.senderName));
  }
  const time = el("time", null, TIME.format(view.ts));
  time.dateTime = new Date(view.ts).toISOString();
  time.title = FULL_TIME.format(view.ts);
  meta.append(time);
  if (view.edited) meta.append(el("span", "state edited", "(edited)"));
  if (view.msgtype === "m.notice") meta.append(el("span", "state notice-tag", "notice"));
  if (view.mentionsMe) meta.append(el("span", "state", "mentions you"));
  if (view.pending) meta.append(el("span", "state pending-state", pendingText(view.pending)));
  li.append(meta);

  if (view.replyTo) {
    const quote = el("blockquote", "reply-quote");
    quote.textContent = view.replyTo.senderName
      ? `In reply to ${view.replyTo.senderName}: ${excerpt(view.replyTo.text)}`
      : "In reply to an older message";
    li.append(quote);
  }
  li.append(body(view, ctx));

  const extras = el("div", "extras");
  for (const reaction of view.reactions ?? []) {
    const button = el("button", "reaction", `${reaction.key} ${reaction.count}`);
    button.type = "button";
    button.dataset.action = `reaction:${reaction.key}`;
    button.setAttribute("aria-pressed", String(reaction.mine));
    button.setAttribute("aria-label", `${reaction.key} ${reaction.count} ${reaction.count === 1 ? "person" : "people"}${reaction.mine ? ", including you" : ""}`);
    extras.append(button);
  }
  if (view.threadCount && ctx.actions) {
    const thread = el("button", "link thread-link", `${view.threadCount} ${view.threadCount === 1 ? "reply" : "replies"} in thread`);
    thread.type = "button";
    thread.dataset.action = "thread";
    extras.append(thread);
  }
  if (view.readBy?.length) extras.append(el("span", "receipts", `Seen by ${view.readBy.join(", ")}`));
  if (extras.childElementCount) li.append(extras);

  if (view.pending) {
    if (view.pending === "failed") li.append(actions([["retry", "Retry"], ["discard", "Discard"]]));
    return;
  }
  if (view.deleted) return;
  if (view.confirming) {
    li.append(actions([["delete-confirm", "Confirm delete"], ["delete-cancel", "Keep message"]]));
    return;
  }
  const list = [["reply", "Reply"], ["react", "React"]];
  if (ctx.actions) list.push(["thread", "Reply in thread"]);
  if (view.mine) list.push(["edit", "Edit"], ["delete", "Delete"]);
  const bar = actions(list);
  bar.querySelector('[data-action="react"]').setAttribute("aria-expanded", String(Boolean(view.picking)));
  li.append(bar);
  if (view.picking) {
    const picker = el("div", "reaction-picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Pick a reaction");
    for (const [key, name] of QUICK_REACTIONS) {
      const button = el("button", "reaction", key);
      button.type = "button";
      button.dataset.action = `react:${key}`;
      button.setAttribute("aria-label", `React with ${name}`);
      picker.append(button);
    }
    li.append(picker);
  }
}

function body(view, ctx) {
  const container = el("div", "body");
  if (view.deleted) {
    container.append(el("span", "deleted", "Message deleted"));
    return container;
  }
  if (view.attachment) {
    container.append(attachment(view.attachment, ctx.session));
    if (view.body && view.body !== view.attachment.name) container.append(el("p", null, view.body));
    return container;
  }
  if (view.html) {
    container.innerHTML = DOMPurify.sanitize(view.html.replace(/<mx-reply>[\s\S]*?<\/mx-reply>/g, ""), SANITIZE);
    for (const link of container.querySelectorAll("a")) {
      if (link.href.startsWith("https://matrix.to/#/@")) link.classList.add("pill");
      link.rel = "noopener noreferrer nofollow";
      link.target = "_blank";
    }
    if (ctx.previews && ctx.session) addPreviews(container, ctx.session);
  } else {
    for (const line of view.body.split("\n")) container.append(el("p", null, line));
  }
  return container;
}

function attachment(file, session) {
  const wrap = el("div", "attachment");
  if (file.kind !== "m.image") {
    const card = el("p", "file-card");
    card.append(el("span", "file-name", file.name), el("span", "file-size", file.size ? humanSize(file.size) : ""));
    wrap.append(card);
  }
  if (file.kind === "m.image") {
    const img = document.createElement("img");
    img.alt = file.name;
    if (file.width && file.height) {
      const scale = Math.min(1, 320 / file.width, 240 / file.height);
      img.width = Math.round(file.width * scale);
      img.height = Math.round(file.height * scale);
    }
    // The homeserver's thumbnail; the file itself when it cannot make one (e.g. an image it cannot decode).
    const thumbnail = thumbnailPath(file.url, 320, 240);
    if (thumbnail) {
      blobUrl(session, thumbnail)
        .catch(() => blobUrl(session, downloadPath(file.url, file.name)))
        .then((url) => (img.src = url))
        .catch(() => (img.alt = `${file.name} (not available)`));
    }
    // The image opens large in a dialog (Esc closes it), from the full file rather than the thumbnail.
    const open = el("button", "image-open");
    open.type = "button";
    open.dataset.action = "image";
    open.setAttribute("aria-label", `Open ${file.name} large`);
    open.append(img);
    open.addEventListener("click", () => openImage(file, session));
    wrap.append(open);
  }
  const download = el("button", "link", `Download ${file.name}${file.size ? ` (${humanSize(file.size)})` : ""}`);
  download.type = "button";
  download.dataset.action = "download";
  download.addEventListener("click", async () => {
    const path = downloadPath(file.url, file.name);
    if (!path) return;
    const link = document.createElement("a");
    link.href = await blobUrl(session, path);
    link.download = file.name;
    link.click();
  });
  wrap.append(download);
  return wrap;
}

async function openImage(file, session) {
  const dialog = document.getElementById("image-viewer");
  const img = dialog.querySelector("img");
  img.alt = file.name;
  img.removeAttribute("src");
  dialog.querySelector(".caption").textContent = `${file.name}${file.size ? ` (${humanSize(file.size)})` : ""}`;
  dialog.showModal();
  const path = downloadPath(file.url, file.name);
  if (path) img.src = await blobUrl(session, path).catch(() => "");
}

export function avatar(name, mxc, session) {
  const span = el("span", "avatar");
  span.setAttribute("aria-hidden", "true");
  span.textContent = initials(name);
  span.style.background = colour(name);
  const path = mxc && session ? thumbnailPath(mxc, 64, 64, "crop") : null;
  if (path) {
    blobUrl(session, path)
      .then((url) => {
        const img = document.createElement("img");
        img.alt = "";
        img.src = url;
        span.replaceChildren(img);
      })
      .catch(() => {});
  }
  return span;
}

function actions(list) {
  const bar = el("div", "actions");
  for (const [action, text] of list) {
    const button = el("button", "secondary", text);
    button.type = "button";
    button.dataset.action = action;
    bar.append(button);
  }
  return bar;
}

function label(view) {
  const what = view.deleted ? "deleted message" : view.attachment ? `file ${view.attachment.name}` : excerpt(view.body, 200);
  return `${view.senderName}, ${TIME.format(view.ts)}: ${what}${view.edited ? " (edited)" : ""}`;
}

function pendingText(state) {
  return { pending: "Sending…", sending: "Sending…", offline: "Waiting for connection", retrying: "Retrying…", sent: "Sent", failed: "Not sent" }[state] ?? state;
}

/** What a message says as plain text (its sanitised HTML's text when it has HTML), e.g. for announcements. */
export function plainText(content) {
  if (content?.format !== "org.matrix.custom.html" || !content.formatted_body) return content?.body ?? "";
  const html = DOMPurify.sanitize(content.formatted_body.replace(/<mx-reply>[\s\S]*?<\/mx-reply>/g, ""), SANITIZE);
  return new DOMParser().parseFromString(html, "text/html").body.textContent ?? "";
}

export function excerpt(text, length = 80) {
  const flat = (text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

function initials(name) {
  return (name ?? "?")
    .replace(/^@/, "")
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
}

/** Dark enough for white initials (contrast over 4.5:1). */
function colour(name) {
  const palette = ["#1e3a8a", "#7c2d12", "#14532d", "#581c87", "#831843", "#134e4a", "#374151"];
  let hash = 0;
  for (const char of name ?? "") hash = (hash * 31 + char.charCodeAt(0)) | 0;
  return palette[Math.abs(hash) % palette.length];
}

/**
 * Roving tab stop: arrow keys move the focus through `items` (one of them in the tab order), Home/End jump to
 * the ends. Used for the room list and the message lists.
 */
export function rovingFocus(items, event) {
  const index = items.indexOf(document.activeElement);
  if (index === -1) return;
  const next = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: items.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  const target = items[Math.max(0, Math.min(items.length - 1, next))];
  for (const item of items) item.tabIndex = item === target ? 0 : -1;
  target.focus();
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
