// Many tabs of one headless Chromium against sse-demo (or a test server): run by
// sse-demo/tests/tabs.rs. Prints `LOG ...` and `MEASURE name value` lines, then `OK`; exits
// non-zero with the reason on stderr on the first failure. Every wait is bounded.
//
//   node tabs.mjs tabs <url> <n>         n tabs of the page: one leader, all live, a change
//                                        made elsewhere shows in every tab within a second
//   node tabs.mjs leader <url> <n>       the leader tab closes while changes keep coming:
//                                        the other tabs miss none
//   node tabs.mjs eventsource <url> <n> <expect-live>
//                                        n tabs, each with a plain EventSource (no client);
//                                        how many go live, and a change reaches them
//   node tabs.mjs recovery <url>         a test page (tests/tabs.rs) that checks tokens and
//                                        Retry-After; prints its RESULT
//   node tabs.mjs identities <url>       (--demo-login) tabs signed in as ada, as bob, and
//                                        none, all with the topic `users/*`: each sees only
//                                        its own private events

import { apiAt, log, runInChromium, say, sleep, waiter } from "./common.mjs";

const [scenario, url, count, expectLive] = process.argv.slice(2);
const OVERALL_MS = 120_000;

// The API from inside a tab: works for https with a self-signed certificate too.
const api = (page, method, path, body) =>
  page.evaluate(
    async ([method, path, body]) => {
      const res = await fetch(path, {
        method,
        headers: body ? { "content-type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
      return res.json();
    },
    [method, path, body],
  );
const createUser = (page, username) => api(page, "POST", "/api/v1/users", { username, email: `${username}@example.com` });

const within = waiter({ polling: 20 });

async function openTabs(context, n, target, waitUntil = "load", timeout = 20_000) {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = i === 0 && context.pages()[0] ? context.pages()[0] : await context.newPage();
    page.on("pageerror", (err) => log(`tab ${i} error: ${err.message}`));
    pages.push(page);
  }
  // All at once, as a user restoring a session would.
  const loaded = await Promise.all(
    pages.map((page) =>
      page.goto(target, { waitUntil, timeout }).then(
        () => true,
        () => false,
      ),
    ),
  );
  return { pages, loaded };
}

// ---- scenarios -----------------------------------------------------------------------------

async function tabs(context) {
  const n = Number(count);
  const started = Date.now();
  const { pages, loaded } = await openTabs(context, n, url);
  if (loaded.includes(false)) throw new Error(`${loaded.filter((l) => !l).length} of ${n} tabs did not load`);
  await Promise.all(
    pages.map((page, i) =>
      within(page, 15_000, `tab ${i} live`, () => document.getElementById("status")?.dataset.state === "live"),
    ),
  );
  say(`MEASURE tabs_live ${n}`);
  say(`MEASURE all_live_ms ${Date.now() - started}`);
  const leaders = await Promise.all(pages.map((p) => p.evaluate(() => window.sseClient.isLeader)));
  const leaderCount = leaders.filter(Boolean).length;
  say(`MEASURE leaders ${leaderCount}`);
  if (leaderCount !== 1) throw new Error(`${leaderCount} tabs hold a connection, not 1`);
  log(`${n} tabs live, one holds the stream`);

  for (let round = 0; round < 3; round++) {
    const origin = pages[(round * 7) % n];
    const t0 = Date.now();
    const user = await createUser(origin, `tab-user-${round}`);
    const times = await Promise.all(
      pages.map(async (page, i) => {
        await within(page, 1000, `tab ${i} shows user ${user.id}`, (id) => !!document.querySelector(`li[data-user-id="${id}"]`), user.id);
        return Date.now() - t0;
      }),
    );
    say(`MEASURE round_${round}_slowest_tab_ms ${Math.max(...times)}`);
  }
}

async function leader(context) {
  const n = Number(count);
  const { pages, loaded } = await openTabs(context, n, url);
  if (loaded.includes(false)) throw new Error("a tab did not load");
  for (const [i, page] of pages.entries()) {
    await within(page, 15_000, `tab ${i} live`, () => window.sseClient?.status === "live");
    await page.evaluate(() => {
      window.__seen = [];
      window.sseClient.on("user_created", (user) => window.__seen.push(user.username));
    });
  }
  const leaders = await Promise.all(pages.map((p) => p.evaluate(() => window.sseClient.isLeader)));
  const index = leaders.indexOf(true);
  if (index < 0 || leaders.filter(Boolean).length !== 1) throw new Error(`leaders: ${leaders}`);
  const writer = pages[(index + 1) % n];
  const created = [];
  for (let i = 0; i < 40; i++) {
    created.push((await createUser(writer, `steady-${i}`)).username);
    if (i === 15) {
      await pages[index].close();
      log(`closed the leader (tab ${index}) after ${i + 1} changes`);
    }
    await sleep(40);
  }
  const rest = pages.filter((_, i) => i !== index);
  await Promise.all(
    rest.map((page, i) => within(page, 5000, `tab ${i} saw all 40`, () => window.__seen.length >= 40)),
  );
  for (const page of rest) {
    const seen = await page.evaluate(() => window.__seen);
    if (JSON.stringify(seen) !== JSON.stringify(created)) {
      throw new Error(`a tab saw ${JSON.stringify(seen)}, expected ${JSON.stringify(created)}`);
    }
  }
  const now = await Promise.all(rest.map((p) => p.evaluate(() => window.sseClient.isLeader)));
  if (now.filter(Boolean).length !== 1) throw new Error(`after the hand-over, leaders: ${now}`);
  say(`MEASURE tabs_missing_none ${rest.length}`);
  log(`${rest.length} tabs saw all 40 changes once, in order, across the hand-over`);
}

async function eventsource(context) {
  const n = Number(count);
  const want = Number(expectLive ?? n);
  // Any page of the origin will do: the stream is opened by hand.
  const { pages, loaded } = await openTabs(context, n, new URL("/api/v1/users", url).href, "commit", 5000);
  const opened = await Promise.all(
    pages.map(async (page, i) => {
      if (!loaded[i]) return false;
      await page.evaluate(() => {
        window.__es = { open: false, ids: [] };
        const es = new EventSource("/api/sse/stream");
        es.onopen = () => (window.__es.open = true);
        es.addEventListener("user_created", (e) => window.__es.ids.push(JSON.parse(e.data).id));
      }).catch(() => {});
      return page.waitForFunction(() => window.__es?.open, null, { timeout: 5000, polling: 50 }).then(() => true, () => false);
    }),
  );
  const live = opened.filter(Boolean).length;
  say(`MEASURE eventsource_tabs_live ${live}`);
  say(`MEASURE eventsource_tabs_not_loaded ${loaded.filter((l) => !l).length}`);
  if (live !== want) throw new Error(`${live} of ${n} tabs went live, expected ${want}`);
  if (live === n) {
    const t0 = Date.now();
    const user = await createUser(pages[0], "h2-user");
    const times = await Promise.all(
      pages.map(async (page, i) => {
        await within(page, 1000, `tab ${i} got the event`, (id) => window.__es.ids.includes(id), user.id);
        return Date.now() - t0;
      }),
    );
    say(`MEASURE slowest_tab_ms ${Math.max(...times)}`);
    const protocol = await pages[0].evaluate(() => performance.getEntriesByType("navigation")[0]?.nextHopProtocol);
    say(`MEASURE protocol ${protocol}`);
  }
}

async function recovery(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => log(`console: ${msg.text()}`));
  await page.goto(url, { timeout: 10_000 });
  await within(page, 30_000, "the recovery page finishes", () => window.__result !== undefined);
  say(`RESULT ${JSON.stringify(await page.evaluate(() => window.__result))}`);
}

async function identities(context) {
  // The API from outside the browser: the tabs' own requests carry no credentials.
  const server = apiAt(url);
  const users = [await server.createUser("ada"), await server.createUser("bob")];
  const tokens = await Promise.all(users.map(async (u) => (await server.api("POST", "/api/v1/login", { user_id: u.id })).token));
  // A page of the origin that runs no client of its own; one client per tab, by hand, with
  // the same topics in every tab: only the identity differs.
  const names = ["ada", "bob", "anonymous"];
  const pages = [];
  for (const [i, name] of names.entries()) {
    const page = i === 0 && context.pages()[0] ? context.pages()[0] : await context.newPage();
    page.on("pageerror", (err) => log(`${name}'s tab error: ${err.message}`));
    pages.push(page);
    await page.goto(new URL("/api/v1/users", url).href, { timeout: 10_000 });
    await page.evaluate(async (token) => {
      const { connect } = await import("/api/sse/stream/client.js");
      window.__private = [];
      window.__created = [];
      const events = connect("/api/sse/stream", { topics: ["users/*"], getToken: token ? () => token : undefined });
      events.on("user_email_changed", (change) => window.__private.push(change.id));
      events.on("user_created", (user) => window.__created.push(user.username));
      window.sseClient = events;
    }, tokens[i] ?? null);
    // One after the other, so that without keys by identity the first tab leads them all.
    await within(page, 10_000, `${name}'s tab live`, () => window.sseClient?.status === "live");
  }
  const leaders = await Promise.all(pages.map((p) => p.evaluate(() => window.sseClient.isLeader)));
  say(`MEASURE leaders ${leaders.filter(Boolean).length}`);

  for (const user of users) await server.api("PUT", `/api/v1/users/${user.id}/email`, { email: `${user.username}@new.example` });
  // A public event after both changes: once a tab has it, it has what came before it.
  await server.createUser("marker");
  const seen = {};
  for (const [i, page] of pages.entries()) {
    await within(page, 5000, `${names[i]}'s tab got the public marker`, () => window.__created.includes("marker"));
    seen[names[i]] = await page.evaluate(() => window.__private);
  }
  log(`private events seen, by user id: ${JSON.stringify(seen)}; ada is ${users[0].id}, bob ${users[1].id}`);
  const want = { ada: [users[0].id], bob: [users[1].id], anonymous: [] };
  for (const name of names) {
    if (JSON.stringify(seen[name]) !== JSON.stringify(want[name])) {
      throw new Error(`${name}'s tab saw the private events of users ${JSON.stringify(seen[name])}, expected ${JSON.stringify(want[name])}`);
    }
  }
  say("MEASURE own_private_events_only 3");
}

const scenarios = { tabs, leader, eventsource, recovery, identities };

const run = scenarios[scenario];
if (!run || !url) {
  console.error("usage: node tabs.mjs tabs|leader|eventsource|recovery|identities <url> [n] [expect-live]");
  process.exit(2);
}
// https with a self-signed certificate too (`--tls-self-signed`).
runInChromium("tabs", { overallMs: OVERALL_MS, selfSigned: true }, run);
