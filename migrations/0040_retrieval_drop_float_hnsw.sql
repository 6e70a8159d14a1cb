-- 0040_retrieval_drop_float_hnsw: writes without the HNSW graphs that the default search no longer reads (issue #28).
--
-- Since 0036 memory and knowledge search shortlist a user's rows by sign bits from the (user_id, embedding_model)
-- btree and re-rank them exactly; the per-model HNSW graphs of 0004/0005 on the full vectors are read only when
-- `[default.memory] search_shortlist = 0` / `[default.knowledge] shortlist = 0`. Keeping them costs every write:
-- one memory INSERT took 12.6 ms p50 with the HNSW index and 0.4 ms without it at 20,000 memories per user
-- (docs/benchmarks.md, issue #28). Those two settings still work without the graphs: their statements
-- (ORDER BY distance LIMIT k over the user's btree) then rank the user's rows exactly, linear in the user's rows.
-- A deployment that wants the graph back for them creates it again, e.g. for one table and model:
--   CREATE INDEX factual_memories_embedding_minilm_idx ON factual_memories
--       USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
-- The graphs' expressions also refused a vector whose dimension does not match its embedding_model label
-- (docs/schema.md "Guard"); CHECK constraints below keep exactly that guard for the two models 0004/0005 named,
-- at the cost of reading a row's dimension. Other models stay unconstrained, as before.
-- The catalog's and db_meta_embedding's HNSW indexes stay: their searches read them.

DROP INDEX IF EXISTS factual_memories_embedding_minilm_idx;
DROP INDEX IF EXISTS factual_memories_embedding_te3small_idx;
DROP INDEX IF EXISTS episodic_memories_embedding_minilm_idx;
DROP INDEX IF EXISTS episodic_memories_embedding_te3small_idx;
DROP INDEX IF EXISTS semantic_memories_embedding_minilm_idx;
DROP INDEX IF EXISTS semantic_memories_embedding_te3small_idx;
DROP INDEX IF EXISTS procedural_memories_embedding_minilm_idx;
DROP INDEX IF EXISTS procedural_memories_embedding_te3small_idx;
DROP INDEX IF EXISTS working_memories_embedding_minilm_idx;
DROP INDEX IF EXISTS working_memories_embedding_te3small_idx;
DROP INDEX IF EXISTS user_knowledge_embedding_minilm_idx;
DROP INDEX IF EXISTS user_knowledge_embedding_te3small_idx;

ALTER TABLE factual_memories ADD CONSTRAINT factual_memories_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
ALTER TABLE episodic_memories ADD CONSTRAINT episodic_memories_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
ALTER TABLE semantic_memories ADD CONSTRAINT semantic_memories_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
ALTER TABLE procedural_memories ADD CONSTRAINT procedural_memories_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
ALTER TABLE working_memories ADD CONSTRAINT working_memories_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
ALTER TABLE user_knowledge ADD CONSTRAINT user_knowledge_embedding_dims_check CHECK (embedding IS NULL
    OR ((embedding_model IS DISTINCT FROM 'all-MiniLM-L6-v2' OR vector_dims(embedding) = 384)
    AND (embedding_model IS DISTINCT FROM 'text-embedding-3-small' OR vector_dims(embedding) = 1536)));
