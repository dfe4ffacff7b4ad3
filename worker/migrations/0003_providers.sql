-- Single-use signature tokens of providers whose signature does not cover the body
-- (Mailgun signs only timestamp and token): a token is accepted again only with the very
-- same body, which is the provider retrying; any other body with a seen token is a replay.
-- Rows older than the timestamp tolerance are useless (the timestamp check refuses them
-- first) and are purged by the worker.
CREATE TABLE bounceops.provider_nonces (
    source      TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    body_sha256 BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (source, nonce)
);
CREATE INDEX provider_nonces_received_at ON bounceops.provider_nonces (received_at);
