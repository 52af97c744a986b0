-- Single sign-on by OpenID Connect (sign-in.md). Keep equivalent to the other migrations tree
-- (a test compares the two schemas).

-- The identity provider's `sub` of the person, once their account is linked (by a first
-- single sign-on that created the account, or from /settings). An account without a password
-- has an empty password_hash: it signs in by single sign-on alone.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject_idx ON users (oidc_subject);

-- An organisation the group mapping (LANYARD_OIDC_ORGANISATIONS) created: instance admins act
-- as its owners while it has none. The mapping joins people to such organisations only.
ALTER TABLE organisations ADD COLUMN managed BOOLEAN NOT NULL DEFAULT FALSE;
-- A membership the group mapping made, so that the mapping takes away only what it gave.
ALTER TABLE memberships ADD COLUMN from_single_sign_on BOOLEAN NOT NULL DEFAULT FALSE;

-- Sign-ins begun at /auth/oidc/start and not yet come back (10 minutes): the SHA-256 of each
-- one's `state`, deleted when its callback arrives, so that a state is used at most once.
CREATE TABLE single_sign_on_states (
    state_hash BLOB PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX single_sign_on_states_expires_at_idx ON single_sign_on_states (expires_at);
