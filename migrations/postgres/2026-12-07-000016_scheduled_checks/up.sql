-- Scheduled checks (monitoring.md): when each connection is next due, the claim an instance
-- holds while it checks it, the back-off after answers that say nothing about the key (429,
-- 5xx, timeouts), an optional expiry date, and the history of checks. Keep equivalent to
-- migrations/sqlite (a test compares the two schemas).
--
-- next_check_at NULL: not scheduled yet (a new, upgraded or just-tested connection); the
-- scheduler puts it one interval after its last test or creation, spread over the interval
-- when that moment has passed. While a check runs, next_check_at is the claim's expiry: an
-- instance that dies mid-check leaves it to expire, and another instance takes it then.
ALTER TABLE connections ADD COLUMN next_check_at TIMESTAMP;
ALTER TABLE connections ADD COLUMN check_claimed_at TIMESTAMP;
ALTER TABLE connections ADD COLUMN check_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN expires_at TIMESTAMP;
CREATE INDEX connections_next_check_at_idx ON connections (next_check_at);

-- One row per check, scheduled or manual; the scheduler keeps the latest few hundred.
CREATE TABLE connection_checks (
    id UUID PRIMARY KEY NOT NULL,
    connection_id UUID NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    checked_at TIMESTAMP NOT NULL,
    "trigger" TEXT NOT NULL CHECK ("trigger" IN ('scheduled', 'manual')),
    -- 'unavailable': the provider answered 429 or 5xx, or did not answer in time; no verdict.
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unavailable')),
    code TEXT NOT NULL,
    latency_ms BIGINT
);
CREATE INDEX connection_checks_connection_id_checked_at_idx ON connection_checks (connection_id, checked_at);
