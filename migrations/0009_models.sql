-- 0009_models: model gateway registry, capabilities, description-embedding cache and daily statistics.
-- Global (not user-owned); per-user spend lives in user_usage_records.

CREATE TABLE models (
    id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_name                    text NOT NULL CHECK (length(model_name) > 0),
    provider                      text NOT NULL CHECK (length(provider) > 0),
    model_type                    text NOT NULL
                                  CHECK (model_type IN ('text', 'vision', 'audio', 'image', 'embedding', 'rerank')),
    display_name                  text,
    description                   text NOT NULL DEFAULT '',
    context_window                integer CHECK (context_window > 0),
    max_output_tokens             integer CHECK (max_output_tokens > 0),
    embedding_dimensions          integer CHECK (embedding_dimensions > 0),
    input_cost_per_1m_tokens_usd  numeric(14,6) CHECK (input_cost_per_1m_tokens_usd >= 0),
    output_cost_per_1m_tokens_usd numeric(14,6) CHECK (output_cost_per_1m_tokens_usd >= 0),
    unit_cost_usd                 numeric(14,6) CHECK (unit_cost_usd >= 0),
    cost_unit                     text CHECK (cost_unit IN ('image', 'second', 'minute', 'character', 'request')),
    config                        jsonb NOT NULL DEFAULT '{}'::jsonb,
    content_hash                  text,
    is_active                     boolean NOT NULL DEFAULT true,
    is_default                    boolean NOT NULL DEFAULT false,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, model_name),
    CHECK (model_type <> 'embedding' OR embedding_dimensions IS NOT NULL),
    CHECK ((unit_cost_usd IS NULL) = (cost_unit IS NULL))
);
COMMENT ON TABLE models IS 'Models the gateway can route to: provider, type, limits, pricing; embedding models declare their dimension.';
CREATE UNIQUE INDEX models_one_default_per_type_idx ON models (model_type) WHERE is_default;
CREATE INDEX models_type_active_idx ON models (model_type) WHERE is_active;
CREATE TRIGGER models_set_updated_at BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE model_capabilities (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id   uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    capability text NOT NULL CHECK (length(capability) > 0),
    is_primary boolean NOT NULL DEFAULT false,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, capability)
);
COMMENT ON TABLE model_capabilities IS 'Capabilities of a model (chat, embed, tts, stt, image_generate, vision, tools, streaming, ...), one row each.';
CREATE INDEX model_capabilities_capability_idx ON model_capabilities (capability);

CREATE TABLE model_embeddings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id        uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    content_hash    text NOT NULL CHECK (length(content_hash) > 0),
    embedding_model text NOT NULL CHECK (length(embedding_model) > 0),
    embedding       vector NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, content_hash, embedding_model)
);
COMMENT ON TABLE model_embeddings IS 'Embedding cache of model descriptions for model selection, keyed by (model_id, content_hash, embedding_model).';

CREATE TABLE model_statistics (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id            uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    stat_date           date NOT NULL,
    total_requests      bigint NOT NULL DEFAULT 0 CHECK (total_requests >= 0),
    successful_requests bigint NOT NULL DEFAULT 0 CHECK (successful_requests >= 0),
    failed_requests     bigint NOT NULL DEFAULT 0 CHECK (failed_requests >= 0),
    input_tokens        bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens       bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_tokens        bigint NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    total_units         numeric(20,3) NOT NULL DEFAULT 0 CHECK (total_units >= 0),
    total_cost_usd      numeric(14,6) NOT NULL DEFAULT 0 CHECK (total_cost_usd >= 0),
    total_latency_ms    double precision NOT NULL DEFAULT 0 CHECK (total_latency_ms >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, stat_date),
    CHECK (successful_requests + failed_requests <= total_requests)
);
COMMENT ON TABLE model_statistics IS 'Daily per-model counters (requests, tokens, units, cost, latency); upserted with additive updates.';
CREATE INDEX model_statistics_date_idx ON model_statistics (stat_date DESC);
CREATE TRIGGER model_statistics_set_updated_at BEFORE UPDATE ON model_statistics
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
