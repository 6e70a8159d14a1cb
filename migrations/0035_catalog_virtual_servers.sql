-- Virtual servers: a named MCP endpoint (/mcp/v/{name}) exposing a chosen set of the catalog's tools, prompts and
-- resources (ours and other servers'). Members are names, not foreign keys: an upstream tool that is retired and
-- comes back keeps its place, and a member that no longer exists is simply not listed (docs/federation.md).
CREATE TABLE catalog_virtual_servers (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    tools       text[] NOT NULL DEFAULT '{}',   -- call names (qualified_name)
    prompts     text[] NOT NULL DEFAULT '{}',   -- call names (qualified_name)
    resources   text[] NOT NULL DEFAULT '{}',   -- URIs (a template's URI for a template)
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(tools) + cardinality(prompts) + cardinality(resources) BETWEEN 1 AND 5000)
);
COMMENT ON TABLE catalog_virtual_servers IS 'Named endpoints /mcp/v/{name}: the tools, prompts and resources each exposes.';
CREATE TRIGGER catalog_virtual_servers_set_updated_at BEFORE UPDATE ON catalog_virtual_servers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
