-- 0016_mcp_runtime: what the MCP endpoint records while it runs: one audit row per tool call, and the human
-- approvals HIGH/CRITICAL tools wait for. Per-user, per-tool rate limits use rate_limits (0012).

CREATE TABLE audit_log (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- No FK: the audit trail outlives the user row it describes.
    user_id         text NOT NULL CHECK (length(user_id) > 0),
    principal_via   text,
    key_id          uuid,
    tool_name       text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 200),
    server          text NOT NULL DEFAULT 'isa',
    security_level  text NOT NULL CHECK (security_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    arguments       jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome         text NOT NULL CHECK (outcome IN (
                        'ok', 'error', 'denied', 'rate_limited', 'approval_required', 'approval_denied',
                        'insufficient_credits', 'circuit_open', 'invalid_arguments', 'unknown_tool',
                        'upstream_error')),
    error_code      text,
    duration_ms     double precision NOT NULL CHECK (duration_ms >= 0),
    credits_charged numeric(14,3) NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    authorization_request_id uuid,
    request_id      text,
    session_id      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_log IS 'One row per MCP tool call: who (from the verified principal), what tool, arguments with secrets masked, outcome, duration.';
COMMENT ON COLUMN audit_log.arguments IS 'Masked before insert: values under secret-looking keys and tokens inside strings are replaced by ***.';
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_user_created_idx ON audit_log (user_id, created_at DESC);
CREATE INDEX audit_log_tool_created_idx ON audit_log (tool_name, created_at DESC);

CREATE TABLE authorization_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    tool_name        text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 200),
    security_level   text NOT NULL CHECK (security_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    arguments        jsonb NOT NULL DEFAULT '{}'::jsonb,
    arguments_hash   text NOT NULL CHECK (length(arguments_hash) = 64),
    reason           text NOT NULL DEFAULT '' CHECK (length(reason) <= 2000),
    requested_by_key uuid,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    expires_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    decided_by       text,
    decision_note    text CHECK (length(decision_note) <= 2000),
    used_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK ((status = 'used') = (used_at IS NOT NULL))
);
COMMENT ON TABLE authorization_requests IS 'Human approvals for HIGH/CRITICAL tool calls, bound to user, tool and a hash of the exact arguments; an approval is used once.';
COMMENT ON COLUMN authorization_requests.expires_at IS 'Pending: the request lapses then. Approved: the approval must be used before then.';
COMMENT ON COLUMN authorization_requests.requested_by_key IS 'The API key that asked; that same key can never approve the request.';
CREATE INDEX authorization_requests_user_created_idx ON authorization_requests (user_id, created_at DESC);
CREATE INDEX authorization_requests_match_idx ON authorization_requests (user_id, tool_name, arguments_hash)
    WHERE status IN ('pending', 'approved', 'denied');
CREATE INDEX authorization_requests_pending_idx ON authorization_requests (created_at DESC) WHERE status = 'pending';

-- A lease of up to p_n calls from a GCRA budget in rate_limits (0012): p_window seconds hold
-- p_window / p_interval calls. One round trip; the row lock makes concurrent leases of replicas add up exactly.
CREATE FUNCTION mcp_rate_lease(p_key text, p_n integer, p_window double precision, p_interval double precision,
                               OUT granted integer, OUT retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_base timestamptz;
BEGIN
    INSERT INTO rate_limits (key, tat, allowed) VALUES (p_key, now(), true) ON CONFLICT (key) DO NOTHING;
    SELECT greatest(tat, now()) INTO v_base FROM rate_limits WHERE key = p_key FOR UPDATE;
    granted := greatest(0, least(p_n, floor((p_window - extract(epoch FROM v_base - now())) / p_interval)::integer));
    UPDATE rate_limits SET tat = v_base + make_interval(secs => granted * p_interval), allowed = granted > 0
    WHERE key = p_key;
    retry_after := greatest(1, ceil(extract(epoch FROM
        v_base + make_interval(secs => (granted + 1) * p_interval - p_window) - now()))::integer);
END;
$$;
COMMENT ON FUNCTION mcp_rate_lease IS 'Take up to p_n calls from the GCRA budget of p_key (rate_limits); returns how many were granted.';
