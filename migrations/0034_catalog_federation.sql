-- Live MCP servers added by URL (`isa catalog add`): how to reach them, their sync health, and the credentials
-- users stored for servers that act as the user. Secrets are sealed (Fernet) by the catalog before they get here.
CREATE TABLE catalog_upstreams (
    name            text PRIMARY KEY REFERENCES mcp_servers (name) ON DELETE CASCADE,
    url             text NOT NULL CHECK (url ~ '^https?://'),
    headers_sealed  text,                 -- the server's own credentials (JSON of headers), sealed; NULL: none
    user_header     text CHECK (user_header IS NULL OR user_header LIKE '%: %{credential}%'),  -- per-user template
    health          text NOT NULL DEFAULT 'pending' CHECK (health IN ('pending', 'ok', 'error')),
    last_error      text,
    last_sync_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE catalog_upstreams IS 'MCP servers added by URL and kept in sync (list_changed and a schedule).';
CREATE TRIGGER catalog_upstreams_set_updated_at BEFORE UPDATE ON catalog_upstreams
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE catalog_user_credentials (
    server          text NOT NULL REFERENCES catalog_upstreams (name) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    secret_sealed   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, user_id)
);
COMMENT ON TABLE catalog_user_credentials IS 'A user''s own credential for an upstream server, sealed; used only for that user''s calls.';
