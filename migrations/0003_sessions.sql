-- 0003_sessions: conversation sessions, their messages and rolling summaries.
-- Child rows reference sessions by (session_id, user_id) so a row can never point at another user's session.

CREATE TABLE sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    title             text,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended', 'expired', 'archived')),
    is_active         boolean GENERATED ALWAYS AS (status = 'active') STORED,
    conversation_data jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    session_summary   text,
    message_count     integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    total_tokens      bigint NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    total_cost        numeric(14,6) NOT NULL DEFAULT 0 CHECK (total_cost >= 0),
    last_activity_at  timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id)
);
COMMENT ON TABLE sessions IS 'A conversation between a user and the agent; also the LangGraph thread for that conversation.';
COMMENT ON COLUMN sessions.total_cost IS 'USD, summed from the session''s messages.';
CREATE INDEX sessions_user_created_idx ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_user_activity_idx ON sessions (user_id, last_activity_at DESC);
CREATE INDEX sessions_expires_idx ON sessions (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
CREATE TRIGGER sessions_set_updated_at BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE session_messages (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq                  bigint GENERATED ALWAYS AS IDENTITY,
    session_id           uuid NOT NULL,
    user_id              text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    message_type         text NOT NULL DEFAULT 'chat'
                         CHECK (message_type IN ('chat', 'tool_call', 'tool_result', 'system', 'summary', 'event')),
    role                 text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content              text NOT NULL DEFAULT '',
    status               text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'incomplete', 'error')),
    tool_calls           jsonb,
    tool_call_id         text,
    message_metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key      text,
    tokens_used          integer NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    cost_usd             numeric(14,6) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    is_summary_candidate boolean NOT NULL DEFAULT true,
    importance_score     real NOT NULL DEFAULT 0.5 CHECK (importance_score BETWEEN 0 AND 1),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE CASCADE,
    CHECK (role <> 'tool' OR tool_call_id IS NOT NULL)
);
COMMENT ON TABLE session_messages IS 'Ordered messages of a session (user, assistant, tool); seq gives a total order even within one transaction.';
COMMENT ON COLUMN session_messages.seq IS 'Ordering only (never exposed as an id): ORDER BY seq within a session.';
COMMENT ON COLUMN session_messages.status IS 'incomplete = assistant stream cut off (e.g. upstream died); never half-written silently.';
CREATE INDEX session_messages_session_seq_idx ON session_messages (session_id, seq);
CREATE INDEX session_messages_user_created_idx ON session_messages (user_id, created_at DESC);
CREATE UNIQUE INDEX session_messages_idempotency_idx ON session_messages (session_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TRIGGER session_messages_set_updated_at BEFORE UPDATE ON session_messages
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE session_memories (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id                  uuid NOT NULL UNIQUE,
    user_id                     text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    conversation_summary        text,
    user_context                jsonb NOT NULL DEFAULT '{}'::jsonb,
    key_decisions               jsonb NOT NULL DEFAULT '[]'::jsonb,
    ongoing_tasks               jsonb NOT NULL DEFAULT '[]'::jsonb,
    user_preferences            jsonb NOT NULL DEFAULT '{}'::jsonb,
    important_facts             jsonb NOT NULL DEFAULT '[]'::jsonb,
    total_messages              integer NOT NULL DEFAULT 0 CHECK (total_messages >= 0),
    messages_since_last_summary integer NOT NULL DEFAULT 0 CHECK (messages_since_last_summary >= 0),
    last_summary_at             timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE CASCADE
);
COMMENT ON TABLE session_memories IS 'One rolling summary per session (summary, decisions, open tasks, facts) used to rebuild context.';
CREATE INDEX session_memories_user_updated_idx ON session_memories (user_id, updated_at DESC);
CREATE TRIGGER session_memories_set_updated_at BEFORE UPDATE ON session_memories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Usage records (0002) may point at a session of the same user; deleting the session keeps the record.
ALTER TABLE user_usage_records
    ADD CONSTRAINT user_usage_records_session_fkey
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id);
