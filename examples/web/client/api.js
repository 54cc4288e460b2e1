// The OpenMeet API as a browser calls it: a user JWT, JSON bodies, typed errors. Writes go through here
// (send, edit, delete, react, upload, notifications); real time comes from the homeserver directly (session.js).

export class ApiError extends Error {
  constructor(status, code, message, retryable, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A fetch that never reached the API (offline, DNS, connection reset): worth retrying later. */
export class NetworkError extends Error {}

export class Api {
  /** @param {() => Promise<string>} getToken the caller's JWT (re-minted by the caller when it expires) */
  constructor(getToken, onUnauthorized, { baseUrl } = {}) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
    /** The API's origin: the page's own by default (the local gateway serves both). */
    this.baseUrl = baseUrl ?? globalThis.location?.origin;
  }

  async request(method, path, { json, body, headers = {}, query } = {}) {
    const url = new URL(path, this.baseUrl);
    for (const [key, value] of Object.entries(query ?? {})) url.searchParams.set(key, value);
    for (let attempt = 0; ; attempt += 1) {
      const init = { method, headers: { ...headers, Authorization: `Bearer ${await this.getToken()}` } };
      if (json !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(json);
      } else if (body !== undefined) {
        init.body = body;
      }
      let response;
      try {
        response = await fetch(url, init);
      } catch (error) {
        throw new NetworkError(`the API is unreachable (${error.message})`);
      }
      if (response.status === 401 && attempt === 0 && this.onUnauthorized) {
        await this.onUnauthorized();
        continue;
      }
      if (response.status === 204) return null;
      const text = await response.text();
      const data = text ? safeJson(text) : null;
      if (response.ok) return { status: response.status, ...data };
      const error = data?.error ?? {};
      const retryAfter = Number(response.headers.get("Retry-After"));
      throw new ApiError(
        response.status,
        error.code ?? "http_error",
        error.message ?? `HTTP ${response.status}`,
        Boolean(error.retryable) || response.status === 429 || response.status >= 500,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
      );
    }
  }

  createSession(deviceId) {
    return this.request("POST", "/v1/me/matrix-session", { json: { deviceId } });
  }

  endSession(deviceId) {
    return this.request("DELETE", "/v1/me/matrix-session", { json: { deviceId } });
  }

  send(room, message, idempotencyKey) {
    return this.request("POST", `${roomPath(room)}/messages`, {
      json: message,
      headers: { "Idempotency-Key": idempotencyKey },
    });
  }

  edit(room, eventId, body) {
    return this.request("PUT", `${roomPath(room)}/messages/${encodeURIComponent(eventId)}`, {
      json: { body, format: "markdown" },
    });
  }

  remove(room, eventId) {
    return this.request("DELETE", `${roomPath(room)}/messages/${encodeURIComponent(eventId)}`);
  }

  react(room, eventId, key, on) {
    const path = `${roomPath(room)}/messages/${encodeURIComponent(eventId)}/reactions/${encodeURIComponent(key)}`;
    return this.request(on ? "PUT" : "DELETE", path);
  }

  upload(room, file) {
    return this.request("POST", `${roomPath(room)}/media`, {
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
      query: { filename: file.name },
    });
  }

  notifications(room) {
    return this.request("GET", `${roomPath(room)}/notifications`);
  }

  setNotifications(room, level) {
    return this.request("PUT", `${roomPath(room)}/notifications`, { json: { level } });
  }
}

/** `/v1/groups/{slug}` or `/v1/events/{slug}` of a room identity (see identity.js). */
export function roomPath({ kind, slug }) {
  return `/v1/${kind === "event" ? "events" : "groups"}/${encodeURIComponent(slug)}`;
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: text.slice(0, 200) } };
  }
}
