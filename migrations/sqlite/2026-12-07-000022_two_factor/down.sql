DELETE FROM security_events WHERE event NOT IN ('user_disabled', 'user_enabled', 'password_reset');
CREATE TABLE security_events_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('user_disabled', 'user_enabled', 'password_reset')),
    actor_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    actor TEXT NOT NULL,
    sessions_ended BIGINT NOT NULL,
    tokens_revoked BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
INSERT INTO security_events_old SELECT id, user_id, event, actor_id, actor, sessions_ended, tokens_revoked, occurred_at FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_old RENAME TO security_events;
CREATE INDEX security_events_user_id_idx ON security_events (user_id, occurred_at);
CREATE INDEX security_events_actor_id_idx ON security_events (actor_id);
CREATE INDEX security_events_occurred_at_idx ON security_events (occurred_at);
DROP TABLE second_factor_failures;
DROP TABLE login_challenges;
DROP TABLE recovery_codes;
DROP TABLE second_factors;
