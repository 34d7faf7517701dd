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
