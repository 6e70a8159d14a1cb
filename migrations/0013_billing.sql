-- 0013_billing: Stripe webhook deliveries, recorded once per event id so a retried event is applied once.
-- The row is inserted in the same transaction that applies the event: if applying fails, the row is
-- rolled back with it and Stripe's retry gets a fresh chance.

CREATE TABLE webhook_events (
    event_id          text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 255),
    provider          text NOT NULL DEFAULT 'stripe' CHECK (provider IN ('stripe')),
    event_type        text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 255),
    livemode          boolean NOT NULL DEFAULT false,
    user_id           text REFERENCES users (user_id) ON DELETE SET NULL,
    outcome           text NOT NULL DEFAULT 'received' CHECK (length(outcome) BETWEEN 1 AND 100),
    provider_created  timestamptz,
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz
);
COMMENT ON TABLE webhook_events IS 'One row per applied Stripe event (by event id): the idempotency record of the webhook.';
COMMENT ON COLUMN webhook_events.outcome IS 'What applying did: applied, ignored (not ours / unknown type) or a short reason.';
CREATE INDEX webhook_events_user_received_idx ON webhook_events (user_id, received_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX webhook_events_type_received_idx ON webhook_events (event_type, received_at DESC);

-- Out-of-order deliveries: a subscription row remembers the creation time of the newest event applied
-- to it, and an older event no longer overwrites it.
ALTER TABLE subscriptions ADD COLUMN last_event_at timestamptz;
