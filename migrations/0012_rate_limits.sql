-- 0012_rate_limits: shared rate-limit state, so every replica draws on one budget per key.
-- One row per key (e.g. 'principal:alice', 'auth-ip:203.0.113.7'), updated by one
-- INSERT ... ON CONFLICT DO UPDATE ... RETURNING per request (GCRA, see isa/auth/store.py).
-- UNLOGGED: no WAL per request; after a database crash the budgets start full again, which is
-- acceptable for rate limits. fillfactor leaves room for HOT updates (no index on tat for the same reason).

CREATE UNLOGGED TABLE rate_limits (
    key      text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 512),
    tat      timestamptz NOT NULL,
    allowed  boolean NOT NULL DEFAULT true
) WITH (fillfactor = 70);
COMMENT ON TABLE rate_limits IS 'GCRA rate-limit state: theoretical arrival time per key; rows with tat < now() are expired.';
