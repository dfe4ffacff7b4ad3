-- Bounces whose reason `spec.rules.reasons` ignores (a sender-side reason such as `blocked`
-- when the sending IP is on a block list): kept here, never in listmonk's `bounces`, so they
-- neither count toward a rule nor reach listmonk, and the incident stays visible. Shaped
-- like bounceops.unmatched, plus the reason; whether the subscriber exists is not looked up.
CREATE TABLE bounceops.ignored (
    id              BIGSERIAL PRIMARY KEY,
    email           TEXT NULL,
    subscriber_uuid UUID NULL,
    campaign_uuid   UUID NULL,
    type            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    source          TEXT NOT NULL,
    meta            JSONB NOT NULL DEFAULT '{}',
    bounced_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    received_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX ignored_reason_received_at ON bounceops.ignored (reason, received_at);
CREATE INDEX ignored_received_at ON bounceops.ignored (received_at);
