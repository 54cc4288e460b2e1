// Typings of @openmeet/chat-client (index.js). The API's shapes are in the repository's openapi.yaml.

/** A room the API knows: `/v1/groups/{slug}` or `/v1/events/{slug}`; a direct room also carries its Matrix id. */
export interface RoomRef {
  kind: "group" | "event" | "direct";
  slug: string;
  tenant?: string;
  roomId?: string;
}

/** A file in the homeserver's media repository, as `uploadMedia` answers it and `postMessage` takes it. */
export interface Attachment {
  contentUri: string;
  mimeType: string;
  size: number;
  filename?: string;
  width?: number;
  height?: number;
  thumbnailUri?: string;
}

/** What `postMessage` takes (the outbox stores it until the API accepted it). */
export interface OutgoingMessage {
  body: string;
  format?: "markdown" | "plain";
  replyToId?: string;
  threadRootId?: string;
  attachment?: Attachment;
}

export class ApiError extends Error {
  status: number;
  code: string;
  retryable: boolean;
  retryAfterMs?: number;
}
/** The API (or homeserver) was not reached: worth retrying later. */
export class NetworkError extends Error {}

export class Api {
  /** @param getToken the person's OpenMeet JWT; @param onUnauthorized re-mints it (called once on a 401). */
  constructor(getToken: () => Promise<string>, onUnauthorized?: () => Promise<unknown>, options?: { baseUrl?: string });
  request(method: string, path: string, options?: { json?: unknown; body?: BodyInit; headers?: Record<string, string>; query?: Record<string, string> }): Promise<any>;
  createSession(deviceId: string): Promise<SessionAnswer>;
  endSession(deviceId: string): Promise<null>;
  send(room: RoomRef, message: OutgoingMessage, idempotencyKey: string): Promise<{ status: number; eventId: string }>;
  edit(room: RoomRef, eventId: string, body: string): Promise<unknown>;
  remove(room: RoomRef, eventId: string): Promise<unknown>;
  react(room: RoomRef, eventId: string, key: string, on: boolean): Promise<unknown>;
  upload(room: RoomRef, file: Blob & { name: string }): Promise<Attachment & { status: number }>;
  notifications(room: RoomRef): Promise<{ level: "all" | "mentions" | "mute" }>;
  setNotifications(room: RoomRef, level: "all" | "mentions" | "mute"): Promise<unknown>;
}
export function roomPath(room: RoomRef): string;

/** `POST /v1/me/matrix-session`'s answer. */
export interface SessionAnswer {
  homeserverUrl: string;
  matrixUserId: string;
  deviceId: string;
  accessToken: string;
  refreshToken?: string;
  expiresInMs: number;
}

/** A device-bound Matrix session, renewed ahead of expiry and on M_UNKNOWN_TOKEN (Matrix /refresh, else the API). */
export class MatrixSession {
  constructor(api: Pick<Api, "createSession">, deviceId: string, onChange?: (session: MatrixSession, via: "session" | "refresh") => void);
  homeserverUrl: string;
  userId: string;
  deviceId: string;
  accessToken: string;
  refreshToken: string | null;
  renewals: number;
  start(): Promise<this>;
  renew(): Promise<void>;
  /** Give this to matrix-js-sdk's createClient({fetchFn}); also for media. */
  fetch: typeof globalThis.fetch;
  stop(): void;
}

export interface OutboxItem {
  key: string;
  room: RoomRef;
  roomId: string;
  message: OutgoingMessage;
  createdAt: number;
  state: "pending" | "sending" | "offline" | "retrying" | "failed" | "sent";
  eventId?: string;
  error?: string;
}

/** Messages kept in localStorage with their Idempotency-Key until the API (or homeserver) accepted them. */
export class Outbox {
  constructor(sender: Pick<Api, "send">, storageKey: string, onChange: () => void);
  items: OutboxItem[];
  add(room: RoomRef, roomId: string, message: OutgoingMessage): OutboxItem;
  discard(key: string): void;
  retry(key: string): void;
  forRoom(roomId: string): OutboxItem[];
  seen(eventId: string): boolean;
  flush(): Promise<void>;
}

/** Routes writes: the API for group and event rooms, the person's Matrix session for direct rooms. */
export class Writes {
  constructor(api: Api, session: MatrixSession, client: unknown);
  send(room: RoomRef, message: OutgoingMessage, key: string): Promise<{ eventId: string }>;
  edit(room: RoomRef, eventId: string, body: string): Promise<unknown>;
  remove(room: RoomRef, eventId: string): Promise<unknown>;
  react(room: RoomRef, eventId: string, key: string, on: boolean): Promise<unknown>;
  upload(room: RoomRef, file: File, onProgress?: (sent: number, total: number) => void): Promise<Attachment>;
  startDirect(otherUserId: string): Promise<{ roomId: string; kind: "direct"; slug: string }>;
}
export function directContent(message: OutgoingMessage): Record<string, unknown>;

/** Above this a file goes to the homeserver directly (the API's request limit). */
export const API_UPLOAD_LIMIT: number;
export class UploadError extends Error {
  status: number;
  errcode: string | null;
}
export function uploadLimit(session: MatrixSession): Promise<number | null>;
export function uploadDirect(session: MatrixSession, file: File, onProgress?: (sent: number, total: number) => void): Promise<Attachment>;

/** The page's /sync filter definition and the matrix-js-sdk Filter built from it. */
export const SYNC_FILTER: Record<string, unknown>;
export function syncFilter(userId: string): unknown;
