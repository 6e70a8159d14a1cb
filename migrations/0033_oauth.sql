-- 0033_oauth: this node as an OAuth 2.1 authorization server for its own /mcp (docs/oauth.md). Dynamically
-- registered clients, the grants users consented to, one-time authorization codes and rotating refresh tokens.
-- Client secrets, codes and refresh tokens are stored as SHA-256 hashes only; access tokens are JWTs (not stored).

CREATE TABLE oauth_clients (
    client_id    text PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 200),
    -- NULL for a public client (token_endpoint_auth_method "none").
    secret_hash  text CHECK (secret_hash IS NULL OR length(secret_hash) = 64),
    -- The RFC 7591 metadata as registered (redirect_uris, client_name, ...), without the secret.
    metadata     jsonb NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE oauth_clients IS 'OAuth clients registered through RFC 7591 dynamic registration; secret hash only.';

CREATE TABLE oauth_grants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- The API key the user signed in with: revoking it ends the grant too.
    key_id      uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin']::text[] AND cardinality(scopes) > 0),
    resource    text NOT NULL CHECK (length(resource) BETWEEN 1 AND 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
COMMENT ON TABLE oauth_grants IS 'A user''s consent to one OAuth client: its access and refresh tokens live while the grant does.';
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id);

CREATE TABLE oauth_codes (
    code_hash              text PRIMARY KEY CHECK (length(code_hash) = 64),
    client_id              text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id                text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_id                 uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    scopes                 text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin']::text[] AND cardinality(scopes) > 0),
    resource               text NOT NULL CHECK (length(resource) BETWEEN 1 AND 2000),
    code_challenge         text NOT NULL CHECK (length(code_challenge) BETWEEN 43 AND 128),
    redirect_uri           text NOT NULL CHECK (length(redirect_uri) BETWEEN 1 AND 2000),
    redirect_uri_explicit  boolean NOT NULL,
    expires_at             timestamptz NOT NULL,
    used_at                timestamptz,
    -- The grant the code was exchanged for: a second use of the code revokes it (RFC 6749 §4.1.2).
    grant_id               uuid REFERENCES oauth_grants (id) ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE oauth_codes IS 'One-time OAuth authorization codes (hash only), bound to client, redirect URI, PKCE challenge and resource.';
CREATE INDEX oauth_codes_expires_idx ON oauth_codes (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash  text PRIMARY KEY CHECK (length(token_hash) = 64),
    grant_id    uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    -- Set when the token is exchanged (rotation); presenting it again revokes the whole grant.
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE oauth_refresh_tokens IS 'Rotating OAuth refresh tokens (hash only); a reused one revokes its grant.';
CREATE INDEX oauth_refresh_tokens_grant_idx ON oauth_refresh_tokens (grant_id);
CREATE INDEX oauth_refresh_tokens_expires_idx ON oauth_refresh_tokens (expires_at);
