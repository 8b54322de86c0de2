-- Issue 12 (trust), content and history (SQLite; the PostgreSQL file says BIGINT).

-- A run fixes its content when it starts (item 9): the message's subject and bodies are
-- copied here, and every delivery of the run is composed from this copy, so editing the
-- message (or switching the mailing's message) mid-run changes the next run only.
-- NULL subject: a run started before this migration; it still reads the message.
ALTER TABLE runs ADD COLUMN subject TEXT NULL;
ALTER TABLE runs ADD COLUMN body TEXT NULL;
ALTER TABLE runs ADD COLUMN body_html TEXT NULL;

-- Deleting a mailing that has runs archives it (SPEC §12): hidden from lists, its runs,
-- deliveries and daily figures kept for stats and reports, restorable by its owner.
ALTER TABLE mailings ADD COLUMN archived_at INTEGER NULL;

-- Optimistic locking of the edit forms (item 13): a save names the version it was made
-- from, and an UPDATE … WHERE version = $n refuses a save made from an older one.
ALTER TABLE recipients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE mailings ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
