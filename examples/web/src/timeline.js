// The room's live timeline folded into what a reader sees: messages with their latest edit, deletion, reply,
// reactions, thread replies and read receipts. Relations are folded here (threads off in the SDK) so that one
// pass over the events explains every message on screen.

import { plainText } from "./render.js";

const MESSAGE = "m.room.message";

export function buildModel(room, me) {
  const events = room.getLiveTimeline().getEvents();
  const byId = new Map();
  const main = [];
  const threads = new Map();
  const edits = new Map();
  const reactions = new Map();
  const position = new Map();
  events.forEach((event, index) => position.set(event.getId(), index));

  for (const event of events) {
    const type = event.getType();
    const relation = event.getWireContent()?.["m.relates_to"];
    if (type === "m.reaction") {
      if (event.isRedacted() || relation?.rel_type !== "m.annotation") continue;
      if (!reactions.has(relation.event_id)) reactions.set(relation.event_id, new Map());
      const byKey = reactions.get(relation.event_id);
      if (!byKey.has(relation.key)) byKey.set(relation.key, new Set());
      byKey.get(relation.key).add(event.getSender());
      continue;
    }
    if (type !== MESSAGE) continue;
    if (relation?.rel_type === "m.replace" && !event.isRedacted()) {
      if (!edits.has(relation.event_id)) edits.set(relation.event_id, []);
      edits.get(relation.event_id).push(event);
      continue;
    }
    byId.set(event.getId(), event);
    if (relation?.rel_type === "m.thread" && relation.event_id) {
      if (!threads.has(relation.event_id)) threads.set(relation.event_id, []);
      threads.get(relation.event_id).push(event);
    } else {
      main.push(event);
    }
  }

  const view = (event) => messageView(room, me, event, { byId, edits, reactions, threads });
  const receiptsAt = receipts(room, me, main, position);
  return {
    main: main.map((event) => ({ ...view(event), readBy: receiptsAt.get(event.getId()) ?? [] })),
    thread: (rootId) => {
      const root = byId.get(rootId);
      return root ? [view(root), ...(threads.get(rootId) ?? []).map(view)] : [];
    },
    ids: new Set(byId.keys()),
    last: main.at(-1) ?? null,
  };
}

function messageView(room, me, event, { byId, edits, reactions, threads }) {
  const id = event.getId();
  const deleted = event.isRedacted();
  const original = event.getOriginalContent?.() ?? event.getContent();
  const sender = event.getSender();
  const latestEdit = (edits.get(id) ?? [])
    .filter((edit) => edit.getSender() === sender)
    .sort((a, b) => a.getTs() - b.getTs())
    .at(-1);
  const content = deleted ? {} : (latestEdit?.getContent()?.["m.new_content"] ?? original);
  const relatesTo = original?.["m.relates_to"];
  // In a thread, a reply to the previous message is only a fallback for clients without threads.
  const replyToId = relatesTo?.is_falling_back ? null : relatesTo?.["m.in_reply_to"]?.event_id;
  const replyTo = replyToId ? byId.get(replyToId) : null;
  const member = room.getMember(sender);
  const mentions = content?.["m.mentions"]?.user_ids ?? original?.["m.mentions"]?.user_ids ?? [];
  return {
    key: id,
    eventId: id,
    sender,
    senderName: member?.name ?? sender,
    avatarMxc: member?.getMxcAvatarUrl?.() ?? null,
    ts: event.getTs(),
    mine: sender === me,
    deleted,
    edited: Boolean(latestEdit) && !deleted,
    msgtype: content?.msgtype,
    body: stripReplyFallback(content?.body ?? ""),
    html: content?.format === "org.matrix.custom.html" ? content.formatted_body : null,
    attachment: attachmentOf(content),
    mentionsMe: mentions.includes(me),
    replyTo: replyToId
      ? {
          eventId: replyToId,
          senderName: replyTo ? (room.getMember(replyTo.getSender())?.name ?? replyTo.getSender()) : null,
          text: replyTo ? (replyTo.isRedacted() ? "Message deleted" : stripReplyFallback(plainText(replyTo.getContent()))) : null,
        }
      : null,
    reactions: [...(reactions.get(id) ?? new Map())]
      .filter(([, senders]) => senders.size > 0)
      .map(([key, senders]) => ({ key, count: senders.size, mine: senders.has(me) })),
    threadCount: threads.get(id)?.length ?? 0,
    inThread: original?.["m.relates_to"]?.rel_type === "m.thread",
  };
}

function attachmentOf(content) {
  if (!["m.image", "m.file", "m.video", "m.audio"].includes(content?.msgtype) || !content.url) return null;
  return {
    kind: content.msgtype,
    url: content.url,
    name: content.filename ?? content.body ?? "file",
    mimetype: content.info?.mimetype ?? "",
    size: content.info?.size,
    width: content.info?.w,
    height: content.info?.h,
  };
}

/** Each other member's read position, shown under the last message at or before it (not under their own). */
function receipts(room, me, main, position) {
  const at = new Map();
  for (const member of room.getJoinedMembers()) {
    if (member.userId === me) continue;
    const upTo = room.getEventReadUpTo(member.userId, true);
    const pos = upTo ? position.get(upTo) : undefined;
    if (pos === undefined) continue;
    const target = main.findLast((event) => position.get(event.getId()) <= pos && event.getSender() !== member.userId);
    if (!target) continue;
    if (!at.has(target.getId())) at.set(target.getId(), []);
    at.get(target.getId()).push(member.name);
  }
  return at;
}

/** Drops the quoted fallback older clients put at the top of a reply. */
function stripReplyFallback(body) {
  if (!body.startsWith("> ")) return body;
  const lines = body.split("\n");
  const rest = lines.findIndex((line) => !line.startsWith("> "));
  return rest === -1 ? body : lines.slice(rest).join("\n").replace(/^\n/, "");
}
