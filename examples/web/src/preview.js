// Link previews: the homeserver fetches the page (GET /_matrix/client/v1/media/preview_url, within its IP blacklist
// and size cap) and answers its og: tags; the page shows them as a card under the message. Not in direct rooms: a
// private link would make the homeserver fetch it, which the link's owner can see.

import { blobUrl, thumbnailPath } from "./media.js";
import { el } from "./render.js";

const MAX_PER_MESSAGE = 2;
const cache = new Map();

/** Cards for the first links of a rendered message body (`container`), filled in when the homeserver answers. */
export function addPreviews(container, session) {
  const urls = [...new Set([...container.querySelectorAll("a[href^='http']")].filter((a) => !a.classList.contains("pill")).map((a) => a.href))];
  for (const url of urls.slice(0, MAX_PER_MESSAGE)) {
    const card = el("a", "preview-card");
    card.href = url;
    card.rel = "noopener noreferrer nofollow";
    card.target = "_blank";
    card.hidden = true;
    container.append(card);
    preview(session, url)
      .then((og) => fill(card, og, url, session))
      .catch(() => card.remove());
  }
}

function preview(session, url) {
  if (!cache.has(url)) {
    const path = `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`;
    const promise = session
      .fetch(`${session.homeserverUrl}${path}`, { headers: { Authorization: `Bearer ${session.accessToken}` } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`preview answered ${response.status}`))));
    promise.catch(() => cache.delete(url));
    cache.set(url, promise);
  }
  return cache.get(url);
}

function fill(card, og, url, session) {
  const title = og["og:title"];
  if (!title) return card.remove();
  const text = el("span", "preview-text");
  text.append(el("strong", "preview-title", title));
  if (og["og:description"]) text.append(el("span", "preview-description", og["og:description"]));
  text.append(el("span", "preview-site", og["og:site_name"] ?? new URL(url).hostname));
  const image = og["og:image"] ? thumbnailPath(og["og:image"], 96, 96, "crop") : null;
  if (image) {
    const img = document.createElement("img");
    img.alt = "";
    img.width = 64;
    img.height = 64;
    blobUrl(session, image).then((src) => (img.src = src)).catch(() => img.remove());
    card.append(img);
  }
  card.append(text);
  card.hidden = false;
}
