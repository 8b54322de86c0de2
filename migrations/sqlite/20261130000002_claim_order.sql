-- The claim (src/db/deliveries.rs, `claim`) takes the due rows in (next_attempt_at, id)
-- order. Every row of a run shares its start time, so an index on next_attempt_at alone left
-- the database sorting all of a run's pending rows by id for every claim of four: at 100 000
-- recipients PostgreSQL spilled that sort to disk and sent 531 messages a second. With id in
-- the index the claim reads the first due rows and stops.
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_claim ON deliveries (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
