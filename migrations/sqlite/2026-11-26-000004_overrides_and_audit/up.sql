-- A conversation pinned to one of its owner's configurations. Deleting the configuration (or
-- the user) deletes the override.
CREATE TABLE conversation_overrides (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL REFERENCES llm_configurations (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX conversation_overrides_configuration_id_idx ON conversation_overrides (configuration_id);

-- Every key reveal (GET /api/resolve): who, with which token, which configuration (none for
-- the instance fallback), for which conversation, when. Admins read it; nothing deletes it but
-- deleting the user.
CREATE TABLE key_reveals (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_id TEXT,
    configuration_id TEXT,
    configuration_name TEXT NOT NULL,
    conversation_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('override', 'default', 'fallback')),
    revealed_at TIMESTAMP NOT NULL
);
CREATE INDEX key_reveals_user_id_idx ON key_reveals (user_id, revealed_at);
CREATE INDEX key_reveals_revealed_at_idx ON key_reveals (revealed_at);
