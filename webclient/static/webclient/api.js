// The Client-Server API calls the web client makes, and nothing else. The homeserver
// is the page's origin.

const PREFIX = "/_matrix/client/v3";

export class MatrixError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.errcode = body.errcode || "";
    this.body = body;
  }
}

let txnCounter = 0;

export class Api {
  constructor(baseUrl, session = null) {
    this.baseUrl = baseUrl;
    // { access_token, user_id, device_id } once logged in.
    this.session = session;
  }

  async request(method, path, { body, query, signal } = {}) {
    const url = new URL(PREFIX + path, this.baseUrl);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, value);
    }
    const headers = {};
    if (this.session) headers.Authorization = `Bearer ${this.session.access_token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    const text = await response.text();
    let json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { error: text };
    }
    if (!response.ok) throw new MatrixError(response.status, json);
    return json;
  }

  async login(user, password) {
    this.session = null;
    const answer = await this.request("POST", "/login", {
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "Trellis web client",
      },
    });
    return this.#started(answer);
  }

  // Registration through user-interactive auth: the first request gets the flows and a
  // session (401); the client completes the one flow it can, m.login.dummy.
  async register(username, password) {
    this.session = null;
    const body = { username, password, initial_device_display_name: "Trellis web client" };
    let answer;
    try {
      answer = await this.request("POST", "/register", { body });
    } catch (error) {
      const flows = error.body?.flows;
      if (error.status !== 401 || !flows) throw error;
      const dummy = flows.some((f) => f.stages.length === 1 && f.stages[0] === "m.login.dummy");
      if (!dummy) {
        throw new Error("this server's registration needs a step this client cannot do");
      }
      body.auth = { type: "m.login.dummy", session: error.body.session };
      answer = await this.request("POST", "/register", { body });
    }
    return this.#started(answer);
  }

  #started(answer) {
    this.session = {
      access_token: answer.access_token,
      user_id: answer.user_id,
      device_id: answer.device_id,
    };
    return this.session;
  }

  async logout() {
    try {
      await this.request("POST", "/logout", { body: {} });
    } finally {
      this.session = null;
    }
  }

  sync(since, timeoutMs, filter, signal) {
    return this.request("GET", "/sync", {
      query: { since, timeout: since ? timeoutMs : 0, filter: JSON.stringify(filter) },
      signal,
    });
  }

  createRoom(name) {
    const body = { preset: "private_chat" };
    if (name) body.name = name;
    return this.request("POST", "/createRoom", { body });
  }

  join(roomIdOrAlias) {
    return this.request("POST", `/join/${encodeURIComponent(roomIdOrAlias)}`, { body: {} });
  }

  invite(roomId, userId) {
    return this.request("POST", `/rooms/${encodeURIComponent(roomId)}/invite`, {
      body: { user_id: userId },
    });
  }

  leave(roomId) {
    return this.request("POST", `/rooms/${encodeURIComponent(roomId)}/leave`, { body: {} });
  }

  // PUT /rooms/{roomId}/send/{eventType}/{txnId}: the transaction ID makes a retry
  // idempotent; it only has to be unique for this access token.
  send(roomId, eventType, content) {
    txnCounter += 1;
    const txnId = `wc${Date.now()}.${txnCounter}`;
    const path = `/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(eventType)}/${txnId}`;
    return this.request("PUT", path, { body: content });
  }

  readReceipt(roomId, eventId) {
    const path = `/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(eventId)}`;
    return this.request("POST", path, { body: {} });
  }

  // ICE servers for a call from GET /voip/turnServer. A server without TURN answers
  // 404 or {}: then the call uses host candidates only.
  async iceServers() {
    let answer;
    try {
      answer = await this.request("GET", "/voip/turnServer");
    } catch (error) {
      if (error.status !== 404) console.warn("turnServer:", error);
      return [];
    }
    if (!Array.isArray(answer.uris) || answer.uris.length === 0) return [];
    return [{ urls: answer.uris, username: answer.username, credential: answer.password }];
  }
}
