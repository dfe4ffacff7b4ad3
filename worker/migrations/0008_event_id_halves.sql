-- Issue 24: forgetting old event ids without deleting them one by one.
--
-- `processed_events` was pruned by a DELETE of the ids older than 7 days, every 10 minutes.
-- Its cost is per row (one WAL record each, and the dead rows vacuum must then chase): a
-- day of ids at a large sender's volume took 1.3-1.8 s of database time (BENCHMARKS.md).
-- Dropping rows whole costs the same at any size, but a claim must still be refused for an
-- id claimed on any earlier day, and a unique index covers one partition only.
--
-- So the ids live in two halves, LIST partitions of `processed_events` on `half`, each with
-- its own primary key (source, event_id). Claims go to the *current* half, and an id already
-- in the *previous* half is not claimed again: one more index probe per claimed id, and
-- every id is in at most one half. Once the current half is `keep` old, `rotate_claims`
-- empties the previous half (TRUNCATE: milliseconds whatever it holds) and makes it the
-- current one. An id is thus remembered for at least `keep` (it goes with the rotation
-- after the one that ended its half) and at most twice `keep`.
--
-- A rotation must never empty a half while a batch still claims into it, nor let a batch
-- claim into one half while probing the other's past contents: every claim takes the
-- advisory lock (class 0x636c6d73, "clms", listed in worker/src/store/locks.rs; key 0)
-- shared before it reads which half is current, and a rotation takes it exclusively. A
-- rotation therefore waits for the batches in flight (a few milliseconds) and the next
-- ones wait for it.
--
-- Replicas still running the previous version keep recording while others migrate: the
-- table keeps its name, and they call the same `claim_batch`, replaced below. Two things of
-- theirs fail until they are replaced, safely (nothing is claimed, the sender retries):
-- parking a dead letter (their INSERT names no half), and a batch that was inside the old
-- function while this migration committed.
--
-- The renaming waits for the batches in flight and holds the next ones until this commits
-- (attaching scans the table: 0.75 s per 10 million ids, measured). A transaction that does
-- not end would make every batch wait with it: past 5 s this migration fails instead, and
-- the init container that runs it tries again.
SET LOCAL lock_timeout = '5s';

-- The existing table becomes half 0 as it is: a column with a constant default is added
-- without a rewrite, and its primary key serves the half. Attaching it scans it once to
-- check that every row belongs there. Its index on `received_at` served only the DELETE,
-- and cost every claim an index insert.
ALTER TABLE bounceops.processed_events RENAME TO processed_events_0;
ALTER INDEX bounceops.processed_events_pkey RENAME TO processed_events_0_pkey;
DROP INDEX bounceops.processed_events_received_at;
ALTER TABLE bounceops.processed_events_0 ADD COLUMN half INT2 NOT NULL DEFAULT 0;

-- No primary key on the whole: each half has its own, and an INSERT's `ON CONFLICT DO
-- NOTHING` without a target uses every unique index of the partition the row goes to.
CREATE TABLE bounceops.processed_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    body_sha256 BYTEA NULL,
    half        INT2 NOT NULL
) PARTITION BY LIST (half);
ALTER TABLE bounceops.processed_events
    ATTACH PARTITION bounceops.processed_events_0 FOR VALUES IN (0);
ALTER TABLE bounceops.processed_events_0 ALTER COLUMN half DROP DEFAULT;
CREATE TABLE bounceops.processed_events_1 PARTITION OF bounceops.processed_events
    (PRIMARY KEY (source, event_id)) FOR VALUES IN (1);

-- Which half claims go to, since when, and since when the previous one took claims.
CREATE TABLE bounceops.processed_events_current (
    only_row       BOOL PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    half           INT2 NOT NULL CHECK (half IN (0, 1)),
    since          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    previous_since TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
INSERT INTO bounceops.processed_events_current (half) VALUES (0);

-- As in 0007 (whose comments say what each part does and why), with the half: the claim
-- takes the shared lock, reads the current half, and claims into it the ids the previous
-- half does not hold. Same signature, so that replicas of the previous version call this.
CREATE OR REPLACE FUNCTION bounceops.claim_batch(text[], text[], bytea[], bool[], bool[], uuid[],
                                                 text[], int4, float8)
RETURNS TABLE (event_ord int8, subscriber int4, subscriber_status text, soft_count int8,
               hard_count int8, complaint_count int8, clock timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ords int8[];
    ids int4[];
    locks int8;
    current_half int2;
BEGIN
    -- Read in a statement of its own, once the lock is held, so that it sees the rotation
    -- this batch may have waited for. By the primary key: batches run with sequential
    -- scans off, and a sequential scan priced as disabled costs past `jit_above_cost`, so
    -- the server would compile the statement (45 ms per batch, measured) to read one row.
    PERFORM pg_advisory_xact_lock_shared(x'636c6d73'::int4, 0);
    SELECT c.half INTO current_half FROM bounceops.processed_events_current c WHERE c.only_row;

    WITH batch AS (
        SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)
               WITH ORDINALITY AS t(s, e, d, claim, counted, u, email, ord)
    ), claimed AS (
        INSERT INTO bounceops.processed_events (source, event_id, body_sha256, half)
        SELECT b.s, b.e, b.d, current_half FROM batch b
        WHERE b.claim
          AND NOT EXISTS (SELECT 1 FROM bounceops.processed_events p
                          WHERE p.half = 1 - current_half
                            AND p.source = b.s AND p.event_id = b.e)
        ORDER BY b.s, b.e, b.ord
        ON CONFLICT DO NOTHING
        RETURNING source, event_id
    ), fresh AS (
        (SELECT DISTINCT ON (b.s, b.e) b.ord, b.counted, b.u, b.email
         FROM batch b JOIN claimed c ON c.source = b.s AND c.event_id = b.e
         WHERE b.claim
         ORDER BY b.s, b.e, b.ord)
        UNION ALL
        SELECT f.ord, f.counted, f.u, f.email FROM batch f WHERE NOT f.claim
    )
    SELECT array_agg(l.ord), array_agg(l.id), count(l.locked)
    INTO ords, ids, locks
    FROM (
        SELECT found.ord, found.id,
               CASE WHEN found.id IS NOT NULL
                    THEN pg_advisory_xact_lock($8, found.id)::text END AS locked
        FROM (SELECT f.ord, COALESCE(by_uuid.id, by_email.id) AS id
              FROM fresh f
              LEFT JOIN subscribers by_uuid ON f.counted AND by_uuid.uuid = f.u
              LEFT JOIN subscribers by_email
                     ON f.counted AND f.u IS NULL AND LOWER(by_email.email) = f.email
              ORDER BY 2) AS found
    ) AS l;

    RETURN QUERY
        SELECT f.ord, f.id, NULL::text, NULL::int8, NULL::int8, NULL::int8, NULL::timestamptz
        FROM unnest(ords, ids) AS f(ord, id);

    RETURN QUERY
        SELECT NULL::int8, s.id, s.status::text, c.soft, c.hard, c.complaint, NOW()
        FROM subscribers s
        CROSS JOIN LATERAL (
            SELECT COUNT(*) FILTER (WHERE b.type = 'soft') AS soft,
                   COUNT(*) FILTER (WHERE b.type = 'hard') AS hard,
                   COUNT(*) FILTER (WHERE b.type = 'complaint') AS complaint
            FROM bounces b
            WHERE b.subscriber_id = s.id
              AND ($9 IS NULL OR b.created_at > NOW() - make_interval(secs => $9))
        ) c
        WHERE s.id = ANY(ids);
END
$$;

-- Once the current half has taken claims for `keep` seconds: empties the previous half,
-- makes it the current one, and returns when the forgotten ids' half had begun; NULL when
-- no rotation is due. Replicas may call it at the same time: the row lock makes the later
-- ones find the rotation done.
--
-- A batch that does not end (its connection lost, and its server not yet aware) would hold
-- up the rotation, and every batch queued behind the rotation's lock with it: the rotation
-- waits at most `lock_wait` seconds (> 0) for a lock, then gives up (55P03) and its next
-- call tries again. The setting lasts to the end of the caller's transaction: call it on
-- its own. The half to empty is locked without waiting at all: no claim can hold it then
-- (they take the advisory lock first, and have all ended), so what does is a dump, a vacuum
-- against wraparound, or a replica of the previous version purging, none of which the
-- batches queued behind the rotation should wait for.
CREATE FUNCTION bounceops.rotate_claims(keep float8, lock_wait float8)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    was bounceops.processed_events_current;
BEGIN
    PERFORM set_config('lock_timeout', ceil(lock_wait * 1000)::int8 || 'ms', true);
    SELECT * INTO was FROM bounceops.processed_events_current WHERE only_row FOR UPDATE;
    IF was.since > NOW() - make_interval(secs => keep) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(x'636c6d73'::int4, 0);
    IF was.half = 0 THEN
        LOCK TABLE bounceops.processed_events_1 IN ACCESS EXCLUSIVE MODE NOWAIT;
        TRUNCATE bounceops.processed_events_1;
    ELSE
        LOCK TABLE bounceops.processed_events_0 IN ACCESS EXCLUSIVE MODE NOWAIT;
        TRUNCATE bounceops.processed_events_0;
    END IF;
    -- The clock once the locks are held, not the transaction's start: the new half's claims
    -- begin now.
    UPDATE bounceops.processed_events_current
       SET half = 1 - was.half, since = clock_timestamp(), previous_since = was.since;
    RETURN was.previous_since;
END
$$;
