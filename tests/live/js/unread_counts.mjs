// matrix-js-sdk against a running Trellis, as Element starts up: log in, startClient(),
// wait until it syncs, then watch a room's unread notification count rise with another
// user's messages and reset after a read receipt. Driven by tests/live/test_js_sdk.py.
//
// Environment: SDK (the path of matrix-js-sdk's lib/index.js), HS_URL, ROOM_ID,
// READER and READER_PASSWORD (the user whose client starts), SENDER_TOKEN (the other
// user's access token; that user sends with plain HTTP).
// Prints one JSON line per step; exits non-zero on the first failure.

import { pathToFileURL } from "node:url";

const sdk = await import(pathToFileURL(process.env.SDK).href);
const { HS_URL, ROOM_ID, READER, READER_PASSWORD, SENDER_TOKEN } = process.env;
const STEP_TIMEOUT_MS = 30_000;

function step(name, details = {}) {
    console.log(JSON.stringify({ step: name, ...details }));
}

function fail(message) {
    console.log(JSON.stringify({ failed: message }));
    process.exit(1);
}

async function waitFor(what, check) {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

async function api(method, path, token, body) {
    const response = await fetch(`${HS_URL}/_matrix/client/v3${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) fail(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
}

// What the server itself says: the room's unread_notifications in a fresh /sync.
async function serverCount(token) {
    const body = await api("GET", "/sync?timeout=0", token);
    return body.rooms?.join?.[ROOM_ID]?.unread_notifications?.notification_count;
}

// Log in as a new device, as Element does.
const login = await sdk.createClient({ baseUrl: HS_URL }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: READER },
    password: READER_PASSWORD,
    initial_device_display_name: "matrix-js-sdk",
});
step("logged in", { user_id: login.user_id, device_id: login.device_id });

const client = sdk.createClient({
    baseUrl: HS_URL,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
});
const states = [];
client.on(sdk.ClientEvent.Sync, (state) => states.push(state));
await client.startClient({ initialSyncLimit: 10 });
await waitFor("the PREPARED or SYNCING state", () =>
    states.some((s) => s === sdk.SyncState.Prepared || s === sdk.SyncState.Syncing),
);
step("syncing", { states });

const room = await waitFor("the shared room", () => client.getRoom(ROOM_ID));
const total = () => room.getUnreadNotificationCount(sdk.NotificationCountType.Total);

// Start from nothing unread: a receipt on the room's latest event.
const latest = () => room.getLiveTimeline().getEvents().at(-1);
await client.sendReadReceipt(latest());
await waitFor("no unread notifications at the start", () => total() === 0);
step("read", { count: total() });

// Three messages from the other user: three notifications.
const bodies = ["one", "two", "three"];
for (const [n, body] of bodies.entries()) {
    await api("PUT", `/rooms/${encodeURIComponent(ROOM_ID)}/send/m.room.message/js${n}`,
        SENDER_TOKEN, { msgtype: "m.text", body });
}
await waitFor("the unread notification count to reach 3", () => total() === 3);
await waitFor("the server's count to be 3", async () => (await serverCount(login.access_token)) === 3);
step("unread", { count: total() });

// The read receipt on the last of them clears the count, in the client and the server.
const last = await waitFor("the last message in the timeline", () => {
    const event = latest();
    return event?.getContent()?.body === "three" ? event : undefined;
});
await client.sendReadReceipt(last);
await waitFor("the server's count to reset", async () => (await serverCount(login.access_token)) === 0);
await waitFor("the client's count to reset", () => total() === 0);
step("reset", { count: total() });

client.stopClient();
step("done");
process.exit(0);
