-- A GIN index puts new entries in a pending list (4 MB by default) that every search must
-- read in full, and that only a vacuum or a full list flushes. After 100 000 recipients were
-- added the planner priced the trigram index past a sequential scan, and a search took 100 ms
-- instead of 0.6 ms (25 requests/s under load). A 256 kB list keeps searches at the index's
-- speed; imports pay for it (100 000 rows: 1.0 s → 1.8 s; without a pending list, 6 s).
ALTER INDEX recipients_search_trgm SET (gin_pending_list_limit = 256);
