-- 0004_memory: long-term memory (five typed tables) and its bookkeeping tables.
--
-- Every memory table carries:
--   content (the human-readable memory, what gets embedded), importance_score, access_count, last_accessed_at;
--   search_text + generated search_tsv (GIN) for lexical/hybrid search; the writer may leave search_text NULL,
--   then content is indexed;
--   embedding vector (no fixed dimension) + embedding_model, with one partial HNSW expression index per
--   supported model. Query shape that uses the index:
--     WHERE embedding_model = 'all-MiniLM-L6-v2'
--     ORDER BY embedding::vector(384) <=> $1::vector(384) LIMIT k
--   A row whose embedding dimension does not match its model's index fails on INSERT (the cast errors),
--   so a mislabelled vector can never be stored.


-- Removes associations and metadata that point at a deleted memory (polymorphic references cannot use FKs).
-- TG_ARGV[0] is the memory type of the table the trigger is attached to.
CREATE FUNCTION delete_memory_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_associations
     WHERE (source_memory_type = TG_ARGV[0] AND source_memory_id = OLD.id)
        OR (target_memory_type = TG_ARGV[0] AND target_memory_id = OLD.id);
    DELETE FROM memory_metadata
     WHERE memory_type = TG_ARGV[0] AND memory_id = OLD.id;
    RETURN OLD;
END;
$$;
COMMENT ON FUNCTION delete_memory_links() IS 'AFTER DELETE on memory tables: drops memory_associations / memory_metadata rows of the deleted memory.';


CREATE TABLE memory_associations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    source_memory_type text NOT NULL CHECK (source_memory_type IN ('factual', 'episodic', 'semantic', 'procedural', 'working')),
    source_memory_id   uuid NOT NULL,
    target_memory_type text NOT NULL CHECK (target_memory_type IN ('factual', 'episodic', 'semantic', 'procedural', 'working')),
    target_memory_id   uuid NOT NULL,
    association_type   text NOT NULL CHECK (length(association_type) > 0),
    strength           real NOT NULL DEFAULT 0.5 CHECK (strength BETWEEN 0 AND 1),
    auto_discovered    boolean NOT NULL DEFAULT false,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_memory_type, source_memory_id, target_memory_type, target_memory_id, association_type),
    CHECK (source_memory_id <> target_memory_id)
);
COMMENT ON TABLE memory_associations IS 'Directed, typed links between two memories of the same user (any of the five types).';
CREATE INDEX memory_associations_target_idx ON memory_associations (target_memory_type, target_memory_id);
CREATE INDEX memory_associations_user_created_idx ON memory_associations (user_id, created_at DESC);
CREATE TRIGGER memory_associations_set_updated_at BEFORE UPDATE ON memory_associations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE memory_metadata (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    memory_type         text NOT NULL CHECK (memory_type IN ('factual', 'episodic', 'semantic', 'procedural', 'working')),
    memory_id           uuid NOT NULL,
    quality_score       real CHECK (quality_score BETWEEN 0 AND 1),
    user_rating         smallint CHECK (user_rating BETWEEN 1 AND 5),
    user_feedback       text,
    lifecycle_stage     text NOT NULL DEFAULT 'active'
                        CHECK (lifecycle_stage IN ('active', 'consolidated', 'archived', 'expired')),
    auto_expire         boolean NOT NULL DEFAULT false,
    reinforcement_score real NOT NULL DEFAULT 0 CHECK (reinforcement_score >= 0),
    last_reinforced_at  timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (memory_type, memory_id)
);
COMMENT ON TABLE memory_metadata IS 'Per-memory quality, user rating/feedback, lifecycle stage and reinforcement (access counters live on the memory row).';
CREATE INDEX memory_metadata_user_created_idx ON memory_metadata (user_id, created_at DESC);
CREATE TRIGGER memory_metadata_set_updated_at BEFORE UPDATE ON memory_metadata
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();


CREATE TABLE factual_memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    content          text NOT NULL CHECK (length(content) > 0),
    fact_type        text NOT NULL CHECK (length(fact_type) > 0),
    subject          text NOT NULL,
    predicate        text NOT NULL,
    object_value     text NOT NULL,
    context          text,
    confidence       real NOT NULL DEFAULT 0.8 CHECK (confidence BETWEEN 0 AND 1),
    expires_at       timestamptz,
    importance_score real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE factual_memories IS 'Long-term facts about the user as subject-predicate-object triples (e.g. user / lives_in / Berlin).';
CREATE INDEX factual_memories_user_created_idx ON factual_memories (user_id, created_at DESC);
CREATE INDEX factual_memories_user_subject_idx ON factual_memories (user_id, subject);
CREATE INDEX factual_memories_user_type_idx ON factual_memories (user_id, fact_type);
CREATE INDEX factual_memories_expires_idx ON factual_memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX factual_memories_user_hash_idx ON factual_memories (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX factual_memories_session_idx ON factual_memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX factual_memories_search_tsv_idx ON factual_memories USING gin (search_tsv);
CREATE INDEX factual_memories_embedding_minilm_idx ON factual_memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX factual_memories_embedding_te3small_idx ON factual_memories
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER factual_memories_set_updated_at BEFORE UPDATE ON factual_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER factual_memories_delete_links AFTER DELETE ON factual_memories
    FOR EACH ROW EXECUTE FUNCTION delete_memory_links('factual');

CREATE TABLE episodic_memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    content          text NOT NULL CHECK (length(content) > 0),
    episode_title       text NOT NULL,
    summary             text,
    participants        text[] NOT NULL DEFAULT '{}',
    location            text,
    temporal_context    text,
    key_events          jsonb NOT NULL DEFAULT '[]'::jsonb,
    emotional_context   text,
    emotional_intensity real CHECK (emotional_intensity BETWEEN 0 AND 1),
    outcomes            jsonb NOT NULL DEFAULT '[]'::jsonb,
    lessons_learned     text,
    occurred_at         timestamptz,
    recall_frequency    integer NOT NULL DEFAULT 0 CHECK (recall_frequency >= 0),
    importance_score real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE episodic_memories IS 'Long-term memories of events the user lived through (what, who, where, when, outcome).';
CREATE INDEX episodic_memories_user_created_idx ON episodic_memories (user_id, created_at DESC);
CREATE INDEX episodic_memories_user_occurred_idx ON episodic_memories (user_id, occurred_at DESC);
CREATE INDEX episodic_memories_user_hash_idx ON episodic_memories (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX episodic_memories_session_idx ON episodic_memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX episodic_memories_search_tsv_idx ON episodic_memories USING gin (search_tsv);
CREATE INDEX episodic_memories_embedding_minilm_idx ON episodic_memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX episodic_memories_embedding_te3small_idx ON episodic_memories
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER episodic_memories_set_updated_at BEFORE UPDATE ON episodic_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER episodic_memories_delete_links AFTER DELETE ON episodic_memories
    FOR EACH ROW EXECUTE FUNCTION delete_memory_links('episodic');

CREATE TABLE semantic_memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    content          text NOT NULL CHECK (length(content) > 0),
    concept_name       text NOT NULL,
    concept_category   text,
    definition         text,
    properties         jsonb NOT NULL DEFAULT '{}'::jsonb,
    related_concepts   text[] NOT NULL DEFAULT '{}',
    hierarchical_level integer NOT NULL DEFAULT 0 CHECK (hierarchical_level >= 0),
    parent_concept_id  uuid,
    use_cases          text[] NOT NULL DEFAULT '{}',
    examples           text[] NOT NULL DEFAULT '{}',
    mastery_level      real CHECK (mastery_level BETWEEN 0 AND 1),
    importance_score real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL),
    FOREIGN KEY (parent_concept_id, user_id) REFERENCES semantic_memories (id, user_id)
        ON DELETE SET NULL (parent_concept_id),
    CHECK (parent_concept_id IS DISTINCT FROM id)
);
COMMENT ON TABLE semantic_memories IS 'Long-term concepts and knowledge the user holds (definition, properties, hierarchy, mastery).';
CREATE INDEX semantic_memories_user_created_idx ON semantic_memories (user_id, created_at DESC);
CREATE INDEX semantic_memories_user_concept_idx ON semantic_memories (user_id, concept_name);
CREATE INDEX semantic_memories_user_category_idx ON semantic_memories (user_id, concept_category);
CREATE INDEX semantic_memories_parent_idx ON semantic_memories (parent_concept_id) WHERE parent_concept_id IS NOT NULL;
CREATE INDEX semantic_memories_user_hash_idx ON semantic_memories (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX semantic_memories_session_idx ON semantic_memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX semantic_memories_search_tsv_idx ON semantic_memories USING gin (search_tsv);
CREATE INDEX semantic_memories_embedding_minilm_idx ON semantic_memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX semantic_memories_embedding_te3small_idx ON semantic_memories
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER semantic_memories_set_updated_at BEFORE UPDATE ON semantic_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER semantic_memories_delete_links AFTER DELETE ON semantic_memories
    FOR EACH ROW EXECUTE FUNCTION delete_memory_links('semantic');

CREATE TABLE procedural_memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    content          text NOT NULL CHECK (length(content) > 0),
    procedure_name     text NOT NULL,
    domain             text,
    trigger_conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
    steps              jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(steps) = 'array'),
    expected_outcome   text,
    success_rate       real CHECK (success_rate BETWEEN 0 AND 1),
    usage_count        integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    difficulty_level   smallint CHECK (difficulty_level BETWEEN 1 AND 5),
    required_tools     text[] NOT NULL DEFAULT '{}',
    importance_score real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE procedural_memories IS 'Long-term how-to knowledge: named procedures with trigger conditions, ordered steps and success rate.';
CREATE INDEX procedural_memories_user_created_idx ON procedural_memories (user_id, created_at DESC);
CREATE INDEX procedural_memories_user_name_idx ON procedural_memories (user_id, procedure_name);
CREATE INDEX procedural_memories_user_domain_idx ON procedural_memories (user_id, domain);
CREATE INDEX procedural_memories_user_hash_idx ON procedural_memories (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX procedural_memories_session_idx ON procedural_memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX procedural_memories_search_tsv_idx ON procedural_memories USING gin (search_tsv);
CREATE INDEX procedural_memories_embedding_minilm_idx ON procedural_memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX procedural_memories_embedding_te3small_idx ON procedural_memories
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER procedural_memories_set_updated_at BEFORE UPDATE ON procedural_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER procedural_memories_delete_links AFTER DELETE ON procedural_memories
    FOR EACH ROW EXECUTE FUNCTION delete_memory_links('procedural');

CREATE TABLE working_memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    content          text NOT NULL CHECK (length(content) > 0),
    context_type        text NOT NULL CHECK (length(context_type) > 0),
    context_id          text,
    state_data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    current_step        text,
    progress_percentage real NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    next_actions        jsonb NOT NULL DEFAULT '[]'::jsonb,
    dependencies        jsonb NOT NULL DEFAULT '[]'::jsonb,
    blocking_issues     jsonb NOT NULL DEFAULT '[]'::jsonb,
    priority            smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    expires_at          timestamptz NOT NULL,
    importance_score real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    content_hash     text,
    search_text      text,
    search_tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(search_text, content))) STORED,
    embedding        vector,
    embedding_model  text CHECK (embedding_model <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE working_memories IS 'Short-lived task state (current step, progress, next actions); rows expire at expires_at.';
CREATE INDEX working_memories_user_created_idx ON working_memories (user_id, created_at DESC);
CREATE INDEX working_memories_user_expires_idx ON working_memories (user_id, expires_at);
CREATE INDEX working_memories_expires_idx ON working_memories (expires_at);
CREATE INDEX working_memories_user_context_idx ON working_memories (user_id, context_type, context_id);
CREATE INDEX working_memories_user_hash_idx ON working_memories (user_id, content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX working_memories_session_idx ON working_memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX working_memories_search_tsv_idx ON working_memories USING gin (search_tsv);
CREATE INDEX working_memories_embedding_minilm_idx ON working_memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX working_memories_embedding_te3small_idx ON working_memories
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER working_memories_set_updated_at BEFORE UPDATE ON working_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER working_memories_delete_links AFTER DELETE ON working_memories
    FOR EACH ROW EXECUTE FUNCTION delete_memory_links('working');

CREATE TABLE memory_config (
    id                               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                          text NOT NULL UNIQUE REFERENCES users (user_id) ON DELETE CASCADE,
    max_factual_memories             integer NOT NULL DEFAULT 10000 CHECK (max_factual_memories > 0),
    max_episodic_memories            integer NOT NULL DEFAULT 10000 CHECK (max_episodic_memories > 0),
    max_semantic_memories            integer NOT NULL DEFAULT 10000 CHECK (max_semantic_memories > 0),
    max_procedural_memories          integer NOT NULL DEFAULT 5000 CHECK (max_procedural_memories > 0),
    max_working_memories             integer NOT NULL DEFAULT 500 CHECK (max_working_memories > 0),
    working_memory_ttl_seconds       integer NOT NULL DEFAULT 86400 CHECK (working_memory_ttl_seconds > 0),
    default_similarity_threshold     real NOT NULL DEFAULT 0.7 CHECK (default_similarity_threshold BETWEEN 0 AND 1),
    auto_extraction_enabled          boolean NOT NULL DEFAULT true,
    retention_days                   integer CHECK (retention_days > 0),
    settings                         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at                       timestamptz NOT NULL DEFAULT now(),
    updated_at                       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memory_config IS 'Per-user memory limits, working-memory TTL and default similarity threshold (one row per user; absent = defaults).';
CREATE TRIGGER memory_config_set_updated_at BEFORE UPDATE ON memory_config
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE memory_extraction_logs (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id            uuid,
    extraction_session_id text,
    source_content_hash   text NOT NULL,
    extraction_method     text NOT NULL CHECK (length(extraction_method) > 0),
    model_name            text,
    memory_types          text[] NOT NULL DEFAULT '{}',
    extracted_memories    jsonb NOT NULL DEFAULT '[]'::jsonb,
    memories_created      integer NOT NULL DEFAULT 0 CHECK (memories_created >= 0),
    confidence            real CHECK (confidence BETWEEN 0 AND 1),
    status                text NOT NULL DEFAULT 'success' CHECK (status IN ('success', 'partial', 'failed')),
    error_message         text,
    processing_time_ms    integer CHECK (processing_time_ms >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id)
);
COMMENT ON TABLE memory_extraction_logs IS 'Audit of each LLM memory-extraction run: source hash, method, what was extracted, outcome.';
CREATE INDEX memory_extraction_logs_user_created_idx ON memory_extraction_logs (user_id, created_at DESC);
CREATE INDEX memory_extraction_logs_user_source_idx ON memory_extraction_logs (user_id, source_content_hash);
CREATE INDEX memory_extraction_logs_session_idx ON memory_extraction_logs (session_id) WHERE session_id IS NOT NULL;

CREATE TABLE memory_statistics (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    period_type       text NOT NULL CHECK (period_type IN ('day', 'week', 'month')),
    period_start      date NOT NULL,
    factual_count     integer NOT NULL DEFAULT 0 CHECK (factual_count >= 0),
    episodic_count    integer NOT NULL DEFAULT 0 CHECK (episodic_count >= 0),
    semantic_count    integer NOT NULL DEFAULT 0 CHECK (semantic_count >= 0),
    procedural_count  integer NOT NULL DEFAULT 0 CHECK (procedural_count >= 0),
    working_count     integer NOT NULL DEFAULT 0 CHECK (working_count >= 0),
    memories_created  integer NOT NULL DEFAULT 0 CHECK (memories_created >= 0),
    memories_accessed integer NOT NULL DEFAULT 0 CHECK (memories_accessed >= 0),
    searches          integer NOT NULL DEFAULT 0 CHECK (searches >= 0),
    extractions       integer NOT NULL DEFAULT 0 CHECK (extractions >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, period_type, period_start)
);
COMMENT ON TABLE memory_statistics IS 'Per-user, per-period (day/week/month) memory counts by type and activity counters; upserted.';
CREATE INDEX memory_statistics_user_created_idx ON memory_statistics (user_id, created_at DESC);
CREATE TRIGGER memory_statistics_set_updated_at BEFORE UPDATE ON memory_statistics
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
