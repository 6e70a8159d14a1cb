-- 0032_knowledge_graph: a knowledge graph per user (GraphRAG in Postgres; isa/graph owns these tables).
-- Every row carries user_id, and every link between rows is a composite (user_id, id) foreign key, so a relation,
-- attribute or mention can only ever point at rows of the same user: the database itself keeps two users' graphs
-- apart, on top of the `user_id = <caller>` in every statement of isa/graph/store.py.
-- Each fact (relation, attribute, mention) keeps the chunk of the source document it was extracted from.

CREATE TABLE graph_documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    file_id         text,
    source_name     text,
    source_metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL CHECK (status IN ('complete', 'partial')),
    chunk_count     integer NOT NULL CHECK (chunk_count >= 0),
    chunks_failed   integer NOT NULL DEFAULT 0 CHECK (chunks_failed >= 0),
    model           text,
    errors          jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id)
);
COMMENT ON TABLE graph_documents IS 'One processed document of a user: what was read and how the extraction went.';
CREATE INDEX graph_documents_user_created_idx ON graph_documents (user_id, created_at DESC);

CREATE TABLE graph_chunks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text NOT NULL,
    document_id uuid NOT NULL,
    chunk_index integer NOT NULL CHECK (chunk_index >= 0),
    content     text NOT NULL CHECK (length(content) > 0),
    UNIQUE (user_id, id),
    UNIQUE (document_id, chunk_index),
    FOREIGN KEY (user_id, document_id) REFERENCES graph_documents (user_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE graph_chunks IS 'The source text every graph fact cites (the citation target of query answers).';

CREATE TABLE graph_entities (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) > 0),
    name_key        text NOT NULL CHECK (length(name_key) > 0),
    entity_type     text NOT NULL CHECK (length(entity_type) > 0),
    description     text NOT NULL DEFAULT '',
    aliases         text[] NOT NULL DEFAULT '{}',
    embedding       vector,
    embedding_model text CHECK (embedding_model <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (user_id, name_key, entity_type),
    CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);
COMMENT ON COLUMN graph_entities.name_key IS 'casefolded name without punctuation: the exact half of duplicate resolution';
-- Linking a question to entities is an exact per-user cosine scan (user_id first); the HNSW index serves callers
-- with very large graphs where an approximate answer is fine.
CREATE INDEX graph_entities_user_type_idx ON graph_entities (user_id, entity_type);
CREATE INDEX graph_entities_embedding_minilm_idx ON graph_entities
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2';
CREATE TRIGGER graph_entities_set_updated_at BEFORE UPDATE ON graph_entities
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE graph_mentions (
    user_id     text NOT NULL,
    entity_id   uuid NOT NULL,
    chunk_id    uuid NOT NULL,
    document_id uuid NOT NULL,
    PRIMARY KEY (entity_id, chunk_id),
    FOREIGN KEY (user_id, entity_id) REFERENCES graph_entities (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, chunk_id) REFERENCES graph_chunks (user_id, id) ON DELETE CASCADE
);
CREATE INDEX graph_mentions_chunk_idx ON graph_mentions (chunk_id);
CREATE INDEX graph_mentions_document_idx ON graph_mentions (user_id, document_id);

CREATE TABLE graph_relations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL,
    source_id     uuid NOT NULL,
    target_id     uuid NOT NULL,
    relation_type text NOT NULL CHECK (length(relation_type) > 0),
    description   text NOT NULL DEFAULT '',
    chunk_id      uuid NOT NULL,
    document_id   uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_id, target_id, relation_type, chunk_id),
    FOREIGN KEY (user_id, source_id) REFERENCES graph_entities (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, target_id) REFERENCES graph_entities (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, chunk_id) REFERENCES graph_chunks (user_id, id) ON DELETE CASCADE
);
-- The k-hop walk follows edges both ways: one index per direction, user first.
CREATE INDEX graph_relations_source_idx ON graph_relations (user_id, source_id);
CREATE INDEX graph_relations_target_idx ON graph_relations (user_id, target_id);
CREATE INDEX graph_relations_document_idx ON graph_relations (user_id, document_id);

CREATE TABLE graph_attributes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text NOT NULL,
    entity_id   uuid NOT NULL,
    key         text NOT NULL CHECK (length(key) > 0),
    value       text NOT NULL,
    chunk_id    uuid NOT NULL,
    document_id uuid NOT NULL,
    UNIQUE (entity_id, key, value, chunk_id),
    FOREIGN KEY (user_id, entity_id) REFERENCES graph_entities (user_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, chunk_id) REFERENCES graph_chunks (user_id, id) ON DELETE CASCADE
);
CREATE INDEX graph_attributes_entity_idx ON graph_attributes (user_id, entity_id);
CREATE INDEX graph_attributes_document_idx ON graph_attributes (user_id, document_id);
