// matrix-js-sdk's search calls against a running Trellis, as Element makes them: room
// search (searchRoomEvents, search, backPaginateRoomEventsSearch), the space hierarchy
// (getRoomHierarchy) and the user directory (searchUserDirectory). Driven by
// tests/live/test_js_sdk_search.py.
//
// Environment: SDK (the path of matrix-js-sdk's lib/index.js), HS_URL, USERS (JSON:
// alice, bob, carol and dave, each {user_id, access_token, device_id}), TAG (a word no
// other test uses).
//
// The personas: alice searches; bob shares a private room with her; carol is a stranger
// in a private room of her own; dave is in a public room alice is not in.
// Prints one JSON line per step; exits non-zero on the first failure.

import { pathToFileURL } from "node:url";

const sdk = await import(pathToFileURL(process.env.SDK).href);
const { HS_URL, TAG } = process.env;
const USERS = JSON.parse(process.env.USERS);
const STEP_TIMEOUT_MS = 30_000;
// What the room search looks for, and what the users' display names share.
const WORD = `zq${TAG}`;
const NAME_WORD = `dir${TAG}`;

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

function same(actual, expected, what) {
    check(
        JSON.stringify(actual) === JSON.stringify(expected),
        `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
    );
}

function describe(error) {
    return `${error.httpStatus ?? ""} ${error.errcode ?? ""} ${error.message}`;
}

async function attempt(what, promise) {
    try {
        return await promise;
    } catch (error) {
        fail(`${what}: ${describe(error)}`);
    }
}

async function expectRejection(what, promise) {
    try {
        await promise;
    } catch (error) {
        return error;
    }
    fail(`${what} succeeded`);
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

const clients = Object.fromEntries(
    Object.entries(USERS).map(([name, user]) => [
        name,
        sdk.createClient({
            baseUrl: HS_URL,
            accessToken: user.access_token,
            userId: user.user_id,
            deviceId: user.device_id,
        }),
    ]),
);
const { alice, bob, carol, dave } = clients;
const serverName = alice.getDomain();

// --- The rooms ------------------------------------------------------------------------

await attempt("alice's display name", alice.setDisplayName("Alice Searcher"));
await attempt("bob's display name", bob.setDisplayName(`Bobby ${NAME_WORD}`));
await attempt("carol's display name", carol.setDisplayName(`Carol ${NAME_WORD}`));
await attempt("dave's display name", dave.setDisplayName(`Dave ${NAME_WORD}`));

// carol's private room, and dave's public one: neither is alice's, both mention WORD.
const { room_id: carolRoom } = await attempt(
    "carol's room",
    carol.createRoom({ preset: "private_chat", name: "Carol's own" }),
);
await attempt("carol's message", carol.sendTextMessage(carolRoom, `${WORD} carol's secret`));
const { room_id: daveRoom } = await attempt(
    "dave's room",
    dave.createRoom({ preset: "public_chat", name: "Dave's public room" }),
);
await attempt("dave's message", dave.sendTextMessage(daveRoom, `${WORD} dave's open words`));

// alice and bob's private room.
const { room_id: shared } = await attempt(
    "the shared room",
    alice.createRoom({ preset: "private_chat", name: "Alice and Bob", invite: [bob.getUserId()] }),
);
await attempt("bob joins", bob.joinRoom(shared));
const sent = {};
for (const [key, client, body] of [
    ["before", bob, "before the first one"],
    ["once", alice, `a longer sentence that says ${WORD} only once among many other words`],
    ["after", bob, "after the first one"],
    ["thrice", bob, `${WORD} ${WORD} ${WORD}`],
    ["latest", alice, `${WORD} latest`],
    ["closing", alice, "nothing to find here"],
]) {
    const { event_id } = await attempt(`sending '${key}'`, client.sendTextMessage(shared, body));
    sent[key] = event_id;
}
step("rooms", { shared, carol: carolRoom, dave: daveRoom });

// --- Room search ----------------------------------------------------------------------

const idsOf = (results) => results.map((r) => r.context.getEvent().getId());
const mine = [sent.latest, sent.thrice, sent.once];
{
    // searchRoomEvents: recent first, one event of context each side.
    const found = await attempt("searchRoomEvents", alice.searchRoomEvents({ term: WORD }));
    same(idsOf(found.results), mine, "searchRoomEvents results, most recent first");
    same(found.count, 3, "searchRoomEvents count");
    check(found.highlights.includes(WORD), `highlights ${JSON.stringify(found.highlights)}`);
    check(found.next_batch === undefined, `a next_batch with all results: ${found.next_batch}`);
    const once = found.results[2].context;
    same(
        once.getTimeline().map((e) => e.getId()),
        [sent.before, sent.once, sent.after],
        "the context of the 'once' message",
    );
    same(once.getEvent().getSender(), alice.getUserId(), "the 'once' message's sender");
    same(
        once.getTimeline().map((e) => e.getRoomId()),
        [shared, shared, shared],
        "the context's room",
    );
    step("searched recent", { results: idsOf(found.results), highlights: found.highlights });
}
{
    // A filter: bob's messages only.
    const found = await attempt(
        "searchRoomEvents by sender",
        alice.searchRoomEvents({ term: WORD, filter: { senders: [bob.getUserId()] } }),
    );
    same(idsOf(found.results), [sent.thrice], "bob's matching messages");
    const none = await attempt(
        "searchRoomEvents in carol's room",
        alice.searchRoomEvents({ term: WORD, filter: { rooms: [carolRoom, daveRoom] } }),
    );
    same(idsOf(none.results), [], "results from rooms alice is not in");
    same(none.count, 0, "the count in rooms alice is not in");
    step("searched filtered");
}
{
    // search: by rank, with the senders' profiles in the context.
    const response = await attempt(
        "search by rank",
        alice.search({
            body: {
                search_categories: {
                    room_events: {
                        search_term: WORD,
                        order_by: "rank",
                        event_context: { before_limit: 1, after_limit: 0, include_profile: true },
                    },
                },
            },
        }),
    );
    const roomEvents = response.search_categories.room_events;
    const ids = roomEvents.results.map((r) => r.result.event_id);
    same(ids[0], sent.thrice, "the best ranked result (the word thrice)");
    same([...ids].sort(), [...mine].sort(), "the results by rank");
    const ranks = roomEvents.results.map((r) => r.rank);
    check(
        ranks.every((rank, i) => typeof rank === "number" && (i === 0 || ranks[i - 1] >= rank)),
        `ranks not descending: ${JSON.stringify(ranks)}`,
    );
    const thrice = roomEvents.results[0];
    same(
        thrice.context.events_before.map((e) => e.event_id),
        [sent.after],
        "the event before the best ranked one",
    );
    same(thrice.context.events_after, [], "events after, with after_limit 0");
    same(
        thrice.context.profile_info?.[bob.getUserId()]?.displayname,
        `Bobby ${NAME_WORD}`,
        "bob's profile in the context",
    );
    check(
        roomEvents.highlights.includes(WORD),
        `highlights ${JSON.stringify(roomEvents.highlights)}`,
    );
    step("searched by rank", { results: ids, ranks });
}
{
    // One result a page: backPaginateRoomEventsSearch follows next_batch to the end.
    let found = await attempt(
        "searchRoomEvents a page at a time",
        alice.searchRoomEvents({ term: WORD, filter: { limit: 1 } }),
    );
    const pages = [idsOf(found.results)];
    while (found.next_batch) {
        check(pages.length <= mine.length, `more pages than results: ${JSON.stringify(pages)}`);
        const before = found.results.length;
        found = await attempt(
            "backPaginateRoomEventsSearch",
            alice.backPaginateRoomEventsSearch(found),
        );
        pages.push(idsOf(found.results).slice(before));
    }
    same(idsOf(found.results), mine, "all the pages' results");
    check(pages.every((page) => page.length <= 1), `pages ${JSON.stringify(pages)}`);
    step("searched page by page", { pages });
}

// --- The space hierarchy --------------------------------------------------------------

const space = async (name, preset = "private_chat") =>
    (
        await attempt(
            `creating ${name}`,
            alice.createRoom({ preset, name, creation_content: { type: "m.space" } }),
        )
    ).room_id;
const room = async (name) =>
    (await attempt(`creating ${name}`, alice.createRoom({ preset: "public_chat", name }))).room_id;
const addChild = (parent, child, content) =>
    attempt(
        `m.space.child ${child} in ${parent}`,
        alice.sendStateEvent(parent, "m.space.child", { via: [serverName], ...content }, child),
    );

const top = await space("Top space");
const general = await room("General");
const random = await room("Random");
const sub = await space("Sub-space");
const deep = await room("Deep");
await addChild(top, general, { order: "a", suggested: true });
await addChild(top, random, { order: "b" });
await addChild(top, sub, { order: "c", suggested: true });
// carol's private room: alice may not preview it, so it is never shown.
await addChild(top, carolRoom, { order: "d" });
await addChild(sub, deep, {});
const names = {
    [top]: "Top space",
    [general]: "General",
    [random]: "Random",
    [sub]: "Sub-space",
    [deep]: "Deep",
};
const namesOf = (rooms) => rooms.map((r) => names[r.room_id] ?? r.room_id);
{
    const { rooms, next_batch } = await attempt("getRoomHierarchy", alice.getRoomHierarchy(top));
    same(namesOf(rooms), ["Top space", "General", "Random", "Sub-space", "Deep"], "the hierarchy");
    check(next_batch === undefined, `a next_batch with everything shown: ${next_batch}`);
    const [topRoom, generalRoom] = rooms;
    same(topRoom.room_type, "m.space", "the space's room_type");
    same(topRoom.num_joined_members, 1, "the space's members");
    same(
        topRoom.children_state.map((e) => [e.type, e.state_key, e.content.via]),
        [general, random, sub, carolRoom].map((id) => ["m.space.child", id, [serverName]]),
        "the space's children_state",
    );
    check(
        topRoom.children_state.every(
            (e) => Number.isInteger(e.origin_server_ts) && e.sender === alice.getUserId(),
        ),
        `children_state's origin_server_ts or sender: ${JSON.stringify(topRoom.children_state)}`,
    );
    same(generalRoom.children_state, [], "a room's children_state");
    same(generalRoom.join_rule, "public", "a child's join_rule");
    same(generalRoom.world_readable, false, "a child's world_readable");
    same(rooms[3].room_type, "m.space", "the sub-space's room_type");
    same(rooms[3].children_state.map((e) => e.state_key), [deep], "the sub-space's children_state");
    step("hierarchy", { rooms: namesOf(rooms) });
}
{
    // Two rooms a page.
    const pages = [];
    let from;
    do {
        check(pages.length < 5, `too many pages: ${JSON.stringify(pages)}`);
        const page = await attempt(
            "getRoomHierarchy a page",
            alice.getRoomHierarchy(top, 2, undefined, false, from),
        );
        pages.push(namesOf(page.rooms));
        from = page.next_batch;
    } while (from);
    same(
        pages,
        [["Top space", "General"], ["Random", "Sub-space"], ["Deep"]],
        "the hierarchy's pages",
    );
    step("hierarchy paginated", { pages });
}
{
    const shallow = await attempt(
        "getRoomHierarchy max_depth 1",
        alice.getRoomHierarchy(top, undefined, 1),
    );
    same(namesOf(shallow.rooms), ["Top space", "General", "Random", "Sub-space"], "max_depth 1");
    const suggested = await attempt(
        "getRoomHierarchy suggested_only",
        alice.getRoomHierarchy(top, undefined, undefined, true),
    );
    same(namesOf(suggested.rooms), ["Top space", "General", "Sub-space"], "suggested_only");
    // bob is not in the private space: not his to see.
    const refused = await expectRejection("bob's getRoomHierarchy", bob.getRoomHierarchy(top));
    same(refused.errcode, "M_FORBIDDEN", `bob's getRoomHierarchy (${describe(refused)})`);
    step("hierarchy filtered");
}

// --- The user directory ---------------------------------------------------------------

{
    const search = (term, limit) =>
        attempt(`searchUserDirectory ${term}`, alice.searchUserDirectory({ term, limit }));
    const usersOf = (response) => response.results.map((r) => r.user_id).sort();
    // bob shares a room with alice, dave is in a public room; carol is neither.
    const expected = [bob.getUserId(), dave.getUserId()].sort();
    const found = await waitFor("bob and dave in the directory", async () => {
        const response = await search(NAME_WORD);
        return JSON.stringify(usersOf(response)) === JSON.stringify(expected) && response;
    });
    same(found.limited, false, "limited, with every match shown");
    same(
        Object.fromEntries(found.results.map((r) => [r.user_id, r.display_name])),
        { [bob.getUserId()]: `Bobby ${NAME_WORD}`, [dave.getUserId()]: `Dave ${NAME_WORD}` },
        "the display names",
    );
    const limited = await search(NAME_WORD, 1);
    same(limited.results.length, 1, "results with limit 1");
    same(limited.limited, true, "limited with limit 1");
    // By display name, whatever its case, and by user ID.
    const shouted = `BOBBY ${NAME_WORD.toUpperCase()}`;
    same(usersOf(await search(shouted)), [bob.getUserId()], "bob by name");
    same(usersOf(await search(bob.getUserId())), [bob.getUserId()], "bob by user ID");
    const localpart = dave.getUserId().slice(1).split(":")[0];
    same(usersOf(await search(localpart)), [dave.getUserId()], "dave by localpart");
    // carol, alone in her private room, is not found.
    same(usersOf(await search(`Carol ${NAME_WORD}`)), [], "carol by name");
    same(usersOf(await search(carol.getUserId())), [], "carol by user ID");
    step("user directory", { found: usersOf(found) });
}

step("done");
process.exit(0);
