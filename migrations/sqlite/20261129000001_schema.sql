-- Initial schema (SQLite). Kept table-for-table identical to
-- migrations/postgres/20261129000001_schema.sql: only the dialect differs.
-- Types are limited to what the sqlx Any driver decodes on both backends:
-- INTEGER (i64) for ids, counters, 0/1 flags and *_at timestamps (unix
-- milliseconds UTC), TEXT, REAL. Applied with foreign_keys=ON.

-- Accounts (§5). The app lowercases e-mails before storing them; the unique
-- index on lower(email) still makes uniqueness case-insensitive whatever a
-- caller stores. auth_version is bumped on password change and deactivation
-- so sessions carrying an older version are refused.
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    email                TEXT    NOT NULL,
    password_hash        TEXT    NOT NULL,
    full_name            TEXT    NOT NULL DEFAULT '',
    phone                TEXT    NOT NULL DEFAULT '',
    country              TEXT    NOT NULL DEFAULT '',
    time_zone            TEXT    NULL,     -- IANA name; NULL = server TIME_ZONE
    is_active            INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1)),
    is_superuser         INTEGER NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
    view_all_mailings    INTEGER NOT NULL DEFAULT 0 CHECK (view_all_mailings IN (0, 1)),
    disable_mailing      INTEGER NOT NULL DEFAULT 0 CHECK (disable_mailing IN (0, 1)),
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    auth_version         INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_login_at        INTEGER NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- Server-side sessions when Redis is not configured (§5); survive restarts.
-- entries is the session's JSON map. user_id lets logout/password change end
-- every session of a user; expires_at drives the cleanup of stale rows.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NULL REFERENCES users (id) ON DELETE CASCADE,
    entries    TEXT    NOT NULL,
    expires_at INTEGER NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- A user's own recipients ("clients", §6): CRUD, CSV import/export, and the
-- audience of mailings. One row per (owner, e-mail) so imports can upsert.
CREATE TABLE recipients (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT    NOT NULL CHECK (length(email) <= 254),
    full_name  TEXT    NOT NULL CHECK (length(full_name) BETWEEN 2 AND 200),
    comment    TEXT    NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner_id, email)
);
-- List pages: newest first, or by name (keyset-friendly, id breaks ties).
CREATE INDEX recipients_owner_created ON recipients (owner_id, created_at DESC, id DESC);
CREATE INDEX recipients_owner_name ON recipients (owner_id, full_name, id);

-- Message templates (§6): subject and plain-text body with {{full_name}} /
-- {{email}} placeholders, optional HTML alternative.
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject    TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    body       TEXT    NOT NULL CHECK (length(body) >= 1),
    body_html  TEXT    NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX messages_owner_created ON messages (owner_id, created_at DESC, id DESC);

-- Scheduled mailings (§7). A message in use cannot be deleted (RESTRICT),
-- which the UI reports to the user. The scheduler scans (status, next_run_at)
-- for due mailings.
CREATE TABLE mailings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    start_at     INTEGER NOT NULL,
    end_at       INTEGER NOT NULL,
    period       TEXT    NOT NULL CHECK (period IN ('once', 'daily', 'weekly', 'monthly')),
    status       TEXT    NOT NULL DEFAULT 'created'
                         CHECK (status IN ('created', 'running', 'finished')),
    next_run_at  INTEGER NULL,
    last_sent_at INTEGER NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK (start_at < end_at)
);
CREATE INDEX mailings_due ON mailings (status, next_run_at);
CREATE INDEX mailings_owner_created ON mailings (owner_id, created_at DESC, id DESC);
CREATE INDEX mailings_message_id ON mailings (message_id);

-- Many-to-many audience of a mailing (§7). Read when a run starts to build
-- its deliveries; the recipient index serves deletes and "used by" lookups.
CREATE TABLE mailing_recipients (
    mailing_id   INTEGER NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    PRIMARY KEY (mailing_id, recipient_id)
);
CREATE INDEX mailing_recipients_recipient_id ON mailing_recipients (recipient_id);

-- One execution of a mailing (the seed's MailingAttempt, §7): scheduler,
-- manual or CLI, optionally a dry run. Counters are maintained as deliveries
-- change state so progress and stats never count delivery rows.
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mailing_id      INTEGER NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    triggered_by    TEXT    NOT NULL,  -- 'scheduler', 'manual:<email>', 'cli'
    dry_run         INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    status          TEXT    NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'success', 'partial', 'fail', 'cancelled')),
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NULL,
    total           INTEGER NOT NULL DEFAULT 0 CHECK (total >= 0),
    pending_count   INTEGER NOT NULL DEFAULT 0 CHECK (pending_count >= 0),
    sent_count      INTEGER NOT NULL DEFAULT 0 CHECK (sent_count >= 0),
    error_count     INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    dry_run_count   INTEGER NOT NULL DEFAULT 0 CHECK (dry_run_count >= 0),
    skipped_count   INTEGER NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    cancelled_count INTEGER NOT NULL DEFAULT 0 CHECK (cancelled_count >= 0),
    server_response TEXT    NOT NULL DEFAULT ''
);
-- The database, not the app, guarantees one active run per mailing: a second
-- INSERT with status 'running' fails, even across instances.
CREATE UNIQUE INDEX runs_one_active ON runs (mailing_id) WHERE status = 'running';
CREATE INDEX runs_mailing_started ON runs (mailing_id, started_at DESC);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

-- One row per run and recipient e-mail (the seed's MailingLog, §7), created
-- when the run starts so the audience is fixed. Also the work queue: workers
-- claim due pending/sending rows with a lease, so a crash resumes from here.
-- recipient_id survives recipient deletion as NULL; email/full_name are the
-- values used for the send. mailing_id is denormalised for the log pages.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    mailing_id      INTEGER NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    recipient_id    INTEGER NULL REFERENCES recipients (id) ON DELETE SET NULL,
    email           TEXT    NOT NULL,
    full_name       TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sending', 'sent', 'error',
                                              'dry_run', 'skipped', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,  -- earliest time the row may be claimed
    lease_until     INTEGER NULL,
    leased_by       TEXT    NULL,      -- instance id holding the lease
    detail          TEXT    NOT NULL DEFAULT '',  -- last SMTP reply or error
    triggered_by    TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER NULL,
    UNIQUE (run_id, email)
);
CREATE INDEX deliveries_claim ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_run_status ON deliveries (run_id, status, id);
CREATE INDEX deliveries_mailing_status ON deliveries (mailing_id, status, id);

-- Per-owner opt-outs from the List-Unsubscribe link (§6, §7); deliveries to
-- these addresses are 'skipped'. delivery_id records which message carried
-- the link, kept without a FK so it outlives delivery cleanup.
CREATE TABLE unsubscribes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    delivery_id INTEGER NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (owner_id, email)
);

-- Per-mailing per-day totals (§9), updated as deliveries and runs finish, so
-- stats and period reports do not grow with the number of delivery rows.
-- day = days since the unix epoch, UTC.
CREATE TABLE daily_stats (
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailing_id INTEGER NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    sent       INTEGER NOT NULL DEFAULT 0 CHECK (sent >= 0),
    errors     INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
    dry_run    INTEGER NOT NULL DEFAULT 0 CHECK (dry_run >= 0),
    runs_ok    INTEGER NOT NULL DEFAULT 0 CHECK (runs_ok >= 0),
    runs_fail  INTEGER NOT NULL DEFAULT 0 CHECK (runs_fail >= 0),
    PRIMARY KEY (mailing_id, day)
);
CREATE INDEX daily_stats_owner_day ON daily_stats (owner_id, day);

-- Version counters per scope (e.g. 'user:5'), bumped by every change a cached
-- report covers (§9). They key the server-side cache and make strong ETags
-- and Last-Modified (updated_at) cheap.
CREATE TABLE data_versions (
    scope      TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);

-- Grouped error reports (§8), one row per fingerprint: drives the e-mail
-- cooldown ("37 more since …", suppressed = occurrences not yet e-mailed)
-- and the /admin/errors page, newest first.
CREATE TABLE error_groups (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint     TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL CHECK (kind IN ('error', 'broken_link')),
    error_type      TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    route           TEXT    NOT NULL DEFAULT '',
    occurrences     INTEGER NOT NULL DEFAULT 0 CHECK (occurrences >= 0),
    suppressed      INTEGER NOT NULL DEFAULT 0 CHECK (suppressed >= 0),
    first_seen_at   INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    last_emailed_at INTEGER NULL,
    last_request_id TEXT    NOT NULL DEFAULT '',
    resolved_at     INTEGER NULL
);
CREATE INDEX error_groups_last_seen ON error_groups (last_seen_at DESC);

-- Broken-link reports (§8): the same (path, referer) is e-mailed at most once
-- a day; last_reported_at is compared before sending.
CREATE TABLE broken_links (
    path             TEXT    NOT NULL,
    referer          TEXT    NOT NULL,
    last_reported_at INTEGER NOT NULL,
    PRIMARY KEY (path, referer)
);
