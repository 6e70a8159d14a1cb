-- Discovery's own fine-tuned encoder (`[catalog] encoder = "tuned"`, issue 24) stores its vectors under its own
-- model name. The ranking statement names the model literally, so these partial HNSW indexes serve it the way
-- 0031's serve the stock int8 model; without them a catalog on the tuned encoder is ranked by an exact scan.
CREATE INDEX mcp_unified_search_tool_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v1-int8' AND item_type = 'tool' AND is_active;
CREATE INDEX mcp_unified_search_prompt_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v1-int8' AND item_type = 'prompt' AND is_active;
CREATE INDEX mcp_unified_search_resource_minilm_tuned_idx ON mcp_unified_search_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v1-int8' AND item_type = 'resource' AND is_active;
CREATE INDEX mcp_query_examples_tool_minilm_tuned_idx ON mcp_query_examples
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE embedding_model = 'isa-minilm-tools-v1-int8' AND item_type = 'tool';
