-- Substring search over recipients (/clients/?q=, the mailing form's picker, the CSV export):
-- trigram GIN indexes, so `ILIKE '%…%'` reads the matching rows instead of every recipient.
-- pg_trgm ships with PostgreSQL and is a trusted extension (13+): the database's owner may
-- create it without being a superuser.
-- Queries: src/db/recipients.rs (ListQuery::filter) and src/db/search.rs.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX recipients_search_trgm ON recipients
    USING gin (email gin_trgm_ops, full_name gin_trgm_ops, comment gin_trgm_ops);
