-- 0014_files: per-user files. The object lives in storage under a key the app builds; this row is the
-- only link between a user and that object, so every read and write filters on user_id here.

CREATE TABLE files (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    storage_key     text NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 1024),
    storage_version text,
    filename        text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type    text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 255),
    size_bytes      bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    sha256          text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'deleted')),
    upload_method   text NOT NULL CHECK (upload_method IN ('stream', 'presigned')),
    status_reason   text CHECK (status_reason IS NULL OR length(status_reason) <= 64),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CHECK (status <> 'ready' OR sha256 IS NOT NULL),
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
COMMENT ON TABLE files IS 'Per-user files: owner, storage key, size, detected type, checksum; pending until the bytes are checked.';
COMMENT ON COLUMN files.size_bytes IS 'Bytes stored once ready; while pending, the bytes reserved against the quota.';
COMMENT ON COLUMN files.storage_version IS 'S3 version id of the checked bytes (versioned buckets); downloads serve exactly it.';
COMMENT ON COLUMN files.filename IS 'The user''s file name, display metadata only; never part of storage_key.';
CREATE INDEX files_user_created_idx ON files (user_id, created_at DESC) WHERE status <> 'deleted';
CREATE INDEX files_pending_created_idx ON files (created_at) WHERE status = 'pending';
CREATE TRIGGER files_set_updated_at BEFORE UPDATE ON files
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
