-- Service tokens: `lny_` tokens owned by an organisation (scopes `read` and/or `resolve`), with
-- which the team's runtime resolves for its members; and the organisation's audit of reveals
-- (through its service tokens, or of its configurations by a member's own token). Both die with
-- the organisation. The audit keeps the token's name and the configuration's name as they were,
-- so that a line outlives a revoked token or a deleted configuration; a deleted member leaves
-- the line with no member.
-- Keep equivalent to migrations/sqlite (a test compares the two schemas).
CREATE TABLE service_tokens (
    id UUID PRIMARY KEY NOT NULL,
    organisation_id UUID NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    is_revoked BOOLEAN NOT NULL DEFAULT FALSE,
    CONSTRAINT service_tokens_token_hash_unique UNIQUE (token_hash)
);
CREATE INDEX service_tokens_organisation_id_idx ON service_tokens (organisation_id, created_at);
CREATE INDEX service_tokens_created_by_idx ON service_tokens (created_by);

CREATE TABLE organisation_reveals (
    id UUID PRIMARY KEY NOT NULL,
    organisation_id UUID NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    token_id UUID NOT NULL,
    token_name TEXT NOT NULL,
    member_id UUID REFERENCES users (id) ON DELETE SET NULL,
    configuration_id UUID,
    configuration_name TEXT NOT NULL,
    revealed_at TIMESTAMP NOT NULL
);
CREATE INDEX organisation_reveals_organisation_id_idx ON organisation_reveals (organisation_id, revealed_at);
CREATE INDEX organisation_reveals_member_id_idx ON organisation_reveals (member_id);

-- The instance audit learns the fourth source, `organisation_default`.
ALTER TABLE key_reveals DROP CONSTRAINT key_reveals_source_check;
ALTER TABLE key_reveals ADD CONSTRAINT key_reveals_source_check
    CHECK (source IN ('override', 'default', 'organisation_default', 'fallback'));
