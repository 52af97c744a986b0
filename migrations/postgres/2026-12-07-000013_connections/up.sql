-- Connections: what belongs to a provider account (provider, base URL, sealed key, last test,
-- model catalogue), owned by a user; configurations point at one. Keep equivalent to
-- migrations/sqlite (a test compares the two schemas).
--
-- The upgrade: every existing configuration gets a connection of its own, named after it,
-- marked implicit, with the configuration's id as its id (plain to trace, and no UUID
-- generator needed in SQL). Its key moves over as it is, still sealed under the
-- configuration's row binding, which `legacy_configuration_id` records; the start-up re-seal
-- (services::master_keys::reseal_upgraded_keys) seals it under the connection's binding in
-- compare-and-swap batches and clears the marker. Keys are readable in either state.
CREATE TABLE connections (
    id UUID PRIMARY KEY NOT NULL,
    -- The owner; organisation owners come later as a second, exclusive owner column.
    owner_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    base_url TEXT,
    api_key_encrypted BYTEA,
    key_id TEXT,
    api_key_hint TEXT,
    legacy_configuration_id UUID,
    test_status TEXT NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'ok', 'failed')),
    test_code TEXT,
    test_message TEXT,
    test_latency_ms BIGINT,
    tested_at TIMESTAMP,
    models_fetched_at TIMESTAMP,
    model_count BIGINT NOT NULL DEFAULT 0,
    is_implicit BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT connections_name_key_unique UNIQUE (owner_user_id, name_key),
    CONSTRAINT connections_key_id_with_key CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL)),
    CONSTRAINT connections_legacy_binding_with_key CHECK (legacy_configuration_id IS NULL OR api_key_encrypted IS NOT NULL)
);
CREATE INDEX connections_owner_user_id_idx ON connections (owner_user_id);
CREATE INDEX connections_key_id_idx ON connections (key_id);
CREATE INDEX connections_legacy_configuration_id_idx ON connections (legacy_configuration_id);

-- The model ids a connection's provider listed at its last test or refresh.
CREATE TABLE connection_models (
    connection_id UUID NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    PRIMARY KEY (connection_id, model)
);

INSERT INTO connections (
    id, owner_user_id, name, name_key, provider, base_url, api_key_encrypted, key_id, api_key_hint,
    legacy_configuration_id, test_status, test_code, test_message, test_latency_ms, tested_at,
    models_fetched_at, model_count, is_implicit, created_at, updated_at
)
SELECT id, user_id, name, name_key, provider, base_url, api_key_encrypted, key_id, api_key_hint,
       CASE WHEN api_key_encrypted IS NULL THEN NULL ELSE id END,
       test_status, CASE test_status WHEN 'ok' THEN 'ok' ELSE NULL END, test_message, test_latency_ms, tested_at,
       NULL, 0, TRUE, created_at, updated_at
FROM llm_configurations;

ALTER TABLE llm_configurations ADD COLUMN connection_id UUID REFERENCES connections (id) ON DELETE RESTRICT;
UPDATE llm_configurations SET connection_id = id;
ALTER TABLE llm_configurations ALTER COLUMN connection_id SET NOT NULL;
-- Dropping the columns drops their indexes and the key_id/test_status CHECKs with them.
ALTER TABLE llm_configurations
    DROP COLUMN provider,
    DROP COLUMN api_key_encrypted,
    DROP COLUMN key_id,
    DROP COLUMN api_key_hint,
    DROP COLUMN base_url,
    DROP COLUMN test_status,
    DROP COLUMN test_message,
    DROP COLUMN test_latency_ms,
    DROP COLUMN tested_at;
CREATE INDEX llm_configurations_connection_id_idx ON llm_configurations (connection_id);
