// One 1:1 call over WebRTC, signalled with the m.call.* room events of the
// Client-Server API's "Voice over IP" module (version "1").

const VERSION = "1";
// The minimal lifetime the spec recommends for an invite.
export const INVITE_LIFETIME_MS = 90000;
// Candidates found this soon go into the invite or answer's SDP; later ones are
// batched (the spec's "ICE Candidate Batching" starting points).
const EARLY_CANDIDATES_MS = 200;
const BATCH_AFTER_INVITE_MS = 2000;
const BATCH_AFTER_ANSWER_MS = 500;
// An incoming invite rings only if it stays valid at least this long.
const MIN_RING_MS = 10000;

// 8+ letters and digits, within the opaque identifier grammar.
export function randomId(length) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

// States: "preparing" (outbound, before the invite is sent), "inviting" (invite sent),
// "ringing" (inbound, not yet answered), "connecting" (answer sent or selected),
// "connected" (media flows), "ended".
export class Call extends EventTarget {
  constructor(api, roomId, { callId, direction }) {
    super();
    this.api = api;
    this.roomId = roomId;
    this.callId = callId;
    this.direction = direction;
    this.partyId = randomId(10);
    this.state = direction === "outbound" ? "preparing" : "ringing";
    this.iceState = "new";
    this.endReason = null;
    this.opponentUserId = null;
    this.opponentPartyId = null;
    this.pc = null;
    this.localStream = null;
    this.remoteStream = new MediaStream();
    this.remoteOffer = null;
    this.remoteVersion = VERSION;
    this.remoteCandidates = []; // received before the remote description was set
    this.earlyCandidates = new Map(); // outbound: party_id -> candidates, before an answer
    this.localCandidates = [];
    this.signalled = false; // the invite or answer (with the early candidates) is sent
    this.batchTimer = null;
    this.batchDelay = 0;
    this.lifetimeTimer = null;
    this.mediaFailed = false;
    this.outbox = Promise.resolve(); // our events, sent one after another, in order
  }

  static outbound(api, roomId) {
    return new Call(api, roomId, { callId: randomId(16), direction: "outbound" });
  }

  // An m.call.invite seen in /sync; null if it is not for us or no longer valid.
  static fromInvite(api, roomId, event, arrived) {
    const content = event.content || {};
    const me = api.session.user_id;
    if (!content.offer?.sdp || !content.call_id) return null;
    if (content.invitee && content.invitee !== me) return null;
    const age = (event.unsigned?.age || 0) + (Date.now() - arrived);
    const remaining = (content.lifetime || 0) - age;
    if (remaining < MIN_RING_MS) return null;
    const call = new Call(api, roomId, { callId: content.call_id, direction: "inbound" });
    call.opponentUserId = event.sender;
    call.opponentPartyId = content.party_id ?? null;
    call.remoteOffer = content.offer;
    call.remoteVersion = content.version;
    call.lifetimeTimer = setTimeout(() => call.#end("invite_timeout"), remaining);
    return call;
  }

  get active() {
    return this.state !== "ended";
  }

  // --- What the user does -------------------------------------------------------------

  async place(invitee) {
    this.opponentUserId = invitee;
    try {
      await this.#startMedia();
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      await this.#gatherBriefly();
      if (!this.active) return;
      this.#send("m.call.invite", {
        offer: { type: "offer", sdp: this.#signalLocalDescription() },
        lifetime: INVITE_LIFETIME_MS,
        invitee,
      });
      this.#setState("inviting");
      this.#scheduleCandidates(BATCH_AFTER_INVITE_MS);
      this.lifetimeTimer = setTimeout(() => {
        if (this.state === "inviting") this.hangup("invite_timeout");
      }, INVITE_LIFETIME_MS);
    } catch (error) {
      this.#failed(error);
    }
  }

  async answer() {
    if (this.state !== "ringing") return;
    clearTimeout(this.lifetimeTimer);
    this.#setState("connecting");
    try {
      await this.#startMedia();
      await this.pc.setRemoteDescription(this.remoteOffer);
      await this.#addRemoteCandidates([]);
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.#gatherBriefly();
      if (!this.active) return;
      this.#send("m.call.answer", {
        answer: { type: "answer", sdp: this.#signalLocalDescription() },
      });
      this.#scheduleCandidates(BATCH_AFTER_ANSWER_MS);
    } catch (error) {
      this.#failed(error);
    }
  }

  reject() {
    if (this.state !== "ringing") return;
    // m.call.reject is version "1"; a version 0 caller expects a hangup instead.
    if (this.remoteVersion === 0 || this.remoteVersion === "0") {
      this.#send("m.call.hangup", { reason: "user_hangup" });
    } else {
      this.#send("m.call.reject", {});
    }
    this.#end("rejected");
  }

  hangup(reason = "user_hangup") {
    if (!this.active) return;
    // Nothing was sent yet: there is nothing to hang up for the other side.
    if (this.state !== "preparing") this.#send("m.call.hangup", { reason });
    this.#end(reason);
  }

  // --- What the other side sends --------------------------------------------------------

  // An m.call.* event of this call from /sync (our own echoes included).
  async handle(event) {
    const content = event.content || {};
    const me = this.api.session.user_id;
    if (content.call_id !== this.callId || !this.active) return;
    if (event.sender === me && content.party_id === this.partyId) return; // our echo
    const fromOpponent =
      event.sender === this.opponentUserId && content.party_id === this.opponentPartyId;
    switch (event.type) {
      case "m.call.answer":
        if (this.direction === "outbound" && this.state === "inviting") {
          await this.#selectAnswer(event);
        } else if (this.direction === "inbound" && event.sender === me) {
          // Another of our devices answered before we did.
          if (this.state === "ringing") this.#end("answered_elsewhere");
        }
        break;
      case "m.call.reject":
        if (this.direction === "outbound" && this.state === "inviting") {
          this.#send("m.call.select_answer", { selected_party_id: content.party_id });
          this.#end("rejected");
        } else if (this.direction === "inbound" && event.sender === me) {
          if (this.state === "ringing") this.#end("rejected_elsewhere");
        }
        break;
      case "m.call.select_answer":
        if (this.direction === "inbound" && fromOpponent) {
          if (content.selected_party_id !== this.partyId) this.#end("answered_elsewhere");
        }
        break;
      case "m.call.candidates":
        await this.#receiveCandidates(event);
        break;
      case "m.call.hangup":
        if (fromOpponent || this.opponentPartyId === null) this.#end("remote_hangup");
        break;
      default:
        break;
    }
  }

  // Behaviour on room leave: the other party leaving is a hangup.
  memberLeft(userId) {
    if (this.active && userId === this.opponentUserId) this.hangup("user_hangup");
  }

  // --- Inside ---------------------------------------------------------------------------

  async #startMedia() {
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (error) {
      this.mediaFailed = true;
      throw error;
    }
    this.dispatchEvent(new Event("change"));
    const iceServers = await this.api.iceServers();
    // The call may have ended while the user was asked for the camera.
    if (!this.active) {
      for (const track of this.localStream.getTracks()) track.stop();
      throw new Error("the call ended before it started");
    }
    this.pc = new RTCPeerConnection({ iceServers });
    for (const track of this.localStream.getTracks()) this.pc.addTrack(track, this.localStream);
    this.pc.addEventListener("icecandidate", (e) => this.#localCandidate(e.candidate));
    this.pc.addEventListener("iceconnectionstatechange", () => this.#iceChanged());
    this.pc.addEventListener("track", (e) => {
      this.remoteStream.addTrack(e.track);
      this.dispatchEvent(new Event("change"));
    });
  }

  // Waits a moment for the candidates found at once (host ones), so that they travel in
  // the invite or answer itself.
  #gatherBriefly() {
    return new Promise((resolve) => {
      if (this.pc.iceGatheringState === "complete") return resolve();
      const done = () => {
        this.pc.removeEventListener("icegatheringstatechange", onChange);
        resolve();
      };
      const onChange = () => this.pc.iceGatheringState === "complete" && done();
      this.pc.addEventListener("icegatheringstatechange", onChange);
      setTimeout(done, EARLY_CANDIDATES_MS);
    });
  }

  // The SDP to send, read in the same turn as the flag is set: every candidate found
  // before is in it, every one after goes out in m.call.candidates.
  #signalLocalDescription() {
    this.signalled = true;
    this.localCandidates = this.localCandidates.filter((c) => c.candidate === "");
    return this.pc.localDescription.sdp;
  }

  #localCandidate(candidate) {
    if (candidate && candidate.candidate) {
      if (!this.signalled) return; // it will be in the SDP
      this.localCandidates.push({
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      });
      if (this.batchTimer === null) {
        this.batchTimer = setTimeout(() => this.#flushCandidates(), this.batchDelay);
      }
    } else if (!candidate) {
      // End of candidates: an empty candidate says so, and whatever is left goes now.
      this.localCandidates.push({ candidate: "" });
      if (this.signalled) this.#flushCandidates();
    }
  }

  // The first batch waits delayMs; candidates found after it go in batches of their own.
  #scheduleCandidates(delayMs) {
    this.batchDelay = delayMs;
    clearTimeout(this.batchTimer);
    this.batchTimer = setTimeout(() => this.#flushCandidates(), delayMs);
  }

  #flushCandidates() {
    clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (!this.active || this.localCandidates.length === 0) return;
    const candidates = this.localCandidates;
    this.localCandidates = [];
    this.#send("m.call.candidates", { candidates });
  }

  async #receiveCandidates(event) {
    const { candidates = [], party_id: partyId } = event.content;
    if (this.direction === "outbound" && this.opponentPartyId === null) {
      // Before an answer is chosen, keep each answerer's candidates apart.
      const kept = this.earlyCandidates.get(partyId) || [];
      this.earlyCandidates.set(partyId, kept.concat(candidates));
      return;
    }
    if (event.sender !== this.opponentUserId || partyId !== this.opponentPartyId) return;
    await this.#addRemoteCandidates(candidates);
  }

  async #addRemoteCandidates(candidates) {
    this.remoteCandidates.push(...candidates.filter((c) => c.candidate));
    if (!this.pc?.remoteDescription) return;
    const pending = this.remoteCandidates;
    this.remoteCandidates = [];
    for (const candidate of pending) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        console.warn("remote candidate refused:", error);
      }
    }
  }

  async #selectAnswer(event) {
    const content = event.content;
    this.opponentUserId = event.sender;
    this.opponentPartyId = content.party_id ?? null;
    clearTimeout(this.lifetimeTimer);
    this.#setState("connecting");
    this.#send("m.call.select_answer", { selected_party_id: this.opponentPartyId });
    try {
      await this.pc.setRemoteDescription(content.answer);
      await this.#addRemoteCandidates(this.earlyCandidates.get(this.opponentPartyId) || []);
    } catch (error) {
      this.#failed(error);
    }
    this.earlyCandidates.clear();
  }

  #iceChanged() {
    this.iceState = this.pc.iceConnectionState;
    if (this.iceState === "connected" || this.iceState === "completed") {
      this.#setState("connected");
    } else if (this.iceState === "failed" && this.active) {
      this.hangup(this.state === "connected" ? "ice_timeout" : "ice_failed");
      return;
    }
    this.dispatchEvent(new Event("change"));
  }

  #send(type, fields) {
    const content = { call_id: this.callId, party_id: this.partyId, version: VERSION, ...fields };
    this.outbox = this.outbox
      .then(() => this.api.send(this.roomId, type, content))
      .catch((error) => console.error(`sending ${type} failed:`, error));
    return this.outbox;
  }

  #failed(error) {
    console.error("call failed:", error);
    this.hangup(this.mediaFailed ? "user_media_failed" : "unknown_error");
  }

  #setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("change"));
  }

  #end(reason) {
    if (!this.active) return;
    this.endReason = reason;
    clearTimeout(this.lifetimeTimer);
    clearTimeout(this.batchTimer);
    for (const track of this.localStream?.getTracks() || []) track.stop();
    this.pc?.close();
    this.#setState("ended");
  }
}
