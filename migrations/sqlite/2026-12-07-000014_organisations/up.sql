-- Organisations: a team, its members with their roles, and the invitations that wait for the
-- invited person to accept. Deleting an organisation deletes its memberships and invitations;
-- deleting a user deletes their memberships (the services refuse it for a last owner).
-- Keep equivalent to migrations/postgres (a test compares the two schemas).
CREATE TABLE organisations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    allow_personal_configurations BOOLEAN NOT NULL DEFAULT 0,
    default_configuration_id TEXT REFERENCES llm_configurations (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT organisations_name_key_unique UNIQUE (name_key)
);
CREATE INDEX organisations_default_configuration_id_idx ON organisations (default_configuration_id);

CREATE TABLE memberships (
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    share_personal_configurations BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (organisation_id, user_id)
);
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

-- An invitation names an e-mail, not a user: it waits for an account with that e-mail.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    invited_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT invitations_email_key_unique UNIQUE (organisation_id, email_key)
);
CREATE INDEX invitations_email_key_idx ON invitations (email_key);
CREATE INDEX invitations_invited_by_idx ON invitations (invited_by);
