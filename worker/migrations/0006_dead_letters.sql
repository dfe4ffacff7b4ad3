-- Issue 20, points 2 and 7.

-- The SHA-256 of the request body whose Idempotency-Key this row claims: the key admits a
-- retry of that request (the same digest) and refuses any other body with 422. NULL for
-- every other identity (provider event ids, mailbox messages, received ids), and for keys
-- claimed before this column existed, which are then taken as retries. Nullable without a
-- default, so adding it rewrites nothing.
ALTER TABLE bounceops.processed_events ADD COLUMN body_sha256 BYTEA NULL;

-- Events the database refuses whatever is retried (a character the database's encoding
-- cannot hold, once NULs are already replaced): parked here so that the other events of
-- their batch are recorded and their sender is not made to retry forever. Its event id is
-- claimed in `processed_events` in the same transaction, so a retry is a duplicate.
-- Every text column is ASCII (the worker escapes the rest) and the event itself is bytes,
-- so that the row is storable whatever refused the event. Purged after 30 days.
CREATE TABLE bounceops.dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    -- Why the database refused it: its SQLSTATE and message.
    reason      TEXT NOT NULL,
    -- The event as the worker tried to store it, as UTF-8 JSON: recipient, type, meta (which
    -- holds the provider's own event), ...
    item        BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX dead_letters_received_at ON bounceops.dead_letters (received_at);
CREATE INDEX dead_letters_source_event ON bounceops.dead_letters (source, event_id);
