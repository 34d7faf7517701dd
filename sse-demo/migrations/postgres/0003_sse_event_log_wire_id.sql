CREATE INDEX IF NOT EXISTS sse_events_wire_id ON sse_events (wire_id) WHERE wire_id IS NOT NULL;
