// The example chat page: sign in as a demo user, open a Matrix session through the API, sync directly with the
// homeserver (matrix-js-sdk), send through the API. See README.md, "The example chat page".

import { ClientEvent, createClient, RoomEvent, RoomMemberEvent, RoomStateEvent, SyncState } from "matrix-js-sdk";
import { Api, MatrixSession, Outbox, Writes } from "../client/index.js";
import { directRooms, groupBySpace, localSlug, roomTitle } from "./identity.js";
import { Notifier, roomBadges, roomCounts } from "./notify.js";
import { avatar, el, excerpt, rovingFocus } from "./render.js";
import { RoomView } from "./room.js";
import { Search } from "./search.js";
import { DisplaySettings } from "./settings.js";
import { syncFilter } from "./sync-filter.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const state = { tenant: null, user: null, jwt: null, client: null, session: null, outbox: null, view: null, writes: null, api: null };
const notifier = new Notifier($("enable-notifications"));
const display = new DisplaySettings($("display-form"));

async function showSignIn() {
  $("sign-in").hidden = false;
  $("chat").hidden = true;
  $("whoami").hidden = true;
  setConnection("idle", "Not signed in");
  const list = $("demo-users");
  try {
    const response = await fetch("/local/demo/users");
    if (!response.ok) throw new Error(`the demo sign-in answered ${response.status}`);
    const { tenant, users } = await response.json();
    state.tenant = params.get("tenant") ?? tenant;
    list.replaceChildren(
      ...users.map((user) => {
        const button = el("button", "secondary");
        button.type = "button";
        button.dataset.user = user.userId;
        button.append(avatar(user.displayName), el("span", null, `Sign in as ${user.displayName}`));
        button.addEventListener("click", () => signIn(user.userId));
        const item = el("li");
        item.append(button);
        return item;
      }),
    );
  } catch (error) {
    $("sign-in-error").textContent = `Could not load the demo users: ${error.message}. Is the local stack running?`;
  }
}

async function mintJwt() {
  const response = await fetch("/local/demo/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ userId: state.user, tenant: state.tenant }),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data?.error?.message ?? `HTTP ${response.status}`);
  state.jwt = data.token;
  state.displayName = data.displayName;
  sessionStorage.setItem("openmeet-demo", JSON.stringify({ tenant: state.tenant, user: state.user }));
}

async function signIn(user) {
  state.user = user;
  $("sign-in-error").textContent = "";
  setConnection("connecting", "Signing in…");
  try {
    await mintJwt();
    display.load(state.tenant, user);
    const api = new Api(async () => state.jwt, mintJwt);
    const deviceKey = `openmeet-device:${state.tenant}:${user}`;
    const deviceId = localStorage.getItem(deviceKey) ?? `WEB${crypto.randomUUID().replaceAll("-", "").slice(0, 10).toUpperCase()}`;
    localStorage.setItem(deviceKey, deviceId);
    state.session = await new MatrixSession(api, deviceId, onSessionChange).start();
    state.api = api;
    state.writes = new Writes(api, state.session, null);
    state.outbox = new Outbox(state.writes, `openmeet-outbox:${state.tenant}:${user}`, () => {
      state.view?.render();
      updateConnection();
    });
    startClient(api);
  } catch (error) {
    $("sign-in-error").textContent = `Signing in failed: ${error.message}`;
    setConnection("error", "Not signed in");
  }
}

function onSessionChange(session, via) {
  state.client?.setAccessToken(session.accessToken);
  // Renewal is invisible to the reader; the count and the way it went are kept for diagnostics (and the test).
  $("connection").dataset.renewals = String(session.renewals);
  $("connection").dataset.renewedVia = via;
}

function startClient(api) {
  const { session } = state;
  const client = createClient({
    baseUrl: session.homeserverUrl,
    accessToken: session.accessToken,
    userId: session.userId,
    deviceId: session.deviceId,
    fetchFn: session.fetch,
    useAuthorizationHeader: true,
  });
  state.client = client;
  state.writes.client = client;
  const draftKey = `openmeet-draft:${state.tenant}:${state.user}:`;
  state.view = new RoomView({ client, api, writes: state.writes, session, outbox: state.outbox, announce, draftKey, startDirect });

  state.search = new Search({ client, session, openRoom, onShow: showSearch });
  $("sign-in").hidden = true;
  $("chat").hidden = false;
  $("search-form").hidden = false;
  $("phone-nav").hidden = false;
  showPane("rooms");
  $("whoami").hidden = false;
  $("whoami-name").textContent = state.displayName;
  $("whoami-avatar").replaceWith(Object.assign(avatar(state.displayName), { id: "whoami-avatar" }));

  client.on(ClientEvent.Sync, (syncState) => {
    if (syncState === SyncState.Prepared) {
      renderRooms();
      const rooms = [...document.querySelectorAll(".room-button")];
      const wanted = rooms.find((button) => button.dataset.roomId === sessionStorage.getItem("openmeet-room")) ?? rooms[0];
      if (wanted && !state.view.roomId) openRoom(wanted.dataset.roomId, { show: Boolean(sessionStorage.getItem("openmeet-room")) });
      state.outbox.flush();
    }
    updateConnection();
  });
  client.on(RoomEvent.Timeline, (event, room, toStart, removed, data) => {
    if (!room) return;
    state.view.onTimeline(event, room, Boolean(toStart), data?.liveEvent);
    if (data?.liveEvent && !toStart) notifier.onMessage(event, room, client.getUserId(), openRoom);
  });
  // The client does not re-emit rooms' count changes: each sync compares them and redraws the list if they moved.
  let counts = "";
  client.on(ClientEvent.Sync, () => {
    const now = client.getRooms().map((room) => `${room.roomId}:${roomCounts(room)}`).join();
    if (now !== counts) renderRoomsSoon();
    counts = now;
  });
  client.on(ClientEvent.AccountData, (event) => event.getType() === "m.direct" && renderRoomsSoon());
  client.on(RoomEvent.Redaction, (_event, room) => room && state.view.changed(room.roomId));
  client.on(RoomEvent.Receipt, (_event, room) => state.view.changed(room.roomId));
  client.on(RoomEvent.TimelineReset, (room) => room && state.view.onReset(room));
  client.on(RoomMemberEvent.Typing, (_event, member) => state.view.changedTyping(member.roomId));
  client.on(RoomEvent.MyMembership, () => renderRoomsSoon());
  client.on(RoomStateEvent.Events, (event) => {
    if (["m.room.name", "m.room.canonical_alias", "m.space.child", "m.space.parent", "org.openmeet.room"].includes(event.getType())) renderRooms();
    if (event.getType() === "org.openmeet.room") state.view.changedEvent(event.getRoomId());
  });
  client.startClient({ initialSyncLimit: 30, lazyLoadMembers: true, filter: syncFilter(session.userId) });
}

function renderRooms() {
  const client = state.client;
  if (!client) return;
  const container = $("room-list");
  const groups = groupBySpace(client);
  const nodes = [];
  const direct = directRooms(client);
  if (direct.length) groups.push({ space: null, direct: true, rooms: direct });
  groups.forEach((group, index) => {
    const headingId = `space-${index}`;
    nodes.push(el("h3", "space-label", group.direct ? "Direct messages" : group.space ? `Space: ${group.space.name}` : "Other rooms"));
    nodes.at(-1).id = headingId;
    const list = el("ul", "room-group");
    list.setAttribute("aria-labelledby", headingId);
    for (const { room, identity } of group.rooms) {
      const button = el("button", "room-button");
      button.type = "button";
      button.dataset.roomId = room.roomId;
      button.dataset.slug = identity.slug;
      button.dataset.kind = identity.kind;
      const title = roomTitle(room, identity);
      if (identity.kind === "direct") {
        const other = room.getMembers().find((member) => localSlug(member.userId) === identity.slug);
        button.append(avatar(title, other?.getMxcAvatarUrl?.() ?? null, state.session));
      }
      button.append(el("span", "name", title), el("span", "kind", identity.kind), ...roomBadges(room));
      button.setAttribute("aria-current", String(room.roomId === state.view?.roomId));
      button.tabIndex = room.roomId === state.view?.roomId ? 0 : -1;
      button.addEventListener("click", () => openRoom(room.roomId));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
    nodes.push(list);
  });
  if (!groups.length) nodes.push(el("p", "hint", "No rooms yet."));
  const focusedRoom = document.activeElement?.dataset?.roomId;
  container.replaceChildren(...nodes);
  const buttons = [...container.querySelectorAll(".room-button")];
  if (buttons.length && !buttons.some((button) => button.tabIndex === 0)) buttons[0].tabIndex = 0;
  if (focusedRoom) buttons.find((button) => button.dataset.roomId === focusedRoom)?.focus();
}

let roomsFrame = 0;
function renderRoomsSoon() {
  roomsFrame ||= requestAnimationFrame(() => {
    roomsFrame = 0;
    renderRooms();
    if (waitingFor && state.client?.getRoom(waitingFor)?.getMyMembership() === "join") openRoom(waitingFor);
  });
}

function openRoom(roomId, { show = true } = {}) {
  if (waitingFor === roomId) waitingFor = null;
  sessionStorage.setItem("openmeet-room", roomId);
  state.view.open(roomId);
  renderRooms();
  if (show) showPane("room");
}

/** Phones show one pane at a time (room list, the room, or search/thread), switched from a bar at the bottom. */
function showPane(pane) {
  $("chat").dataset.pane = pane;
  for (const button of $("phone-nav").querySelectorAll("button")) button.setAttribute("aria-current", String(button.dataset.pane === pane));
}
$("phone-nav").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-pane]");
  if (!button) return;
  if (button.dataset.pane === "rooms" || button.dataset.pane === "room") state.search?.close();
  showPane(button.dataset.pane);
});

function showSearch(open) {
  if (open) state.view.closeThread();
  $("chat").classList.toggle("with-thread", open);
  if (open) showPane("side");
  else if ($("chat").dataset.pane === "side") showPane("room");
}

/** A direct room with `otherUserId` (made by the API on first use), opened once this session's sync has it. */
let waitingFor = null;
async function startDirect(otherUserId, name) {
  announce(`Opening a direct chat with ${name}…`);
  try {
    const room = await state.writes.startDirect(otherUserId);
    waitingFor = room.roomId;
    renderRoomsSoon();
  } catch (error) {
    announce(`Could not start a direct chat with ${name}: ${error.message}`);
  }
}

// Rooms: arrow keys move between rooms (one tab stop), Enter/Space opens (native button).
$("room-list").addEventListener("keydown", (event) => rovingFocus([...$("room-list").querySelectorAll(".room-button")], event));

function updateConnection() {
  const client = state.client;
  if (!client) return;
  const waiting = state.outbox?.items.length ?? 0;
  const suffix = waiting ? ` · ${waiting} message${waiting === 1 ? "" : "s"} waiting to send` : "";
  const sync = client.getSyncState();
  if (sync === SyncState.Error || sync === SyncState.Reconnecting || !navigator.onLine) {
    setConnection("offline", `Offline, reconnecting…${suffix}`);
  } else if (sync === SyncState.Catchup) {
    setConnection("catchup", `Catching up…${suffix}`);
  } else if (sync === SyncState.Prepared || sync === SyncState.Syncing) {
    setConnection("online", `Connected${suffix}`);
  } else {
    setConnection("connecting", `Connecting…${suffix}`);
  }
}

function setConnection(stateName, text) {
  const node = $("connection");
  node.dataset.state = stateName;
  if (node.textContent !== text) node.textContent = text;
}

/** New messages and state changes, read out politely by screen readers (only the latest few are kept). */
function announce(text) {
  const region = $("announcer");
  region.append(el("p", null, excerpt(text, 200)));
  while (region.childElementCount > 3) region.firstElementChild.remove();
}

window.addEventListener("online", () => {
  state.client?.retryImmediately();
  state.outbox?.flush();
  updateConnection();
});
window.addEventListener("offline", updateConnection);
document.addEventListener("visibilitychange", () => state.view?.markRead());

$("sign-out").addEventListener("click", async () => {
  const { client, session } = state;
  client?.stopClient();
  session?.stop();
  sessionStorage.removeItem("openmeet-demo");
  sessionStorage.removeItem("openmeet-room");
  $("search-form").hidden = true;
  $("phone-nav").hidden = true;
  $("search").hidden = true;
  try {
    await new Api(async () => state.jwt).endSession(session.deviceId);
  } catch {
    // Offline: the device's tokens expire on their own.
  }
  Object.assign(state, { client: null, session: null, outbox: null, view: null, jwt: null });
  showSignIn();
});

const remembered = JSON.parse(sessionStorage.getItem("openmeet-demo") ?? "null");
if (remembered?.user && (!params.get("tenant") || params.get("tenant") === remembered.tenant)) {
  state.tenant = remembered.tenant;
  signIn(remembered.user);
} else {
  showSignIn();
}
