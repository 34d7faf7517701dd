// The page's "View as user…" and presence ("N watching") in headless Chromium against the
// sse-demo binary: run by sse-demo/tests/browser.rs. Prints `LOG ...` and `MEASURE name value`
// lines, then `OK`; exits non-zero with the reason on stderr on the first failure. Every wait
// is bounded.
//
//   node viewer.mjs view-as <url>    (server with --demo-login) a page viewing as ada shows
//                                    her email, and her new one when it changes through the
//                                    API; an anonymous page never shows any email; after
//                                    signing out, neither does the first
//   node viewer.mjs presence <url>   (server without --demo-login: no "View as") a page that
//                                    watches ada makes another page's count for her 1, a
//                                    page opened then starts at 1, and closing the watcher
//                                    brings it back to 0

import { apiAt, log, runInChromium, say, sleep, within } from "./common.mjs";

const [scenario, url] = process.argv.slice(2);
const OVERALL_MS = 90_000;

// ---- the API, from outside the pages ---------------------------------------------------------

const { api, createUser } = apiAt(url);
const renameUser = (id, username) => api("PUT", `/api/v1/users/${id}`, { username });
const changeEmail = (id, email) => api("PUT", `/api/v1/users/${id}/email`, { email });

// ---- what a page shows -----------------------------------------------------------------------

const live = (page, name) =>
  within(page, 5000, `${name} is live`, () => document.getElementById("status")?.dataset.state === "live");

const field = (page, id, selector) =>
  page.evaluate(
    ([id, selector]) => document.querySelector(`li[data-user-id="${id}"] ${selector}`)?.textContent ?? null,
    [id, selector],
  );

async function shows(page, name, id, selector, text, ms = 3000) {
  await within(
    page,
    ms,
    `${name} shows ${JSON.stringify(text)} in ${selector} of user ${id}`,
    ([id, selector, text]) => document.querySelector(`li[data-user-id="${id}"] ${selector}`)?.textContent === text,
    [id, selector, text],
  );
}

const watchersOf = (page, id) =>
  page.evaluate((id) => document.querySelector(`li[data-user-id="${id}"] .watchers`)?.dataset.count ?? null, id);

async function counts(page, name, id, count, ms) {
  const started = Date.now();
  await within(
    page,
    ms,
    `${name} shows ${count} watching user ${id}`,
    ([id, count]) => document.querySelector(`li[data-user-id="${id}"] .watchers`)?.dataset.count === String(count),
    [id, count],
  );
  return Date.now() - started;
}

// A page that records every email address it ever shows, from before its script runs.
async function openPage(context, name, errors) {
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  page.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
  await page.addInitScript(() => {
    window.__emailsShown = [];
    new MutationObserver(() => {
      for (const e of document.querySelectorAll("#users .email")) {
        if (e.textContent) window.__emailsShown.push(e.textContent);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(url, { timeout: 10_000 });
  await live(page, name);
  return page;
}

// ---- scenarios -------------------------------------------------------------------------------

async function viewAs(context, errors) {
  const ada = await createUser("ada");
  const bob = await createUser("bob");
  const viewer = await openPage(context, "the viewer page", errors);
  const anonymous = await openPage(context, "the anonymous page", errors);
  await within(viewer, 5000, "the page offers View as", () => !document.getElementById("viewer")?.hidden);

  // Sign in as ada: her own details (a response to her token) show her address.
  await viewer.selectOption("#view-as", String(ada.id));
  await within(viewer, 5000, "the page says who is signed in", () =>
    document.getElementById("signed-in")?.textContent === "Signed in as ada",
  );
  await shows(viewer, "the viewer page", ada.id, ".email", "ada@example.com");
  await live(viewer, "the viewer page, reconnected with the token");
  log("signed in as ada: her own response shows her email");

  // Her address changes elsewhere: the private event alone brings it (no request for her).
  let refetched = 0;
  viewer.on("request", (req) => {
    if (new URL(req.url()).pathname === `/api/v1/users/${ada.id}`) refetched++;
  });
  const changed = Date.now();
  await changeEmail(ada.id, "ada@lovelace.org");
  await shows(viewer, "the viewer page", ada.id, ".email", "ada@lovelace.org");
  say(`MEASURE email_shown_ms ${Date.now() - changed}`);
  if (refetched) throw new Error("the viewer page fetched ada instead of taking the event");

  // Someone else's address never reaches her page.
  await changeEmail(bob.id, "robert@example.org");
  await renameUser(bob.id, "robert");
  await shows(viewer, "the viewer page", bob.id, ".username", "robert");
  if (await field(viewer, bob.id, ".email")) throw new Error("the viewer page shows bob's email");

  // The anonymous page followed the same public changes and never showed an address.
  await renameUser(ada.id, "ada.lovelace");
  await shows(anonymous, "the anonymous page", ada.id, ".username", "ada.lovelace");
  await shows(viewer, "the viewer page", ada.id, ".username", "ada.lovelace");
  if ((await field(viewer, ada.id, ".email")) !== "ada@lovelace.org") {
    throw new Error("a public update erased the viewer's own email");
  }
  const leaked = await anonymous.evaluate(() => window.__emailsShown);
  if (leaked.length) throw new Error(`the anonymous page showed emails: ${JSON.stringify(leaked)}`);
  log("the viewer saw her new email live; the anonymous page saw none");

  // Signing out: the address goes, and later ones no longer arrive.
  await viewer.click("#sign-out");
  await shows(viewer, "the signed-out page", ada.id, ".email", "");
  await within(viewer, 2000, "the page is anonymous again", () =>
    document.getElementById("sign-out")?.hidden === true &&
    document.getElementById("view-as") instanceof HTMLSelectElement &&
    document.getElementById("view-as").value === "",
  );
  await live(viewer, "the signed-out page");
  await changeEmail(ada.id, "ada@analytical.engine");
  await renameUser(ada.id, "countess");
  await shows(viewer, "the signed-out page", ada.id, ".username", "countess");
  if (await field(viewer, ada.id, ".email")) throw new Error("the signed-out page still gets ada's email");
  const late = await anonymous.evaluate(() => window.__emailsShown);
  if (late.length) throw new Error(`the anonymous page showed emails: ${JSON.stringify(late)}`);
  log("signed out: no email shown, none received");
}

async function presence(context, errors) {
  const ada = await createUser("ada");
  const bob = await createUser("bob");
  const counter = await openPage(context, "the counting page", errors);
  if (!(await counter.evaluate(() => document.getElementById("viewer")?.hidden))) {
    throw new Error("View as is offered without --demo-login");
  }
  let snapshots = 0;
  counter.on("request", (req) => {
    if (new URL(req.url()).pathname === "/api/v1/watchers") snapshots++;
  });
  if ((await watchersOf(counter, ada.id)) !== "0") throw new Error("ada starts watched");

  const watcher = await openPage(context, "the watching page", errors);
  await watcher.click(`li[data-user-id="${ada.id}"] button.watch`);
  await within(watcher, 2000, "the watch button is pressed", (id) =>
    document.querySelector(`li[data-user-id="${id}"] button.watch`)?.getAttribute("aria-pressed") === "true",
    ada.id,
  );
  say(`MEASURE watcher_counted_ms ${await counts(counter, "the counting page", ada.id, 1, 5000)}`);
  await counts(watcher, "the watching page", ada.id, 1, 2000);
  if ((await watchersOf(counter, bob.id)) !== "0") throw new Error("bob is counted as watched");

  // A page opened now starts from the count (the snapshot), not from 0.
  const late = await openPage(context, "a page opened later", errors);
  await counts(late, "a page opened later", ada.id, 1, 1000);
  await late.close();
  await sleep(1500); // a count that moved would have been published by now
  if ((await watchersOf(counter, ada.id)) !== "1") throw new Error("a page that does not watch was counted");

  const closed = Date.now();
  await watcher.close();
  await counts(counter, "the counting page", ada.id, 0, 10_000);
  say(`MEASURE watcher_gone_ms ${Date.now() - closed}`);
  if (snapshots) throw new Error("the counting page refetched the counts instead of following the events");
  log("watching ada: counted 1, back to 0 when the watching page closed");
}

const scenarios = { "view-as": viewAs, presence };

const run = scenarios[scenario];
if (!run || !url) {
  console.error("usage: node viewer.mjs view-as|presence <url>");
  process.exit(2);
}
runInChromium("viewer", { overallMs: OVERALL_MS }, async (context) => {
  const errors = [];
  await run(context, errors);
  if (errors.length) throw new Error(`errors in the pages: ${errors.join("; ")}`);
});
