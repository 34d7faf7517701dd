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
