-- 0015_discovery: what hybrid tool discovery needs on top of the 0006 registry: imported servers, call names,
-- per-type HNSW indexes, a BM25 postings table kept by a trigger, and selection_history for /stats and learning.

-- Other MCP servers whose tools were imported (`isa catalog import`); calls to their tools are forwarded to url.
CREATE TABLE mcp_servers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200 AND name <> 'isa'),
    description text NOT NULL DEFAULT '',
    url         text CHECK (url IS NULL OR url ~ '^https?://'),
    category    text,
    tool_count  integer NOT NULL DEFAULT 0 CHECK (tool_count >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mcp_servers IS 'Imported MCP servers (never isa itself): description and the URL calls are forwarded to.';
CREATE TRIGGER mcp_servers_set_updated_at BEFORE UPDATE ON mcp_servers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The name a client calls over MCP: <= 64 characters of [A-Za-z0-9_-] (valid as an OpenAI/Anthropic function name),
-- unique per item type, and stable across re-imports.
ALTER TABLE mcp_tools
    ADD COLUMN qualified_name text CHECK (qualified_name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE UNIQUE INDEX mcp_tools_qualified_name_key ON mcp_tools (qualified_name);
ALTER TABLE mcp_prompts
    ADD COLUMN qualified_name text CHECK (qualified_name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE UNIQUE INDEX mcp_prompts_qualified_name_key ON mcp_prompts (qualified_name);
ALTER TABLE mcp_resources
    ADD COLUMN qualified_name text CHECK (qualified_name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE UNIQUE INDEX mcp_resources_qualified_name_key ON mcp_resources (qualified_name);

-- The discovery index row carries everything /discover returns, so ranking is one query without joins.
-- name_text (weight A) is the item's name split into words plus its server's name; the writer fills it.
ALTER TABLE mcp_unified_search_embeddings
    ADD COLUMN qualified_name text CHECK (qualified_name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    ADD COLUMN input_schema   jsonb,
    ADD COLUMN security_level text NOT NULL DEFAULT 'LOW'
                              CHECK (security_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    ADD COLUMN name_text      text NOT NULL DEFAULT '',
    ADD COLUMN embedded_hash  text;
COMMENT ON COLUMN mcp_unified_search_embeddings.embedded_hash IS 'Hash of the text the embedding was computed from (+ model); the row is re-embedded only when it changes.';
COMMENT ON COLUMN mcp_unified_search_embeddings.content_hash IS 'Hash of every field of the item; the row is rewritten only when it changes.';
CREATE UNIQUE INDEX mcp_unified_search_embeddings_qualified_name_key
    ON mcp_unified_search_embeddings (item_type, qualified_name);
CREATE INDEX mcp_unified_search_embeddings_server_idx ON mcp_unified_search_embeddings (server);

-- Weight A is now name_text instead of item_name with underscores replaced (camelCase and dots were not split).
DROP INDEX mcp_unified_search_embeddings_search_tsv_idx;
ALTER TABLE mcp_unified_search_embeddings DROP COLUMN search_tsv;
ALTER TABLE mcp_unified_search_embeddings ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', name_text), 'A')
    || setweight(to_tsvector('english', description), 'B')
    || setweight(to_tsvector('english', coalesce(search_text, '')), 'C')
) STORED;
CREATE INDEX mcp_unified_search_embeddings_search_tsv_idx ON mcp_unified_search_embeddings USING gin (search_tsv);

-- One HNSW index per item type: /discover ranks each type on its own, and a filter applied after a shared
-- index scan would starve the small types (a few prompts among thousands of tools).
CREATE INDEX mcp_unified_search_tool_minilm_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2' AND item_type = 'tool' AND is_active;
CREATE INDEX mcp_unified_search_prompt_minilm_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2' AND item_type = 'prompt' AND is_active;
CREATE INDEX mcp_unified_search_resource_minilm_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2' AND item_type = 'resource' AND is_active;

-- BM25 postings: one row per (lexeme, index row) with the lexeme's count in each weighted field and the row's
-- field lengths, so field weights, k1 and b can be tuned without rewriting anything. Kept by the trigger below
-- from search_tsv, so every writer keeps it consistent.
CREATE TABLE mcp_search_postings (
    term      text NOT NULL,
    entry_id  uuid NOT NULL REFERENCES mcp_unified_search_embeddings (id) ON DELETE CASCADE,
    item_type text NOT NULL,
    tf_a      smallint NOT NULL,
    tf_b      smallint NOT NULL,
    tf_c      smallint NOT NULL,
    len_a     smallint NOT NULL,
    len_b     smallint NOT NULL,
    len_c     smallint NOT NULL,
    PRIMARY KEY (term, entry_id)
);
COMMENT ON TABLE mcp_search_postings IS 'Inverted index of mcp_unified_search_embeddings.search_tsv for BM25 (field counts A=name, B=description, C=extra).';
CREATE INDEX mcp_search_postings_entry_idx ON mcp_search_postings (entry_id);

CREATE FUNCTION mcp_search_postings_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.search_tsv IS NOT DISTINCT FROM NEW.search_tsv AND OLD.item_type = NEW.item_type THEN
            RETURN NULL;
        END IF;
        DELETE FROM mcp_search_postings WHERE entry_id = NEW.id;
    END IF;
    INSERT INTO mcp_search_postings (term, entry_id, item_type, tf_a, tf_b, tf_c, len_a, len_b, len_c)
    SELECT t.lexeme, NEW.id, NEW.item_type,
           least(t.a, 32767), least(t.b, 32767), least(t.c, 32767),
           least(sum(t.a) OVER (), 32767), least(sum(t.b) OVER (), 32767), least(sum(t.c) OVER (), 32767)
    FROM (
        SELECT u.lexeme,
               cardinality(array_positions(u.weights, 'A')) AS a,
               cardinality(array_positions(u.weights, 'B')) AS b,
               cardinality(array_positions(u.weights, 'C')) AS c
        FROM unnest(NEW.search_tsv) AS u
    ) AS t;
    RETURN NULL;
END;
$$;
CREATE TRIGGER mcp_search_postings_insert AFTER INSERT ON mcp_unified_search_embeddings
    FOR EACH ROW EXECUTE FUNCTION mcp_search_postings_refresh();
CREATE TRIGGER mcp_search_postings_update AFTER UPDATE ON mcp_unified_search_embeddings
    FOR EACH ROW EXECUTE FUNCTION mcp_search_postings_refresh();

-- Example queries per item: what people asked when this item was the right answer. They come with an import
-- (a tool's "examples") or are learned from usage (a discovered tool the same user then called successfully).
-- Ranking lets the nearest examples vote for their items (see docs/discovery.md).
CREATE TABLE mcp_query_examples (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    entry_id        uuid NOT NULL REFERENCES mcp_unified_search_embeddings (id) ON DELETE CASCADE,
    item_type       text NOT NULL CHECK (item_type IN ('tool', 'prompt', 'resource')),
    query           text NOT NULL CHECK (length(query) BETWEEN 1 AND 4000),
    query_hash      text NOT NULL,
    source          text NOT NULL CHECK (source IN ('import', 'usage')),
    embedding       vector NOT NULL,
    embedding_model text NOT NULL CHECK (embedding_model <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entry_id, query_hash, embedding_model)
);
COMMENT ON TABLE mcp_query_examples IS 'Queries known to want an item (imported examples, or learned from usage); nearest ones vote in ranking.';
CREATE INDEX mcp_query_examples_tool_minilm_idx ON mcp_query_examples
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2' AND item_type = 'tool';
CREATE INDEX mcp_query_examples_entry_idx ON mcp_query_examples (entry_id);

-- Every selection /discover and /search made, one row per returned item, for /stats and for learning from usage.
-- The call itself (query, filters, latency, result count) is one mcp_search_history row (0006); the query, caller
-- and latency are repeated here so usage can be read from this table alone.
CREATE TABLE selection_history (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    search_id      uuid NOT NULL REFERENCES mcp_search_history (id) ON DELETE CASCADE,
    user_id        text REFERENCES users (user_id) ON DELETE CASCADE,
    search_kind    text NOT NULL CHECK (search_kind IN ('discover', 'search')),
    user_query     text NOT NULL,
    selection_type text NOT NULL CHECK (selection_type IN ('tool', 'prompt', 'resource')),
    item_name      text NOT NULL,
    server         text NOT NULL,
    rank           smallint NOT NULL CHECK (rank >= 1),
    score          real NOT NULL,
    latency_ms     real NOT NULL CHECK (latency_ms >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE selection_history IS 'One row per item a /discover or /search call returned (query, rank, score, latency, caller); user_id NULL = system call.';
CREATE INDEX selection_history_created_idx ON selection_history (created_at DESC);
CREATE INDEX selection_history_item_idx ON selection_history (selection_type, item_name);
CREATE INDEX selection_history_user_created_idx ON selection_history (user_id, created_at DESC);
CREATE INDEX selection_history_search_idx ON selection_history (search_id);
