-- 0011_api_keys: API keys users and operators create. Shown once, stored as a SHA-256 hash
-- (the key has 256 bits of entropy, so a slow hash adds nothing), scoped, revocable.

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    prefix        text NOT NULL CHECK (length(prefix) BETWEEN 8 AND 32),
    key_hash      text NOT NULL UNIQUE CHECK (length(key_hash) = 64),
    scopes        text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin']::text[] AND cardinality(scopes) > 0),
    created_by    text,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE api_keys IS 'API keys: hash only, scopes read/write/admin, revocable, with last-used time.';
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC);
