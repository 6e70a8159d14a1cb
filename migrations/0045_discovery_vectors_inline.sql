-- 0045_discovery_vectors_inline: keep each discovery row's vector in the row itself. A 384-dimension vector is
-- 1,540 bytes; with a tool's names, description and search text a row passes the 2 kB at which Postgres moves its
-- largest value out of line, and pgvector's `vector` type stores out of line first (EXTERNAL). Every vector the
-- ranking statement compared then cost a visit to the TOAST table: with true planner statistics a 1,000-tool
-- catalog's exact scan took 6.4 ms for 1,051 rows (3 buffers a row), and the planner, unaware of that cost, chose
-- it over the HNSW index. MAIN keeps the vector inline and compresses or moves the text columns out first;
-- toast_tuple_target lets a row of up to 4 kB stay whole. Measured in docs/benchmarks.md (cold /discover).
ALTER TABLE mcp_unified_search_embeddings
    ALTER COLUMN embedding SET STORAGE MAIN,
    SET (toast_tuple_target = 4080);

-- Rows already written keep their out-of-line vectors until rewritten: write each vector again (the same values;
-- the postings trigger skips rows whose search text did not change).
UPDATE mcp_unified_search_embeddings SET embedding = embedding::real[]::vector WHERE embedding IS NOT NULL;

-- The rewrite left every row's old version behind until vacuumed; without fresh statistics the planner would take
-- the doubled pages for twice the rows (VACUUM cannot run in the migration's transaction; ANALYZE can).
ANALYZE mcp_unified_search_embeddings;
