// What the browser test scripts (browser.mjs, tabs.mjs, inspector.mjs, viewer.mjs) share: the
// `LOG ...` lines they print, bounded waits on a page, the API from outside the page, and one
// run of Debian's headless Chromium with a fresh profile, reported as the Rust tests expect:
// `OK` on stdout and exit code 0, or `<name> test failed: <reason>` on stderr and exit code 1.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// ---- talking to the test -------------------------------------------------------------------

export const say = (line) => process.stdout.write(`${line}\n`);
export const log = (message) => say(`LOG ${message}`);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- what a page shows ---------------------------------------------------------------------

// A `within(page, ms, what, check, arg)` that waits until `check(arg)`, run in the page, returns
// something truthy, testing every `polling` ms, or fails saying `what` (and, with `detail`, what
// `await detail(page)` says about the page at that moment).
export function waiter({ polling = 50, detail } = {}) {
  return async function within(page, ms, what, check, arg) {
    try {
      await page.waitForFunction(check, arg, { timeout: ms, polling });
    } catch (err) {
      const about = detail ? `${await detail(page)}; ` : "";
      throw new Error(`${what}: not within ${ms} ms (${about}${err.message.split("\n")[0]})`);
    }
  };
}

export const within = waiter();

// ---- the API, from outside the page --------------------------------------------------------

// `api(method, path, body)` against the server at `base` (each request bounded to 5 s; the
// JSON answer, or an error with the status), and `createUser(username)` through it.
export function apiAt(base) {
  async function api(method, path, body) {
    const res = await fetch(new URL(path, base), {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(5000),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(data)}`);
    return data;
  }
  const createUser = (username) =>
    api("POST", "/api/v1/users", { username, email: `${username.replace(/\W/g, "")}@example.com` });
  return { api, createUser };
}

// ---- one run of the browser ----------------------------------------------------------------

// The flags every script starts Chromium with,
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--no-first-run",
];
// and those all but the inspector's add: no QUIC, no component updates, no sync.
const QUIET_FLAGS = ["--disable-quic", "--disable-component-update", "--disable-sync"];

// Starts headless Chromium with a fresh profile, awaits `run(context)`, closes the browser,
// removes the profile and calls `cleanup`; then exits, after printing `OK` if `run` succeeded,
// or `<name> test failed: <reason>` on stderr if it threw or the whole took over `overallMs`.
//
// options:
//   overallMs   the bound on the whole run
//   viewport    the pages' size ({ width, height }); Playwright's default when absent
//   selfSigned  true: any certificate is accepted (an https server with a self-signed one)
//   quiet       false: without QUIET_FLAGS
//   cleanup     called once the browser is closed, before the report
export async function runInChromium(name, options, run) {
  const { overallMs, viewport, selfSigned = false, quiet = true, cleanup } = options;
  setTimeout(() => {
    console.error(`${name} test failed: not finished within ${overallMs} ms`);
    process.exit(1);
  }, overallMs).unref();

  const profile = mkdtempSync(join(tmpdir(), `sse-${name}-chromium-`));
  let context;
  let failure = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      ...(viewport && { viewport }),
      ...(selfSigned && { ignoreHTTPSErrors: true }),
      args: [
        ...FLAGS,
        ...(quiet ? QUIET_FLAGS : []),
        ...(selfSigned ? ["--ignore-certificate-errors"] : []),
      ],
    });
    await run(context);
  } catch (err) {
    failure = err;
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    cleanup?.();
  }
  if (failure) {
    console.error(`${name} test failed: ${failure.message}`);
    process.exit(1);
  }
  say("OK");
  process.exit(0);
}
