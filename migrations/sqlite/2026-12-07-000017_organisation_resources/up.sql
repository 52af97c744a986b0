-- Organisation-owned connections and configurations, and the per-user default.
-- Keep equivalent to migrations/postgres (a test compares the two schemas).
--
-- A connection or configuration is owned by a user or by an organisation, exactly one of the
-- two; names are unique per owner. An organisation's configuration says what its members may
-- do with its key (`member_access`: 'use', or 'reveal' through their own resolve tokens).
-- Deleting an organisation deletes what it owns (the services delete it first; the cascade is
-- the last line of defence).
--
-- SQLite cannot make a column nullable or add a CHECK in place, so connections and
-- configurations are rebuilt, with the tables that reference them (as in 000013): the new
-- tables are created and filled first, the old children go before their old parents so that no
-- ON DELETE action fires on the way, and renaming a new parent carries its new children's
-- foreign keys along with it.
CREATE TABLE connections_new (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
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
    organisation_id TEXT REFERENCES organisations (id) ON DELETE CASCADE,
    CONSTRAINT connections_name_key_unique UNIQUE (owner_user_id, name_key),
    CONSTRAINT connections_key_id_with_key CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL)),
    CONSTRAINT connections_legacy_binding_with_key CHECK (legacy_configuration_id IS NULL OR api_key_encrypted IS NOT NULL),
    CONSTRAINT connections_one_owner CHECK ((owner_user_id IS NULL) <> (organisation_id IS NULL)),
    CONSTRAINT connections_organisation_name_key_unique UNIQUE (organisation_id, name_key)
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
FROM connections;

CREATE TABLE connection_models_new (
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    PRIMARY KEY (connection_id, model)
);
INSERT INTO connection_models_new (connection_id, model) SELECT connection_id, model FROM connection_models;

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
SELECT id, connection_id, checked_at, "trigger", status, code, latency_ms FROM connection_checks;

CREATE TABLE llm_configurations_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE RESTRICT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    model TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    last_used_at TIMESTAMP,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    model_listed BOOLEAN NOT NULL DEFAULT 0,
    organisation_id TEXT REFERENCES organisations (id) ON DELETE CASCADE,
    member_access TEXT NOT NULL DEFAULT 'use' CHECK (member_access IN ('use', 'reveal')),
    CONSTRAINT llm_configurations_name_key_unique UNIQUE (user_id, name_key),
    CONSTRAINT llm_configurations_one_owner CHECK ((user_id IS NULL) <> (organisation_id IS NULL)),
    CONSTRAINT llm_configurations_organisation_name_key_unique UNIQUE (organisation_id, name_key)
);
INSERT INTO llm_configurations_new (
    id, user_id, connection_id, name, name_key, model, is_active, last_used_at, use_count,
    created_at, updated_at, parameters, model_listed
)
SELECT id, user_id, connection_id, name, name_key, model, is_active, last_used_at, use_count,
       created_at, updated_at, parameters, model_listed
FROM llm_configurations;

-- A user's default is the user's own choice, one per user (the primary key says so), and may
-- point at an organisation's configuration. It replaces llm_configurations.is_default.
CREATE TABLE user_defaults (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    configuration_id TEXT NOT NULL REFERENCES llm_configurations_new (id) ON DELETE CASCADE
);
INSERT INTO user_defaults (user_id, configuration_id)
SELECT user_id, id FROM llm_configurations WHERE is_default = 1;

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
DROP TABLE connection_checks;
DROP TABLE connection_models;
-- organisations.default_configuration_id (ON DELETE SET NULL) names llm_configurations: no
-- organisation could point at a configuration before this migration, so nothing is lost.
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
CREATE INDEX user_defaults_configuration_id_idx ON user_defaults (configuration_id);

-- A default is an active configuration, as the dropped CHECK said: the database refuses a
-- default on an inactive configuration and deactivating someone's default (the services clear
-- defaults first). Triggers, because the rule spans two tables; a later rebuild of either
-- table must create them again.
CREATE TRIGGER user_defaults_configuration_is_active BEFORE INSERT ON user_defaults
WHEN (SELECT is_active FROM llm_configurations WHERE id = NEW.configuration_id) = 0
BEGIN
    SELECT RAISE(ABORT, 'an inactive configuration cannot be a default');
END;
CREATE TRIGGER user_defaults_configuration_stays_active BEFORE UPDATE ON user_defaults
WHEN (SELECT is_active FROM llm_configurations WHERE id = NEW.configuration_id) = 0
BEGIN
    SELECT RAISE(ABORT, 'an inactive configuration cannot be a default');
END;
CREATE TRIGGER llm_configurations_default_stays_active BEFORE UPDATE OF is_active ON llm_configurations
WHEN NEW.is_active = 0 AND EXISTS (SELECT 1 FROM user_defaults WHERE configuration_id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'an inactive configuration cannot be a default');
END;
