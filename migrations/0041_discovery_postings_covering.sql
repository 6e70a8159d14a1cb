-- 0041_discovery_postings_covering: each discovery slice's BM25 arm reads every posting of each query term for its
-- own item type with the posting's counts and lengths. With those columns in the index's leaf pages (INCLUDE) the
-- probes are index-only scans once the table is vacuumed: no visit to the heap page of each posting (a catalog's
-- postings are scattered, a tool's terms inserted together). 0021's narrow (term, item_type) index stays: until
-- autovacuum has marked a fresh import's pages all-visible, an index-only scan would still visit the heap for every
-- posting, and the planner keeps the cheaper bitmap scan over the narrow index. Same rows in the same order (equal
-- keys keep heap order), so the same scores; measured in docs/benchmarks.md (issue 24, cold /discover).
CREATE INDEX mcp_search_postings_term_type_cov_idx ON mcp_search_postings (term, item_type)
    INCLUDE (entry_id, tf_a, tf_b, tf_c, len_a, len_b, len_c);
