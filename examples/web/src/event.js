// An event room's event, from the room's own state (`org.openmeet.room`: {kind: "event", state, event: {startsAt,
// endsAt?, location?}}, written by the platform): when, where, and whether it was cancelled or has ended.

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

/** What the room header says about the event, or null for other rooms. */
export function eventSummary(room, now = Date.now()) {
  const meta = room?.currentState.getStateEvents("org.openmeet.room", "")?.getContent();
  if (meta?.kind !== "event" || !meta.event?.startsAt) return null;
  const starts = Date.parse(meta.event.startsAt);
  const ends = meta.event.endsAt ? Date.parse(meta.event.endsAt) : null;
  let status = "upcoming";
  if (meta.state === "cancelled") status = "cancelled";
  else if (meta.state === "archived" || (ends !== null && ends < now)) status = "ended";
  else if (starts <= now) status = "started";
  return {
    status,
    when: `${WHEN.format(starts)}${ends !== null ? ` – ${WHEN.format(ends)}` : ""}`,
    where: meta.event.location ?? null,
    startsAt: meta.event.startsAt,
  };
}

const STATUS = { upcoming: "Upcoming", started: "Happening now", ended: "Ended", cancelled: "Cancelled" };

export function renderEvent(container, room) {
  const summary = eventSummary(room);
  container.hidden = !summary;
  if (!summary) return container.replaceChildren();
  const status = document.createElement("strong");
  status.className = `event-status ${summary.status}`;
  status.textContent = STATUS[summary.status];
  const when = document.createElement("time");
  when.dateTime = summary.startsAt;
  when.textContent = summary.when;
  const parts = [status, " · ", when];
  if (summary.where) parts.push(" · ", Object.assign(document.createElement("span"), { className: "event-place", textContent: summary.where }));
  container.replaceChildren(...parts);
  container.dataset.status = summary.status;
}
