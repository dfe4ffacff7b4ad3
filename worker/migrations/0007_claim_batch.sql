-- Issue 24: a batch's claim and its subscribers' state in one round trip.
--
-- A batch claims its events' ids, finds and locks their subscribers, and then reads those
-- subscribers' status and bounce counts. The read must see every bounce committed before the
-- locks were granted, so it cannot share the claim's statement (whose snapshot is taken
-- before it waits for a lock). A VOLATILE function takes a fresh snapshot for each statement
-- it runs (PostgreSQL's documentation, "Function Volatility Categories"), so here the read is
-- a statement of its own and still costs the client no round trip of its own
-- (worker/src/store/record.rs says what each statement does and why).
--
-- Its parameters are positional, as the worker's other statements are: $1..$7 one entry per
-- event (source, event id, request digest, whether its id is claimed, whether it is counted,
-- subscriber UUID, lower-cased e-mail), $8 the lock class of subscribers, $9 the window of
-- the rules in seconds (NULL: every bounce counts).
--
-- The rows it returns are of two kinds:
-- - one per fresh event (claimed now, or not claimed at all): `event_ord` (counting from 1)
--   and `subscriber`, the id found and locked (NULL when the event has no subscriber, or is
--   not counted);
-- - one per locked subscriber that still exists: `event_ord` NULL, `subscriber`, its status,
--   its bounce counts per type, and the transaction's clock.
--
-- Unqualified table names are listmonk's, found through the caller's search_path as in the
-- worker's other statements. Runs with the caller's rights (SECURITY INVOKER).
CREATE FUNCTION bounceops.claim_batch(text[], text[], bytea[], bool[], bool[], uuid[], text[],
                                      int4, float8)
RETURNS TABLE (event_ord int8, subscriber int4, subscriber_status text, soft_count int8,
               hard_count int8, complaint_count int8, clock timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ords int8[];
    ids int4[];
    locks int8;
BEGIN
    -- The claim, the lookup and the locks. The locks are taken in ascending id order (the
    -- subquery's ORDER BY; the lock is evaluated after the sort), so two batches never wait
    -- on each other in a cycle. `locked` is aggregated so that the lock is evaluated for
    -- every row, whatever the planner keeps of the subquery.
    WITH batch AS (
        SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)
               WITH ORDINALITY AS t(s, e, d, claim, counted, u, email, ord)
    ), claimed AS (
        INSERT INTO bounceops.processed_events (source, event_id, body_sha256)
        SELECT s, e, d FROM batch WHERE claim ORDER BY s, e, ord
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

    -- A statement of its own, so its snapshot is taken with the locks held. Counted per
    -- subscriber (LATERAL) so the count always walks the subscriber_id index: a join over
    -- all of `bounces` looks cheap to the planner while the table is small, and becomes a
    -- sequential scan of every bounce once it is not.
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
