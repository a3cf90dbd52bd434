// The demo web client's page: log in, rooms, timeline, calls. State comes from a
// long-polling /sync loop; the page is redrawn from the store after every response.

import { Api } from "./api.js";
import { Call } from "./call.js";
import { Store } from "./store.js";

const SESSION_KEY = "trellis.webclient.session";
const SYNC_TIMEOUT_MS = 30000;
const SYNC_RETRY_MS = 3000;
const SYNC_FILTER = { room: { timeline: { limit: 50 } } };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function showError(where, error) {
  $(where).textContent = error ? error.message || String(error) : "";
}

const client = {
  api: new Api(window.location.origin),
  store: null,
  selected: null, // room ID
  syncAbort: null,
  call: null,
  readUpTo: new Map(), // room ID -> event ID we sent a read receipt for
  placedCalls: new Set(), // IDs of the calls this page placed
};

// --- Session ---------------------------------------------------------------------------

function start(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  client.api.session = session;
  client.store = new Store(session.user_id);
  client.selected = null;
  $("login-view").hidden = true;
  $("main-view").hidden = false;
  $("whoami").textContent = session.user_id;
  render();
  syncLoop();
}

function stop() {
  client.syncAbort?.abort();
  client.syncAbort = null;
  client.call?.hangup();
  client.call = null;
  client.store = null;
  client.api.session = null;
  localStorage.removeItem(SESSION_KEY);
  $("main-view").hidden = true;
  $("login-view").hidden = false;
  renderCall();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("login-error", null);
  const user = $("username").value.trim();
  const password = $("password").value;
  const registering = e.submitter?.value === "register";
  try {
    const session = registering
      ? await client.api.register(user, password)
      : await client.api.login(user, password);
    $("password").value = "";
    start(session);
  } catch (error) {
    showError("login-error", error);
  }
});

$("logout-button").addEventListener("click", async () => {
  try {
    await client.api.logout();
  } catch (error) {
    console.warn("logout:", error);
  }
  stop();
});

// --- Sync ------------------------------------------------------------------------------

async function syncLoop() {
  const abort = new AbortController();
  client.syncAbort = abort;
  const store = client.store;
  while (!abort.signal.aborted) {
    try {
      const response = await client.api.sync(
        store.nextBatch,
        SYNC_TIMEOUT_MS,
        SYNC_FILTER,
        abort.signal,
      );
      const fresh = store.apply(response);
      $("sync-status").textContent = "";
      // Call events are looked at once the whole response is applied (the spec's
      // "Call Event Liveness"): an invite answered or hung up in the same batch never rings.
      for (const { roomId, event, arrived } of fresh) onCallEvent(roomId, event, arrived);
      render();
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error.errcode === "M_UNKNOWN_TOKEN") {
        stop();
        showError("login-error", error);
        return;
      }
      $("sync-status").textContent = `sync failed (${error.message}), retrying`;
      await new Promise((resolve) => setTimeout(resolve, SYNC_RETRY_MS));
    }
  }
}

// --- Rooms -----------------------------------------------------------------------------

async function roomAction(where, action) {
  showError(where, null);
  try {
    return await action();
  } catch (error) {
    showError(where, error);
    return null;
  }
}

$("create-room-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const created = await roomAction("sidebar-error", () =>
    client.api.createRoom($("new-room-name").value.trim()),
  );
  if (created) {
    $("new-room-name").value = "";
    select(created.room_id);
  }
});

$("join-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const joined = await roomAction("sidebar-error", () =>
    client.api.join($("join-target").value.trim()),
  );
  if (joined) {
    $("join-target").value = "";
    select(joined.room_id);
  }
});

$("invite-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const done = await roomAction("room-error", () =>
    client.api.invite(client.selected, $("invite-user").value.trim()),
  );
  if (done) $("invite-user").value = "";
});

$("leave-button").addEventListener("click", async () => {
  const roomId = client.selected;
  if (client.call?.roomId === roomId) client.call.hangup();
  const left = await roomAction("room-error", () => client.api.leave(roomId));
  if (left) {
    client.store.rooms.delete(roomId);
    select(null);
  }
});

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = $("message-input").value;
  if (!body.trim()) return;
  const sent = await roomAction("room-error", () =>
    client.api.send(client.selected, "m.room.message", { msgtype: "m.text", body }),
  );
  if (sent) $("message-input").value = "";
});

function select(roomId) {
  client.selected = roomId;
  showError("room-error", null);
  render();
}

async function acceptInvite(roomId) {
  const joined = await roomAction("sidebar-error", () => client.api.join(roomId));
  if (joined) select(joined.room_id);
}

async function declineInvite(roomId) {
  const left = await roomAction("sidebar-error", () => client.api.leave(roomId));
  if (left) {
    client.store.rooms.delete(roomId);
    render();
  }
}

// Sends a read receipt for the newest event in the room on screen, which clears its
// unread count on the server (and so in the next /sync).
function markRead(room) {
  const last = room.timeline.at(-1);
  if (!last || client.readUpTo.get(room.roomId) === last.event_id) return;
  client.readUpTo.set(room.roomId, last.event_id);
  room.unread = 0;
  client.api.readReceipt(room.roomId, last.event_id).catch((e) => console.warn("receipt:", e));
}

// --- Rendering -------------------------------------------------------------------------

function render() {
  if (!client.store) return;
  renderRoomList();
  renderRoom();
  renderCall();
}

function renderRoomList() {
  const me = client.store.myUserId;
  const items = client.store.sortedRooms().map((room) => {
    const invited = room.membership === "invite";
    const li = el(
      "li",
      {
        "data-room-id": room.roomId,
        class: [
          invited ? "invite" : "",
          room.unread > 0 ? "unread" : "",
          room.roomId === client.selected ? "selected" : "",
        ].join(" "),
      },
      el("span", { class: "room-name" }, room.name(me)),
    );
    if (invited) {
      li.append(
        el("span", { class: "muted" }, `invited by ${room.inviter || "someone"}`),
        el("button", { type: "button", class: "accept", onclick: () => acceptInvite(room.roomId) }, "Join"),
        el("button", { type: "button", class: "decline", onclick: () => declineInvite(room.roomId) }, "Decline"),
      );
    } else {
      if (room.unread > 0) li.append(el("span", { class: "badge" }, String(room.unread)));
      li.addEventListener("click", () => select(room.roomId));
    }
    return li;
  });
  $("room-list").replaceChildren(...items);
}

function renderRoom() {
  const room = client.selected && client.store.rooms.get(client.selected);
  const view = $("room-view");
  if (!room || room.membership !== "join") {
    view.hidden = true;
    return;
  }
  view.hidden = false;
  view.dataset.roomId = room.roomId;
  const me = client.store.myUserId;
  const members = room.joinedMembers();
  $("room-title").textContent = room.name(me);
  $("room-members").textContent = `${members.length} member${members.length === 1 ? "" : "s"}`;
  // A call is placed in a room with exactly one other member (the spec's security
  // considerations: anyone else could answer it).
  const callable = members.length === 2 && !client.call;
  $("call-button").disabled = !callable;

  // Redrawn only when it changed; then it scrolls to the newest event.
  const timeline = $("timeline");
  const newest = `${room.roomId} ${room.timeline.at(-1)?.event_id} ${room.timeline.length}`;
  if (timeline.dataset.newest !== newest) {
    timeline.dataset.newest = newest;
    timeline.replaceChildren(...room.timeline.map((event) => renderEvent(room, event)));
    timeline.scrollTop = timeline.scrollHeight;
  }
  if (document.visibilityState === "visible") markRead(room);
}

function renderEvent(room, event) {
  const attrs = { "data-event-id": event.event_id, "data-event-type": event.type };
  const sender = el("span", { class: "sender" }, room.displayName(event.sender));
  const content = event.content || {};
  if (event.type === "m.room.message") {
    return el("li", { ...attrs, class: "message" }, sender, content.body ?? "");
  }
  return el("li", { ...attrs, class: "notice" }, sender, describe(event));
}

function describe(event) {
  const c = event.content || {};
  switch (event.type) {
    case "m.room.member": {
      const target = event.state_key === event.sender ? "" : ` ${event.state_key}`;
      const verbs = { join: "joined", invite: "invited", leave: target ? "removed" : "left" };
      return `${verbs[c.membership] || c.membership}${target}`;
    }
    case "m.room.name":
      return `named the room "${c.name}"`;
    case "m.room.create":
      return "created the room";
    case "m.call.invite":
      return `m.call.invite (call ${c.call_id})`;
    case "m.call.hangup":
      return `m.call.hangup (${c.reason || "user_hangup"})`;
    case "m.call.candidates":
      return `m.call.candidates (${(c.candidates || []).length})`;
    default:
      return event.type;
  }
}

// --- Calls -----------------------------------------------------------------------------

// Why a call ended, when the user did not end it and should know.
const CALL_FAILURES = {
  user_media_failed: "no camera or microphone",
  ice_failed: "no connection could be made",
  ice_timeout: "the connection was lost",
  invite_timeout: "no answer",
  unknown_error: "something went wrong",
};

function setCall(call) {
  client.call = call;
  call.addEventListener("change", () => {
    if (!call.active && client.call === call) {
      client.call = null;
      const failure = CALL_FAILURES[call.endReason];
      if (failure) showError("room-error", new Error(`Call ended: ${failure}`));
    }
    render();
  });
}

$("call-button").addEventListener("click", () => {
  const room = client.store.rooms.get(client.selected);
  const me = client.store.myUserId;
  const other = room?.joinedMembers().find((id) => id !== me);
  if (!other || client.call) return;
  const call = Call.outbound(client.api, room.roomId);
  client.placedCalls.add(call.callId);
  setCall(call);
  render();
  call.place(other);
});

$("answer-button").addEventListener("click", () => client.call?.answer());
$("reject-button").addEventListener("click", () => client.call?.reject());
$("hangup-button").addEventListener("click", () => client.call?.hangup());

function onCallEvent(roomId, event, arrived) {
  if (event.type === "m.room.member" && client.call?.roomId === roomId) {
    if (!["join", "invite"].includes(event.content?.membership)) {
      client.call.memberLeft(event.state_key);
    }
    return;
  }
  if (!event.type.startsWith("m.call.")) return;
  const call = client.call;
  const callId = event.content?.call_id;
  if (event.type === "m.call.invite" && callId !== call?.callId) {
    if (client.placedCalls.has(callId)) return; // the echo of a call we placed
    const incoming = Call.fromInvite(client.api, roomId, event, arrived);
    if (!incoming) return;
    if (!call) {
      setCall(incoming);
    } else if (
      // Glare: both sides called in the same room. An invite not yet sent gives way;
      // of two sent, the lesser call ID wins. The winner is answered on the user's behalf.
      call.direction === "outbound" &&
      call.roomId === roomId &&
      (call.state === "preparing" || (call.state === "inviting" && incoming.callId < call.callId))
    ) {
      call.hangup("user_hangup");
      setCall(incoming);
      incoming.answer();
    }
    return;
  }
  call?.handle(event);
}

function renderCall() {
  const call = client.call;
  const section = $("call");
  section.hidden = !call;
  section.dataset.callState = call?.state || "";
  section.dataset.iceState = call?.iceState || "";
  section.dataset.callId = call?.callId || "";
  if (!call) {
    $("remote-video").srcObject = null;
    $("local-video").srcObject = null;
    return;
  }
  const room = client.store?.rooms.get(call.roomId);
  const who = call.opponentUserId ? room?.displayName(call.opponentUserId) : "";
  const roomName = room ? room.name(client.store.myUserId) : call.roomId;
  const status = {
    preparing: `Calling ${who}…`,
    inviting: `Ringing ${who}…`,
    ringing: `${who} is calling (${roomName})`,
    connecting: `Connecting with ${who}…`,
    connected: `In a call with ${who}`,
  }[call.state];
  $("call-status").textContent = `${status} — ICE: ${call.iceState}`;
  $("answer-button").hidden = call.state !== "ringing";
  $("reject-button").hidden = call.state !== "ringing";
  $("hangup-button").hidden = call.state === "ringing";
  document.querySelector("#call .videos").hidden = !call.localStream;
  if ($("local-video").srcObject !== call.localStream) $("local-video").srcObject = call.localStream;
  if ($("remote-video").srcObject !== call.remoteStream) {
    $("remote-video").srcObject = call.remoteStream;
    $("remote-video").play().catch(() => {});
  }
}

// --- Start -----------------------------------------------------------------------------

const saved = localStorage.getItem(SESSION_KEY);
if (saved) {
  start(JSON.parse(saved));
} else {
  $("login-view").hidden = false;
}
