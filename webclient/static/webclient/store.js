// What the client knows about its rooms, built from /sync responses alone.

const TIMELINE_KEEP = 200;

function stateKey(event) {
  return `${event.type}\u0000${event.state_key}`;
}

class Room {
  constructor(roomId) {
    this.roomId = roomId;
    this.membership = "join"; // "join" or "invite"
    this.state = new Map(); // "type\0state_key" -> event
    this.timeline = [];
    this.unread = 0;
    this.heroes = [];
    this.inviter = null;
  }

  stateEvent(type, key = "") {
    return this.state.get(`${type}\u0000${key}`);
  }

  joinedMembers() {
    const members = [];
    for (const event of this.state.values()) {
      if (event.type === "m.room.member" && event.content?.membership === "join") {
        members.push(event.state_key);
      }
    }
    return members;
  }

  displayName(userId) {
    return this.stateEvent("m.room.member", userId)?.content?.displayname || userId;
  }

  // Client-Server API, "Calculating the display name for a room": the name, else the
  // canonical alias, else the heroes (members other than us), else "Empty room".
  name(myUserId) {
    const name = this.stateEvent("m.room.name")?.content?.name;
    if (name) return name;
    const alias = this.stateEvent("m.room.canonical_alias")?.content?.alias;
    if (alias) return alias;
    let heroes = this.heroes.filter((id) => id !== myUserId);
    if (heroes.length === 0) {
      heroes = [...this.state.values()]
        .filter((e) => e.type === "m.room.member" && e.state_key !== myUserId)
        .filter((e) => ["join", "invite"].includes(e.content?.membership))
        .map((e) => e.state_key);
    }
    if (heroes.length === 0) return "Empty room";
    return heroes.map((id) => this.displayName(id)).join(", ");
  }
}

export class Store {
  constructor(myUserId) {
    this.myUserId = myUserId;
    this.rooms = new Map();
    this.nextBatch = null;
  }

  room(roomId) {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = new Room(roomId);
      this.rooms.set(roomId, room);
    }
    return room;
  }

  // Applies one /sync response; returns the new timeline events in order, each with
  // its room ID and when it arrived (for call liveness: its age is counted from then).
  apply(response) {
    const arrived = Date.now();
    const fresh = [];
    const rooms = response.rooms || {};
    for (const [roomId, joined] of Object.entries(rooms.join || {})) {
      const room = this.room(roomId);
      room.membership = "join";
      room.inviter = null;
      for (const event of joined.state?.events || []) room.state.set(stateKey(event), event);
      const timeline = joined.timeline || {};
      // A limited timeline has a gap before it: what we hold is no longer contiguous.
      if (timeline.limited) room.timeline = [];
      for (const event of timeline.events || []) {
        if (event.state_key !== undefined) room.state.set(stateKey(event), event);
        room.timeline.push(event);
        fresh.push({ roomId, event, arrived });
      }
      room.timeline.splice(0, Math.max(0, room.timeline.length - TIMELINE_KEEP));
      const heroes = joined.summary?.["m.heroes"];
      if (heroes) room.heroes = heroes;
      const count = joined.unread_notifications?.notification_count;
      if (count !== undefined) room.unread = count;
    }
    for (const [roomId, invited] of Object.entries(rooms.invite || {})) {
      const room = this.room(roomId);
      room.membership = "invite";
      for (const event of invited.invite_state?.events || []) {
        room.state.set(stateKey(event), event);
        if (event.type === "m.room.member" && event.state_key === this.myUserId) {
          room.inviter = event.sender;
        }
      }
    }
    for (const roomId of Object.keys(rooms.leave || {})) this.rooms.delete(roomId);
    this.nextBatch = response.next_batch;
    return fresh;
  }

  // Joined rooms and invites, invites first, then by latest activity.
  sortedRooms() {
    const latest = (room) => room.timeline.at(-1)?.origin_server_ts || 0;
    return [...this.rooms.values()].sort((a, b) => {
      if (a.membership !== b.membership) return a.membership === "invite" ? -1 : 1;
      return latest(b) - latest(a);
    });
  }
}
