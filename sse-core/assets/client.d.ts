// Types of sse-core's browser client (client.js), served next to it at `{stream path}/client.d.ts`.
//
//   type EventMap = { user_updated: User; user_deleted: { id: number } };
//   const events = connect<EventMap>("/api/sse/stream", { topics: ["users/*"] });
//   events.on("user_updated", (user) => user.username); // user: User
//
// `EventMap` maps event names to their parsed `data`; a generated map can be plugged in.

/** Where a client is: `connecting` (first attempt), `live`, `reconnecting`, `closed`. */
export type Status = "connecting" | "live" | "reconnecting" | "closed";

/** The raw event: its name, its text data and its id. */
export interface RawEvent {
  type: string;
  data: string;
  lastEventId: string;
}

/** `data` of an `sse-reset` event. */
export interface ResetDetail {
  reason?: string;
}

export interface ConnectOptions {
  /** Topic selectors, each sent as `?topic=`; none: every public event. */
  topics?: string[];
  /** Resume after this id, such as a snapshot's `SSE-Last-Event-ID` header. */
  after?: string;
  /**
   * Called before each connection attempt; its token is sent as `Authorization: Bearer`.
   * After a 401 it is called once more with `refresh: true` before backing off. Also called
   * once at the start (without `identity`): the tabs whose tokens name the same subject (a
   * JWT's `sub` and `iss`, read unchecked) share a stream; a token naming none, or no token,
   * gets the tab a stream of its own.
   */
  getToken?: (context: { refresh: boolean }) => string | null | undefined | Promise<string | null | undefined>;
  /** Delays in ms of the jittered exponential backoff: defaults 1000 and 30000. */
  backoff?: { initial?: number; max?: number };
  /**
   * Who is signed in, such as `"user-42"`: only tabs with the same URL, topics and identity
   * share a stream. Default: the token's subject with `getToken`, else the browser's own
   * credentials (cookies), which every tab sends alike. Fixed for the client's life: connect
   * a new client when the user changes. With a session cookie, give it: a tab opened after
   * signing in as someone else would otherwise join a stream opened with the old cookie.
   */
  identity?: string;
  /** `false`: this tab reads its own stream instead of sharing one with the other tabs. */
  share?: boolean;
  /** fetch's `credentials`: default `same-origin`. */
  credentials?: RequestCredentials;
  /** Events each tab keeps for tabs that join with `after`: default 1024. */
  recent?: number;
}

export interface Client<EventMap extends object = Record<string, unknown>> {
  /** Calls `handler` for each event named `name` with its data (parsed JSON when it is). */
  on<K extends keyof EventMap & string>(name: K, handler: (data: EventMap[K], event: RawEvent) => void): () => void;
  /** Calls `handler` on `sse-reset`: what was missed cannot be replayed; reload the state. */
  onReset(handler: (detail: ResetDetail, event: RawEvent) => void): () => void;
  /** Calls `handler` now with the current status, then on every change. */
  onStatus(handler: (status: Status) => void): () => void;
  readonly status: Status;
  /** The id of the last event this tab saw. */
  readonly lastEventId: string;
  /** Whether this tab holds the browser's connection. */
  readonly isLeader: boolean;
  /** Ends this tab's part; when it held the connection, another tab takes over. */
  close(): void;
}

/** Connects to the event stream at `url`, the path given to `events.service(path)`. */
export function connect<EventMap extends object = Record<string, unknown>>(
  url: string,
  options?: ConnectOptions,
): Client<EventMap>;

/** Delay before retry number `attempt` (from 0): between half and all of `initial * 2^attempt`, capped at `max`. */
export function backoffDelay(attempt: number, options?: { initial?: number; max?: number; random?: () => number }): number;

/** Milliseconds a `Retry-After` value asks to wait, or null. */
export function parseRetryAfter(value: string | null | undefined, now?: number): number | null;
