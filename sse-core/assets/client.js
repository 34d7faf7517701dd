// sse-core's browser client: one event stream per browser, shared by its tabs; reconnects
// after any failure; tokens; subscribing after a snapshot's id. No dependencies.
//
//   import { connect } from "/api/sse/stream/client.js";
//   const events = connect("/api/sse/stream", { topics: ["users/*"], after: snapshotId });
//   events.on("user_updated", (user, e) => render(user));
//   events.onReset(() => reloadEverything());
//   events.onStatus((status) => badge(status)); // connecting | live | reconnecting | closed
//
// Same-origin tabs asking for the same stream elect a leader with the Web Locks API; only the
// leader reads the stream (with fetch(), so it sees status codes and Retry-After and can send
// Authorization and Last-Event-ID headers) and relays each event to the other tabs over a
// BroadcastChannel. When the leader closes, the next tab in the lock's queue takes over and
// resumes after the last id it saw. Without those APIs each tab reads its own stream.
//
// Tabs share a stream only when it is the same stream: the same URL, topics and identity (see
// `identityOf`), so that a tab signed in as one user never gets another user's private events.
//
// The parts are exported for the unit tests (client.test.mjs): the SSE parser, the backoff,
// Retry-After, the recent-events buffer that lets a late tab catch up, the token's subject, and
// `createClient`, which takes its fetch, locks, channel and timers as arguments.

/** @param {number} attempt 0 for the first retry. Equal jitter: half fixed, half random. */
export function backoffDelay(attempt, { initial = 1000, max = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Milliseconds a `Retry-After` header asks to wait (seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * An SSE parser per the WHATWG HTML standard ("Interpreting an event stream"). Feed it text;
 * it calls `dispatch(type, data, id)` for every event with data, and `dispatch(null, null, id)`
 * for a frame that only sets the id. `retry(ms)` for `retry:` fields.
 */
export function createParser({ dispatch, retry = () => {} }) {
  let buffer = "";
  let skipLF = false; // the previous chunk ended in CR: a leading LF belongs to that CRLF
  let first = true;
  let data = "";
  let type = "";
  let id = "";
  let idSet = false;

  function line(text) {
    if (text === "") {
      if (data === "") {
        if (idSet) dispatch(null, null, id);
      } else {
        dispatch(type || "message", data.endsWith("\n") ? data.slice(0, -1) : data, id);
      }
      data = "";
      type = "";
      idSet = false;
      return;
    }
    if (text.startsWith(":")) return; // comment
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data += `${value}\n`;
    else if (field === "event") type = value;
    else if (field === "id") {
      if (!value.includes("\0")) {
        id = value;
        idSet = true;
      }
    } else if (field === "retry" && /^\d+$/.test(value)) retry(Number(value));
  }

  return {
    feed(chunk) {
      let text = chunk;
      if (first && text.length) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      if (skipLF && text.startsWith("\n")) text = text.slice(1);
      if (text.length) skipLF = false;
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== "\n" && c !== "\r") continue;
        line(buffer.slice(start, i));
        if (c === "\r") {
          if (i + 1 === buffer.length) skipLF = true;
          else if (buffer[i + 1] === "\n") i++;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
    },
    /** The id a reconnect should send: the last one dispatched. */
    get lastEventId() {
      return id;
    },
  };
}

/**
 * Orders two ids of sse-core's wire format (`<epoch>-<seq>`, or `<epoch>-<ms>-<n>` with Redis):
 * negative, zero or positive; null when they cannot be compared (other epochs or formats).
 */
export function compareIds(a, b) {
  const pa = /^([^-]+)-(\d+)(?:-(\d+))?$/.exec(a ?? "");
  const pb = /^([^-]+)-(\d+)(?:-(\d+))?$/.exec(b ?? "");
  if (!pa || !pb || pa[1] !== pb[1] || (pa[3] === undefined) !== (pb[3] === undefined)) return null;
  const num = (x, y) => x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
  return num(pa[2], pb[2]) || (pa[3] === undefined ? 0 : num(pa[3], pb[3]));
}

/**
 * The events a tab saw last, with their ids, so that the leader can answer a tab that joins
 * with `after: <id>`: what came after that id, or null when that is unknown (the tab must then
 * reload). A snapshot's id can name an event of a topic this stream does not follow: then the
 * order of the ids tells, when the oldest entry kept is not after it.
 */
export function createRecent(limit = 1024) {
  const items = []; // { id, type, data } ; type null: a position without an event
  return {
    add(entry) {
      items.push(entry);
      if (items.length > limit) items.splice(0, items.length - limit);
    },
    has(id) {
      return items.some((e) => e.id === id && e.type !== null);
    },
    after(id) {
      for (let i = items.length - 1; i >= 0; i--) {
        if (items[i].id === id) return items.slice(i + 1).filter((e) => e.type !== null);
      }
      const oldest = items[0];
      if (!oldest || !(compareIds(oldest.id, id) <= 0)) return null;
      const later = items.filter((e) => compareIds(e.id, id) > 0);
      if (items.some((e) => compareIds(e.id, id) === null)) return null;
      return later.filter((e) => e.type !== null);
    },
    clear() {
      items.length = 0;
    },
  };
}

/**
 * Whose a token is, read without checking it (the server checks it): `{ sub, iss }` from a
 * JWT's payload, or null for anything else (an opaque token, a JWT without a string `sub`).
 */
export function tokenSubject(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null; // a JWS in compact form; an encrypted JWT is opaque here
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    if (typeof claims?.sub !== "string" || claims.sub === "") return null;
    return { sub: claims.sub, iss: typeof claims.iss === "string" ? claims.iss : null };
  } catch {
    return null;
  }
}

/** The identity a token names, as a part of the shared stream's key; null when unknown. */
function tokenIdentity(token) {
  const subject = tokenSubject(token);
  return subject && ["token", subject.iss, subject.sub];
}

const STATUSES = ["connecting", "live", "reconnecting", "closed"];

/**
 * The client, with its environment passed in. `connect` calls it with the browser's.
 * env: { fetch, locks, BroadcastChannel, setTimeout, clearTimeout, random, now }.
 */
export function createClient(url, options = {}, env = {}) {
  const topics = [...(options.topics ?? [])];
  const getToken = options.getToken ?? null;
  const backoff = { initial: 1000, max: 30000, ...options.backoff, random: env.random ?? Math.random };
  const setTimer = env.setTimeout ?? ((f, ms) => setTimeout(f, ms));
  const clearTimer = env.clearTimeout ?? ((t) => clearTimeout(t));
  const now = env.now ?? (() => Date.now());
  const fetchImpl = env.fetch;
  const shareable = options.share !== false && !!env.locks && !!env.BroadcastChannel;
  const credentials = options.credentials ?? "same-origin";
  // Set once this tab knows whose stream it reads (identityOf): null, a stream of its own.
  let shared = false;
  let identity = null;

  const handlers = new Map(); // name -> Set
  const resetHandlers = new Set();
  const statusHandlers = new Set();
  const recent = createRecent(options.recent ?? 1024);
  // Names this tab in the hand-shake with the leader; unique, so never the fake random.
  const tabId = `${now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  let status = "connecting";
  let lastEventId = options.after ?? "";
  let closed = false;
  let leader = false;
  let synced = false; // a follower applies relayed events once the leader answered its hello
  let channel = null;
  let abort = null; // aborts the leader's fetch
  let wake = null; // ends the leader's current wait
  let releaseLock = null;
  const pendingHellos = []; // hellos that came before the leader knew its position
  let positioned = options.after !== undefined;

  if (options.after !== undefined) recent.add({ id: options.after, type: null, data: null });

  function setStatus(next) {
    if (status === next || (status === "closed" && next !== "closed")) return;
    status = next;
    for (const h of statusHandlers) h(next);
    if (leader && channel) post({ kind: "status", status: next });
  }

  function post(message) {
    try {
      channel?.postMessage(message);
    } catch {
      // a closed channel: the tab is going away
    }
  }

  // Every event reaches the handlers through here, in the leader and in the followers.
  function deliver(type, data, id) {
    if (type !== null && id && recent.has(id)) return; // seen already (a replay overlapping)
    recent.add({ id, type, data });
    lastEventId = id;
    if (type === null) return;
    if (type === "sse-reset") {
      let detail = {};
      try {
        detail = JSON.parse(data);
      } catch {
        // a reset without a readable reason is still a reset
      }
      for (const h of resetHandlers) h(detail, { type, data, lastEventId: id });
      return;
    }
    const set = handlers.get(type);
    if (!set) return;
    let value = data;
    try {
      value = JSON.parse(data);
    } catch {
      // not JSON: handlers get the text
    }
    for (const h of set) h(value, { type, data, lastEventId: id });
  }

  // ---- the leader: reads the stream ----------------------------------------------------------

  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimer(() => {
        wake = null;
        resolve();
      }, ms);
      wake = () => {
        clearTimer(timer);
        wake = null;
        resolve();
      };
    });
  }

  function streamUrl() {
    const query = topics.map((t) => `topic=${encodeURIComponent(t)}`).join("&");
    return query ? `${url}${url.includes("?") ? "&" : "?"}${query}` : url;
  }

  async function lead() {
    leader = true;
    synced = true;
    post({ kind: "leader" });
    let attempt = 0;
    let retryMs = null; // the server's `retry:` hint
    let freshToken = false; // after a 401: ask for a token once more before backing off
    while (!closed) {
      const headers = { Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      if (getToken) {
        let token = null;
        try {
          token = await getToken({ refresh: freshToken });
        } catch {
          token = null;
        }
        if (token) headers.Authorization = `Bearer ${token}`;
        // The shared stream is keyed by the subject of the first token: a token of someone
        // else (the page changed users under this client) must not feed the other tabs. No
        // token at all is no one's: the stream then carries less, never more.
        if (token && shared && identity[0] === "token" && !sameIdentity(tokenIdentity(token), identity)) leaveShared();
      }
      if (closed) break;
      abort = new AbortController();
      let response;
      try {
        response = await fetchImpl(streamUrl(), {
          headers,
          cache: "no-store",
          credentials,
          signal: abort.signal,
        });
      } catch {
        response = null;
      }
      if (closed) break;
      if (response?.status === 401 && getToken && !freshToken) {
        freshToken = true;
        continue;
      }
      const type = response?.headers.get("content-type") ?? "";
      if (!response || !response.ok || !response.body || !type.startsWith("text/event-stream")) {
        const asked = response ? parseRetryAfter(response.headers.get("retry-after"), now()) : null;
        try {
          await response?.body?.cancel();
        } catch {
          // nothing to release
        }
        setStatus("reconnecting");
        await sleep(asked ?? backoffDelay(attempt, backoff));
        attempt++;
        continue;
      }
      freshToken = false;
      attempt = 0;
      setStatus("live");
      positioned = true;
      answerHellos();
      await read(response.body, (ms) => {
        retryMs = ms;
      });
      if (closed) break;
      setStatus("reconnecting");
      // A stream that ended after being live: wait about what the server asked with `retry:`
      // (jittered, so that a restarted server is not hit by every browser at once), then back
      // off if reconnecting fails.
      await sleep(backoffDelay(0, { ...backoff, initial: retryMs ?? backoff.initial }));
      attempt = 1;
    }
  }

  async function read(body, retry) {
    const decoder = new TextDecoder();
    const parser = createParser({
      dispatch(type, data, id) {
        deliver(type, data, id);
        if (channel) post({ kind: "event", type, data, id });
        if (type === null) answerHellos();
      },
      retry,
    });
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // the connection dropped or was aborted
    } finally {
      try {
        reader.releaseLock();
      } catch {
        // already released
      }
    }
  }

  function answerHellos() {
    if (!positioned) return;
    while (pendingHellos.length) answerHello(pendingHellos.shift());
  }

  function answerHello({ from, after }) {
    if (!after || after === lastEventId) {
      post({ kind: "welcome", to: from, events: [], id: lastEventId, status });
      return;
    }
    const events = recent.after(after);
    if (events) post({ kind: "welcome", to: from, events, id: lastEventId, status });
    else post({ kind: "welcome", to: from, reset: true, id: lastEventId, status });
  }

  // ---- the followers: listen to the leader -----------------------------------------------------

  function onMessage({ data: message }) {
    if (closed || !message || typeof message !== "object") return;
    switch (message.kind) {
      case "hello":
        if (!leader) return;
        if (positioned) answerHello(message);
        else pendingHellos.push(message);
        return;
      case "leader":
        if (!leader && !synced) hello();
        return;
      case "status":
        if (!leader && STATUSES.includes(message.status)) setStatus(message.status);
        return;
      case "welcome":
        if (leader || synced || message.to !== tabId) return;
        synced = true;
        if (STATUSES.includes(message.status)) setStatus(message.status);
        if (message.reset) {
          // What came between our snapshot and the shared stream is no longer at hand.
          deliver("sse-reset", JSON.stringify({ reason: "the snapshot is older than the shared stream" }), message.id);
        } else {
          for (const e of message.events) deliver(e.type, e.data, e.id);
          if (message.id) recent.add({ id: message.id, type: null, data: null });
          if (message.id) lastEventId = message.id;
        }
        return;
      case "event":
        // Before the welcome, relayed events are also in the welcome: skip them here.
        if (!leader && synced) deliver(message.type, message.data, message.id);
        return;
      default:
    }
  }

  function hello() {
    post({ kind: "hello", from: tabId, after: lastEventId });
  }

  // ---- start -------------------------------------------------------------------------------------

  /**
   * Whose stream this tab would read, so that only tabs of one identity share it:
   * - `options.identity`, the application's key for who is signed in, when given;
   * - with `getToken`, the subject of its token (a JWT's `iss` and `sub`, read unchecked); when
   *   there is no token or it names no subject, null: the identity is unknown, and guessing
   *   could hand one user's private events to another, so the tab reads its own stream;
   * - otherwise the credentials the browser sends by itself (cookies, HTTP authentication) in
   *   this `credentials` mode: one cookie jar for every tab of the browser, so the same
   *   identity in each tab at any moment, just as each tab's own request would carry. Public
   *   streams, the common case without a token, keep one connection per browser this way.
   *   What the client cannot see is a session cookie changed under a stream opened before:
   *   an app with cookie sessions passes `identity` (documented). A token in the URL is part
   *   of the key anyway.
   */
  function identityOf() {
    if (options.identity != null && options.identity !== "") return ["app", String(options.identity)];
    if (!getToken) return ["browser", credentials];
    return (async () => {
      try {
        return tokenIdentity(await getToken({ refresh: false }));
      } catch {
        return null;
      }
    })();
  }

  function sameIdentity(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function join(who) {
    if (closed) return;
    if (who === null) {
      lead();
      return;
    }
    shared = true;
    identity = who;
    const key = `sse-client:${JSON.stringify([url, [...topics].sort(), identity])}`;
    channel = new env.BroadcastChannel(key);
    channel.onmessage = onMessage;
    hello();
    env.locks
      .request(key, () => {
        if (closed || !shared) return undefined;
        return new Promise((resolve) => {
          releaseLock = resolve;
          lead().finally(resolve);
        });
      })
      .catch(() => {});
  }

  // This tab goes on alone; the next tab in the lock's queue takes the others over.
  function leaveShared() {
    shared = false;
    channel?.close();
    channel = null;
    releaseLock?.();
    releaseLock = null;
  }

  if (shareable) {
    const who = identityOf();
    if (who instanceof Promise) who.then(join);
    else join(who);
  } else {
    lead();
  }

  const client = {
    /** Calls `handler(data, event)` for each event named `name`; data is parsed JSON when it can be. */
    on(name, handler) {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name).add(handler);
      return () => handlers.get(name)?.delete(handler);
    },
    /** Calls `handler(detail, event)` on `sse-reset`: the app should reload its state. */
    onReset(handler) {
      resetHandlers.add(handler);
      return () => resetHandlers.delete(handler);
    },
    /** Calls `handler(status)` on every change; and once now with the current status. */
    onStatus(handler) {
      statusHandlers.add(handler);
      handler(status);
      return () => statusHandlers.delete(handler);
    },
    get status() {
      return status;
    },
    get lastEventId() {
      return lastEventId;
    },
    get isLeader() {
      return leader;
    },
    /** Ends this tab's part; a leader hands the stream over to another tab. */
    close() {
      if (closed) return;
      leader = false; // the followers keep their status: another tab takes over
      setStatus("closed");
      closed = true;
      abort?.abort();
      wake?.();
      releaseLock?.();
      channel?.close();
    },
  };
  return client;
}

/** Connects to the event stream at `url` (the path `events.service(path)` was given). */
export function connect(url, options = {}) {
  const g = globalThis;
  return createClient(url, options, {
    fetch: g.fetch.bind(g),
    locks: g.navigator?.locks,
    BroadcastChannel: g.BroadcastChannel,
  });
}
