-- Back to user-owned connections and configurations only: what organisations own is dropped,
-- and each user's default returns to llm_configurations.is_default.
CREATE TABLE connections_new (
    id TEXT PRIMARY KEY NOT NULL,
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
    next_check_at TIMESTAMP,
    check_claimed_at TIMESTAMP,
    check_failures BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMP,
    CONSTRAINT connections_name_key_unique UNIQUE (owner_user_id, name_key),
    CONSTRAINT connections_key_id_with_key CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL)),
    CONSTRAINT connections_legacy_binding_with_key CHECK (legacy_configuration_id IS NULL OR api_key_encrypted IS NOT NULL)
);
INSERT INTO connections_new (
    id, owner_user_id, name, name_key, provider, base_url, api_key_encrypted, key_id, api_key_hint,
    legacy_configuration_id, test_status, test_code, test_message, test_latency_ms, tested_at,
    models_fetched_at, model_count, is_implicit, created_at, updated_at, next_check_at,
    check_claimed_at, check_failures, expires_at
)
SELECT id, owner_user_id, name, name_key, provider, base_url, api_key_encrypted, key_id, api_key_hint,
       legacy_configuration_id, test_status, test_code, test_message, test_latency_ms, tested_at,
       models_fetched_at, model_count, is_implicit, created_at, updated_at, next_check_at,
       check_claimed_at, check_failures, expires_at
FROM connections WHERE organisation_id IS NULL;

CREATE TABLE connection_models_new (
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    PRIMARY KEY (connection_id, model)
);
INSERT INTO connection_models_new (connection_id, model) SELECT connection_id, model FROM connection_models WHERE connection_id IN (SELECT id FROM connections_new);

CREATE TABLE connection_checks_new (
    id TEXT PRIMARY KEY NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE CASCADE,
    checked_at TIMESTAMP NOT NULL,
    "trigger" TEXT NOT NULL CHECK ("trigger" IN ('scheduled', 'manual')),
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unavailable')),
    code TEXT NOT NULL,
    latency_ms BIGINT
);
INSERT INTO connection_checks_new (id, connection_id, checked_at, "trigger", status, code, latency_ms)
SELECT id, connection_id, checked_at, "trigger", status, code, latency_ms FROM connection_checks WHERE connection_id IN (SELECT id FROM connections_new);

CREATE TABLE llm_configurations_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE RESTRICT,
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
    model_listed BOOLEAN NOT NULL DEFAULT 0,
    CONSTRAINT llm_configurations_name_key_unique UNIQUE (user_id, name_key),
    CONSTRAINT llm_configurations_default_is_active CHECK (is_active OR NOT is_default)
);
INSERT INTO llm_configurations_new (
    id, user_id, connection_id, name, name_key, model, is_default, is_active, last_used_at, use_count,
    created_at, updated_at, parameters, model_listed
)
SELECT c.id, c.user_id, c.connection_id, c.name, c.name_key, c.model,
       EXISTS (SELECT 1 FROM user_defaults d WHERE d.user_id = c.user_id AND d.configuration_id = c.id),
       c.is_active, c.last_used_at, c.use_count, c.created_at, c.updated_at, c.parameters, c.model_listed
FROM llm_configurations c WHERE c.organisation_id IS NULL;

CREATE TABLE conversation_overrides_new (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL REFERENCES llm_configurations_new (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
INSERT INTO conversation_overrides_new (user_id, conversation_id, configuration_id, created_at, updated_at)
SELECT user_id, conversation_id, configuration_id, created_at, updated_at FROM conversation_overrides
WHERE configuration_id IN (SELECT id FROM llm_configurations_new);

DROP TRIGGER llm_configurations_default_stays_active;
DROP TABLE user_defaults;
DROP TABLE conversation_overrides;
DROP TABLE connection_checks;
DROP TABLE connection_models;
DROP TABLE llm_configurations;
DROP TABLE connections;
ALTER TABLE connections_new RENAME TO connections;
ALTER TABLE connection_models_new RENAME TO connection_models;
ALTER TABLE connection_checks_new RENAME TO connection_checks;
ALTER TABLE llm_configurations_new RENAME TO llm_configurations;
ALTER TABLE conversation_overrides_new RENAME TO conversation_overrides;

CREATE INDEX connections_owner_user_id_idx ON connections (owner_user_id);
CREATE INDEX connections_key_id_idx ON connections (key_id);
CREATE INDEX connections_legacy_configuration_id_idx ON connections (legacy_configuration_id);
CREATE INDEX connections_next_check_at_idx ON connections (next_check_at);
CREATE INDEX connection_checks_connection_id_checked_at_idx ON connection_checks (connection_id, checked_at);
CREATE INDEX llm_configurations_user_id_idx ON llm_configurations (user_id);
CREATE INDEX llm_configurations_connection_id_idx ON llm_configurations (connection_id);
CREATE INDEX conversation_overrides_configuration_id_idx ON conversation_overrides (configuration_id);
CREATE UNIQUE INDEX llm_configurations_one_default_per_user ON llm_configurations (user_id) WHERE is_default = 1;
