-- What was done to an account and by whom (disabling, enabling, an admin's password reset),
-- shown to the user on /settings and to admins on /admin. Deleting the user deletes their
-- events; deleting the actor keeps them (actor_id becomes NULL, `actor` still names them).
CREATE TABLE security_events (
    id UUID PRIMARY KEY NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('user_disabled', 'user_enabled', 'password_reset')),
    actor_id UUID REFERENCES users (id) ON DELETE SET NULL,
    actor TEXT NOT NULL,
    sessions_ended BIGINT NOT NULL,
    tokens_revoked BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
CREATE INDEX security_events_user_id_idx ON security_events (user_id, occurred_at);
CREATE INDEX security_events_actor_id_idx ON security_events (actor_id);
CREATE INDEX security_events_occurred_at_idx ON security_events (occurred_at);
