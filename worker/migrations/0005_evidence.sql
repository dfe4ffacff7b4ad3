-- What caused each bounce (issue 13, point 5): the bounce mail a mailbox received, or the
-- provider's JSON event, gzip-compressed, at most `spec.evidence.maxBytes` of it (the first
-- bytes; `truncated` then). One row per bounce row of listmonk's `bounces`, written in the
-- transaction that inserts that row, and purged after `spec.evidence.keepDays`.
--
-- No foreign key to `bounces`: it would make this migration need listmonk's tables to exist
-- already, the REFERENCES right on them, and triggers on listmonk's table (which the
-- workers never alter). A row whose bounce is gone (deleted through the API, in listmonk,
-- or with its subscriber) is never served (the API joins `bounces`) and is purged as an
-- orphan by the next purge; the `delete` action removes its subscriber's rows at once.
CREATE TABLE bounceops.evidence (
    bounce_id      INT PRIMARY KEY,
    content_type   TEXT NOT NULL,
    gzip           BYTEA NOT NULL,
    -- The size of the whole original, also when only its first bytes are kept.
    original_bytes BIGINT NOT NULL,
    truncated      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX evidence_created_at ON bounceops.evidence (created_at);
-- Already gzip: Postgres' own compression would only spend CPU failing to shrink it.
ALTER TABLE bounceops.evidence ALTER COLUMN gzip SET STORAGE EXTERNAL;
