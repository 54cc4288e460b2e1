// The homeserver's media are authenticated (Matrix 1.11): fetch them with the session's token and show them as
// blob: URLs. One fetch per URL and page.

const cache = new Map();

export function parseMxc(mxc) {
  const match = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc ?? "");
  return match ? { server: match[1], mediaId: match[2] } : null;
}

export function thumbnailPath(mxc, width, height, method = "scale") {
  const parsed = parseMxc(mxc);
  if (!parsed) return null;
  return `/_matrix/client/v1/media/thumbnail/${parsed.server}/${parsed.mediaId}?width=${width}&height=${height}&method=${method}`;
}

export function downloadPath(mxc, filename) {
  const parsed = parseMxc(mxc);
  if (!parsed) return null;
  const name = filename ? `/${encodeURIComponent(filename)}` : "";
  return `/_matrix/client/v1/media/download/${parsed.server}/${parsed.mediaId}${name}`;
}

/** A blob: URL of a homeserver media path, fetched with the session's token (renewed if need be). */
export function blobUrl(session, path) {
  if (!cache.has(path)) {
    const promise = session
      .fetch(`${session.homeserverUrl}${path}`, { headers: { Authorization: `Bearer ${session.accessToken}` } })
      .then((response) => {
        if (!response.ok) throw new Error(`media answered ${response.status}`);
        return response.blob();
      })
      .then((blob) => URL.createObjectURL(blob));
    promise.catch(() => cache.delete(path));
    cache.set(path, promise);
  }
  return cache.get(path);
}

export function humanSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
