// Drives the sse-demo page in Debian's headless Chromium and checks that it follows changes
// made elsewhere, live, and recovers after the server restarts.
//
//   node browser.mjs <page-url> <api-url> <screenshot.png>
//
// Run by sse-demo/tests/browser.rs, which owns the server and a proxy in front of it: the page
// is opened through the proxy (<page-url>), the script changes data directly (<api-url>). The
// script talks to the test over stdout/stdin lines: `CUT` (the proxy drops every connection
// and refuses new ones) is answered `DROPPED`, `RESUME` `RESUMED`, `STOP` (the server stops)
// `STOPPED`, `START` (it starts again on the same port and database) `STARTED`; other output
// lines start with `LOG`. Exits non-zero, with the reason on stderr, on the first failure.
// Every wait is bounded.

import { createInterface } from "node:readline";
import { apiAt, log, runInChromium, say, sleep, within } from "./common.mjs";

const [pageUrl, apiUrl, screenshot] = process.argv.slice(2);
if (!pageUrl || !apiUrl || !screenshot) {
  console.error("usage: node browser.mjs <page-url> <api-url> <screenshot.png>");
  process.exit(2);
}
const OVERALL_MS = 90_000;

// ---- talking to the test -------------------------------------------------------------------

const inbox = [];
const waiting = [];
let stdinClosed = false;
const input = createInterface({ input: process.stdin });
input.on("line", (line) => (waiting.length ? waiting.shift()(line) : inbox.push(line)));
input.on("close", () => {
  stdinClosed = true;
  while (waiting.length) waiting.shift()(null);
});

// Asks the test to do `command` and waits for its answer, which must start with `answer`.
async function ask(command, answer, ms) {
  say(command);
  const line = inbox.length
    ? inbox.shift()
    : stdinClosed
      ? null
      : await new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.splice(waiting.indexOf(done), 1);
            reject(new Error(`the test did not answer ${command} within ${ms} ms`));
          }, ms);
          const done = (line) => {
            clearTimeout(timer);
            resolve(line);
          };
          waiting.push(done);
        });
  if (line === null || !line.startsWith(answer)) {
    throw new Error(`expected ${answer} after ${command}, got ${JSON.stringify(line)}`);
  }
}

// ---- the API, from outside the page --------------------------------------------------------

const { api, createUser } = apiAt(apiUrl);
const renameUser = (id, username) => api("PUT", `/api/v1/users/${id}`, { username });
const deleteUser = (id) => api("DELETE", `/api/v1/users/${id}`);

// ---- what the page shows -------------------------------------------------------------------

const shows = (page, id, username, ms = 2000) =>
  within(
    page,
    ms,
    `the page shows user ${id} as ${JSON.stringify(username)}`,
    ([id, username]) =>
      document.querySelector(`li[data-user-id="${id}"] .username`)?.textContent === username,
    [id, username],
  );

const lacks = (page, id, ms = 2000) =>
  within(
    page,
    ms,
    `user ${id} disappears from the page`,
    (id) => !document.querySelector(`li[data-user-id="${id}"]`),
    id,
  );

const status = (page, state, ms) =>
  within(
    page,
    ms,
    `the status becomes ${state}`,
    (state) => document.getElementById("status")?.dataset.state === state,
    state,
  );

const pageUsers = (page) =>
  page.$$eval("#users li", (items) =>
    items.map((li) => `${li.dataset.userId}:${li.querySelector(".username").textContent}`),
  );

// Waits until the page lists exactly the users the server has.
async function inSync(page, ms) {
  const deadline = Date.now() + ms;
  let shown, stored;
  while (Date.now() < deadline) {
    shown = await pageUsers(page);
    stored = (await api("GET", "/api/v1/users")).map((u) => `${u.id}:${u.username}`);
    if (JSON.stringify(shown) === JSON.stringify(stored)) return;
    await sleep(100);
  }
  throw new Error(
    `the page does not match the server after ${ms} ms: shows ${JSON.stringify(shown)}, ` +
      `server has ${JSON.stringify(stored)}`,
  );
}

// ---- the scenario --------------------------------------------------------------------------

async function scenario(page, pageErrors) {
  let listLoads = 0; // snapshots the page fetched: after a reset, not after a replay
  page.on("request", (req) => {
    if (req.method() === "GET" && new URL(req.url()).pathname === "/api/v1/users") listLoads++;
  });
  await page.goto(pageUrl, { timeout: 10_000 });
  await status(page, "live", 5000);
  log("page open and live");

  // Changes made through the API show up without a reload.
  const ada = await createUser("ada");
  await shows(page, ada.id, "ada");
  await renameUser(ada.id, "ada.lovelace");
  await shows(page, ada.id, "ada.lovelace");
  await deleteUser(ada.id);
  await lacks(page, ada.id);
  log("created, renamed and deleted through the API: page followed");

  // The page's own controls.
  await page.fill("#new-username", "grace");
  await page.fill("#new-email", "grace@example.com");
  await page.click("#add-form button[type=submit]");
  await within(page, 2000, "the page lists the user it added", () =>
    [...document.querySelectorAll("#users .username")].some((e) => e.textContent === "grace"),
  );
  const grace = (await api("GET", "/api/v1/users")).find((u) => u.username === "grace");
  if (!grace) throw new Error("adding a user from the page did not store it");
  const item = `li[data-user-id="${grace.id}"]`;
  await page.click(`${item} button.rename`);
  await page.fill(`${item} .rename-input`, "grace.hopper");
  await page.press(`${item} .rename-input`, "Enter");
  await shows(page, grace.id, "grace.hopper");
  const renamed = await api("GET", `/api/v1/users/${grace.id}`);
  if (renamed.username !== "grace.hopper") throw new Error("renaming from the page did not store it");

  // A rejected change is reported on the page.
  await page.fill("#new-username", "GRACE.HOPPER");
  await page.fill("#new-email", "other@example.com");
  await page.click("#add-form button[type=submit]");
  await within(page, 2000, "the page reports the duplicate username", () => {
    const error = document.getElementById("error");
    return !error.hidden && error.textContent.includes("already taken");
  });
  log("added and renamed from the page; a duplicate is reported");

  // User text is shown as text, never parsed as HTML.
  const nasty = `<img src=x onerror="window.__xss=1">`;
  const mallory = await createUser(nasty);
  await shows(page, mallory.id, nasty);
  const injected = await page.evaluate(
    () => document.querySelectorAll("#users img").length + (window.__xss ? 1 : 0),
  );
  if (injected) throw new Error("a username was interpreted as HTML");
  await page.click(`li[data-user-id="${mallory.id}"] button.delete`);
  await lacks(page, mallory.id);
  const left = await api("GET", "/api/v1/users");
  if (left.some((u) => u.id === mallory.id)) throw new Error("deleting from the page did not delete");
  log("markup in usernames is shown as text; deleted from the page");

  const linus = await createUser("linus");
  await shows(page, linus.id, "linus");

  // The connection drops while the server stays up: the browser reconnects by itself, sending
  // Last-Event-ID, and the server replays what the page missed. No refetch needed.
  const loadsBeforeCut = listLoads;
  await ask("CUT", "DROPPED", 5000);
  await status(page, "reconnecting", 5000);
  const tim = await createUser("tim");
  await renameUser(linus.id, "linus.t");
  await deleteUser(grace.id);
  await ask("RESUME", "RESUMED", 5000);
  await status(page, "live", 5000);
  await shows(page, tim.id, "tim");
  await shows(page, linus.id, "linus.t");
  await lacks(page, grace.id);
  await inSync(page, 2000);
  if (listLoads !== loadsBeforeCut) {
    throw new Error("the page refetched the list after a drop: the missed events were not replayed");
  }
  log("connection dropped: page reconnected and replayed the missed events");

  // The server goes away: the page says so, keeps what it shows, and retries.
  await ask("STOP", "STOPPED", 15_000);
  await status(page, "reconnecting", 5000);
  const text = await page.textContent("#status");
  if (text !== "reconnecting…") throw new Error(`status reads ${JSON.stringify(text)}`);
  log("server stopped: page shows reconnecting");

  // It comes back with its history (the events live in its database, with their epoch), so
  // the page resumes and replays what it missed instead of refetching; changes made right
  // away, before the page reconnects, must show up all the same.
  const loadsBeforeRestart = listLoads;
  await ask("START", "STARTED", 20_000);
  const ken = await createUser("ken");
  await renameUser(tim.id, "tim.bl");
  await deleteUser(linus.id);
  await status(page, "live", 10_000);
  await inSync(page, 5000);
  await shows(page, ken.id, "ken", 500);
  await shows(page, tim.id, "tim.bl", 500);
  await lacks(page, linus.id, 500);
  if (listLoads !== loadsBeforeRestart) {
    throw new Error("the page refetched after the restart: the history did not survive it");
  }
  log("server restarted: page live again and caught up by replay, without a refetch");

  // And it follows live changes again.
  const margaret = await createUser("margaret");
  await shows(page, margaret.id, "margaret");
  await renameUser(ken.id, "ken.thompson");
  await shows(page, ken.id, "ken.thompson");
  await inSync(page, 2000);
  log("live after the restart");

  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  await sleep(1300); // let the highlight of the last change fade before the screenshot
}

// The scenario, then a screenshot of the page however it went (the first failure wins).
async function run(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(5000);
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") log(`console ${msg.type()}: ${msg.text()}`);
  });
  let failure = null;
  try {
    await scenario(page, pageErrors);
  } catch (err) {
    failure = err;
  }
  try {
    await page.screenshot({ path: screenshot, fullPage: true, timeout: 10_000 });
    say(`SCREENSHOT ${screenshot}`);
  } catch (err) {
    failure ??= err;
  }
  if (failure) throw failure;
}

runInChromium(
  "browser",
  { overallMs: OVERALL_MS, viewport: { width: 900, height: 640 }, cleanup: () => input.close() },
  run,
);
