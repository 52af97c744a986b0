-- Webhooks (monitoring.md): where a user or an organisation wants to hear about transitions,
-- the queue of deliveries (an outbox written in the same transaction as the check that caused
-- it, claimed by one instance at a time, retried on LANYARD_WEBHOOK_RETRY_SCHEDULE), the log of
-- every attempt, and which expiry notices a connection has had. Keep equivalent to
-- migrations/postgres (a test compares the two schemas). Independent of the organisation-resources
-- migration (000017).

-- The smallest expiry window already announced (`connection.expiring`): 0 none, 7 the
-- seven-day notice, 1 the one-day notice. Set back to 0 when expires_at changes.
ALTER TABLE connections ADD COLUMN expiry_notice BIGINT NOT NULL DEFAULT 0;

-- Owned by a user or by an organisation, never both. The secret (`whsec_` + 32 characters) is
-- sealed under the master keyring, bound to the webhook's id.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    owner_organisation_id TEXT REFERENCES organisations (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- Comma-separated event types, or `*`.
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    is_active BOOLEAN NOT NULL,
    secret_encrypted BLOB NOT NULL,
    key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((owner_user_id IS NULL) <> (owner_organisation_id IS NULL))
);
CREATE INDEX webhooks_owner_user_id_idx ON webhooks (owner_user_id);
CREATE INDEX webhooks_owner_organisation_id_idx ON webhooks (owner_organisation_id);

-- One event for one webhook. `body` is the exact JSON sent on every attempt. While pending,
-- next_attempt_at is when it is due, or, while an instance holds it (claimed_at set), when
-- that claim lapses for another instance to take.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'given_up')),
    next_attempt_at TIMESTAMP,
    claimed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_next_attempt_at_idx ON webhook_deliveries (next_attempt_at);
CREATE INDEX webhook_deliveries_webhook_id_idx ON webhook_deliveries (webhook_id);

-- Every attempt: the status code the receiver answered, or why there was none.
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    attempted_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_attempts_webhook_id_attempted_at_idx ON webhook_attempts (webhook_id, attempted_at);
