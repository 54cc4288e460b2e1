// Where each write goes. Group and event rooms take writes through the API (its checks, idempotency and outbox
// semantics); a direct room has no API message route, so the person writes there with their own Matrix session,
// the transaction id playing the Idempotency-Key's part (the homeserver answers a repeated PUT with the first
// event). Files too large for the API go to the homeserver directly in every room (upload.js).

import { ApiError, NetworkError } from "./api.js";
import { API_UPLOAD_LIMIT, uploadDirect } from "./upload.js";

export class Writes {
  constructor(api, session, client) {
    Object.assign(this, { api, session, client });
  }

  send(room, message, key) {
    if (room.kind !== "direct") return this.api.send(room, message, key);
    return this.matrix("PUT", `/rooms/${enc(room.roomId)}/send/m.room.message/${enc(key)}`, directContent(message)).then((answer) => ({ eventId: answer.event_id }));
  }

  edit(room, eventId, body) {
    if (room.kind !== "direct") return this.api.edit(room, eventId, body);
    const content = { msgtype: "m.text", body: `* ${body}`, "m.new_content": { msgtype: "m.text", body }, "m.relates_to": { rel_type: "m.replace", event_id: eventId } };
    return this.matrix("PUT", `/rooms/${enc(room.roomId)}/send/m.room.message/${txn()}`, content);
  }

  remove(room, eventId) {
    if (room.kind !== "direct") return this.api.remove(room, eventId);
    return this.matrix("PUT", `/rooms/${enc(room.roomId)}/redact/${enc(eventId)}/${txn()}`, {});
  }

  async react(room, eventId, key, on) {
    if (room.kind !== "direct") return this.api.react(room, eventId, key, on);
    if (on) {
      const content = { "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key } };
      return this.matrix("PUT", `/rooms/${enc(room.roomId)}/send/m.reaction/${txn()}`, content);
    }
    const me = this.client.getUserId();
    const mine = this.client
      .getRoom(room.roomId)
      ?.getLiveTimeline()
      .getEvents()
      .filter((event) => event.getType() === "m.reaction" && event.getSender() === me && !event.isRedacted())
      .filter((event) => event.getContent()?.["m.relates_to"]?.event_id === eventId && event.getContent()["m.relates_to"].key === key);
    for (const event of mine ?? []) await this.remove(room, event.getId());
  }

  /** An attachment for `send`: through the API up to its limit, else straight to the homeserver with progress. */
  async upload(room, file, onProgress) {
    if (room.kind === "direct" || file.size > API_UPLOAD_LIMIT) return uploadDirect(this.session, file, onProgress);
    const { status: _status, ...attachment } = await this.api.upload(room, file);
    return attachment;
  }

  /** The direct room of the caller and `otherUserId` (an OpenMeet user id), made on first use. */
  startDirect(otherUserId) {
    return this.api.request("POST", `/v1/me/direct/${enc(otherUserId)}`);
  }

  async matrix(method, path, body) {
    let response;
    try {
      response = await this.session.fetch(`${this.session.homeserverUrl}/_matrix/client/v3${path}`, {
        method,
        headers: { Authorization: `Bearer ${this.session.accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new NetworkError(`the homeserver is unreachable (${error.message})`);
    }
    const data = await response.json().catch(() => ({}));
    if (response.ok) return data;
    const retryAfter = Number(data?.retry_after_ms);
    throw new ApiError(response.status, data?.errcode ?? "http_error", data?.error ?? `HTTP ${response.status}`, response.status === 429 || response.status >= 500, Number.isFinite(retryAfter) ? retryAfter : undefined);
  }
}

/** A message as the API takes it (body, reply, thread, attachment), as Matrix content. Markdown stays plain text. */
export function directContent(message) {
  const content = { msgtype: "m.text", body: message.body ?? "", "m.mentions": {} };
  const file = message.attachment;
  if (file) {
    const type = file.mimeType ?? "";
    content.msgtype = type.startsWith("image/") ? "m.image" : type.startsWith("video/") ? "m.video" : type.startsWith("audio/") ? "m.audio" : "m.file";
    content.url = file.contentUri;
    content.filename = file.filename;
    content.body = message.body || file.filename;
    content.info = { mimetype: type, size: file.size, ...(file.width ? { w: file.width, h: file.height } : {}) };
  }
  if (message.threadRootId) {
    content["m.relates_to"] = { rel_type: "m.thread", event_id: message.threadRootId, is_falling_back: true, "m.in_reply_to": { event_id: message.threadRootId } };
  } else if (message.replyToId) {
    content["m.relates_to"] = { "m.in_reply_to": { event_id: message.replyToId } };
  }
  return content;
}

const enc = encodeURIComponent;
const txn = () => `web${crypto.randomUUID()}`;
