//! The log's two tables and an index, as SQL an application adds to its migrations (or runs
//! through `EventLog::ensure_schema`). Idempotent: every statement is `IF NOT EXISTS`.

/// The event log's tables on SQLite: `sse_events`, one row per committed event, numbered in
/// commit order; `sse_log`, one row with the log's epoch, how far it was trimmed, and (when
/// an engine relays the log) how far it was relayed and which instance holds the relay;
/// an index of the ids Mercure publishers chose, for a client resuming from one after a
/// restart.
///
/// Add it to the application's migrations, or call
/// [`EventLog::ensure_schema`](crate::sql::EventLog::ensure_schema).
pub const SQLITE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS sse_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    json       INTEGER NOT NULL,
    topics     TEXT    NOT NULL,
    private    INTEGER NOT NULL,
    origin     TEXT,
    wire_id    TEXT,
    retry      INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sse_log (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    epoch       INTEGER NOT NULL,
    trimmed     INTEGER NOT NULL DEFAULT 0,
    relayed     INTEGER NOT NULL DEFAULT 0,
    relay_owner INTEGER NOT NULL DEFAULT 0,
    relay_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sse_events_wire_id ON sse_events (wire_id) WHERE wire_id IS NOT NULL;
";

/// The event log's tables on PostgreSQL; see [`SQLITE_SCHEMA`].
pub const POSTGRES_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS sse_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    json       INTEGER NOT NULL,
    topics     TEXT    NOT NULL,
    private    INTEGER NOT NULL,
    origin     TEXT,
    wire_id    TEXT,
    retry      BIGINT,
    created_ms BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS sse_log (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    epoch       BIGINT NOT NULL,
    trimmed     BIGINT NOT NULL DEFAULT 0,
    relayed     BIGINT NOT NULL DEFAULT 0,
    relay_owner BIGINT NOT NULL DEFAULT 0,
    relay_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sse_events_wire_id ON sse_events (wire_id) WHERE wire_id IS NOT NULL;
";
