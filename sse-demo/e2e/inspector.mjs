// The live inspector (`sse-demo --ops-bind ... --inspector`) in Debian's headless Chromium: it
// goes live on its private topic, shows its own stream, and a change made elsewhere appears in
// its last events within seconds; a request for its stream without the token is refused.
//
//   node inspector.mjs <base-url> <ops-url>
//
// Run by sse-demo/tests/inspector.rs. Prints `LOG ...` lines, then `OK`; exits non-zero with
// the reason on stderr on the first failure. Every wait is bounded.

import { apiAt, log, runInChromium, waiter } from "./common.mjs";

const [base, ops] = process.argv.slice(2);
if (!base || !ops) {
  console.error("usage: node inspector.mjs <base-url> <ops-url>");
  process.exit(2);
}
const { createUser } = apiAt(base);

// A wait that fails also says what the page's status reads.
const within = waiter({
  detail: async (page) => `status: ${await page.locator("#status").textContent().catch(() => "?")}`,
});

async function scenario(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));

  // The operator's address, and no token in it: the page carries its own.
  await page.goto(new URL("debug/sse", ops).href);
  await within(page, 10_000, "inspector live", () => document.getElementById("status")?.dataset.state === "live");
  await within(page, 10_000, "first update", () => document.body.dataset.updated);
  await within(page, 5_000, "its own stream listed", () =>
    [...document.querySelectorAll("#streams tr")].some((tr) => tr.cells[0].textContent === "debug/sse" && tr.cells[1].textContent === "1"),
  );
  log("live, own stream listed");

  // A change made elsewhere (not from this page).
  await createUser("inspected");
  await within(page, 5_000, "the event in the last events", () =>
    [...document.querySelectorAll("#recent tr")].some((tr) => tr.cells[1].textContent === "user_created"),
  );
  await within(page, 5_000, "counters", () =>
    [...document.querySelectorAll("#counters tr")].some((tr) => tr.cells[0].textContent === "published" && Number(tr.cells[1].textContent) >= 1),
  );
  log("event and counters shown");

  // Without the token: refused, and the refusal counted.
  const refused = await page.evaluate(async () => (await fetch("/api/sse/stream?topic=debug/sse")).status);
  if (refused !== 401) throw new Error(`the stream without the token: HTTP ${refused}, not 401`);
  await within(page, 5_000, "the refusal counted", () =>
    [...document.querySelectorAll("#refusals tr")].some((tr) => tr.cells[0].textContent === "401" && Number(tr.cells[1].textContent) >= 1),
  );
  log("a request without the token is refused, and the refusal counted");
  if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
}

// Chromium without the quiet flags (see common.mjs), as this test has always run it.
runInChromium("inspector", { overallMs: 60_000, quiet: false }, scenario);
