// The live inspector (`sse-demo --inspector`) in Debian's headless Chromium: it goes live on
// its private topic, shows its own stream, and a change made elsewhere appears in its last
// events within seconds; without the token the page is refused the stream.
//
//   node inspector.mjs <base-url> <token>
//
// Run by sse-demo/tests/inspector.rs. Prints `LOG ...` lines, then `OK`; exits non-zero with
// the reason on stderr on the first failure. Every wait is bounded.

import { apiAt, log, runInChromium, waiter } from "./common.mjs";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node inspector.mjs <base-url> <token>");
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

  await page.goto(new URL(`debug/sse?token=${encodeURIComponent(token)}`, base).href);
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

  // Without the token: refused.
  const other = await context.newPage();
  await other.goto(new URL("debug/sse?token=nope", base).href);
  await within(other, 5_000, "refusal shown", () => document.getElementById("status")?.textContent.includes("HTTP 401"));
  await within(page, 5_000, "the refusal counted", () =>
    [...document.querySelectorAll("#refusals tr")].some((tr) => tr.cells[0].textContent === "401" && Number(tr.cells[1].textContent) >= 1),
  );
  log("a page without the token is refused, and the refusal counted");
  if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
}

// Chromium without the quiet flags (see common.mjs), as this test has always run it.
runInChromium("inspector", { overallMs: 60_000, quiet: false }, scenario);
