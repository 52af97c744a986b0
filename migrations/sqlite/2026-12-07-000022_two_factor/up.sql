-- Two-factor authentication for password accounts (sign-in.md). Keep equivalent to the other
-- migrations tree (a test compares the two schemas).

-- A user's time-based one-time password: the secret sealed under the master keyring, bound to
-- the user (purpose `lanyard/second-factor/totp`), and the last time step accepted, so that a
-- code (or an earlier one) is never accepted twice.
CREATE TABLE second_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_encrypted BLOB NOT NULL,
    key_id TEXT NOT NULL,
    last_used_step BIGINT NOT NULL,
    enabled_at TIMESTAMP NOT NULL
);
CREATE INDEX second_factors_key_id_idx ON second_factors (key_id);

-- Ten single-use recovery codes per second factor, stored only as SHA-256 digests.
CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);

-- A password accepted for an account with a second factor: the pending second step of that one
-- attempt (5 minutes). The browser holds a random token in a cookie; only its SHA-256 is here.
CREATE TABLE login_challenges (
    token_hash BLOB PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX login_challenges_user_id_idx ON login_challenges (user_id);
CREATE INDEX login_challenges_expires_at_idx ON login_challenges (expires_at);

-- Wrong second-factor codes per account from every address together (at most 10 in 5 minutes);
-- they also count in auth_failures against the login limits per (account, address) and address.
CREATE TABLE second_factor_failures (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX second_factor_failures_user_id_idx ON second_factor_failures (user_id, failed_at);

-- Security events learn the second factor's events. SQLite cannot alter a CHECK constraint:
-- the table is rebuilt (nothing references it).
CREATE TABLE security_events_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('user_disabled', 'user_enabled', 'password_reset', 'second_factor_enabled', 'second_factor_disabled', 'second_factor_reset', 'recovery_code_used')),
    actor_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    actor TEXT NOT NULL,
    sessions_ended BIGINT NOT NULL,
    tokens_revoked BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
INSERT INTO security_events_new SELECT id, user_id, event, actor_id, actor, sessions_ended, tokens_revoked, occurred_at FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_new RENAME TO security_events;
CREATE INDEX security_events_user_id_idx ON security_events (user_id, occurred_at);
CREATE INDEX security_events_actor_id_idx ON security_events (actor_id);
CREATE INDEX security_events_occurred_at_idx ON security_events (occurred_at);
