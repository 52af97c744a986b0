-- Back to one table: each configuration takes its connection's provider, base URL, key and
-- last test. Only a key still sealed under the configuration's own binding (not yet re-sealed
-- by the upgrade) opens there: every other key is dropped, and its configurations become
-- inactive (not default) until a key is entered again.
CREATE TABLE llm_configurations_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    api_key_encrypted BLOB,
    key_id TEXT,
    api_key_hint TEXT,
    base_url TEXT,
    is_default BOOLEAN NOT NULL DEFAULT 0,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    test_status TEXT NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'ok', 'failed')),
    test_message TEXT,
    test_latency_ms BIGINT,
    tested_at TIMESTAMP,
    last_used_at TIMESTAMP,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    CONSTRAINT llm_configurations_name_key_unique UNIQUE (user_id, name_key),
    CONSTRAINT llm_configurations_default_is_active CHECK (is_active OR NOT is_default),
    CONSTRAINT llm_configurations_key_id_with_key CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL))
);
INSERT INTO llm_configurations_old
SELECT c.id, c.user_id, c.name, c.name_key, n.provider, c.model,
       CASE WHEN n.legacy_configuration_id = c.id THEN n.api_key_encrypted END,
       CASE WHEN n.legacy_configuration_id = c.id THEN n.key_id END,
       CASE WHEN n.legacy_configuration_id = c.id THEN n.api_key_hint END,
       n.base_url,
       c.is_default AND CASE WHEN n.api_key_encrypted IS NULL OR n.legacy_configuration_id = c.id THEN 1 ELSE 0 END,
       c.is_active AND CASE WHEN n.api_key_encrypted IS NULL OR n.legacy_configuration_id = c.id THEN 1 ELSE 0 END,
       n.test_status, n.test_message, n.test_latency_ms, n.tested_at, c.last_used_at, c.use_count,
       c.created_at, c.updated_at, c.parameters
FROM llm_configurations c JOIN connections n ON n.id = c.connection_id;

CREATE TABLE conversation_overrides_old (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL REFERENCES llm_configurations_old (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
INSERT INTO conversation_overrides_old SELECT user_id, conversation_id, configuration_id, created_at, updated_at
FROM conversation_overrides;

DROP TABLE conversation_overrides;
DROP TABLE llm_configurations;
DROP TABLE connection_models;
DROP TABLE connections;
ALTER TABLE llm_configurations_old RENAME TO llm_configurations;
ALTER TABLE conversation_overrides_old RENAME TO conversation_overrides;

CREATE INDEX llm_configurations_user_id_idx ON llm_configurations (user_id);
CREATE INDEX llm_configurations_provider_idx ON llm_configurations (provider);
CREATE INDEX llm_configurations_key_id_idx ON llm_configurations (key_id);
CREATE UNIQUE INDEX llm_configurations_one_default_per_user ON llm_configurations (user_id) WHERE is_default = 1;
CREATE INDEX conversation_overrides_configuration_id_idx ON conversation_overrides (configuration_id);
