-- When each user ran provider tests, for LANYARD_TEST_RATE_PER_MINUTE; in the database so that
-- every instance counts the same.
CREATE TABLE provider_test_runs (
    id UUID PRIMARY KEY NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_test_runs_user_id_idx ON provider_test_runs (user_id, started_at);
