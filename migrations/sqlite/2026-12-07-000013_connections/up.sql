-- Connections: what belongs to a provider account (provider, base URL, sealed key, last test,
-- model catalogue), owned by a user; configurations point at one. Keep equivalent to
-- migrations/postgres (a test compares the two schemas).
--
-- The upgrade: every existing configuration gets a connection of its own, named after it,
-- marked implicit, with the configuration's id as its id (plain to trace, and no UUID
-- generator needed in SQL). Its key moves over as it is, still sealed under the
-- configuration's row binding, which `legacy_configuration_id` records; the start-up re-seal
-- (services::master_keys::reseal_upgraded_keys) seals it under the connection's binding in
-- compare-and-swap batches and clears the marker. Keys are readable in either state.
CREATE TABLE connections (
    id TEXT PRIMARY KEY NOT NULL,
    -- The owner; organisation owners come later as a second, exclusive owner column.
    owner_user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    base_url TEXT,
    api_key_encrypted BLOB,
    key_id TEXT,
    api_key_hint TEXT,
    legacy_configuration_id TEXT,
    test_status TEXT NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'ok', 'failed')),
    test_code TEXT,
    test_message TEXT,
    test_latency_ms BIGINT,
    tested_at TIMESTAMP,
    models_fetched_at TIMESTAMP,
    model_count BIGINT NOT NULL DEFAULT 0,
    is_implicit BOOLEAN NOT NULL DEFAULT 0,
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
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
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
       NULL, 0, 1, created_at, updated_at
FROM llm_configurations;

-- SQLite cannot drop these columns in place (constraints and indexes name them), so both
-- tables that involve configurations are rebuilt. The new tables are created and filled first;
-- the old child table goes before the old parent, so that no ON DELETE CASCADE fires on the
-- way; renaming the new parent carries the new child's foreign key along with it.
CREATE TABLE llm_configurations_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE RESTRICT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    model TEXT NOT NULL,
    is_default BOOLEAN NOT NULL DEFAULT 0,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    last_used_at TIMESTAMP,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    CONSTRAINT llm_configurations_name_key_unique UNIQUE (user_id, name_key),
    CONSTRAINT llm_configurations_default_is_active CHECK (is_active OR NOT is_default)
);
INSERT INTO llm_configurations_new (
    id, user_id, connection_id, name, name_key, model, is_default, is_active, last_used_at, use_count,
    created_at, updated_at, parameters
)
SELECT id, user_id, id, name, name_key, model, is_default, is_active, last_used_at, use_count, created_at, updated_at,
       parameters
FROM llm_configurations;

CREATE TABLE conversation_overrides_new (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL REFERENCES llm_configurations_new (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
INSERT INTO conversation_overrides_new (user_id, conversation_id, configuration_id, created_at, updated_at)
SELECT user_id, conversation_id, configuration_id, created_at, updated_at FROM conversation_overrides;

DROP TABLE conversation_overrides;
DROP TABLE llm_configurations;
ALTER TABLE llm_configurations_new RENAME TO llm_configurations;
ALTER TABLE conversation_overrides_new RENAME TO conversation_overrides;

CREATE INDEX llm_configurations_user_id_idx ON llm_configurations (user_id);
CREATE INDEX llm_configurations_connection_id_idx ON llm_configurations (connection_id);
-- One default per user, enforced by the database itself.
CREATE UNIQUE INDEX llm_configurations_one_default_per_user ON llm_configurations (user_id) WHERE is_default = 1;
CREATE INDEX conversation_overrides_configuration_id_idx ON conversation_overrides (configuration_id);
