-- PostgreSQL only (the trigram GIN index's pending list, see migrations/postgres). The two
-- migration sets keep the same file names, so each schema version means the same on both.
SELECT 1;
