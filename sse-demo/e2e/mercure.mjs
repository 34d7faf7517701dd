// The Mercure hub of sse-demo (`--mercure --mercure-anonymous`) in headless Chromium: an
// EventSource in a page on the hub's origin, updates posted as forms with a Bearer token.
// Our own cases, after those the Mercure conformance suite covers: the publish answers
// text/plain with the posted id, which reaches `lastEventId`; raw, URI and URI-template
// topics; several topics and several selectors; selectors that match nothing; private
// updates an anonymous subscriber does not get. Then CORS (the demo runs with
// `--mercure-cors-origin '*' --mercure-subscriptions`): the page reaches the hub under its
// other loopback name, another origin, with an EventSource with credentials, a publish and a
// read of the subscriptions API that each need a preflight. Run by sse-demo/tests/mercure.rs;
// prints `LOG ...` lines, then `OK`; on the first failure the reason on stderr, exit code 1.
//
//   node mercure.mjs <url> <publisher-token> <subscriber-token>

import { log, runInChromium } from "./common.mjs";

const [url, token, subscriberToken] = process.argv.slice(2);
const WAIT_MS = 5_000;
const TOPIC = "https://example.com/books/1";

await runInChromium("mercure", { overallMs: 90_000 }, async (context) => {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => log(`page error: ${err.message}`));
  // A document of the hub's origin that opens no stream of its own: over HTTP/1.1 a browser
  // keeps at most six connections to an origin, and five EventSources are opened below.
  await page.goto(new URL("/api/v1/users", url).href, { waitUntil: "load", timeout: 20_000 });

  // In the page: subscribers by name, each recording what it receives, and a publisher.
  await page.evaluate(
    ([token, waitMs]) => {
      window.received = {};
      window.subscribe = (name, selectors, types = []) =>
        new Promise((resolve, reject) => {
          const query = new URLSearchParams();
          for (const s of selectors) query.append("topic", s);
          const source = new EventSource(`/.well-known/mercure?${query}`);
          window.received[name] = [];
          const record = (e) =>
            window.received[name].push({ type: e.type, data: e.data, id: e.lastEventId });
          source.onmessage = record;
          for (const t of types) source.addEventListener(t, record);
          source.onopen = () => resolve();
          source.onerror = () => reject(new Error(`${name}: the EventSource failed`));
          setTimeout(() => reject(new Error(`${name}: not open within ${waitMs} ms`)), waitMs);
        });
      window.publish = async (fields) => {
        const body = new URLSearchParams();
        for (const [k, v] of fields) body.append(k, v);
        const res = await fetch("/.well-known/mercure", {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body,
        });
        return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
      };
    },
    [token, WAIT_MS],
  );

  const subscribe = (name, selectors, types) =>
    page.evaluate(([n, s, t]) => window.subscribe(n, s, t), [name, selectors, types]);
  const publish = (fields) => page.evaluate((f) => window.publish(f), fields);
  const received = (name) => page.evaluate((n) => window.received[n], name);
  const until = async (name, count, what) => {
    await page
      .waitForFunction(([n, c]) => window.received[n].length >= c, [name, count], {
        timeout: WAIT_MS,
        polling: 20,
      })
      .catch(async () => {
        throw new Error(`${what}: ${name} got ${JSON.stringify(await received(name))}`);
      });
    return received(name);
  };
  const published = async (fields) => {
    const res = await publish(fields);
    if (res.status !== 200) throw new Error(`publish ${JSON.stringify(fields)}: ${res.status} ${res.body}`);
    return res;
  };

  await subscribe("raw", ["raw-topic"]);
  await subscribe("uri", [TOPIC], ["book"]);
  await subscribe("template", ["https://example.com/books/{id}"], ["book"]);
  await subscribe("several", ["https://example.com/authors/1", "https://example.com/reviews/{id}"]);
  await subscribe("nothing", ["https://example.com/nothing"]);
  log("five subscribers open");

  // The publish answers text/plain with the posted id, which reaches lastEventId unchanged.
  const res = await published([["topic", TOPIC], ["data", "line 1\nline 2"], ["id", "urn:uuid:conformance-1"], ["type", "book"]]);
  if (!res.type?.startsWith("text/plain") || res.body !== "urn:uuid:conformance-1") {
    throw new Error(`publish answered ${JSON.stringify(res)}`);
  }
  for (const name of ["uri", "template"]) {
    const [got] = await until(name, 1, "URI and template topics");
    if (got.id !== "urn:uuid:conformance-1" || got.type !== "book" || got.data !== "line 1\nline 2") {
      throw new Error(`${name} got ${JSON.stringify(got)}`);
    }
  }
  log("URI topic and URI template: id, type and multi-line data as posted");

  await published([["topic", "raw-topic"], ["data", "raw"], ["id", "raw-1"]]);
  const [raw] = await until("raw", 1, "raw topic");
  if (raw.id !== "raw-1" || raw.data !== "raw" || raw.type !== "message") throw new Error(`raw got ${JSON.stringify(raw)}`);
  log("raw topic");

  // Several topics (the first canonical) and several selectors: delivered once.
  await published([["topic", "https://example.com/reviews/9"], ["topic", "https://example.com/authors/1"], ["data", "both"], ["id", "several-1"]]);
  await until("several", 1, "several topics and selectors");

  // A private update: the anonymous subscribers never get it; the public sentinel after it
  // comes first.
  await published([["topic", TOPIC], ["data", "secret"], ["id", "private-1"], ["private", "on"]]);
  await published([["topic", TOPIC], ["data", "sentinel"], ["id", "sentinel-1"]]);
  await published([["topic", "https://example.com/reviews/9"], ["data", "sentinel"], ["id", "sentinel-2"]]);
  const uri = await until("uri", 2, "the sentinel");
  if (uri[1].id !== "sentinel-1") throw new Error(`the anonymous subscriber got ${JSON.stringify(uri)}`);
  const several = await until("several", 2, "the second sentinel");
  if (several.map((e) => e.id).join() !== "several-1,sentinel-2") {
    throw new Error(`several got ${JSON.stringify(several)}`);
  }
  log("private update not delivered to anonymous subscribers; several topics delivered once");

  const nothing = await received("nothing");
  const rawAll = await received("raw");
  if (nothing.length !== 0 || rawAll.length !== 1) {
    throw new Error(`non-matching selectors got ${JSON.stringify({ nothing, rawAll })}`);
  }
  log("non-matching selectors got nothing");

  // The same server under its other loopback name is another origin.
  const hub = new URL("/.well-known/mercure", url);
  hub.hostname = hub.hostname === "localhost" ? "127.0.0.1" : "localhost";
  const cors = await page.evaluate(
    async ([hub, token, subscriberToken, waitMs]) => {
      const topic = "https://example.com/cors/1";
      const within = (what, promise) =>
        Promise.race([
          promise,
          new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${waitMs} ms`)), waitMs)),
        ]);
      const source = new EventSource(`${hub}?topic=${encodeURIComponent(topic)}`, { withCredentials: true });
      try {
        await within(
          "the cross-origin EventSource opens",
          new Promise((resolve, reject) => {
            source.onopen = resolve;
            source.onerror = () => reject(new Error("the cross-origin EventSource failed (CORS?)"));
          }),
        );
        const update = new Promise((resolve) => {
          source.onmessage = (e) => resolve({ id: e.lastEventId, data: e.data });
        });
        // An Authorization header: the browser sends a preflight first.
        const body = new URLSearchParams([["topic", topic], ["data", "cross"], ["id", "cors-1"]]);
        const published = await fetch(hub, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body,
          credentials: "include",
        });
        const got = await within("the cross-origin update", update);
        const list = await fetch(`${hub}/subscriptions/${encodeURIComponent(topic)}`, {
          headers: { authorization: `Bearer ${subscriberToken}` },
          credentials: "include",
        });
        return { published: published.status, got, listed: list.status, list: await list.json() };
      } finally {
        source.close();
      }
    },
    [hub.href, token, subscriberToken, WAIT_MS],
  );
  if (cors.published !== 200 || cors.got.id !== "cors-1" || cors.got.data !== "cross") {
    throw new Error(`cross-origin publish and update: ${JSON.stringify(cors)}`);
  }
  const listed = cors.list.subscriptions ?? [];
  if (cors.listed !== 200 || listed.length !== 1 || listed[0].topic !== "https://example.com/cors/1" || !listed[0].active) {
    throw new Error(`cross-origin subscriptions API: ${JSON.stringify(cors)}`);
  }
  log("cross-origin EventSource with credentials, publish and subscriptions API after preflights");
});
