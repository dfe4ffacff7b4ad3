-- One pass of the evidence's orphan sweep (store/evidence.rs, `purge`): among the $2 rows
-- of evidence after bounce id $1, deletes those whose bounce row is gone; returns the last
-- id looked at, how many were looked at and how many deleted. bench/ingest.sh times this
-- same file (BENCH_PRELOAD), so what is measured is what the worker runs.
--
-- The span is inlined where it is used (NOT MATERIALIZED: a materialized span loses its
-- order, and the planner then joined it by hashing every bounce, 5 s at 10 M rows) and the
-- bounces are looked at from the span's start (`b.id > $1`), so the anti-join walks the
-- span's range of both indexes. Every reference to the span sees the statement's one
-- snapshot, so they read the same rows.
WITH span AS NOT MATERIALIZED (
    SELECT bounce_id FROM bounceops.evidence
    WHERE bounce_id > $1 ORDER BY bounce_id LIMIT $2
), gone AS (
    DELETE FROM bounceops.evidence WHERE bounce_id IN (
        SELECT s.bounce_id FROM span s
        WHERE NOT EXISTS (SELECT 1 FROM bounces b
                          WHERE b.id = s.bounce_id AND b.id > $1))
    RETURNING 1
)
SELECT (SELECT MAX(bounce_id) FROM span) AS last,
       (SELECT COUNT(*) FROM span) AS "looked!",
       (SELECT COUNT(*) FROM gone) AS "orphaned!"
