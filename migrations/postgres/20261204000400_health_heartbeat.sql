-- One row that `/healthz` upserts: a health check that writes sees a full disk, a read-only
-- file or a stuck write lock, which a SELECT does not.
CREATE TABLE health_heartbeat (
    id INTEGER PRIMARY KEY,
    beat_at BIGINT NOT NULL
);
