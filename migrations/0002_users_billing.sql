-- 0002_users_billing: users, subscriptions, credit ledger, usage records.
-- Credits are numeric(14,3); USD costs are numeric(14,6) because per-call provider costs are sub-cent.

CREATE TABLE users (
    user_id             text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 255),
    email               text,
    phone               text,
    name                text,
    credits_remaining   numeric(14,3) NOT NULL DEFAULT 0 CHECK (credits_remaining >= 0),
    credits_total       numeric(14,3) NOT NULL DEFAULT 0 CHECK (credits_total >= 0),
    subscription_status text NOT NULL DEFAULT 'free'
                        CHECK (subscription_status IN ('free', 'trialing', 'active', 'past_due', 'canceled', 'unpaid')),
    is_active           boolean NOT NULL DEFAULT true,
    shipping_addresses  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(shipping_addresses) = 'array'),
    payment_methods     jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(payment_methods) = 'array'),
    preferences         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(preferences) = 'object'),
    last_login_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE users IS 'One row per authenticated principal; user_id is the token subject (e.g. auth0|abc); holds the credit balance.';
COMMENT ON COLUMN users.payment_methods IS 'Provider references only (e.g. Stripe payment_method ids, brand, last4); never card numbers.';
CREATE INDEX users_email_lower_idx ON users (lower(email)) WHERE email IS NOT NULL;
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE subscriptions (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    subscription_scope      text NOT NULL DEFAULT 'platform' CHECK (subscription_scope IN ('platform', 'app')),
    app_id                  text,
    stripe_subscription_id  text UNIQUE,
    stripe_customer_id      text,
    status                  text NOT NULL
                            CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing', 'active',
                                              'past_due', 'canceled', 'unpaid', 'paused')),
    plan_type               text NOT NULL CHECK (length(plan_type) > 0),
    credits_included        numeric(14,3) NOT NULL DEFAULT 0 CHECK (credits_included >= 0),
    current_period_start    timestamptz,
    current_period_end      timestamptz,
    canceled_at             timestamptz,
    downgrade_at_period_end boolean NOT NULL DEFAULT false,
    metadata                jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((subscription_scope = 'app') = (app_id IS NOT NULL)),
    CHECK (current_period_end IS NULL OR current_period_start IS NULL OR current_period_end >= current_period_start)
);
COMMENT ON TABLE subscriptions IS 'Stripe-backed subscription of a user, platform-wide or for one app.';
CREATE INDEX subscriptions_user_created_idx ON subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_stripe_customer_idx ON subscriptions (stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;
-- At most one live subscription per user and scope/app.
CREATE UNIQUE INDEX subscriptions_one_live_per_scope_idx
    ON subscriptions (user_id, subscription_scope, coalesce(app_id, ''))
    WHERE status IN ('incomplete', 'trialing', 'active', 'past_due', 'unpaid', 'paused');
CREATE TRIGGER subscriptions_set_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE user_usage_records (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id          uuid,  -- FK to sessions added in 0003
    trace_id            uuid,  -- traces are retention-pruned, so no FK
    request_id          text,
    idempotency_key     text,
    endpoint            text,
    event_type          text NOT NULL CHECK (length(event_type) > 0),
    credits_charged     numeric(14,3) NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    cost_usd            numeric(14,6) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    calculation_method  text,
    total_tokens        integer NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    prompt_tokens       integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens   integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    model_name          text,
    provider            text,
    tool_name           text,
    operation_name      text,
    billing_metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_data        jsonb,
    response_data       jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    UNIQUE (user_id, idempotency_key)
);
COMMENT ON TABLE user_usage_records IS 'Append-only record of each billable operation (model call, tool call) with tokens, cost and credits.';
CREATE INDEX user_usage_records_user_created_idx ON user_usage_records (user_id, created_at DESC);
CREATE INDEX user_usage_records_session_idx ON user_usage_records (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX user_usage_records_trace_idx ON user_usage_records (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX user_usage_records_model_created_idx ON user_usage_records (model_name, created_at DESC) WHERE model_name IS NOT NULL;

CREATE TABLE user_credit_transactions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    transaction_type  text NOT NULL
                      CHECK (transaction_type IN ('consume', 'recharge', 'refund', 'grant',
                                                  'subscription', 'expire', 'adjustment')),
    credits_amount    numeric(14,3) NOT NULL,
    credits_before    numeric(14,3) NOT NULL CHECK (credits_before >= 0),
    credits_after     numeric(14,3) NOT NULL CHECK (credits_after >= 0),
    usage_record_id   uuid,
    subscription_id   uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    idempotency_key   text,
    description       text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (credits_after = credits_before + credits_amount),
    CHECK (transaction_type NOT IN ('consume', 'expire') OR credits_amount <= 0),
    CHECK (transaction_type NOT IN ('recharge', 'refund', 'grant', 'subscription') OR credits_amount >= 0),
    -- The usage record must belong to the same user; deleting it only clears the link.
    FOREIGN KEY (usage_record_id, user_id) REFERENCES user_usage_records (id, user_id)
        ON DELETE SET NULL (usage_record_id),
    UNIQUE (user_id, idempotency_key)
);
COMMENT ON TABLE user_credit_transactions IS 'Append-only credit ledger: signed amount plus balance before/after; written in the same transaction that updates users.credits_remaining.';
COMMENT ON COLUMN user_credit_transactions.credits_amount IS 'Signed: negative for consume/expire, positive for recharge/refund/grant/subscription.';
CREATE INDEX user_credit_transactions_user_created_idx ON user_credit_transactions (user_id, created_at DESC);
CREATE INDEX user_credit_transactions_usage_idx ON user_credit_transactions (usage_record_id) WHERE usage_record_id IS NOT NULL;
CREATE INDEX user_credit_transactions_subscription_idx ON user_credit_transactions (subscription_id) WHERE subscription_id IS NOT NULL;
