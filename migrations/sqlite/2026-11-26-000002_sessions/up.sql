-- Browser sessions, kept on the server so that logout and a password change end them on every
-- instance. The cookie holds a random key; only its SHA-256 is stored here.
CREATE TABLE sessions (
    key_hash BLOB PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP NOT NULL,
    idle_expires_at TIMESTAMP NOT NULL,
    absolute_expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_idle_expires_at_idx ON sessions (idle_expires_at);

-- Failed logins and registrations, counted per (account, address) and per address over a
-- window; in the database so that every instance sees the same counts.
CREATE TABLE auth_failures (
    id TEXT PRIMARY KEY NOT NULL,
    account_key TEXT NOT NULL,
    client_address TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX auth_failures_client_address_idx ON auth_failures (client_address, failed_at);
CREATE INDEX auth_failures_failed_at_idx ON auth_failures (failed_at);
