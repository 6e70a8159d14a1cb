-- 0007_events: background tasks (monitors, schedules) and the events they or external callers produce.
-- Both are work queues claimed with SELECT ... FOR UPDATE SKIP LOCKED, so any number of replicas can run them.

CREATE TABLE user_tasks (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    task_type              text NOT NULL
                           CHECK (task_type IN ('web_monitor', 'schedule', 'news_digest', 'threshold_watch')),
    name                   text,
    description            text,
    config                 jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config) = 'object'),
    state                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    callback_url           text CHECK (callback_url ~ '^https?://'),
    status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'paused', 'completed', 'failed', 'cancelled')),
    interval_seconds       integer CHECK (interval_seconds > 0),
    last_check             timestamptz,
    next_check             timestamptz,
    run_count              integer NOT NULL DEFAULT 0 CHECK (run_count >= 0),
    consecutive_failures   integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_error             text,
    lease_owner            text,
    lease_expires_at       timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    CHECK (status <> 'active' OR next_check IS NOT NULL),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
COMMENT ON TABLE user_tasks IS 'Durable background tasks of a user (web_monitor, schedule, news_digest, threshold_watch); due when status=active and next_check <= now().';
COMMENT ON COLUMN user_tasks.state IS 'Task-private state between runs (e.g. hash of the last seen page).';
COMMENT ON COLUMN user_tasks.lease_owner IS 'Worker holding the task; a lease past lease_expires_at may be taken over.';
CREATE INDEX user_tasks_status_next_check_idx ON user_tasks (status, next_check);
CREATE INDEX user_tasks_user_created_idx ON user_tasks (user_id, created_at DESC);
CREATE TRIGGER user_tasks_set_updated_at BEFORE UPDATE ON user_tasks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    task_id           uuid,
    event_type        text NOT NULL CHECK (length(event_type) > 0),
    event_data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    source            text NOT NULL DEFAULT 'event_service',
    priority          smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    idempotency_key   text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    payload_hash      text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_expires_at  timestamptz,
    processed_at      timestamptz,
    agent_response    text,
    processing_result jsonb,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (task_id, user_id) REFERENCES user_tasks (id, user_id) ON DELETE SET NULL (task_id),
    UNIQUE (user_id, idempotency_key),
    CHECK (idempotency_key IS NULL OR payload_hash IS NOT NULL),
    CHECK (status NOT IN ('processed', 'failed') OR processed_at IS NOT NULL)
);
COMMENT ON TABLE events IS 'Events for a user (task triggers, external callbacks); idempotent on (user_id, idempotency_key), processed by the agent.';
COMMENT ON COLUMN events.payload_hash IS 'Fingerprint of the request body: same key + different hash = 422; same key while status=processing = 409.';
CREATE INDEX events_user_created_idx ON events (user_id, created_at DESC);
CREATE INDEX events_pending_idx ON events (priority DESC, created_at) WHERE status IN ('pending', 'processing');
CREATE INDEX events_task_created_idx ON events (task_id, created_at DESC) WHERE task_id IS NOT NULL;
CREATE TRIGGER events_set_updated_at BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
