-- The vault: users, their API tokens, their LLM configurations, and the master-key canaries.
-- Keep equivalent to migrations/sqlite (a test compares the two schemas).
CREATE TABLE users (
    id UUID PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    is_disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT users_email_key_unique UNIQUE (email_key)
);

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    is_revoked BOOLEAN NOT NULL DEFAULT FALSE,
    CONSTRAINT api_tokens_token_hash_unique UNIQUE (token_hash)
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE llm_configurations (
    id UUID PRIMARY KEY NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    api_key_encrypted BYTEA,
    key_id TEXT,
    api_key_hint TEXT,
    base_url TEXT,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    test_status TEXT NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'ok', 'failed')),
    test_message TEXT,
    test_latency_ms BIGINT,
    tested_at TIMESTAMP,
    last_used_at TIMESTAMP,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT llm_configurations_name_key_unique UNIQUE (user_id, name_key),
    CONSTRAINT llm_configurations_default_is_active CHECK (is_active OR NOT is_default),
    CONSTRAINT llm_configurations_key_id_with_key CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL))
);
CREATE INDEX llm_configurations_user_id_idx ON llm_configurations (user_id);
CREATE INDEX llm_configurations_provider_idx ON llm_configurations (provider);
CREATE INDEX llm_configurations_key_id_idx ON llm_configurations (key_id);
-- One default per user, enforced by the database itself.
CREATE UNIQUE INDEX llm_configurations_one_default_per_user ON llm_configurations (user_id) WHERE is_default;

-- A known value sealed under each master key the database has seen: lets start-up prove that a
-- configured key is the same key that was used before, without touching any user's key.
CREATE TABLE master_key_canaries (
    key_id TEXT PRIMARY KEY NOT NULL,
    canary BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Instance-wide settings (registration, passphrase salt, ...), one row per name.
CREATE TABLE instance_settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
