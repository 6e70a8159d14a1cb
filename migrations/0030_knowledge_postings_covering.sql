-- 0030_knowledge_postings_covering: search_knowledge's BM25 arm reads a user's postings of each query term
-- (user_id, term) with their counts and lengths. With those columns in the primary key's leaf pages (INCLUDE) the
-- probes are index-only scans: no heap visit per posting, whose rows sit scattered because a chunk's postings are
-- inserted together. Measured in docs/benchmarks.md ("Retrieval at 20,000 and 100,000 items per user").
ALTER TABLE user_knowledge_postings DROP CONSTRAINT user_knowledge_postings_pkey;
ALTER TABLE user_knowledge_postings
    ADD PRIMARY KEY (user_id, term, entry_id) INCLUDE (tf_a, tf_b, tf_c, len_a, len_b, len_c);
