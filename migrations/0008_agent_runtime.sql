-- 0008_agent_runtime: LangGraph checkpoint tables (PostgresSaver shape, plus a surrogate uuid key and
-- user ownership of threads) and the agent's tracing tables.

CREATE TABLE checkpoint_migrations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    v          integer NOT NULL UNIQUE CHECK (v >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE checkpoint_migrations IS 'LangGraph checkpointer format versions applied (PostgresSaver bookkeeping; schema itself is owned by these migrations).';

CREATE TABLE checkpoints (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    thread_id            text NOT NULL CHECK (length(thread_id) > 0),
    checkpoint_ns        text NOT NULL DEFAULT '',
    checkpoint_id        text NOT NULL,
    parent_checkpoint_id text,
    type                 text,
    checkpoint           jsonb NOT NULL,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (thread_id, checkpoint_ns, checkpoint_id)
);
COMMENT ON TABLE checkpoints IS 'LangGraph checkpoints (durable threads, human-in-the-loop resume, time travel); every thread belongs to one user.';
COMMENT ON COLUMN checkpoints.user_id IS 'Owner of the thread; a trigger rejects a checkpoint for a thread that already belongs to another user.';
CREATE INDEX checkpoints_user_created_idx ON checkpoints (user_id, created_at DESC);
CREATE INDEX checkpoints_user_thread_idx ON checkpoints (user_id, thread_id);

-- A thread has exactly one owner. The advisory lock (two-int key space, class 7410) serialises the first
-- insert of a thread so two users cannot claim the same new thread id concurrently.
CREATE FUNCTION checkpoints_guard_thread_owner() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner text;
BEGIN
    PERFORM pg_advisory_xact_lock(7410, hashtext(NEW.thread_id));
    SELECT c.user_id INTO owner FROM checkpoints c WHERE c.thread_id = NEW.thread_id AND c.id <> NEW.id LIMIT 1;
    IF owner IS NOT NULL AND owner <> NEW.user_id THEN
        RAISE EXCEPTION 'thread belongs to another user' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER checkpoints_guard_thread_owner BEFORE INSERT OR UPDATE OF user_id, thread_id ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_guard_thread_owner();

CREATE TABLE checkpoint_blobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    channel       text NOT NULL,
    version       text NOT NULL,
    type          text NOT NULL,
    blob          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (thread_id, checkpoint_ns, channel, version)
);
COMMENT ON TABLE checkpoint_blobs IS 'LangGraph channel values per (thread, namespace, channel, version); owner is the thread owner in checkpoints.';

CREATE TABLE checkpoint_writes (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    checkpoint_id text NOT NULL,
    task_id       text NOT NULL,
    task_path     text NOT NULL DEFAULT '',
    idx           integer NOT NULL,
    channel       text NOT NULL,
    type          text,
    blob          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
COMMENT ON TABLE checkpoint_writes IS 'LangGraph pending writes of tasks for a checkpoint (idx may be negative for special writes).';

-- Blobs and writes carry no user_id (PostgresSaver shape); when the last checkpoint of a thread goes
-- (thread deleted, or the user deleted via cascade) its blobs and writes go too.
CREATE FUNCTION checkpoints_delete_thread_data() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM checkpoint_blobs b
     USING (SELECT DISTINCT thread_id FROM old_rows) o
     WHERE b.thread_id = o.thread_id
       AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = o.thread_id);
    DELETE FROM checkpoint_writes w
     USING (SELECT DISTINCT thread_id FROM old_rows) o
     WHERE w.thread_id = o.thread_id
       AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = o.thread_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER checkpoints_delete_thread_data AFTER DELETE ON checkpoints
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_delete_thread_data();

CREATE TABLE traces (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        text REFERENCES users (user_id) ON DELETE CASCADE,
    session_id     uuid,
    thread_id      text,
    request_id     text,
    name           text NOT NULL,
    service_name   text NOT NULL,
    status         text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'error', 'cancelled')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    duration_ms    double precision CHECK (duration_ms >= 0),
    total_tokens   integer NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    total_cost_usd numeric(14,6) NOT NULL DEFAULT 0 CHECK (total_cost_usd >= 0),
    tags           jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id),
    CHECK (session_id IS NULL OR user_id IS NOT NULL),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
COMMENT ON TABLE traces IS 'One trace per agent request/run: service, status, duration, tokens, cost, tags. user_id NULL = system run.';
CREATE INDEX traces_user_created_idx ON traces (user_id, created_at DESC);
CREATE INDEX traces_session_idx ON traces (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX traces_thread_idx ON traces (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX traces_service_started_idx ON traces (service_name, started_at DESC);
CREATE INDEX traces_created_idx ON traces (created_at);
CREATE TRIGGER traces_set_updated_at BEFORE UPDATE ON traces
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE spans (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trace_id       uuid NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    parent_span_id uuid,
    name           text NOT NULL,
    kind           text NOT NULL DEFAULT 'internal' CHECK (length(kind) > 0),
    service_name   text,
    status         text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'error', 'cancelled')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    duration_ms    double precision CHECK (duration_ms >= 0),
    attributes     jsonb NOT NULL DEFAULT '{}'::jsonb,
    input          jsonb,
    output         jsonb,
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, trace_id),
    -- the parent must be in the same trace
    FOREIGN KEY (parent_span_id, trace_id) REFERENCES spans (id, trace_id) ON DELETE CASCADE,
    CHECK (parent_span_id IS DISTINCT FROM id),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
COMMENT ON TABLE spans IS 'Tree of timed operations inside a trace (LLM call, tool call, node); owner via traces.user_id.';
CREATE INDEX spans_trace_started_idx ON spans (trace_id, started_at);
CREATE INDEX spans_parent_idx ON spans (parent_span_id) WHERE parent_span_id IS NOT NULL;
CREATE TRIGGER spans_set_updated_at BEFORE UPDATE ON spans
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE span_logs (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    span_id    uuid NOT NULL,
    trace_id   uuid NOT NULL,
    level      text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    message    text NOT NULL,
    fields     jsonb NOT NULL DEFAULT '{}'::jsonb,
    logged_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (span_id, trace_id) REFERENCES spans (id, trace_id) ON DELETE CASCADE
);
COMMENT ON TABLE span_logs IS 'Log lines attached to a span (level, message, structured fields).';
CREATE INDEX span_logs_span_logged_idx ON span_logs (span_id, logged_at);
CREATE INDEX span_logs_trace_logged_idx ON span_logs (trace_id, logged_at);

CREATE TABLE langgraph_executions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    trace_id          uuid REFERENCES traces (id) ON DELETE CASCADE,
    thread_id         text NOT NULL,
    checkpoint_ns     text NOT NULL DEFAULT '',
    checkpoint_id     text,
    node_name         text NOT NULL,
    step              integer CHECK (step >= 0),
    status            text NOT NULL DEFAULT 'ok' CHECK (status IN ('running', 'ok', 'error', 'interrupted')),
    input_state       jsonb,
    output_state      jsonb,
    next_action       text,
    execution_time_ms double precision CHECK (execution_time_ms >= 0),
    error_message     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE langgraph_executions IS 'Per-node execution record of a LangGraph run: input/output state, next action, timing, status.';
CREATE INDEX langgraph_executions_user_created_idx ON langgraph_executions (user_id, created_at DESC);
CREATE INDEX langgraph_executions_thread_created_idx ON langgraph_executions (thread_id, created_at);
CREATE INDEX langgraph_executions_trace_idx ON langgraph_executions (trace_id) WHERE trace_id IS NOT NULL;
CREATE TRIGGER langgraph_executions_set_updated_at BEFORE UPDATE ON langgraph_executions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
