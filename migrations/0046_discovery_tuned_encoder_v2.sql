-- The tuned encoder's second version (isa/core/encoders/README.md) stores its vectors under a new model name, so
-- rows of the first are never compared with its queries (the catalog re-embeds them in the background at start).
-- 0039's partial HNSW indexes named the first version; the same indexes now serve the second.
DROP INDEX IF EXISTS mcp_unified_search_tool_minilm_tuned_idx;
DROP INDEX IF EXISTS mcp_unified_search_prompt_minilm_tuned_idx;
DROP INDEX IF EXISTS mcp_unified_search_resource_minilm_tuned_idx;
DROP INDEX IF EXISTS mcp_query_examples_tool_minilm_tuned_idx;
CREATE INDEX mcp_unified_search_tool_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v2-int8' AND item_type = 'tool' AND is_active;
CREATE INDEX mcp_unified_search_prompt_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v2-int8' AND item_type = 'prompt' AND is_active;
CREATE INDEX mcp_unified_search_resource_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v2-int8' AND item_type = 'resource' AND is_active;
CREATE INDEX mcp_query_examples_tool_minilm_tuned_idx ON mcp_query_examples
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v2-int8' AND item_type = 'tool';
