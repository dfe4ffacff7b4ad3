-- The worker's own state. It lives in the bounceops schema so that listmonk's tables are
-- never altered; the runner creates the schema and keeps its own bookkeeping table there.

-- Provider event ids already recorded: a provider's retry of the same event is recorded
-- once, across replicas and restarts (the primary key serialises concurrent inserts).
CREATE TABLE bounceops.processed_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX processed_events_received_at ON bounceops.processed_events (received_at);

-- Bounces whose subscriber is unknown: listmonk drops them; we keep them for inspection.
CREATE TABLE bounceops.unmatched (
    id              BIGSERIAL PRIMARY KEY,
    email           TEXT NULL,
    subscriber_uuid UUID NULL,
    campaign_uuid   UUID NULL,
    type            TEXT NOT NULL,
    source          TEXT NOT NULL,
    meta            JSONB NOT NULL DEFAULT '{}',
    bounced_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    received_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX unmatched_email ON bounceops.unmatched (LOWER(email));
CREATE INDEX unmatched_received_at ON bounceops.unmatched (received_at);
