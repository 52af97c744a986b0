DROP TABLE organisation_reveals;
DROP TABLE service_tokens;
DELETE FROM key_reveals WHERE source = 'organisation_default';
CREATE TABLE key_reveals_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_id TEXT,
    configuration_id TEXT,
    configuration_name TEXT NOT NULL,
    conversation_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('override', 'default', 'fallback')),
    revealed_at TIMESTAMP NOT NULL
);
INSERT INTO key_reveals_old SELECT id, user_id, token_id, configuration_id, configuration_name, conversation_id, source, revealed_at FROM key_reveals;
DROP TABLE key_reveals;
ALTER TABLE key_reveals_old RENAME TO key_reveals;
CREATE INDEX key_reveals_user_id_idx ON key_reveals (user_id, revealed_at);
CREATE INDEX key_reveals_revealed_at_idx ON key_reveals (revealed_at);
