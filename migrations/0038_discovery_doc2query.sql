-- 0038_discovery_doc2query: example requests written by the model node for imported tools (doc2query, issue 24).
-- The answers are cached per tool text and model alias, so re-imports and periodic re-syncs of unchanged tools
-- never ask the model again; the requests themselves are stored as `generated` example queries and vote in
-- ranking like imported ones (docs/discovery.md). Owned by the catalog domain (isa/catalog/store.py).
CREATE TABLE mcp_generated_queries (
    text_hash  text NOT NULL,   -- sha256 of the prompt version and the tool's text (name, description, parameters)
    model      text NOT NULL,   -- the model alias that wrote them
    queries    text[] NOT NULL CHECK (cardinality(queries) BETWEEN 1 AND 20),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (text_hash, model)
);
COMMENT ON TABLE mcp_generated_queries IS 'doc2query cache: requests a model wrote for a tool text, by text hash and model alias.';

ALTER TABLE mcp_query_examples DROP CONSTRAINT mcp_query_examples_source_check;
ALTER TABLE mcp_query_examples ADD CONSTRAINT mcp_query_examples_source_check
    CHECK (source IN ('import', 'usage', 'generated'));

-- Every ranking statement filters rows by the scope they need (isa/catalog/access.py, REQUIRED_SCOPE). Without
-- statistics Postgres guesses that this CASE expression keeps 0.5 % of the rows, so at 10,000 tools it judged an
-- exact scan of every vector cheaper than the HNSW index (the dense arm read all 10,000 rows: statement 331 ms
-- -> 41 ms p50 with these statistics, same run, load ~20; docs/benchmarks.md). The expression must stay exactly
-- REQUIRED_SCOPE's (tests/catalog/test_discovery_access.py checks the estimate).
CREATE STATISTICS mcp_unified_search_scope_stats ON (
    CASE WHEN server = 'isa' THEN coalesce(metadata->>'scope', 'read')
    WHEN item_type = 'tool' AND security_level IN ('HIGH', 'CRITICAL') THEN 'write' ELSE 'read' END
) FROM mcp_unified_search_embeddings;
ANALYZE mcp_unified_search_embeddings;
