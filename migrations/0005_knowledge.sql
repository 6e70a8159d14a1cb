-- 0005_knowledge: user RAG knowledge chunks and embedded metadata of user-ingested databases.
-- Same embedding convention as 0004: dimensionless vector + embedding_model + per-model partial HNSW indexes.

CREATE TABLE user_knowledge (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    document_id     uuid,
    source_document text,
    chunk_index     integer NOT NULL DEFAULT 0 CHECK (chunk_index >= 0),
    chunk_count     integer CHECK (chunk_count > 0),
    content         text NOT NULL CHECK (length(content) > 0),
    content_hash    text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    search_text     text,
    search_tsv      tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding       vector,
    embedding_model text CHECK (embedding_model <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL),
    CHECK (chunk_count IS NULL OR chunk_index < chunk_count)
);
COMMENT ON TABLE user_knowledge IS 'RAG store: one row per stored text or document chunk of a user, with embedding and lexical index.';
COMMENT ON COLUMN user_knowledge.document_id IS 'Groups the chunks of one add_document call; NULL for a single store_knowledge item.';
CREATE INDEX user_knowledge_user_created_idx ON user_knowledge (user_id, created_at DESC);
CREATE UNIQUE INDEX user_knowledge_document_chunk_idx ON user_knowledge (user_id, document_id, chunk_index)
    WHERE document_id IS NOT NULL;
CREATE INDEX user_knowledge_user_hash_idx ON user_knowledge (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX user_knowledge_metadata_idx ON user_knowledge USING gin (metadata jsonb_path_ops);
CREATE INDEX user_knowledge_search_tsv_idx ON user_knowledge USING gin (search_tsv);
CREATE INDEX user_knowledge_embedding_minilm_idx ON user_knowledge
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX user_knowledge_embedding_te3small_idx ON user_knowledge
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER user_knowledge_set_updated_at BEFORE UPDATE ON user_knowledge
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE db_meta_embedding (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    database_source  text NOT NULL CHECK (length(database_source) > 0),
    entity_type      text NOT NULL CHECK (length(entity_type) > 0),
    entity_name      text NOT NULL,
    entity_full_name text NOT NULL,
    content          text NOT NULL,
    semantic_tags    text[] NOT NULL DEFAULT '{}',
    confidence_score real CHECK (confidence_score BETWEEN 0 AND 1),
    source_step      integer CHECK (source_step >= 0),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (
                         to_tsvector('english', replace(entity_full_name, '_', ' ') || ' ' || coalesce(search_text, content))
                     ) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, database_source, entity_type, entity_full_name),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE db_meta_embedding IS 'Embedded metadata (tables, columns, relationships, business rules) of a user-ingested database, for NL-to-SQL.';
COMMENT ON COLUMN db_meta_embedding.database_source IS 'Identifier of the ingested database/file the entity belongs to.';
CREATE INDEX db_meta_embedding_user_created_idx ON db_meta_embedding (user_id, created_at DESC);
CREATE INDEX db_meta_embedding_search_tsv_idx ON db_meta_embedding USING gin (search_tsv);
CREATE INDEX db_meta_embedding_embedding_minilm_idx ON db_meta_embedding
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX db_meta_embedding_embedding_te3small_idx ON db_meta_embedding
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER db_meta_embedding_set_updated_at BEFORE UPDATE ON db_meta_embedding
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
