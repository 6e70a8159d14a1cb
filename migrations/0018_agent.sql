-- 0018_agent: execution plans of the agent's task orchestration (made by the mcp node's planning tools,
-- executed step by step by the agent node) and a lookup index for paused runs in checkpoints (0008).

CREATE TABLE agent_plans (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id   uuid,
    request      text NOT NULL CHECK (length(request) BETWEEN 1 AND 20000),
    status       text NOT NULL DEFAULT 'created'
                 CHECK (status IN ('created', 'running', 'paused', 'completed', 'failed')),
    replans      integer NOT NULL DEFAULT 0 CHECK (replans >= 0),
    summary      text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (id, user_id),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE SET NULL (session_id)
);
COMMENT ON TABLE agent_plans IS 'A multi-step plan for one request; its steps run in the agent node, its state is what get_autonomous_status reports.';
CREATE INDEX agent_plans_user_created_idx ON agent_plans (user_id, created_at DESC);
CREATE TRIGGER agent_plans_set_updated_at BEFORE UPDATE ON agent_plans
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE agent_plan_steps (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    plan_id      uuid NOT NULL,
    user_id      text NOT NULL,
    step_key     text NOT NULL CHECK (step_key ~ '^[A-Za-z0-9_-]{1,40}$'),
    position     integer NOT NULL CHECK (position >= 0),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    instructions text NOT NULL DEFAULT '' CHECK (length(instructions) <= 10000),
    depends_on   text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'paused', 'done', 'failed', 'superseded')),
    result       text,
    error        text,
    started_at   timestamptz,
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plan_id, step_key),
    -- A step always belongs to its plan's owner.
    FOREIGN KEY (plan_id, user_id) REFERENCES agent_plans (id, user_id) ON DELETE CASCADE
);
COMMENT ON TABLE agent_plan_steps IS 'Steps of an agent plan: dependencies by step_key, status as executed, result or error.';
CREATE INDEX agent_plan_steps_plan_position_idx ON agent_plan_steps (plan_id, position);
CREATE TRIGGER agent_plan_steps_set_updated_at BEFORE UPDATE ON agent_plan_steps
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The agent resumes a session's newest paused run: find it without scanning the thread's history.
CREATE INDEX checkpoints_paused_idx ON checkpoints (user_id, thread_id, created_at DESC)
    WHERE metadata ->> 'status' = 'interrupted';
