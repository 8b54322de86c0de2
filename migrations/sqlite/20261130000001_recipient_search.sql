-- Substring search over recipients (/clients/?q=, the mailing form's picker, the CSV export):
-- an FTS5 index of trigrams, so a search reads the matching rows instead of every recipient.
-- External content (no second copy of the text); the triggers keep it in step with the table.
-- Queries: src/db/recipients.rs (ListQuery::filter) and src/db/search.rs.
CREATE VIRTUAL TABLE recipients_fts USING fts5 (
    email, full_name, comment,
    content = 'recipients', content_rowid = 'id', tokenize = 'trigram'
);

INSERT INTO recipients_fts (recipients_fts) VALUES ('rebuild');

CREATE TRIGGER recipients_fts_insert AFTER INSERT ON recipients BEGIN
    INSERT INTO recipients_fts (rowid, email, full_name, comment)
    VALUES (new.id, new.email, new.full_name, new.comment);
END;

CREATE TRIGGER recipients_fts_delete AFTER DELETE ON recipients BEGIN
    INSERT INTO recipients_fts (recipients_fts, rowid, email, full_name, comment)
    VALUES ('delete', old.id, old.email, old.full_name, old.comment);
END;

CREATE TRIGGER recipients_fts_update AFTER UPDATE OF email, full_name, comment ON recipients BEGIN
    INSERT INTO recipients_fts (recipients_fts, rowid, email, full_name, comment)
    VALUES ('delete', old.id, old.email, old.full_name, old.comment);
    INSERT INTO recipients_fts (rowid, email, full_name, comment)
    VALUES (new.id, new.email, new.full_name, new.comment);
END;
