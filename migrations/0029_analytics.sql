-- 0029_analytics: the user's analytics tables (data_analytics tools). The rows live as Parquet in the user's
-- storage (storage_key); this is their catalogue. Column metadata for schema linking goes to db_meta_embedding
-- (0005), with database_source = database_name.
CREATE TABLE analytics_tables (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    database_name text NOT NULL CHECK (database_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    table_name    text NOT NULL CHECK (table_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    source_kind   text NOT NULL CHECK (source_kind IN ('file', 'url')),
    source_ref    text NOT NULL,
    source_type   text NOT NULL CHECK (source_type IN ('csv', 'tsv', 'json', 'jsonl', 'parquet', 'excel')),
    storage_key   text NOT NULL UNIQUE,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    row_count     bigint NOT NULL CHECK (row_count >= 0),
    columns       jsonb NOT NULL,
    description   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, database_name, table_name)
);
COMMENT ON TABLE analytics_tables IS 'A user''s ingested table: Parquet object in the user''s storage, row count, columns (name, type, samples).';
CREATE TRIGGER analytics_tables_set_updated_at BEFORE UPDATE ON analytics_tables
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
