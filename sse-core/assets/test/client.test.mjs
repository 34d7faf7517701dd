// Unit tests of client.js in node, with fake fetch, locks, channel and timers:
//   node --test sse-core/assets/test/
// Run by sse-core/tests/client_js.rs, so `cargo test` runs them.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  backoffDelay,
  compareIds,
  createClient,
  createParser,
  createRecent,
  parseRetryAfter,
  tokenSubject,
} from "../client.js";

// ---- fakes ---------------------------------------------------------------------------------

const tick = () => new Promise((resolve) => setImmediate(resolve));
async function until(check, what, rounds = 500) {
  for (let i = 0; i < rounds; i++) {
    if (check()) return;
    await tick();
  }
  assert.fail(`not reached: ${typeof what === "function" ? what() : what}`);
}

/** Timers that record each delay asked for and fire on the next turn. */
function fakeTimers() {
  const delays = [];
  return {
    delays,
    setTimeout(f, ms) {
      delays.push(ms);
      return setImmediate(f);
    },
    clearTimeout: (t) => clearImmediate(t),
  };
}

/** A body the test writes to: push(text), end(). */
function body() {
  let controller;
  const stream = new ReadableStream({ start: (c) => (controller = c) });
  const encoder = new TextEncoder();
  return {
    stream,
    push: (text) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
  };
}

/** fetch answering from a script of responses; records each request. */
function fakeFetch(script) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, headers: { ...init.headers } });
    const next = script.shift();
    if (!next) return new Promise(() => {}); // hangs: no more answers scripted
    if (next === "network") throw new TypeError("network error");
    const headers = new Headers(next.headers ?? {});
    if (next.status === 200 && !headers.has("content-type")) headers.set("content-type", "text/event-stream");
    const b = next.body ?? body();
    init.signal?.addEventListener("abort", () => {
      try {
        b.end();
      } catch {}
    });
    return { status: next.status, ok: next.status >= 200 && next.status < 300, headers, body: b.stream };
  };
  return { fetch, requests };
}

/** Web Locks: exclusive, queued, released when the callback's promise settles. */
function fakeLocks() {
  const queues = new Map();
  function run(name) {
    const queue = queues.get(name);
    if (!queue.length || queue.running) return;
    queue.running = true;
    const { cb, resolve } = queue.shift();
    Promise.resolve()
      .then(cb)
      .then(resolve, resolve)
      .finally(() => {
        queue.running = false;
        run(name);
      });
  }
  return {
    request(name, cb) {
      if (!queues.has(name)) queues.set(name, Object.assign([], { running: false }));
      return new Promise((resolve) => {
        queues.get(name).push({ cb, resolve });
        run(name);
      });
    },
  };
}

/** BroadcastChannel: delivers to the other open channels of the same name, in order. */
function fakeChannels() {
  const open = new Set();
  return class {
    constructor(name) {
      this.name = name;
      this.onmessage = null;
      open.add(this);
    }
    postMessage(data) {
      const copy = structuredClone(data);
      for (const other of open) {
        if (other !== this && other.name === this.name) setImmediate(() => open.has(other) && other.onmessage?.({ data: copy }));
      }
    }
    close() {
      open.delete(this);
    }
  };
}

const frame = (id, type, data) => `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

// ---- parser --------------------------------------------------------------------------------

function parse(chunks) {
  const events = [];
  const retries = [];
  const p = createParser({ dispatch: (type, data, id) => events.push([type, data, id]), retry: (ms) => retries.push(ms) });
  for (const c of chunks) p.feed(c);
  return { events, retries, p };
}

test("parser: LF, CRLF and CR line ends, also split between chunks", () => {
  const { events } = parse(["data: a\r", "\n\r\ndata: b\r\rdata: c\n", "\n", "data: d\r\n\r", "\n"]);
  assert.deepEqual(events, [
    ["message", "a", ""],
    ["message", "b", ""],
    ["message", "c", ""],
    ["message", "d", ""],
  ]);
});

test("parser: data lines accumulate; event, id, comments, fields without colon", () => {
  const { events, p } = parse([
    "\uFEFF: connected\n",
    "id: 1-1\nevent: user\ndata: line one\ndata:line two\ndata\n\n",
    ": keep-alive\n\n",
    "id: 1-2\n\n", // only an id: a position, no event
    "event: x\n\n", // no data: nothing
    "data: after\n\n", // the id stays until changed
  ]);
  assert.deepEqual(events, [
    ["user", "line one\nline two\n", "1-1"],
    [null, null, "1-2"],
    ["message", "after", "1-2"],
  ]);
  assert.equal(p.lastEventId, "1-2");
});

test("parser: retry only with digits; id with NUL ignored; a partial event is not dispatched", () => {
  const { events, retries } = parse(["retry: 1500\nretry: 1s\n", "id: a\0b\ndata: x\n\n", "data: unfinished\n"]);
  assert.deepEqual(retries, [1500]);
  assert.deepEqual(events, [["message", "x", ""]]);
});

test("parser: byte-by-byte feeding gives the same events", () => {
  const text = "id: 7\r\nevent: e\r\ndata: {\"a\":1}\r\n\r\n";
  const whole = parse([text]).events;
  const split = parse([...text]).events;
  assert.deepEqual(split, whole);
  assert.deepEqual(whole, [["e", "{\"a\":1}", "7"]]);
});

// ---- backoff, Retry-After, recent events ---------------------------------------------------

test("backoff: grows exponentially with jitter, capped", () => {
  const at = (attempt, r) => backoffDelay(attempt, { initial: 1000, max: 8000, random: () => r });
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((a) => at(a, 0)), [500, 1000, 2000, 4000, 4000, 4000]);
  assert.deepEqual([0, 1, 2, 3, 4].map((a) => at(a, 0.999999)), [1000, 2000, 4000, 8000, 8000]);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2, { initial: 100, max: 1000 });
    assert.ok(d >= 200 && d <= 400, `${d}`);
  }
});

test("Retry-After: seconds or a date", () => {
  assert.equal(parseRetryAfter("1"), 1000);
  assert.equal(parseRetryAfter(" 5 "), 5000);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("soon"), null);
  assert.equal(parseRetryAfter(null), null);
});

test("recent events: what came after an id, or null when unknown", () => {
  const r = createRecent(3);
  r.add({ id: "p", type: null, data: null });
  r.add({ id: "1", type: "a", data: "1" });
  r.add({ id: "2", type: "a", data: "2" });
  assert.deepEqual(r.after("p").map((e) => e.id), ["1", "2"]);
  assert.deepEqual(r.after("2"), []);
  r.add({ id: "3", type: "a", data: "3" }); // "p" falls out
  assert.equal(r.after("p"), null);
  assert.ok(r.has("3") && !r.has("p"));
});

test("ids of one epoch are ordered; others are not comparable", () => {
  assert.ok(compareIds("ab-9", "ab-10") < 0);
  assert.equal(compareIds("ab-10", "ab-10"), 0);
  assert.ok(compareIds("ab-5-1", "ab-4-9") > 0);
  assert.equal(compareIds("ab-1", "cd-2"), null);
  assert.equal(compareIds("ab-1", "ab-1-1"), null);
  assert.equal(compareIds("x", "ab-1"), null);
});

test("recent events: a snapshot id of another topic is placed by order", () => {
  const r = createRecent(10);
  r.add({ id: "e-2", type: null, data: null });
  r.add({ id: "e-5", type: "a", data: "5" });
  r.add({ id: "e-7", type: "a", data: "7" });
  assert.deepEqual(r.after("e-6").map((e) => e.id), ["e-7"]);
  assert.deepEqual(r.after("e-3").map((e) => e.id), ["e-5", "e-7"]);
  assert.equal(r.after("e-1"), null); // older than what is kept
  assert.equal(r.after("f-6"), null); // another epoch
});

// ---- one tab: reconnects -------------------------------------------------------------------

function single(script, options = {}) {
  const timers = fakeTimers();
  const net = fakeFetch(script);
  const client = createClient("/s", { backoff: { initial: 100, max: 1000 }, ...options }, {
    fetch: net.fetch,
    ...timers,
    random: () => 0.5,
  });
  return { client, timers, net };
}

test("503 with Retry-After: waits what the server asked; network errors back off", async () => {
  const { client, timers, net } = single([{ status: 503, headers: { "retry-after": "1" } }, "network", "network"]);
  await until(() => net.requests.length === 4, "four attempts");
  assert.deepEqual(timers.delays, [1000, 150, 300]);
  assert.equal(client.status, "reconnecting");
  client.close();
  assert.equal(client.status, "closed");
});

test("topics, after and Last-Event-ID are carried over every reconnect", async () => {
  const first = body();
  const { client, net } = single([{ status: 200, body: first }, { status: 503 }], {
    topics: ["users/*", "a b"],
    after: "e-5",
  });
  const seen = [];
  client.on("user", (data, e) => seen.push([data, e.lastEventId]));
  await until(() => net.requests.length === 1, "connected");
  assert.equal(net.requests[0].url, "/s?topic=users%2F*&topic=a%20b");
  assert.equal(net.requests[0].headers["Last-Event-ID"], "e-5");
  first.push(frame("e-6", "user", { id: 1 }));
  first.push("id: e-7\n\n");
  await until(() => client.lastEventId === "e-7", "id-only frame read");
  first.end();
  await until(() => net.requests.length === 3, "reconnected twice");
  assert.deepEqual(seen, [[{ id: 1 }, "e-6"]]);
  for (const r of net.requests.slice(1)) {
    assert.equal(r.url, net.requests[0].url);
    assert.equal(r.headers["Last-Event-ID"], "e-7");
  }
  client.close();
});

test("token: asked before each connect; after a 401 once more, then backoff", async () => {
  const calls = [];
  const { client, timers, net } = single([{ status: 401 }, { status: 401 }, { status: 401 }], {
    getToken: ({ refresh }) => {
      calls.push(refresh);
      return `t${calls.length}`;
    },
  });
  await until(() => net.requests.length === 4, "four attempts");
  assert.deepEqual(net.requests.map((r) => r.headers.Authorization), ["Bearer t1", "Bearer t2", "Bearer t3", "Bearer t4"]);
  assert.deepEqual(calls, [false, true, true, true]);
  // No wait before the refreshed token; then backoff.
  assert.deepEqual(timers.delays, [75, 150]);
  client.close();
});

test("sse-reset goes to onReset; statuses in order", async () => {
  const b = body();
  const { client } = single([{ status: 200, body: b }]);
  const statuses = [];
  const resets = [];
  client.onStatus((s) => statuses.push(s));
  client.onReset((d) => resets.push(d.reason));
  await until(() => client.status === "live", "live");
  b.push(frame("x-1", "sse-reset", { reason: "unknown id" }));
  await until(() => resets.length === 1, "reset");
  client.close();
  assert.deepEqual(statuses, ["connecting", "live", "closed"]);
  assert.deepEqual(resets, ["unknown id"]);
});

// ---- several tabs: one leader --------------------------------------------------------------

function browser() {
  const timers = fakeTimers();
  const locks = fakeLocks();
  const BroadcastChannel = fakeChannels();
  return (script, options = {}) => {
    const net = fakeFetch(script);
    const client = createClient("/s", { topics: ["t"], ...options }, {
      fetch: net.fetch,
      locks,
      BroadcastChannel,
      ...timers,
      random: () => 0.5,
    });
    const seen = [];
    client.on("e", (data, e) => seen.push(e.lastEventId));
    return { client, net, seen };
  };
}

test("tabs share one stream; when the leader closes, the next resumes from the last id seen", async () => {
  const tab = browser();
  const stream1 = body();
  const a = tab([{ status: 200, body: stream1 }]);
  await until(() => a.client.status === "live", "a live");
  const b = tab([{ status: 200 }]);
  const c = tab([{ status: 200 }]);
  await until(() => b.client.status === "live" && c.client.status === "live", "followers live");
  assert.ok(a.client.isLeader && !b.client.isLeader && !c.client.isLeader);
  stream1.push(frame("1", "e", 1) + frame("2", "e", 2));
  await until(() => c.seen.length === 2, "relayed");
  assert.equal(b.net.requests.length + c.net.requests.length, 0, "followers open no stream");

  a.client.close();
  await until(() => b.net.requests.length === 1, "b takes over");
  assert.equal(b.net.requests[0].headers["Last-Event-ID"], "2");
  assert.equal(c.net.requests.length, 0);
  assert.deepEqual([a.seen, b.seen, c.seen], [["1", "2"], ["1", "2"], ["1", "2"]]);
  b.client.close();
  await until(() => c.net.requests.length === 1, "c takes over");
  assert.equal(c.net.requests[0].headers["Last-Event-ID"], "2");
  c.client.close();
});

test("a tab joining with `after` gets what came after its snapshot; an unknown id is a reset", async () => {
  const tab = browser();
  const stream = body();
  const a = tab([{ status: 200, body: stream }], { after: "0" });
  await until(() => a.client.status === "live", "a live");
  stream.push(frame("1", "e", 1) + frame("2", "e", 2) + frame("3", "e", 3));
  await until(() => a.seen.length === 3, "a saw three");

  const b = tab([], { after: "1" });
  const resets = [];
  const c = tab([], { after: "unknown" });
  c.client.onReset((d) => resets.push(d.reason));
  await until(() => b.seen.length === 2 && resets.length === 1, () => `caught up: ${JSON.stringify([b.seen, resets, b.client.status, c.client.status])}`);
  stream.push(frame("4", "e", 4));
  await until(() => b.seen.length === 3 && c.seen.length === 1, "live after");
  assert.deepEqual(b.seen, ["2", "3", "4"]);
  assert.deepEqual(c.seen, ["4"]);
  // A replay that overlaps what was relayed is not applied twice.
  for (const t of [a, b, c]) t.client.close();
});

test("without Web Locks or BroadcastChannel each tab has its own stream", async () => {
  const net = fakeFetch([{ status: 200 }]);
  const client = createClient("/s", {}, { fetch: net.fetch, ...fakeTimers() });
  await until(() => client.status === "live", "live");
  assert.ok(client.isLeader);
  client.close();
});

// ---- several tabs, several identities ------------------------------------------------------

/** An unsigned JWT with these claims: the client reads them, only the server checks them. */
const jwt = (claims) =>
  ["{\"alg\":\"HS256\"}", JSON.stringify(claims)].map((s) => Buffer.from(s).toString("base64url")).join(".") + ".sig";

test("token subject: a JWT's sub and iss, read unchecked; anything else is unknown", () => {
  assert.deepEqual(tokenSubject(jwt({ sub: "user-42", iss: "https://id.example" })), { sub: "user-42", iss: "https://id.example" });
  // base64url with `-` and `_`, and UTF-8 text.
  assert.deepEqual(tokenSubject(jwt({ sub: "Zoë ~~~??>" })), { sub: "Zoë ~~~??>", iss: null });
  for (const bad of [null, 42, "", "opaque", "a.b.c", jwt({ sub: 7 }), jwt({ sub: "" }), jwt({ name: "x" }), `${jwt({ sub: "x" })}.d.e`]) {
    assert.equal(tokenSubject(bad), null, String(bad));
  }
});

test("tabs signed in as different users do not share a stream, even with the same topics", async () => {
  const tab = browser();
  const adaStream = body();
  const bobStream = body();
  const ada = tab([{ status: 200, body: adaStream }], { getToken: () => jwt({ sub: "ada" }) });
  await until(() => ada.client.status === "live", "ada live");
  const bob = tab([{ status: 200, body: bobStream }], { getToken: () => jwt({ sub: "bob" }) });
  await until(() => bob.client.status === "live", "bob live");
  assert.ok(ada.client.isLeader && bob.client.isLeader, "each reads its own stream");
  assert.equal(bob.net.requests.length, 1);
  adaStream.push(frame("1", "e", "ada's"));
  bobStream.push(frame("2", "e", "bob's"));
  await until(() => ada.seen.length === 1 && bob.seen.length === 1, "each saw its own");
  await tick();
  assert.deepEqual([ada.seen, bob.seen], [["1"], ["2"]]);
  ada.client.close();
  bob.client.close();
});

test("tabs of one user share a stream; an application key names the identity", async () => {
  const tab = browser();
  const stream = body();
  const first = tab([{ status: 200, body: stream }], { getToken: () => jwt({ sub: "ada", n: 1 }) });
  await until(() => first.client.status === "live", "first live");
  // Another token of the same subject: the same identity.
  const second = tab([], { getToken: () => jwt({ sub: "ada", n: 2 }) });
  // An opaque token and the application's key for it.
  const keyed = tab([{ status: 200 }], { getToken: () => "opaque", identity: "user-ada" });
  const keyedToo = tab([], { getToken: () => "opaque", identity: "user-ada" });
  await until(() => [second, keyed, keyedToo].every((t) => t.client.status === "live"), "all live");
  assert.ok(!second.client.isLeader && second.net.requests.length === 0, "the same subject shares");
  assert.ok(keyed.client.isLeader && !keyedToo.client.isLeader, "the same key shares");
  stream.push(frame("1", "e", 1));
  await until(() => second.seen.length === 1, "relayed to the same subject");
  for (const t of [first, second, keyed, keyedToo]) t.client.close();
});

test("a token without a readable subject and no identity: the tab reads its own stream", async () => {
  const tab = browser();
  const a = tab([{ status: 200 }], { getToken: () => "opaque" });
  const b = tab([{ status: 200 }], { getToken: () => "opaque" });
  const c = tab([{ status: 200 }], { getToken: () => jwt({ name: "no sub" }) });
  await until(() => [a, b, c].every((t) => t.client.status === "live"), "all live");
  assert.ok([a, b, c].every((t) => t.client.isLeader && t.net.requests.length === 1));
  for (const t of [a, b, c]) t.client.close();
});

test("a tab with a token, one with cookies and one without credentials do not share", async () => {
  const tab = browser();
  const cookies = tab([{ status: 200 }]);
  await until(() => cookies.client.status === "live", "cookies live");
  const signedIn = tab([{ status: 200 }], { getToken: () => jwt({ sub: "ada" }) });
  const omit = tab([{ status: 200 }], { credentials: "omit" });
  const cookiesToo = tab([]);
  await until(() => [signedIn, omit, cookiesToo].every((t) => t.client.status === "live"), "all live");
  assert.deepEqual([cookies, signedIn, omit, cookiesToo].map((t) => t.client.isLeader), [true, true, true, false]);
  for (const t of [cookies, signedIn, omit, cookiesToo]) t.client.close();
});

test("a leader whose token names someone else stops feeding the other tabs", async () => {
  const tab = browser();
  const [first, own, follower] = [body(), body(), body()];
  let subject = "ada";
  const a = tab([{ status: 200, body: first }, { status: 200, body: own }], { getToken: () => jwt({ sub: subject }) });
  await until(() => a.client.status === "live", "a live");
  const b = tab([{ status: 200, body: follower }], { getToken: () => jwt({ sub: "ada" }) });
  await until(() => b.client.status === "live", "b live");
  first.push(frame("1", "e", 1));
  await until(() => b.seen.length === 1, "relayed");
  // The page in tab a signs in as bob without a new client; its stream reconnects.
  subject = "bob";
  first.end();
  await until(() => b.net.requests.length === 1, "b takes over for ada");
  assert.equal(b.net.requests[0].headers["Last-Event-ID"], "1");
  own.push(frame("2", "e", "bob's"));
  follower.push(frame("3", "e", "ada's"));
  await until(() => a.seen.length === 2 && b.seen.length === 2, "each saw its own");
  await tick();
  assert.deepEqual([a.seen, b.seen], [["1", "2"], ["1", "3"]]);
  a.client.close();
  b.client.close();
});
