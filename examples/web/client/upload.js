// Files too large for the API (API Gateway takes about 4.4 MiB of file in a 6 MB request) go straight to the
// homeserver's media repository with the person's own session, so the homeserver's own limits (size, quota, types)
// decide, for this page and for any other client holding the same token. XMLHttpRequest because fetch has no
// upload progress.

/** Above this, a file goes to the homeserver directly (the API's route stays the path for ordinary files). */
export const API_UPLOAD_LIMIT = 4 * 1024 * 1024;

export class UploadError extends Error {
  constructor(message, status, errcode) {
    super(message);
    this.status = status;
    this.errcode = errcode;
  }
}

/** The homeserver's upload size limit (`m.upload.size`), or null when it does not say. */
export async function uploadLimit(session) {
  try {
    const response = await session.fetch(`${session.homeserverUrl}/_matrix/client/v1/media/config`, {
      headers: { Authorization: `Bearer ${session.accessToken}` },
    });
    if (!response.ok) return null;
    const size = (await response.json())["m.upload.size"];
    return Number.isFinite(size) ? size : null;
  } catch {
    return null;
  }
}

/**
 * Uploads `file` to the homeserver as the person; answers an attachment as the API's `postMessage` takes it.
 * `onProgress(sent, total)` follows the upload. A refusal becomes an UploadError with a message for people.
 */
export async function uploadDirect(session, file, onProgress = () => {}) {
  const limit = await uploadLimit(session);
  if (limit !== null && file.size > limit) {
    throw new UploadError(`${file.name} is too large: the server takes files up to ${megabytes(limit)}.`, 413, "M_TOO_LARGE");
  }
  let answer = await send(session, file, onProgress);
  if (answer.status === 401 && answer.body?.errcode === "M_UNKNOWN_TOKEN") {
    await session.renew();
    answer = await send(session, file, onProgress);
  }
  if (answer.status !== 200 || !answer.body?.content_uri) throw refusal(file, answer, limit);
  const attachment = { contentUri: answer.body.content_uri, mimeType: file.type || "application/octet-stream", size: file.size, filename: file.name };
  return Object.assign(attachment, await dimensions(file));
}

function send(session, file, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${session.homeserverUrl}/_matrix/media/v3/upload?filename=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Authorization", `Bearer ${session.accessToken}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size));
    xhr.addEventListener("load", () => resolve({ status: xhr.status, body: json(xhr.responseText) }));
    // A connection the server closes early (e.g. refusing a body over its limit) is an error, not a load.
    xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
    xhr.addEventListener("abort", () => resolve({ status: 0, body: null }));
    xhr.send(file);
  });
}

function refusal(file, { status, body }, limit) {
  const errcode = body?.errcode ?? null;
  const said = body?.error ? ` (${body.error})` : "";
  if (status === 413 || errcode === "M_TOO_LARGE") {
    return new UploadError(`${file.name} is too large${limit ? `: the server takes files up to ${megabytes(limit)}` : ""}${said}.`, status, errcode);
  }
  if (errcode === "M_LIMIT_EXCEEDED" || errcode === "M_RESOURCE_LIMIT_EXCEEDED" || /quota/i.test(body?.error ?? "")) {
    return new UploadError(`${file.name} was refused: your storage quota is used up${said}.`, status, errcode);
  }
  if (status === 403 || status === 400) return new UploadError(`${file.name} was refused by the server${said}.`, status, errcode);
  if (status === 0) return new UploadError(`${file.name} could not be uploaded: the connection failed or the server refused it.`, 0, null);
  return new UploadError(`${file.name} could not be uploaded (HTTP ${status})${said}.`, status, errcode);
}

async function dimensions(file) {
  if (!file.type.startsWith("image/") || typeof createImageBitmap !== "function") return {};
  try {
    const bitmap = await createImageBitmap(file);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  } catch {
    return {};
  }
}

function megabytes(bytes) {
  return `${Math.round(bytes / 1024 / 1024)} MB`;
}

function json(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
