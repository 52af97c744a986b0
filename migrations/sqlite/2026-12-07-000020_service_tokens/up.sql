-- Service tokens: `lny_` tokens owned by an organisation (scopes `read` and/or `resolve`), with
-- which the team's runtime resolves for its members; and the organisation's audit of reveals
-- (through its service tokens, or of its configurations by a member's own token). Both die with
-- the organisation. The audit keeps the token's name and the configuration's name as they were,
-- so that a line outlives a revoked token or a deleted configuration; a deleted member leaves
-- the line with no member.
-- Keep equivalent to migrations/postgres (a test compares the two schemas).
CREATE TABLE service_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    is_revoked BOOLEAN NOT NULL DEFAULT 0,
    CONSTRAINT service_tokens_token_hash_unique UNIQUE (token_hash)
);
CREATE INDEX service_tokens_organisation_id_idx ON service_tokens (organisation_id, created_at);
CREATE INDEX service_tokens_created_by_idx ON service_tokens (created_by);

CREATE TABLE organisation_reveals (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    token_id TEXT NOT NULL,
    token_name TEXT NOT NULL,
    member_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    configuration_id TEXT,
    configuration_name TEXT NOT NULL,
    revealed_at TIMESTAMP NOT NULL
);
CREATE INDEX organisation_reveals_organisation_id_idx ON organisation_reveals (organisation_id, revealed_at);
CREATE INDEX organisation_reveals_member_id_idx ON organisation_reveals (member_id);

-- The instance audit learns the fourth source, `organisation_default` (SQLite changes a CHECK
-- only by rebuilding the table; nothing references key_reveals).
CREATE TABLE key_reveals_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_id TEXT,
    configuration_id TEXT,
    configuration_name TEXT NOT NULL,
    conversation_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('override', 'default', 'organisation_default', 'fallback')),
    revealed_at TIMESTAMP NOT NULL
);
INSERT INTO key_reveals_new (id, user_id, token_id, configuration_id, configuration_name, conversation_id, source, revealed_at)
    SELECT id, user_id, token_id, configuration_id, configuration_name, conversation_id, source, revealed_at FROM key_reveals;
DROP TABLE key_reveals;
ALTER TABLE key_reveals_new RENAME TO key_reveals;
CREATE INDEX key_reveals_user_id_idx ON key_reveals (user_id, revealed_at);
CREATE INDEX key_reveals_revealed_at_idx ON key_reveals (revealed_at);
