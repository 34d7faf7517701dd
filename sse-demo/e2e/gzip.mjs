// The sse-demo page in headless Chromium against a server started with --compress (directly,
// or through deploy/nginx.conf): its event stream arrives gzip-encoded, once (not encoded
// again on the way), and each change made through the API shows on the page at once, not when
// some buffer fills. Run by sse-demo/tests/browser.rs and sse-demo/tests/nginx.rs.
//
//   node gzip.mjs <url>
//
// Prints `LOG ...` lines, `MEASURE shown_ms <slowest of the changes>`, `MEASURE wire_bytes n`
// and `MEASURE decoded_bytes n` (the stream's bytes as received and as decoded, from the
// DevTools protocol), then `OK`; exits non-zero with the reason on stderr on the first
// failure. Every wait is bounded.

import { apiAt, log, runInChromium, say, within } from "./common.mjs";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node gzip.mjs <url>");
  process.exit(2);
}
const OVERALL_MS = 60_000;
const CHANGES = 5;

const { createUser } = apiAt(url);

runInChromium("gzip", { overallMs: OVERALL_MS }, async (context) => {
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));

  // The stream's response and its bytes, as the browser's network stack saw them.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const stream = { requestId: null, headers: null, wire: 0, decoded: 0 };
  // The headers the network stack really sent (Accept-Encoding is added there).
  const sentHeaders = new Map();
  cdp.on("Network.requestWillBeSentExtraInfo", (e) => sentHeaders.set(e.requestId, e.headers));
  cdp.on("Network.responseReceived", (e) => {
    if (new URL(e.response.url).pathname === "/api/sse/stream" && !stream.requestId) {
      stream.requestId = e.requestId;
      stream.headers = e.response.headers;
    }
  });
  cdp.on("Network.dataReceived", (e) => {
    if (e.requestId === stream.requestId) {
      stream.wire += e.encodedDataLength;
      stream.decoded += e.dataLength;
    }
  });

  await page.goto(url, { timeout: 10_000 });
  await within(page, 5000, "the page is live", () => document.getElementById("status")?.dataset.state === "live");
  if (!stream.headers) throw new Error("no response for /api/sse/stream seen");
  const header = (headers, name) =>
    Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1] ?? null;
  const asked = header(sentHeaders.get(stream.requestId), "accept-encoding");
  const encoding = header(stream.headers, "content-encoding");
  log(`stream request Accept-Encoding: ${asked}; response Content-Encoding: ${encoding}`);
  if (asked !== null && !/\bgzip\b/.test(asked)) throw new Error(`the browser did not ask for gzip: ${asked}`);
  if (encoding !== "gzip") throw new Error(`the stream's Content-Encoding is ${JSON.stringify(encoding)}, not gzip`);

  let slowest = 0;
  for (let i = 0; i < CHANGES; i++) {
    const name = `gzip-user-${i}-${"x".repeat(40)}`;
    const started = Date.now();
    const user = await createUser(name);
    // Live: the page shows it before the next change exists.
    await within(
      page,
      2000,
      `the page shows ${name}`,
      ([id, name]) => document.querySelector(`li[data-user-id="${id}"] .username`)?.textContent === name,
      [user.id, name],
    );
    slowest = Math.max(slowest, Date.now() - started);
  }
  if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
  log(`stream bytes: ${stream.wire} received, ${stream.decoded} decoded`);
  say(`MEASURE shown_ms ${slowest}`);
  say(`MEASURE wire_bytes ${stream.wire}`);
  say(`MEASURE decoded_bytes ${stream.decoded}`);
});
