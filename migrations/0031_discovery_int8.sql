-- Discovery's default encoder is the int8-quantised MiniLM (issue 24), whose vectors are stored under their own
-- model name. The ranking statement repeats each partial index's predicate literally, so the int8 rows need
-- their own partial HNSW indexes (the fp32 ones of 0015 stay for `[catalog] encoder = "fp32"`).
CREATE INDEX mcp_unified_search_tool_minilm_int8_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2-int8' AND item_type = 'tool' AND is_active;
CREATE INDEX mcp_unified_search_prompt_minilm_int8_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2-int8' AND item_type = 'prompt' AND is_active;
CREATE INDEX mcp_unified_search_resource_minilm_int8_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2-int8' AND item_type = 'resource' AND is_active;
CREATE INDEX mcp_query_examples_tool_minilm_int8_idx ON mcp_query_examples
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'all-MiniLM-L6-v2-int8' AND item_type = 'tool';
