-- 0027_mcp_session_tools: progressive disclosure. The tools an MCP session selected with select_tools, keyed by
-- the verified user and the session id, so another user presenting the same session id never sees them and every
-- replica lists the same. Rows go when the session ends (docs/mcp.md).

CREATE TABLE mcp_session_tools (
    user_id     text NOT NULL CHECK (length(user_id) > 0),
    session_id  text NOT NULL CHECK (length(session_id) BETWEEN 1 AND 200),
    tool_name   text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 200),
    selected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, session_id, tool_name)
);
COMMENT ON TABLE mcp_session_tools IS 'Tools a stateful MCP session added to its tools/list with select_tools; deleted when the session ends.';
CREATE INDEX mcp_session_tools_session_idx ON mcp_session_tools (session_id);
