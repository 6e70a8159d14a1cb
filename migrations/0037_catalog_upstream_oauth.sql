-- Upstream MCP servers protected by OAuth 2.1, with isa as their OAuth client (`isa catalog add NAME URL --auth oauth`,
-- docs/federation.md): the client isa registered with the upstream's authorization server, the grants users (or an
-- admin, for the server itself) completed through isa, and the authorization requests still waiting for their
-- callback. Secrets (client secret, tokens, PKCE verifiers) are sealed (Fernet) by the catalog before they get here.
CREATE TABLE catalog_upstream_oauth (
    server          text PRIMARY KEY,     -- the server's catalog name (its mcp_servers row appears at the first sync)
    url             text NOT NULL CHECK (url ~ '^https?://'),
    per_user        boolean NOT NULL,     -- calls carry the calling user's own grant (else the server's grant)
    redirect_uri    text NOT NULL,        -- this node's callback, registered with the upstream
    discovery       jsonb NOT NULL,       -- RFC 9728 resource metadata and RFC 8414 server metadata (public)
    client_sealed   text NOT NULL,        -- the RFC 7591 registration (client_id, client_secret), sealed
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE catalog_upstream_oauth IS 'Upstream MCP servers isa reaches as an OAuth client, and its registration.';
CREATE TRIGGER catalog_upstream_oauth_set_updated_at BEFORE UPDATE ON catalog_upstream_oauth
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE catalog_upstream_oauth_grants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server          text NOT NULL REFERENCES catalog_upstream_oauth (server) ON DELETE CASCADE,
    user_id         text REFERENCES users (user_id) ON DELETE CASCADE,  -- NULL: the server's own grant (admin)
    tokens_sealed   text NOT NULL,        -- access and refresh token (JSON), sealed
    expires_at      timestamptz,          -- of the access token; NULL: the upstream did not say
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX catalog_upstream_oauth_grants_user ON catalog_upstream_oauth_grants (server, user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX catalog_upstream_oauth_grants_server ON catalog_upstream_oauth_grants (server)
    WHERE user_id IS NULL;
COMMENT ON TABLE catalog_upstream_oauth_grants IS 'OAuth tokens isa holds for an upstream, per user or for the server; sealed.';
CREATE TRIGGER catalog_upstream_oauth_grants_set_updated_at BEFORE UPDATE ON catalog_upstream_oauth_grants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE catalog_upstream_oauth_flows (
    state_hash      text PRIMARY KEY,     -- SHA-256 of the `state` sent to the upstream (the state itself is not kept)
    server          text NOT NULL REFERENCES catalog_upstream_oauth (server) ON DELETE CASCADE,
    started_by      text NOT NULL,        -- the caller who asked for the authorization URL ('cli' from the command line)
    for_user        boolean NOT NULL,     -- true: the grant becomes started_by's own; false: the server's
    verifier_sealed text NOT NULL,        -- the PKCE code verifier, sealed
    expires_at      timestamptz NOT NULL
);
CREATE INDEX catalog_upstream_oauth_flows_expiry ON catalog_upstream_oauth_flows (expires_at);
COMMENT ON TABLE catalog_upstream_oauth_flows IS 'Authorization requests to upstreams waiting for their callback (single use).';
