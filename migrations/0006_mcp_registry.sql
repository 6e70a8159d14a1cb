-- 0006_mcp_registry: MCP capability registry (tools, prompts, resources), the unified discovery index,
-- content-hash keyed embedding caches and search history. Registry rows are global (not user-owned).

CREATE TABLE mcp_tools (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server                 text NOT NULL DEFAULT 'isa' CHECK (length(server) > 0),
    name                   text NOT NULL CHECK (length(name) > 0),
    description            text NOT NULL DEFAULT '',
    category               text,
    input_schema           jsonb NOT NULL DEFAULT '{"type": "object"}'::jsonb,
    output_schema          jsonb,
    annotations            jsonb NOT NULL DEFAULT '{}'::jsonb,
    keywords               text[] NOT NULL DEFAULT '{}',
    security_level         text NOT NULL DEFAULT 'LOW' CHECK (security_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    requires_authorization boolean NOT NULL DEFAULT false,
    cost_credits           numeric(14,3) NOT NULL DEFAULT 0 CHECK (cost_credits >= 0),
    rate_limit_per_minute  integer CHECK (rate_limit_per_minute > 0),
    timeout_seconds        integer CHECK (timeout_seconds > 0),
    content_hash           text NOT NULL,
    is_active              boolean NOT NULL DEFAULT true,
    call_count             bigint NOT NULL DEFAULT 0 CHECK (call_count >= 0),
    success_count          bigint NOT NULL DEFAULT 0 CHECK (success_count >= 0),
    error_count            bigint NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    total_response_time_ms double precision NOT NULL DEFAULT 0 CHECK (total_response_time_ms >= 0),
    avg_response_time_ms   double precision GENERATED ALWAYS AS
                           (CASE WHEN call_count > 0 THEN total_response_time_ms / call_count END) STORED,
    success_rate           double precision GENERATED ALWAYS AS
                           (CASE WHEN call_count > 0 THEN success_count::double precision / call_count END) STORED,
    last_used_at           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, name),
    CHECK (success_count + error_count <= call_count)
);
COMMENT ON TABLE mcp_tools IS 'Registry of MCP tools (ours: server=isa) with schema, security level, cost, rate limit and call statistics.';
COMMENT ON COLUMN mcp_tools.call_count IS 'Update with one statement: SET call_count = call_count + 1, success_count = ..., total_response_time_ms = ... + $ms.';
CREATE INDEX mcp_tools_category_idx ON mcp_tools (category) WHERE is_active;
CREATE TRIGGER mcp_tools_set_updated_at BEFORE UPDATE ON mcp_tools
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE mcp_prompts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server       text NOT NULL DEFAULT 'isa' CHECK (length(server) > 0),
    name         text NOT NULL CHECK (length(name) > 0),
    description  text NOT NULL DEFAULT '',
    category     text,
    arguments    jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(arguments) = 'array'),
    content      text,
    keywords     text[] NOT NULL DEFAULT '{}',
    content_hash text NOT NULL,
    is_active    boolean NOT NULL DEFAULT true,
    usage_count  bigint NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, name)
);
COMMENT ON TABLE mcp_prompts IS 'Registry of MCP prompts: arguments, template content, usage count.';
CREATE INDEX mcp_prompts_category_idx ON mcp_prompts (category) WHERE is_active;
CREATE TRIGGER mcp_prompts_set_updated_at BEFORE UPDATE ON mcp_prompts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE mcp_resources (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server           text NOT NULL DEFAULT 'isa' CHECK (length(server) > 0),
    uri              text NOT NULL CHECK (length(uri) > 0),
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    category         text,
    resource_type    text,
    mime_type        text,
    size_bytes       bigint CHECK (size_bytes >= 0),
    is_template      boolean NOT NULL DEFAULT false,
    keywords         text[] NOT NULL DEFAULT '{}',
    content_hash     text NOT NULL,
    is_active        boolean NOT NULL DEFAULT true,
    access_count     bigint NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    last_accessed_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, uri)
);
COMMENT ON TABLE mcp_resources IS 'Registry of MCP resources and resource templates (by URI): type, MIME type, size, access count.';
CREATE INDEX mcp_resources_category_idx ON mcp_resources (category) WHERE is_active;
CREATE TRIGGER mcp_resources_set_updated_at BEFORE UPDATE ON mcp_resources
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE mcp_unified_search_embeddings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    item_type       text NOT NULL CHECK (item_type IN ('tool', 'prompt', 'resource')),
    item_name       text NOT NULL CHECK (length(item_name) > 0),
    server          text NOT NULL DEFAULT 'isa' CHECK (length(server) > 0),
    category        text,
    description     text NOT NULL DEFAULT '',
    keywords        text[] NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active       boolean NOT NULL DEFAULT true,
    content_hash    text NOT NULL,
    search_text     text,
    search_tsv      tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', replace(item_name, '_', ' ')), 'A')
                        || setweight(to_tsvector('english', description), 'B')
                        || setweight(to_tsvector('english', coalesce(search_text, '')), 'C')
                    ) STORED,
    embedding       vector,
    embedding_model text CHECK (embedding_model <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (item_type, server, item_name),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON TABLE mcp_unified_search_embeddings IS 'THE discovery index over tools, prompts and resources: one row per item with embedding and weighted lexical vector.';
COMMENT ON COLUMN mcp_unified_search_embeddings.search_text IS 'Writer fills it (keywords joined by spaces, plus any extra terms); search_tsv = name (A) + description (B) + search_text (C).';
COMMENT ON COLUMN mcp_unified_search_embeddings.content_hash IS 'Hash of the embedded text; re-embed when it changes (upsert on (item_type, server, item_name)).';
CREATE INDEX mcp_unified_search_embeddings_type_category_idx ON mcp_unified_search_embeddings (item_type, category)
    WHERE is_active;
CREATE INDEX mcp_unified_search_embeddings_keywords_idx ON mcp_unified_search_embeddings USING gin (keywords);
CREATE INDEX mcp_unified_search_embeddings_search_tsv_idx ON mcp_unified_search_embeddings USING gin (search_tsv);
CREATE INDEX mcp_unified_search_embeddings_embedding_minilm_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE INDEX mcp_unified_search_embeddings_embedding_te3small_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_model = 'text-embedding-3-small';
CREATE TRIGGER mcp_unified_search_embeddings_set_updated_at BEFORE UPDATE ON mcp_unified_search_embeddings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Embedding caches: immutable rows keyed by (name, content_hash, embedding_model). A changed description has a
-- new hash, so it can never be served a stale vector; rows of old hashes can be deleted at leisure.
CREATE TABLE tool_embeddings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server          text NOT NULL DEFAULT 'isa',
    tool_name       text NOT NULL CHECK (length(tool_name) > 0),
    content_hash    text NOT NULL CHECK (length(content_hash) > 0),
    embedding_model text NOT NULL CHECK (length(embedding_model) > 0),
    embedding       vector NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, tool_name, content_hash, embedding_model)
);
COMMENT ON TABLE tool_embeddings IS 'Embedding cache for tool descriptions, keyed by (server, tool_name, content_hash, embedding_model).';

CREATE TABLE prompt_embeddings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server          text NOT NULL DEFAULT 'isa',
    prompt_name     text NOT NULL CHECK (length(prompt_name) > 0),
    content_hash    text NOT NULL CHECK (length(content_hash) > 0),
    embedding_model text NOT NULL CHECK (length(embedding_model) > 0),
    embedding       vector NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, prompt_name, content_hash, embedding_model)
);
COMMENT ON TABLE prompt_embeddings IS 'Embedding cache for prompt descriptions, keyed by (server, prompt_name, content_hash, embedding_model).';

CREATE TABLE resource_embeddings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server          text NOT NULL DEFAULT 'isa',
    resource_uri    text NOT NULL CHECK (length(resource_uri) > 0),
    content_hash    text NOT NULL CHECK (length(content_hash) > 0),
    embedding_model text NOT NULL CHECK (length(embedding_model) > 0),
    embedding       vector NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, resource_uri, content_hash, embedding_model)
);
COMMENT ON TABLE resource_embeddings IS 'Embedding cache for resource descriptions, keyed by (server, resource_uri, content_hash, embedding_model).';

CREATE TABLE mcp_search_history (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text REFERENCES users (user_id) ON DELETE CASCADE,
    session_id       uuid,
    search_kind      text NOT NULL DEFAULT 'search' CHECK (search_kind IN ('search', 'discover')),
    query            text NOT NULL,
    filters          jsonb NOT NULL DEFAULT '{}'::jsonb,
    search_method    text,
    embedding_model  text,
    results_count    integer NOT NULL DEFAULT 0 CHECK (results_count >= 0),
    result_types     text[] NOT NULL DEFAULT '{}',
    top_results      jsonb NOT NULL DEFAULT '[]'::jsonb,
    response_time_ms real CHECK (response_time_ms >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (session_id IS NULL OR user_id IS NOT NULL)
);
COMMENT ON TABLE mcp_search_history IS 'Log of /search and /discover calls (query, filters, top results with scores, latency); replaces selection_history. user_id NULL = system call.';
CREATE INDEX mcp_search_history_user_created_idx ON mcp_search_history (user_id, created_at DESC);
CREATE INDEX mcp_search_history_created_idx ON mcp_search_history (created_at DESC);
CREATE INDEX mcp_search_history_session_idx ON mcp_search_history (session_id) WHERE session_id IS NOT NULL;
