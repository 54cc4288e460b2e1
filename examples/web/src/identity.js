// Which OpenMeet group or event a Matrix room is: from its canonical alias `#om_{tenant}.{group|event}.{slug}:server`
// or from its `org.openmeet.room` state event ({tenant, kind, slug}). Only such rooms take messages through the API.

const PREFIX = "om_";
const ALIAS = /^#([^:]+):.+$/;

export function roomIdentity(room) {
  const meta = room.currentState.getStateEvents("org.openmeet.room", "")?.getContent();
  if (meta?.kind && meta?.slug) return { tenant: meta.tenant, kind: meta.kind, slug: meta.slug };
  const identity = parseAlias(room.getCanonicalAlias());
  if (identity?.kind !== "direct" && meta?.kind !== "direct") return identity;
  // A direct room (`#om_{tenant}.direct.{a}={b}`): its slug is the other person's user id; it takes Matrix writes.
  const mine = localSlug(room.myUserId);
  const pair = identity?.slug.split("=") ?? [];
  const other = pair.find((slug) => slug !== mine) ?? room.getMembers().map((m) => localSlug(m.userId)).find((slug) => slug && slug !== mine);
  return { tenant: meta?.tenant ?? identity?.tenant, kind: "direct", slug: other ?? null, roomId: room.roomId };
}

/** The OpenMeet user id of a Matrix user id `@om_{tenant}.{user}:server`. */
export function localSlug(matrixUserId) {
  const localpart = /^@([^:]+):/.exec(matrixUserId ?? "")?.[1];
  if (!localpart?.startsWith(PREFIX)) return null;
  const dot = localpart.indexOf(".");
  return dot > 0 ? localpart.slice(dot + 1) : null;
}

export function parseAlias(alias) {
  const localpart = alias?.match(ALIAS)?.[1];
  if (!localpart?.startsWith(PREFIX)) return null;
  const [tenant, kind, ...rest] = localpart.slice(PREFIX.length).split(".");
  const slug = rest.join(".");
  if (!tenant || !slug || !["group", "event", "space", "direct"].includes(kind)) return null;
  return { tenant, kind, slug };
}

/**
 * Rooms grouped under their space: [{space: {id, name}, rooms: [...]}], then the rooms of no space.
 * A space the user has not joined is named after its group's room.
 */
export function groupBySpace(client) {
  const rooms = client.getRooms().filter((room) => room.getMyMembership() === "join");
  const chatRooms = rooms
    .filter((room) => !room.isSpaceRoom())
    .map((room) => ({ room, identity: roomIdentity(room) }))
    .filter(({ identity }) => identity && (identity.kind === "group" || identity.kind === "event"));
  const spaces = new Map();
  // A group's space (`#om_{tenant}.space.{slug}`) rather than the tenant's space, which holds every user.
  const joinedSpaces = rooms
    .filter((room) => room.isSpaceRoom())
    .sort((a, b) => Number(parseAlias(b.getCanonicalAlias())?.kind === "space") - Number(parseAlias(a.getCanonicalAlias())?.kind === "space"));
  const parentOf = (room) => {
    const joinedSpace = joinedSpaces.find((space) => space.currentState.getStateEvents("m.space.child", room.roomId)?.getContent()?.via);
    if (joinedSpace) return joinedSpace.roomId;
    const parents = room.currentState.getStateEvents("m.space.parent").filter((event) => event.getContent()?.via);
    return (parents.find((event) => event.getContent().canonical) ?? parents[0])?.getStateKey() ?? null;
  };
  const loose = [];
  for (const entry of chatRooms) {
    const spaceId = parentOf(entry.room);
    if (!spaceId) {
      loose.push(entry);
      continue;
    }
    if (!spaces.has(spaceId)) spaces.set(spaceId, { space: { id: spaceId, name: null }, rooms: [] });
    spaces.get(spaceId).rooms.push(entry);
  }
  for (const group of spaces.values()) {
    const joined = client.getRoom(group.space.id);
    const groupRoom = group.rooms.find(({ identity }) => identity.kind === "group");
    group.space.name = joined?.isSpaceRoom() ? joined.name : groupRoom ? `${groupRoom.room.name} (space)` : "Space";
    group.rooms.sort(byKindThenName);
  }
  loose.sort(byKindThenName);
  const result = [...spaces.values()].sort((a, b) => a.space.name.localeCompare(b.space.name));
  if (loose.length) result.push({ space: null, rooms: loose });
  return result;
}

function byKindThenName(a, b) {
  if (a.identity.kind !== b.identity.kind) return a.identity.kind === "group" ? -1 : 1;
  return a.room.name.localeCompare(b.room.name);
}

/** Direct rooms (one per pair of people, made through the API's direct route), by the other person's name. */
export function directRooms(client) {
  return client
    .getRooms()
    .filter((room) => room.getMyMembership() === "join" && !room.isSpaceRoom())
    .map((room) => ({ room, identity: roomIdentity(room) }))
    .filter(({ identity }) => identity?.kind === "direct")
    .sort((a, b) => a.room.name.localeCompare(b.room.name));
}

/** What a room is called: a direct room by the other person's name (it has no name of its own). */
export function roomTitle(room, identity = roomIdentity(room)) {
  if (identity?.kind !== "direct") return room.name;
  const other = room.getMembers().find((member) => localSlug(member.userId) === identity.slug);
  return other?.name ?? identity.slug ?? room.name;
}
