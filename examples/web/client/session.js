// The browser's Matrix session: created by POST /v1/me/matrix-session (device-bound, expiring), renewed without
// losing the sync position. Renewal tries Matrix's own refresh (POST /_matrix/client/v3/refresh) when the session
// has a refresh token, and falls back to asking the API again for the same deviceId (same Matrix device).
//
// matrix-js-sdk (v43) refreshes tokens only for OAuth 2.0 (MAS) sessions, so this wraps the SDK's fetch instead:
// a 401 M_UNKNOWN_TOKEN renews once and repeats the request with the new token, so the SDK (and its /sync loop)
// never sees the expiry. The session is also renewed ahead of its expiry.

const RENEW_BEFORE_MS = 30_000;

export class MatrixSession {
  constructor(api, deviceId, onChange) {
    this.api = api;
    this.deviceId = deviceId;
    this.onChange = onChange;
    this.renewals = 0;
    this.renewing = null;
    this.timer = null;
  }

  async start() {
    this.apply(await this.api.createSession(this.deviceId));
    return this;
  }

  apply(answer, via = "session") {
    this.homeserverUrl = answer.homeserverUrl ?? this.homeserverUrl;
    this.userId = answer.matrixUserId ?? this.userId;
    this.deviceId = answer.deviceId ?? this.deviceId;
    this.accessToken = answer.accessToken;
    this.refreshToken = answer.refreshToken ?? null;
    clearTimeout(this.timer);
    const expiresInMs = answer.expiresInMs;
    if (Number.isFinite(expiresInMs) && expiresInMs > 0) {
      // Ahead of the expiry by 30 s, or by a fifth of the lifetime when that is shorter (30 s in the local stack).
      const delay = expiresInMs - Math.min(RENEW_BEFORE_MS, expiresInMs / 5);
      this.timer = setTimeout(() => this.renew().catch(() => {}), delay);
    }
    this.onChange?.(this, via);
  }

  /** One renewal at a time; concurrent callers share it. */
  renew() {
    this.renewing ??= this.doRenew().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  async doRenew() {
    if (this.refreshToken) {
      try {
        const response = await fetch(`${this.homeserverUrl}/_matrix/client/v3/refresh`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: this.refreshToken }),
        });
        if (response.ok) {
          const data = await response.json();
          this.renewals += 1;
          this.apply(
            { accessToken: data.access_token, refreshToken: data.refresh_token ?? this.refreshToken, expiresInMs: data.expires_in_ms },
            "refresh",
          );
          return;
        }
      } catch {
        // Offline or the homeserver is away: the API below fails the same way and the caller retries later.
      }
    }
    const answer = await this.api.createSession(this.deviceId);
    this.renewals += 1;
    this.apply(answer, "session");
  }

  /** The fetch given to matrix-js-sdk (and used for media): renews on an unknown token and retries once. */
  fetch = async (input, init = {}) => {
    const sentWith = this.accessToken;
    const response = await fetch(input, withToken(init, sentWith));
    if (response.status !== 401 || !hasBearer(init)) return response;
    const errcode = await response
      .clone()
      .json()
      .then((body) => body.errcode)
      .catch(() => null);
    if (errcode !== "M_UNKNOWN_TOKEN") return response;
    if (this.accessToken === sentWith) await this.renew();
    return fetch(input, withToken(init, this.accessToken));
  };

  stop() {
    clearTimeout(this.timer);
  }
}

function hasBearer(init) {
  return new Headers(init.headers).has("Authorization");
}

/** The request with the current token (the SDK sets the one it knew when it built the request). */
function withToken(init, token) {
  const headers = new Headers(init.headers);
  if (!headers.has("Authorization")) return init;
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}
