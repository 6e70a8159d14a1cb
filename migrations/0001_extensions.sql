-- 0001_extensions: extensions and shared helper functions.
-- gen_random_uuid() is core since PostgreSQL 13, so pgcrypto is not needed.

CREATE EXTENSION IF NOT EXISTS vector;

-- Keeps updated_at honest on every UPDATE; attached per table with a BEFORE UPDATE trigger.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION set_updated_at() IS 'BEFORE UPDATE trigger: sets NEW.updated_at = now().';
