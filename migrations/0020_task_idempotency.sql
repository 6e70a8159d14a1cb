-- POST /api/v1/tasks with an Idempotency-Key header: a client retrying a create (its response lost) gets the
-- task it already made instead of a second one. The key is the client's, scoped to its user; the payload hash
-- tells a genuine retry from a different request reusing the key (422).
ALTER TABLE user_tasks
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    ADD COLUMN payload_hash    text,
    ADD CONSTRAINT user_tasks_idempotency_pair CHECK ((idempotency_key IS NULL) = (payload_hash IS NULL));
CREATE UNIQUE INDEX user_tasks_user_idempotency_idx ON user_tasks (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN user_tasks.idempotency_key IS 'Client-chosen key of the create request (Idempotency-Key header), unique per user.';
