// matrix-js-sdk fetches TURN credentials from a running Trellis the way Element does
// before a call (MatrixClient.checkTurnServers, GET /voip/turnServer) and prints the
// ICE servers it would give RTCPeerConnection, as one JSON line. Driven by
// tests/live/test_turn_coturn.py, which then allocates a relay on coturn with them.
//
// Environment: SDK (the path of matrix-js-sdk's lib/index.js), HS_URL, USER_ID, PASSWORD.

import { pathToFileURL } from "node:url";

const sdk = await import(pathToFileURL(process.env.SDK).href);
const { HS_URL, USER_ID, PASSWORD } = process.env;

function fail(message) {
    console.log(JSON.stringify({ failed: message }));
    process.exit(1);
}

const login = await sdk.createClient({ baseUrl: HS_URL }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: USER_ID },
    password: PASSWORD,
    initial_device_display_name: "matrix-js-sdk",
});
const client = sdk.createClient({
    baseUrl: HS_URL,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
});
// Node has no WebRTC, so the SDK thinks it cannot call and would not ask; in a browser
// this is true from the start.
client.canSupportVoip = true;
const errors = [];
client.on(sdk.ClientEvent.TurnServersError, (error) => errors.push(String(error)));
const good = await client.checkTurnServers();
if (!good) fail(`no TURN credentials: ${JSON.stringify(errors)}`);
console.log(
    JSON.stringify({ servers: client.getTurnServers(), expiry_ms: client.getTurnServersExpiry() }),
);
process.exit(0);
