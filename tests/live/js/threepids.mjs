// matrix-js-sdk's own 3PID calls against a running Trellis that mails its links: register
// with an email address through the SDK's InteractiveAuth (as Element does), list the
// account's 3PIDs, log in by the address, reset the forgotten password by email with
// setPassword, log in with the new one, and add a second address with addThreePidOnly
// behind a password UIA stage. Driven by tests/live/test_js_sdk_threepids.py.
//
// Environment: SDK (the path of matrix-js-sdk's lib/index.js), HS_URL, USERNAME,
// PASSWORD, NEW_PASSWORD, EMAIL, SECOND_EMAIL.
//
// Handshake with the test: whenever a mail has been asked for, the script prints
// {"await": "link", "to": <address>} and reads one line from stdin; the test reads the
// mail at its SMTP server, opens the link, and then writes that line. Prints one JSON
// line per step; exits non-zero on the first failure.

import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const sdk = await import(pathToFileURL(process.env.SDK).href);
const { HS_URL, USERNAME, PASSWORD, NEW_PASSWORD, EMAIL, SECOND_EMAIL } = process.env;
const STEP_TIMEOUT_MS = 30_000;

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function step(name, details = {}) {
    console.log(JSON.stringify({ step: name, ...details }));
}

function fail(message) {
    console.log(JSON.stringify({ failed: message }));
    process.exit(1);
}

function check(condition, message) {
    if (!condition) fail(message);
}

// Ask the test to open the link mailed to ``address``; resolves once it has.
async function linkOpened(address) {
    console.log(JSON.stringify({ await: "link", to: address }));
    const { value, done } = await stdinLines.next();
    check(!done && value.trim() === "opened", `the test did not open the link to ${address}`);
}

async function waitFor(what, get) {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
        const value = await get();
        if (value) return value;
        if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
}

function describe(error) {
    return `${error.httpStatus ?? ""} ${error.errcode ?? ""} ${error.message}`;
}

async function expectRejection(what, promise) {
    try {
        await promise;
    } catch (error) {
        return error;
    }
    fail(`${what} succeeded`);
}

const anonymous = sdk.createClient({ baseUrl: HS_URL });

function loginByEmail(address, password) {
    return anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.thirdparty", medium: "email", address },
        password,
    });
}

// 1. Register with the email address, the SDK choosing the email flow from its inputs,
//    asking for the mail itself (requestRegisterEmailToken) and polling until the link
//    has been opened.
let registered;
{
    const secret = anonymous.generateClientSecret();
    const stages = [];
    const auth = new sdk.InteractiveAuth({
        matrixClient: anonymous,
        inputs: { emailAddress: EMAIL },
        clientSecret: secret,
        doRequest: (authDict) =>
            anonymous.registerRequest({
                username: USERNAME,
                password: PASSWORD,
                initial_device_display_name: "matrix-js-sdk 3PIDs",
                auth: authDict ?? undefined,
            }),
        stateUpdated: (stage, status) => stages.push({ stage, ...status }),
        requestEmailToken: (email, clientSecret, attempt) =>
            anonymous.requestRegisterEmailToken(email, clientSecret, attempt),
    });
    const done = auth.attemptAuth();
    done.catch((error) => fail(`registration: ${describe(error)}`));
    const sid = await waitFor("the registration mail to be asked for", () => auth.getEmailSid());
    check(
        stages.some((s) => s.stage === "m.login.email.identity"),
        `no email stage: ${JSON.stringify(stages)}`,
    );
    // Before the link is opened the stage fails: the server has not seen it validated.
    const early = await expectRejection(
        "registering before the link was opened",
        anonymous.registerRequest({
            auth: {
                type: "m.login.email.identity",
                threepid_creds: { sid, client_secret: secret },
                session: auth.getSessionId(),
            },
        }),
    );
    check(early.errcode === "M_THREEPID_AUTH_FAILED", `before the link: ${describe(early)}`);
    step("registration mail requested", { sid });
    await linkOpened(EMAIL);
    let finished = false;
    done.then(() => {
        finished = true;
    });
    await waitFor("the registration to complete", async () => {
        if (!finished) await auth.poll();
        return finished;
    });
    registered = await done;
    step("registered", { user_id: registered.user_id });
}

// 2. The new account lists the address.
const client = sdk.createClient({
    baseUrl: HS_URL,
    accessToken: registered.access_token,
    userId: registered.user_id,
    deviceId: registered.device_id,
});
{
    const { threepids } = await client.getThreePids();
    check(
        threepids.length === 1 && threepids[0].medium === "email" && threepids[0].address === EMAIL,
        `getThreePids: ${JSON.stringify(threepids)}`,
    );
    step("listed", { threepids: threepids.map((t) => t.address) });
}

// 3. Log in by the address.
{
    const login = await loginByEmail(EMAIL, PASSWORD);
    check(login.user_id === registered.user_id, `logged in as ${login.user_id}`);
    step("logged in by email");
}

// 4. The password is forgotten: a mail to the address, then setPassword with the email
//    stage from a client without an access token.
{
    const secret = anonymous.generateClientSecret();
    const { sid } = await anonymous.requestPasswordEmailToken(EMAIL, secret, 1);
    const creds = { sid, client_secret: secret };
    const early = await expectRejection(
        "setPassword before the link was opened",
        anonymous.setPassword({ type: "m.login.email.identity", threepid_creds: creds }, NEW_PASSWORD),
    );
    check(early.errcode === "M_THREEPID_AUTH_FAILED", `before the link: ${describe(early)}`);
    step("reset mail requested", { sid });
    await linkOpened(EMAIL);
    await anonymous.setPassword(
        { type: "m.login.email.identity", threepid_creds: creds, session: early.data.session },
        NEW_PASSWORD,
    );
    step("password reset");
}

// 5. The new password logs in; the old one does not, nor the old access token
//    (logout_devices defaults to true).
let fresh;
{
    fresh = await loginByEmail(EMAIL, NEW_PASSWORD);
    check(fresh.user_id === registered.user_id, `logged in as ${fresh.user_id}`);
    const old = await expectRejection("the old password", loginByEmail(EMAIL, PASSWORD));
    check(old.errcode === "M_FORBIDDEN", `the old password: ${describe(old)}`);
    const ended = await expectRejection("the old access token", client.whoami());
    check(ended.errcode === "M_UNKNOWN_TOKEN", `the old access token: ${describe(ended)}`);
    step("logged in with the new password");
}

// 6. A second address, added with addThreePidOnly behind a password stage.
{
    const user = sdk.createClient({
        baseUrl: HS_URL,
        accessToken: fresh.access_token,
        userId: fresh.user_id,
        deviceId: fresh.device_id,
    });
    const secret = user.generateClientSecret();
    const { sid } = await user.requestAdd3pidEmailToken(SECOND_EMAIL, secret, 1);
    step("add mail requested", { sid });
    await linkOpened(SECOND_EMAIL);
    const challenge = await expectRejection(
        "addThreePidOnly without auth",
        user.addThreePidOnly({ sid, client_secret: secret }),
    );
    check(challenge.httpStatus === 401, `without auth: ${describe(challenge)}`);
    check(
        challenge.data.flows.some((f) => f.stages.includes("m.login.password")),
        `flows: ${JSON.stringify(challenge.data.flows)}`,
    );
    await user.addThreePidOnly({
        sid,
        client_secret: secret,
        auth: {
            type: "m.login.password",
            identifier: { type: "m.id.user", user: fresh.user_id },
            password: NEW_PASSWORD,
            session: challenge.data.session,
        },
    });
    const { threepids } = await user.getThreePids();
    const addresses = threepids.map((t) => t.address).sort();
    check(
        JSON.stringify(addresses) === JSON.stringify([EMAIL, SECOND_EMAIL].sort()),
        `getThreePids after adding: ${JSON.stringify(threepids)}`,
    );
    const second = await loginByEmail(SECOND_EMAIL, NEW_PASSWORD);
    check(second.user_id === registered.user_id, `logged in as ${second.user_id}`);
    step("second address added", { threepids: addresses });
}

step("done");
process.exit(0);
